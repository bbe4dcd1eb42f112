//! Every Redis key and channel name Fuze uses, in one place, under a configurable prefix.

use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Scraped page of a normalized URL, shared across users (`url_hash_hex` = sha256 of the URL).
    pub fn scraped(&self, url_hash_hex: &str) -> String {
        format!("{}:scraped:{url_hash_hex}", self.prefix)
    }

    /// Embedding of a text in an embedding space (model, weights, passage scheme): never embed
    /// the same text twice.
    pub fn embedding(&self, space: &str, text: &str) -> String {
        let mut h = Sha256::new();
        h.update(space.as_bytes());
        h.update([0u8]);
        h.update(text.as_bytes());
        format!("{}:embedding:{}", self.prefix, hex::encode(h.finalize()))
    }

    /// Progress of the reindex pass into one embedding space (a hash).
    pub fn reindex(&self, space: &str) -> String {
        format!("{}:reindex:{space}", self.prefix)
    }

    /// Held for a moment by the worker that starts a reindex pass, so only one starts it.
    pub fn reindex_starting(&self, space: &str) -> String {
        format!("{}:reindex:{space}:starting", self.prefix)
    }

    /// apalis queue name of a job queue.
    pub fn queue(&self, name: &str) -> String {
        format!("{}:queue:{name}", self.prefix)
    }

    /// Deliveries of failed jobs kept for a while, with the time each may go (ms).
    pub fn expiring_deliveries(&self, queue: &str) -> String {
        format!("{}:queue:{queue}:expiring", self.prefix)
    }

    /// Base of a stage's fair queue (`jobs::fair`).
    pub fn fair(&self, queue: &str) -> String {
        format!("{}:fair:{queue}", self.prefix)
    }

    /// Base of one host's politeness state (leases, next start, hold, breaker).
    pub fn host(&self, host: &str) -> String {
        format!("{}:host:{host}", self.prefix)
    }

    /// Hosts whose breaker is open, with the time it closes.
    pub fn open_breakers(&self) -> String {
        format!("{}:hosts:open-breakers", self.prefix)
    }

    /// A cached robots.txt of one origin (`scheme://host:port`).
    pub fn robots(&self, origin: &str) -> String {
        format!("{}:robots:{origin}", self.prefix)
    }

    /// A user's token bucket for one class of requests.
    pub fn rate_limit(&self, class: &str, user_id: uuid::Uuid) -> String {
        format!("{}:rate:{class}:{user_id}", self.prefix)
    }

    /// Set while a user's session warm-up is cooling down (`SET NX PX`).
    pub fn warm_user_guard(&self, user_id: uuid::Uuid) -> String {
        format!("{}:warm:user:{user_id}", self.prefix)
    }

    /// Set by the first clock that enqueues the warm-up of a cron tick (`SET NX EX`).
    pub fn warm_tick(&self, tick_unix_s: u64) -> String {
        format!("{}:warm:tick:{tick_unix_s}", self.prefix)
    }

    /// Pub/sub channel on which pushes wake idle workers.
    pub fn wake_channel(&self) -> String {
        format!("{}:wake", self.prefix)
    }

    /// Pub/sub channel of cache invalidation events.
    pub fn events_channel(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// Pub/sub channel of every user's feed events (`feed`).
    pub fn feed_channel(&self) -> String {
        format!("{}:feed", self.prefix)
    }

    /// A user's recent feed events (a capped stream), replayed on reconnect.
    pub fn feed_stream(&self, user_id: uuid::Uuid) -> String {
        format!("{}:feed:{user_id}", self.prefix)
    }

    /// Slots of a user's open event streams (a sorted set), for the per-user cap.
    pub fn feed_open_streams(&self, user_id: uuid::Uuid) -> String {
        format!("{}:feed:{user_id}:open", self.prefix)
    }

    /// Set while an import's progress event was sent recently (`SET NX PX`).
    pub fn feed_import_throttle(&self, import_id: uuid::Uuid) -> String {
        format!("{}:feed:import:{import_id}:sent", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix_and_separate_models() {
        let k = Keys::new("t1");
        assert_eq!(k.scraped("ab"), "t1:scraped:ab");
        assert!(k.embedding("m", "x").starts_with("t1:embedding:"));
        assert_ne!(k.embedding("m1", "x"), k.embedding("m2", "x"));
        assert_ne!(k.embedding("m", "ab"), k.embedding("ma", "b"));
    }
}
