//! Cache settings, with defaults that follow DESIGN.md.

use std::time::Duration;

use super::keys::CacheType;

/// Settings of the whole layered cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Redis key prefix (`fuze` by default; tests use their own).
    pub prefix: String,
    /// Time to live in Redis per type, indexed by [`CacheType::index`].
    pub ttls: [Duration; 6],
    pub l1: L1Config,
    pub l2: L2Config,
    /// How long a process trusts the generation of a user it read from Redis without hearing of a
    /// change (a backstop for missed events; events and flushes drop it sooner).
    pub generation_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 60 * MIN;
        let mut ttls = [Duration::ZERO; 6];
        for ty in CacheType::ALL {
            ttls[ty.index()] = Duration::from_secs(match ty {
                CacheType::Embedding => 24 * HOUR,
                CacheType::Scraped => HOUR,
                CacheType::UserBookmarks => 5 * MIN,
                CacheType::Recommendations => 30 * MIN,
                CacheType::Analysis => 24 * HOUR,
                CacheType::Query => 5 * MIN,
            });
        }
        Self {
            prefix: "fuze".to_owned(),
            ttls,
            l1: L1Config::default(),
            l2: L2Config::default(),
            generation_ttl: Duration::from_secs(5),
        }
    }
}

impl CacheConfig {
    /// Defaults under another key prefix.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// The Redis TTL of a type.
    pub fn ttl(&self, ty: CacheType) -> Duration {
        self.ttls[ty.index()]
    }

    /// Sets the Redis TTL of a type.
    pub fn set_ttl(&mut self, ty: CacheType, ttl: Duration) {
        self.ttls[ty.index()] = ttl;
    }

    /// The longest an L1 entry of a type may live: the type's TTL, capped by the L1 maximum.
    pub fn l1_ttl(&self, ty: CacheType) -> Duration {
        self.ttl(ty).min(self.l1.max_ttl)
    }
}

/// Bounds of the in-process cache. `max_entries == 0` disables it.
#[derive(Debug, Clone)]
pub struct L1Config {
    pub max_entries: usize,
    /// Budget for values, ETags and keys, plus a fixed overhead per entry.
    pub max_bytes: usize,
    /// Larger values are not kept in L1 (they would push out many small hot ones).
    pub max_entry_bytes: usize,
    /// Cap on any entry's TTL: the backstop for a missed invalidation event.
    pub max_ttl: Duration,
    /// Entries sampled per eviction; the least recently used of them goes.
    pub eviction_samples: usize,
}

impl Default for L1Config {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_bytes: 256 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
            max_ttl: Duration::from_secs(5 * 60),
            eviction_samples: 8,
        }
    }
}

impl L1Config {
    /// An L1 that stores nothing (to measure L2 alone).
    pub fn disabled() -> Self {
        Self {
            max_entries: 0,
            ..Self::default()
        }
    }
}

/// Redis layer settings.
#[derive(Debug, Clone)]
pub struct L2Config {
    /// Values of at least this many bytes are compressed (if that makes them smaller).
    pub compress_threshold: usize,
    /// Longest wait for one Redis round trip; past it the read is a miss.
    pub op_timeout: Duration,
    /// After an error, Redis is skipped (reads miss, writes are dropped) for this long, so a down
    /// Redis costs requests nothing; the first call after it probes again.
    pub retry_after: Duration,
    /// Largest value accepted from Redis once decompressed (guards against a corrupt header).
    pub max_value_bytes: usize,
}

impl Default for L2Config {
    fn default() -> Self {
        Self {
            compress_threshold: 1024,
            op_timeout: Duration::from_millis(250),
            retry_after: Duration::from_secs(1),
            max_value_bytes: 64 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let c = CacheConfig::default();
        let h = |n: u64| Duration::from_secs(n * 3600);
        let m = |n: u64| Duration::from_secs(n * 60);
        assert_eq!(c.ttl(CacheType::Embedding), h(24));
        assert_eq!(c.ttl(CacheType::Scraped), h(1));
        assert_eq!(c.ttl(CacheType::UserBookmarks), m(5));
        assert_eq!(c.ttl(CacheType::Recommendations), m(30));
        assert_eq!(c.ttl(CacheType::Analysis), h(24));
        assert_eq!(c.ttl(CacheType::Query), m(5));
        assert!(c.l1_ttl(CacheType::Embedding) <= c.ttl(CacheType::Embedding));
        assert!(c.l1_ttl(CacheType::Embedding) <= c.l1.max_ttl);
    }
}
