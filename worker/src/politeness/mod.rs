//! Politeness per host, shared by every worker process through Redis.
//!
//! - At most `host_concurrency` requests in flight per host, and at least `host_interval`
//!   between two request starts (`acquire.lua`, one atomic step).
//! - A 429/503 with `Retry-After` holds the whole host until then.
//! - `breaker_failures` failures in a row open the host's breaker for `breaker_open`.
//! - `robots.txt` ([`robots`]).
//!
//! A job that cannot have its turn is not made to wait in a worker slot: the caller defers it
//! by the wait this module suggests, and the slot goes to another host's job.

pub mod robots;

use std::{sync::LazyLock, time::Duration};

use fuze_shared::{
    clock::{millis, now_ms},
    config::PolitenessConfig,
    keys::Keys,
};
use redis::{Script, aio::ConnectionManager};

/// Why a request to a host has to wait; a stable metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// The host's in-flight cap is reached.
    Busy,
    /// The last request started less than the interval ago.
    Interval,
    /// The host asked us to come back later (`Retry-After`).
    RetryAfter,
    /// Recent requests kept failing; the breaker is open.
    BreakerOpen,
}

impl WaitReason {
    pub const ALL: [WaitReason; 4] = [
        WaitReason::Busy,
        WaitReason::Interval,
        WaitReason::RetryAfter,
        WaitReason::BreakerOpen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Interval => "interval",
            Self::RetryAfter => "retry_after",
            Self::BreakerOpen => "breaker_open",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "interval" => Self::Interval,
            "retry_after" => Self::RetryAfter,
            "breaker_open" => Self::BreakerOpen,
            _ => Self::Busy,
        }
    }
}

/// The answer to "may I send a request to this host now?".
#[derive(Debug)]
pub enum Turn {
    Granted(Lease),
    Wait { wait: Duration, reason: WaitReason },
}

/// One request's place among a host's in-flight requests; released when the request is over
/// (or, if its process dies, when the lease expires).
#[derive(Debug)]
pub struct Lease {
    release: Option<(ConnectionManager, String, String)>,
}

impl Lease {
    pub async fn release(mut self) {
        if let Some((mut conn, key, id)) = self.release.take() {
            let removed: redis::RedisResult<i64> = redis::cmd("ZREM")
                .arg(key)
                .arg(id)
                .query_async(&mut conn)
                .await;
            if let Err(e) = removed {
                tracing::warn!(error = %e, "failed to release a host lease; it expires on its own");
            }
        }
    }
}

impl Drop for Lease {
    /// A lease dropped on an early return is released in the background.
    fn drop(&mut self) {
        if let Some(parts) = self.release.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(
                Lease {
                    release: Some(parts),
                }
                .release(),
            );
        }
    }
}

/// How long a host's bookkeeping lives after its last use (consecutive failures included).
fn failure_memory(cfg: &PolitenessConfig) -> Duration {
    cfg.breaker_open * 2 + Duration::from_secs(60)
}

#[derive(Clone)]
pub struct Politeness {
    conn: ConnectionManager,
    keys: Keys,
    cfg: PolitenessConfig,
    /// A lease outlives the longest request (the scraper's whole-fetch timeout) by this much.
    lease_ttl: Duration,
}

impl Politeness {
    pub fn new(
        conn: ConnectionManager,
        keys: Keys,
        cfg: PolitenessConfig,
        fetch_timeout: Duration,
    ) -> Self {
        Self {
            conn,
            keys,
            cfg,
            lease_ttl: fetch_timeout + Duration::from_secs(5),
        }
    }

    pub fn config(&self) -> &PolitenessConfig {
        &self.cfg
    }

    fn key(&self, host: &str, part: &str) -> String {
        format!("{}:{part}", self.keys.host(host))
    }

    /// Takes a turn for one request to `host`, or says how long to wait for one. `promised`: the
    /// start this host promised the caller when it last turned it away (it keeps its place in
    /// line; a newcomer queues behind every promise).
    pub async fn acquire(&self, host: &str, promised: Option<u64>) -> redis::RedisResult<Turn> {
        static ACQUIRE: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!("acquire.lua")));
        let lease_id = ulid3::Ulid::generate().to_string();
        let leases = self.key(host, "leases");
        let mut conn = self.conn.clone();
        let (granted, wait_ms, reason): (i64, u64, String) = ACQUIRE
            .prepare_invoke()
            .key(&leases)
            .key(self.key(host, "next"))
            .key(self.key(host, "held"))
            .key(self.key(host, "breaker"))
            .key(self.key(host, "line"))
            .arg(now_ms())
            .arg(self.cfg.host_concurrency)
            .arg(millis(self.cfg.host_interval))
            .arg(millis(self.lease_ttl))
            .arg(&lease_id)
            .arg(millis(BUSY_SPACING))
            .arg(promised.unwrap_or(0))
            .invoke_async(&mut conn)
            .await?;
        if granted == 1 {
            return Ok(Turn::Granted(Lease {
                release: Some((self.conn.clone(), leases, lease_id)),
            }));
        }
        Ok(Turn::Wait {
            wait: Duration::from_millis(wait_ms.max(1)),
            reason: WaitReason::parse(&reason),
        })
    }

    /// The host answered (whatever the status): its failure streak ends.
    pub async fn answered(&self, host: &str) {
        let mut conn = self.conn.clone();
        let done: redis::RedisResult<i64> = redis::cmd("DEL")
            .arg(self.key(host, "failures"))
            .query_async(&mut conn)
            .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, host, "failed to reset a host's failure count");
        }
    }

    /// The host failed to answer usefully (timeout, network error, 5xx). Returns whether this
    /// failure opened its breaker.
    pub async fn failed(&self, host: &str) -> redis::RedisResult<bool> {
        static FAILED: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("failed.lua")));
        let mut conn = self.conn.clone();
        let opened: i64 = FAILED
            .prepare_invoke()
            .key(self.key(host, "failures"))
            .key(self.key(host, "breaker"))
            .key(self.keys.open_breakers())
            .arg(self.cfg.breaker_failures.max(1))
            .arg(millis(self.cfg.breaker_open).max(1))
            .arg(millis(failure_memory(&self.cfg)))
            .arg(now_ms())
            .arg(host)
            .invoke_async(&mut conn)
            .await?;
        Ok(opened == 1)
    }

    /// The host asked for a pause (`Retry-After`): no request to it starts before `wait` has
    /// passed (capped by the configured maximum). Returns the pause applied.
    pub async fn hold(&self, host: &str, wait: Duration) -> redis::RedisResult<Duration> {
        let wait = wait
            .min(self.cfg.max_retry_after)
            .max(Duration::from_millis(1));
        let until = now_ms() + millis(wait);
        static HOLD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("hold.lua")));
        let mut conn = self.conn.clone();
        let _: i64 = HOLD
            .prepare_invoke()
            .key(self.key(host, "held"))
            .arg(until)
            .arg(millis(wait))
            .invoke_async(&mut conn)
            .await?;
        Ok(wait)
    }
}

/// When a host is at its in-flight cap, waiting jobs are spaced at least this far apart (a
/// request's length is unknown; about a fast page's).
const BUSY_SPACING: Duration = Duration::from_millis(100);
