//! The per-user cap on open event streams, across every api instance: each open stream holds a
//! slot in a sorted set of its user, scored by when the slot lapses. A stream renews its slot
//! on every heartbeat and frees it when it ends, so a crashed instance's slots lapse by
//! themselves.

use std::{sync::LazyLock, time::Duration};

use redis::{Script, aio::ConnectionManager};
use uuid::Uuid;

use crate::{clock::now_ms, keys::Keys};

/// Drops lapsed slots, then takes one if fewer than ARGV[1] are held. 1 if taken, else 0.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
",
    )
});

/// The slots of one user's open streams.
#[derive(Debug, Clone)]
pub struct OpenStreams {
    keys: Keys,
    /// Most streams a user may hold open.
    pub cap: u32,
    /// A slot not renewed for this long lapses.
    pub lease: Duration,
}

/// A slot held by one stream.
#[derive(Debug, Clone)]
pub struct StreamSlot {
    key: String,
    token: String,
}

impl OpenStreams {
    pub fn new(keys: Keys, cap: u32, lease: Duration) -> Self {
        Self { keys, cap, lease }
    }

    /// A slot for a new stream of the user, or `None` when the user holds `cap` already.
    pub async fn take(
        &self,
        conn: &mut ConnectionManager,
        user_id: Uuid,
    ) -> redis::RedisResult<Option<StreamSlot>> {
        let key = self.keys.feed_open_streams(user_id);
        let token = Uuid::new_v4().to_string();
        let now = now_ms();
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let taken: i64 = TAKE
            .key(&key)
            .arg(self.cap)
            .arg(now)
            .arg(now.saturating_add(lease_ms))
            .arg(&token)
            .arg(lease_ms.max(1))
            .invoke_async(conn)
            .await?;
        Ok((taken == 1).then_some(StreamSlot { key, token }))
    }

    /// Keeps the slot for another lease.
    pub async fn renew(
        &self,
        conn: &mut ConnectionManager,
        slot: &StreamSlot,
    ) -> redis::RedisResult<()> {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        redis::pipe()
            .cmd("ZADD")
            .arg(&slot.key)
            .arg("XX")
            .arg(now_ms().saturating_add(lease_ms))
            .arg(&slot.token)
            .ignore()
            .pexpire(&slot.key, i64::try_from(lease_ms).unwrap_or(i64::MAX))
            .ignore()
            .query_async(conn)
            .await
    }

    /// Frees the slot.
    pub async fn free(conn: &mut ConnectionManager, slot: &StreamSlot) -> redis::RedisResult<()> {
        redis::cmd("ZREM")
            .arg(&slot.key)
            .arg(&slot.token)
            .query_async(conn)
            .await
    }
}
