//! Keeps apalis's Redis data bounded.
//!
//! apalis-redis 1.0 never removes a task's data (`{queue}:data`, `{queue}:meta:{id}`), and with
//! results and locks off (see `JobQueues::apalis_config`) it never touches a task again once a
//! worker fetched it. So the run that handled a delivery removes it: its data, its metadata and
//! its id in the worker's inflight set, in one transaction, as soon as it ends. A delivery whose
//! job failed for good is kept for `FUZE_JOB_FAILED_RETENTION_S` (listed with its expiry) and
//! removed by the clock's sweep, which also removes what apalis leaves of workers that are gone.

use std::time::Duration;

use fuze_shared::{
    clock::{millis, now_ms},
    jobs::{JobQueues, QueueName},
};
use redis::AsyncCommands;

use crate::context::JobContext;

/// One delivery: its apalis task id and the apalis worker that fetched it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub task_id: String,
    pub worker: String,
}

/// How long a delivery's data stays after its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    None,
    /// Its job failed: kept for the failed-job retention.
    Failed,
}

/// Removes a finished delivery from apalis's keys (or schedules its removal). Best effort: a
/// delivery left behind is found by nothing but memory, and is counted.
pub async fn clean(ctx: &JobContext, queue: QueueName, delivery: &Delivery, retention: Retention) {
    let config = ctx.queues.apalis_config(queue);
    let inflight = format!("{}:{}", config.inflight_jobs_set(), delivery.worker);
    let keep = match retention {
        Retention::Failed => ctx.config.jobs.failed_retention,
        Retention::None => Duration::ZERO,
    };
    let mut pipe = redis::pipe();
    pipe.atomic().srem(&inflight, &delivery.task_id);
    if keep.is_zero() {
        pipe.hdel(config.job_data_hash(), &delivery.task_id)
            .del(format!("{}:{}", config.job_meta_hash(), delivery.task_id));
    } else {
        pipe.zadd(
            ctx.keys.expiring_deliveries(queue.as_str()),
            &delivery.task_id,
            now_ms() + millis(keep),
        );
    }
    let mut conn = ctx.redis.clone();
    match pipe.query_async::<()>(&mut conn).await {
        Ok(()) => {
            let what = if keep.is_zero() {
                "removed"
            } else {
                "retained"
            };
            ctx.metrics
                .scheduling
                .deliveries_cleaned
                .with_label_values(&[queue.as_str(), what])
                .inc();
        }
        Err(e) => ctx.metrics.redis_error("queue", &e),
    }
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Retained deliveries whose retention ended.
    pub expired: u64,
    /// Leftovers of workers that are gone (inflight sets and metadata).
    pub worker_keys: u64,
}

/// Removes retained deliveries whose time is up, and the inflight sets and metadata of apalis
/// workers no longer registered (apalis removes a dead worker from its workers set and moves
/// its inflight tasks back to the queue, but leaves its metadata, and a gracefully stopped
/// worker's inflight set). Safe while workers run: only keys of unregistered worker names, which
/// are never reused, are removed.
pub async fn sweep(queues: &JobQueues, queue: QueueName) -> redis::RedisResult<Swept> {
    let config = queues.apalis_config(queue);
    let mut conn = queues.connection();
    let mut swept = Swept::default();

    let expiring = queues.keys().expiring_deliveries(queue.as_str());
    let due: Vec<String> = conn
        .zrangebyscore_limit(&expiring, "-inf", now_ms(), 0, 1000)
        .await?;
    if !due.is_empty() {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hdel(config.job_data_hash(), &due)
            .zrem(&expiring, &due);
        for id in &due {
            pipe.del(format!("{}:{}", config.job_meta_hash(), id));
        }
        pipe.query_async::<()>(&mut conn).await?;
        swept.expired = due.len() as u64;
    }

    let registered: Vec<String> = conn.zrange(config.workers_set(), 0, -1).await?;
    for prefix in [
        format!("{}:", config.inflight_jobs_set()),
        format!("{}:workers:metadata:", queues.keys().queue(queue.as_str())),
    ] {
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> = conn.scan_match(format!("{prefix}*")).await?;
            let mut keys = Vec::new();
            while let Some(key) = futures::StreamExt::next(&mut iter).await {
                keys.push(key?);
            }
            keys
        };
        let gone: Vec<&String> = keys
            .iter()
            .filter(|key| {
                let name = &key[prefix.len()..];
                !registered.iter().any(|w| w == name)
            })
            .collect();
        if !gone.is_empty() {
            let removed: u64 = conn.del(&gone).await?;
            swept.worker_keys += removed;
        }
    }
    Ok(swept)
}
