//! Asking for cache warm-ups: by a session start (one user, with a cooldown), by an operator's
//! cron through the admin endpoint, and by the clock (once per tick however many clocks run).

use std::time::Duration;

use anyhow::Context;
use uuid::Uuid;

use super::{JobQueues, Lane, Owner, QueueName, Ticket, WarmJob, queue::new_task_id};

/// How long a tick's idempotency key lives: long after every clock has seen that tick.
const TICK_KEY_TTL: Duration = Duration::from_secs(3600);

/// Enqueues a warm-up of one user unless one was enqueued within `cooldown`. Returns whether
/// it was enqueued.
pub async fn request_user(
    queues: &JobQueues,
    user_id: Uuid,
    reason: &str,
    cooldown: Duration,
) -> anyhow::Result<bool> {
    let guard = queues.keys().warm_user_guard(user_id);
    if !set_once(queues, &guard, cooldown).await? {
        return Ok(false);
    }
    push(queues, Some(user_id), reason).await?;
    Ok(true)
}

/// Enqueues a warm-up of the most active users for the cron tick at `tick_unix_s`, unless another
/// clock already did. Returns whether this call enqueued it.
pub async fn request_tick(queues: &JobQueues, tick_unix_s: u64) -> anyhow::Result<bool> {
    let key = queues.keys().warm_tick(tick_unix_s);
    if !set_once(queues, &key, TICK_KEY_TTL).await? {
        return Ok(false);
    }
    push(queues, None, "clock").await?;
    Ok(true)
}

/// Enqueues a warm-up (of one user, or of the most active users) now, in the bulk lane: the
/// cache fills on demand anyway, so no user's own work waits behind it.
pub async fn push(queues: &JobQueues, user_id: Option<Uuid>, reason: &str) -> anyhow::Result<()> {
    let job = WarmJob {
        user_id,
        reason: reason.to_owned(),
    };
    let id = new_task_id();
    let ticket = Ticket {
        queue: QueueName::Warm,
        id: &id,
        owner: user_id.map_or(Owner::System, Owner::User),
        lane: Lane::Bulk,
    };
    queues.enqueue(ticket, &job, None).await
}

/// `SET key 1 NX PX ttl`: true for the one caller that set it.
async fn set_once(queues: &JobQueues, key: &str, ttl: Duration) -> anyhow::Result<bool> {
    let mut conn = queues.connection();
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(1)
        .arg("NX")
        .arg("PX")
        .arg(ms)
        .query_async(&mut conn)
        .await
        .with_context(|| format!("SET NX {key}"))?;
    Ok(set.is_some())
}
