//! L2: Redis, shared by every process.
//!
//! A Redis problem never reaches a caller as an error: a failed or slow read is a miss, a failed
//! write is dropped, and both are counted. After an error Redis is skipped for `retry_after`, so
//! while it is down requests pay nothing for it; the first call after that probes it again.
//!
//! The connection is lazy: building an [`L2`] does no I/O and succeeds even if Redis is
//! unreachable; the `ConnectionManager` connects on first use and reconnects by itself.
//!
//! Stored values start with a one-byte header: [`HEADER_RAW`] or [`HEADER_LZ4`] (LZ4 block with the
//! original length in front). Both are bytes that never begin UTF-8 text, so a value written
//! without the header (plain JSON) is recognised and treated as a miss instead of being misread.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use bytes::Bytes;
use redis::{
    IntoConnectionInfo, ProtocolVersion, RedisResult,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use serde::Serialize;
use tokio::time::Instant;

use super::config::L2Config;

/// Header of a value stored as is.
pub const HEADER_RAW: u8 = 0xFE;
/// Header of an LZ4-compressed value.
pub const HEADER_LZ4: u8 = 0xFF;

/// Counters of the L2, updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct L2Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub writes: AtomicU64,
    /// Redis errors and timeouts.
    pub errors: AtomicU64,
    /// Calls not sent because Redis failed moments ago (or L2 is disabled).
    pub skipped: AtomicU64,
    /// Values found but not decodable (unknown header, corrupt data).
    pub decode_errors: AtomicU64,
    /// Values stored compressed.
    pub compressed_writes: AtomicU64,
}

/// A point-in-time copy of [`L2Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct L2StatsSnapshot {
    pub hits: u64,
    pub misses: u64,
    pub writes: u64,
    pub errors: u64,
    pub skipped: u64,
    pub decode_errors: u64,
    pub compressed_writes: u64,
}

impl L2Stats {
    pub fn snapshot(&self) -> L2StatsSnapshot {
        L2StatsSnapshot {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            writes: self.writes.load(Relaxed),
            errors: self.errors.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            compressed_writes: self.compressed_writes.load(Relaxed),
        }
    }
}

/// A value read from Redis and how long it has left there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Value {
    pub bytes: Bytes,
    /// `None` if the key has no expiry.
    pub ttl: Option<Duration>,
}

/// Why a stored value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty value")]
    Empty,
    #[error("unknown header byte {0:#04x}")]
    UnknownHeader(u8),
    #[error("decompressed size {0} over the limit")]
    TooLarge(usize),
    #[error("corrupt compressed value: {0}")]
    Corrupt(String),
}

/// Adds the header, compressing when the value is at least `threshold` bytes and compression
/// makes it smaller.
pub fn encode(value: &[u8], threshold: usize) -> Vec<u8> {
    if value.len() >= threshold {
        let compressed = lz4_flex::compress_prepend_size(value);
        if compressed.len() < value.len() {
            let mut out = Vec::with_capacity(compressed.len() + 1);
            out.push(HEADER_LZ4);
            out.extend_from_slice(&compressed);
            return out;
        }
    }
    let mut out = Vec::with_capacity(value.len() + 1);
    out.push(HEADER_RAW);
    out.extend_from_slice(value);
    out
}

/// Reverses [`encode`]; a raw value is returned without copying.
pub fn decode(stored: Bytes, max_len: usize) -> Result<Bytes, DecodeError> {
    match stored.first() {
        None => Err(DecodeError::Empty),
        Some(&HEADER_RAW) => Ok(stored.slice(1..)),
        Some(&HEADER_LZ4) => {
            let body = &stored[1..];
            let declared = body
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| DecodeError::Corrupt("missing length".to_owned()))?;
            if declared > max_len {
                return Err(DecodeError::TooLarge(declared));
            }
            lz4_flex::decompress_size_prepended(body)
                .map(Bytes::from)
                .map_err(|e| DecodeError::Corrupt(e.to_string()))
        }
        Some(&other) => Err(DecodeError::UnknownHeader(other)),
    }
}

/// The Redis layer. Cheap to share behind an `Arc`; the connection is multiplexed.
pub struct L2 {
    conn: Option<ConnectionManager>,
    config: L2Config,
    stats: L2Stats,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not tried.
    skip_until_ms: AtomicU64,
}

impl std::fmt::Debug for L2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2")
            .field("enabled", &self.conn.is_some())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl L2 {
    /// A lazy connection to `url` (RESP3, reconnecting). Fails only on an invalid URL; must be
    /// called inside a Tokio runtime.
    pub fn connect_lazy(url: &str, config: L2Config) -> RedisResult<Self> {
        let info = url.into_connection_info()?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        // Our own per-call timeout bounds every wait; the manager's retries only pace reconnects.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.op_timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(config.op_timeout.max(Duration::from_secs(1))))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self::with_connection(conn, config))
    }

    /// Uses an existing connection.
    pub fn with_connection(conn: ConnectionManager, config: L2Config) -> Self {
        Self::build(Some(conn), config)
    }

    /// An L2 that stores nothing (every read misses, counted as skipped).
    pub fn disabled(config: L2Config) -> Self {
        Self::build(None, config)
    }

    fn build(conn: Option<ConnectionManager>, config: L2Config) -> Self {
        Self {
            conn,
            config,
            stats: L2Stats::default(),
            started: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &L2Config {
        &self.config
    }

    pub fn stats(&self) -> &L2Stats {
        &self.stats
    }

    /// Whether calls go to Redis now (connected or not; false while backing off after an error).
    pub fn is_available(&self) -> bool {
        self.conn.is_some() && self.now_ms() >= self.skip_until_ms.load(Relaxed)
    }

    /// Reads a value and its remaining TTL in one round trip. Any failure is a miss.
    pub async fn get(&self, key: &str) -> Option<L2Value> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (raw, pttl): (Option<Vec<u8>>, i64) = match self.run(pipe).await {
            Some(reply) => reply,
            None => {
                self.stats.misses.fetch_add(1, Relaxed);
                return None;
            }
        };
        let Some(raw) = raw else {
            self.stats.misses.fetch_add(1, Relaxed);
            return None;
        };
        match decode(Bytes::from(raw), self.config.max_value_bytes) {
            Ok(bytes) => {
                self.stats.hits.fetch_add(1, Relaxed);
                let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
                Some(L2Value { bytes, ttl })
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "undecodable cache value");
                self.stats.decode_errors.fetch_add(1, Relaxed);
                self.stats.misses.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Stores a value for `ttl`. Failures are counted and dropped.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        let stored = encode(value, self.config.compress_threshold);
        if stored.first() == Some(&HEADER_LZ4) {
            self.stats.compressed_writes.fetch_add(1, Relaxed);
        }
        let mut pipe = redis::pipe();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        pipe.cmd("SET")
            .arg(key)
            .arg(stored)
            .arg("PX")
            .arg(ms)
            .ignore();
        if self.run::<()>(pipe).await.is_some() {
            self.stats.writes.fetch_add(1, Relaxed);
        }
    }

    /// Deletes keys. Failures are counted and dropped.
    pub async fn delete(&self, keys: &[&str]) {
        if keys.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(keys).ignore();
        self.run::<()>(pipe).await;
    }

    /// Reads a counter: `Some(0)` if absent, `None` if Redis could not be asked.
    pub async fn get_counter(&self, key: &str) -> Option<u64> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key);
        let (value,): (Option<u64>,) = self.run(pipe).await?;
        Some(value.unwrap_or(0))
    }

    /// Increments a counter and (re)sets its expiry; returns the new value, `None` on failure.
    pub async fn incr_counter(&self, key: &str, ttl: Duration) -> Option<u64> {
        let mut pipe = redis::pipe();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        pipe.cmd("INCR")
            .arg(key)
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ms)
            .ignore();
        let (value,): (u64,) = self.run(pipe).await?;
        Some(value)
    }

    /// Runs a pipeline within the timeout; `None` (counted) on any failure or while backing off.
    async fn run<T: redis::FromRedisValue>(&self, pipe: redis::Pipeline) -> Option<T> {
        let Some(conn) = &self.conn else {
            self.stats.skipped.fetch_add(1, Relaxed);
            return None;
        };
        if self.now_ms() < self.skip_until_ms.load(Relaxed) {
            self.stats.skipped.fetch_add(1, Relaxed);
            return None;
        }
        let mut conn = conn.clone();
        let reply: RedisResult<T> =
            match tokio::time::timeout(self.config.op_timeout, pipe.query_async(&mut conn)).await {
                Ok(reply) => reply,
                Err(_) => Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "cache operation timed out",
                ))),
            };
        match reply {
            Ok(value) => Some(value),
            Err(e) => {
                self.stats.errors.fetch_add(1, Relaxed);
                let until = self.now_ms() + self.config.retry_after.as_millis() as u64;
                self.skip_until_ms.fetch_max(until, Relaxed);
                tracing::warn!(error = %e, "cache Redis call failed; skipping Redis for a while");
                None
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_stored_raw() {
        let v = b"{\"a\":1}";
        let stored = encode(v, 1024);
        assert_eq!(stored[0], HEADER_RAW);
        assert_eq!(&stored[1..], v);
        assert_eq!(decode(Bytes::from(stored), 1 << 20).as_deref(), Ok(&v[..]));
    }

    #[test]
    fn large_compressible_values_round_trip_compressed() {
        let v = "bookmark title and some text ".repeat(200).into_bytes();
        let stored = encode(&v, 1024);
        assert_eq!(stored[0], HEADER_LZ4);
        assert!(stored.len() < v.len() / 4);
        assert_eq!(decode(Bytes::from(stored), 1 << 20).as_deref(), Ok(&v[..]));
    }

    #[test]
    fn threshold_is_respected() {
        let v = vec![b'a'; 1000];
        assert_eq!(encode(&v, 1001)[0], HEADER_RAW);
        assert_eq!(encode(&v, 1000)[0], HEADER_LZ4);
    }

    #[test]
    fn incompressible_values_stay_raw() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let v: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        let stored = encode(&v, 16);
        assert_eq!(stored[0], HEADER_RAW);
        assert_eq!(decode(Bytes::from(stored), 1 << 20).as_deref(), Ok(&v[..]));
    }

    #[test]
    fn foreign_and_corrupt_values_are_rejected() {
        assert_eq!(
            decode(Bytes::from_static(b"{\"legacy\":true}"), 1 << 20),
            Err(DecodeError::UnknownHeader(b'{'))
        );
        assert_eq!(decode(Bytes::new(), 1 << 20), Err(DecodeError::Empty));
        let mut stored = encode(&vec![b'x'; 5000], 10);
        assert!(matches!(
            decode(Bytes::from(stored.clone()), 100),
            Err(DecodeError::TooLarge(5000))
        ));
        stored.truncate(8);
        assert!(matches!(
            decode(Bytes::from(stored), 1 << 20),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn disabled_l2_misses_and_counts() {
        let l2 = L2::disabled(L2Config::default());
        assert!(l2.get("k").await.is_none());
        l2.set("k", b"v", Duration::from_secs(1)).await;
        let s = l2.stats().snapshot();
        assert_eq!((s.misses, s.skipped, s.writes, s.errors), (1, 2, 0, 0));
    }
}
