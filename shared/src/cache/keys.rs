//! Cache types, their Redis key names and the per-user generation counters.
//!
//! Key scheme, under a configurable prefix (default `fuze`):
//! - shared across users: `{prefix}:{type}:{key}` (embeddings, scraped pages, analyses);
//! - per user: `{prefix}:{type}:{user_id}:g{generation}:{key}`, where the generation is read from
//!   `{prefix}:gen:{user_id}:{type}`. `INCR` on that counter makes every value of that type of
//!   the user unreachable at once (O(1), no `KEYS`/`SCAN`); the orphans expire by their TTL. One
//!   counter per type, so a change drops only the types it affects (a note edit keeps analyses).

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What a cached value is; decides its TTL, its key segment and its metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheType {
    /// Embedding of a text by a model (shared across users).
    Embedding,
    /// Scraped page of a normalized URL (shared across users).
    Scraped,
    /// Pages and sets of a user's bookmarks.
    UserBookmarks,
    /// Ranked recommendations of a user.
    Recommendations,
    /// Analysis of one saved content row.
    Analysis,
    /// Search results of a user.
    Query,
}

impl CacheType {
    /// Every type, in the order of [`CacheType::index`].
    pub const ALL: [CacheType; 6] = [
        CacheType::Embedding,
        CacheType::Scraped,
        CacheType::UserBookmarks,
        CacheType::Recommendations,
        CacheType::Analysis,
        CacheType::Query,
    ];

    /// Key segment and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheType::Embedding => "embedding",
            CacheType::Scraped => "scraped",
            CacheType::UserBookmarks => "user_bookmarks",
            CacheType::Recommendations => "recommendations",
            CacheType::Analysis => "content_analysis",
            CacheType::Query => "query",
        }
    }

    /// The type's part of its configuration variable names (`FUZE_TTL_<this>_S`).
    pub fn env_name(self) -> &'static str {
        match self {
            CacheType::Embedding => "EMBEDDING",
            CacheType::Scraped => "SCRAPED",
            CacheType::UserBookmarks => "USER_BOOKMARKS",
            CacheType::Recommendations => "RECOMMENDATIONS",
            CacheType::Analysis => "ANALYSIS",
            CacheType::Query => "QUERY",
        }
    }

    /// The types cached per user, under that user's generations.
    pub const PER_USER: [CacheType; 4] = [
        CacheType::UserBookmarks,
        CacheType::Recommendations,
        CacheType::Analysis,
        CacheType::Query,
    ];

    /// Position in [`CacheType::ALL`], for per-type counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether values of this type belong to one user (their keys must carry the user id).
    pub fn is_user_scoped(self) -> bool {
        matches!(
            self,
            CacheType::UserBookmarks | CacheType::Recommendations | CacheType::Query
        )
    }
}

impl fmt::Display for CacheType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds the Redis key names of the cache under a prefix.
#[derive(Debug, Clone)]
pub struct CacheKeys {
    prefix: String,
}

impl CacheKeys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The generation counter of one type of a user's values: `{prefix}:gen:{user_id}:{type}`.
    pub fn generation(&self, user_id: Uuid, ty: CacheType) -> String {
        format!("{}:gen:{user_id}:{}", self.prefix, ty.as_str())
    }

    /// A key shared across users: `{prefix}:{type}:{key}`.
    pub fn shared(&self, ty: CacheType, key: &str) -> String {
        format!("{}:{}:{key}", self.prefix, ty.as_str())
    }

    /// A key derived from a user's data at a generation: `{prefix}:{type}:{user_id}:g{gen}:{key}`.
    pub fn derived(&self, ty: CacheType, user_id: Uuid, generation: u64, key: &str) -> String {
        format!(
            "{}:{}:{user_id}:g{generation}:{key}",
            self.prefix,
            ty.as_str()
        )
    }
}

/// Hex sha256 of several parts, unambiguous however they split (`["ab", "c"]` != `["a", "bc"]`):
/// for logical keys built from free text (queries, normalized URLs, model + text).
pub fn hash_parts(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_design_names() {
        let k = CacheKeys::new("p");
        let u = Uuid::nil();
        assert_eq!(
            k.generation(u, CacheType::Analysis),
            format!("p:gen:{u}:content_analysis")
        );
        assert_eq!(k.shared(CacheType::Scraped, "ab"), "p:scraped:ab");
        assert_eq!(k.shared(CacheType::Analysis, "c1"), "p:content_analysis:c1");
        assert_eq!(
            k.derived(CacheType::UserBookmarks, u, 7, "page:1"),
            format!("p:user_bookmarks:{u}:g7:page:1")
        );
        assert_ne!(
            k.derived(CacheType::Query, u, 1, "x"),
            k.derived(CacheType::Query, u, 2, "x")
        );
    }

    #[test]
    fn index_matches_all() {
        for (i, ty) in CacheType::ALL.iter().enumerate() {
            assert_eq!(ty.index(), i);
        }
    }

    #[test]
    fn hash_parts_is_unambiguous() {
        assert_ne!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"a", b"bc"]));
        assert_eq!(hash_parts(&[b"x"]).len(), 64);
    }
}
