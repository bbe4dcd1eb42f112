//! Recently verified bearer tokens, so a cached read needs no database round trip to authenticate.
//! Keyed by the token's sha256 (raw tokens are never kept); only valid tokens are remembered, for
//! `FUZE_AUTH_CACHE_TTL_S`: a user removed from the database keeps access to this instance for at
//! most that long.

use std::{sync::Mutex, time::Duration};

use cached::{Cached, TimedSizedCache};
use uuid::Uuid;

pub struct TokenCache {
    /// `None` when disabled (TTL 0).
    known: Option<Mutex<TimedSizedCache<Vec<u8>, Uuid>>>,
}

impl TokenCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            known: (!ttl.is_zero() && capacity > 0)
                .then(|| Mutex::new(TimedSizedCache::with_size_and_lifespan(capacity, ttl))),
        }
    }

    pub fn get(&self, token_hash: &[u8]) -> Option<Uuid> {
        let mut known = self
            .known
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        known.cache_get(token_hash).copied()
    }

    pub fn insert(&self, token_hash: Vec<u8>, user: Uuid) {
        if let Some(known) = &self.known {
            known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .cache_set(token_hash, user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_valid_tokens_until_the_ttl() {
        let cache = TokenCache::new(Duration::from_millis(50), 10);
        let user = Uuid::new_v4();
        assert_eq!(cache.get(b"h1"), None);
        cache.insert(b"h1".to_vec(), user);
        assert_eq!(cache.get(b"h1"), Some(user));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(cache.get(b"h1"), None);
    }

    #[test]
    fn a_zero_ttl_disables_it() {
        let cache = TokenCache::new(Duration::ZERO, 10);
        cache.insert(b"h1".to_vec(), Uuid::new_v4());
        assert_eq!(cache.get(b"h1"), None);
    }
}
