//! Queue and backlog gauges, computed when Prometheus scrapes: apalis-redis keeps no counters of
//! its own that work (its `Metrics` API fails in 1.0), and Fuze's job records know what is pending.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};
use sqlx::PgPool;

use super::Metrics;
use crate::{
    clock::now_ms,
    jobs::{JobQueues, Lane, QueueName},
};

/// Where a delivery sits in apalis-redis: `ready` (the active list), `scheduled` (the scheduled
/// set, where every push lands first), `dead` (never used by Fuze: stays 0 unless something else
/// writes the queue). Jobs waiting their turn are in the fair queues (`jobs_pending`); running
/// jobs come from the job records.
pub const QUEUE_STATES: &[&str] = &["ready", "scheduled", "dead"];
/// Unfinished job records in PostgreSQL, by state.
pub const UNFINISHED_JOB_STATES: &[&str] = &["queued", "retrying", "running"];

/// Reading the backlog must never hold up a scrape for long.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct QueueMetrics {
    pub depth: IntGaugeVec,
    pub live_workers: IntGaugeVec,
    pub unfinished_jobs: IntGaugeVec,
    pub oldest_pending_age: GaugeVec,
}

impl QueueMetrics {
    pub(super) fn new() -> anyhow::Result<Self> {
        let depth = IntGaugeVec::new(
            Opts::new(
                "queue_depth",
                "Tasks in each apalis-redis queue by state, read from Redis at scrape time.",
            ),
            &["queue", "state"],
        )?;
        let live_workers = IntGaugeVec::new(
            Opts::new(
                "queue_live_workers",
                "Workers whose apalis heartbeat on the queue is recent, read at scrape time.",
            ),
            &["queue"],
        )?;
        let unfinished_jobs = IntGaugeVec::new(
            Opts::new(
                "jobs_unfinished",
                "Unfinished job records in PostgreSQL by current stage and state, at scrape time.",
            ),
            &["queue", "state"],
        )?;
        let oldest_pending_age = GaugeVec::new(
            Opts::new(
                "job_oldest_pending_age_seconds",
                "How long the oldest runnable, not yet started job of each stage and lane has \
                 waited (0 when none).",
            ),
            &["queue", "lane"],
        )?;
        Ok(Self {
            depth,
            live_workers,
            unfinished_jobs,
            oldest_pending_age,
        })
    }

    pub(super) fn register(&self, registry: &Registry) -> anyhow::Result<()> {
        registry.register(Box::new(self.depth.clone()))?;
        registry.register(Box::new(self.live_workers.clone()))?;
        registry.register(Box::new(self.unfinished_jobs.clone()))?;
        registry.register(Box::new(self.oldest_pending_age.clone()))?;
        Ok(())
    }

    /// Every queue × state at 0, so panels and alerts have a series before the first job.
    pub(super) fn initialise(&self) {
        for q in QueueName::ALL.map(QueueName::as_str) {
            for s in QUEUE_STATES {
                self.depth.with_label_values(&[q, s]).set(0);
            }
            for s in UNFINISHED_JOB_STATES {
                self.unfinished_jobs.with_label_values(&[q, s]).set(0);
            }
            self.live_workers.with_label_values(&[q]).set(0);
            for lane in Lane::ALL.map(Lane::as_str) {
                self.oldest_pending_age
                    .with_label_values(&[q, lane])
                    .set(0.0);
            }
        }
    }
}

/// One queue's tasks by place in Redis.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    pub ready: i64,
    pub scheduled: i64,
    pub dead: i64,
}

/// Reads one queue's depth from the apalis-redis keys (`LLEN` active, `ZCARD` scheduled,
/// `SCARD` dead) in one round trip.
pub async fn queue_depth(queues: &JobQueues, queue: QueueName) -> redis::RedisResult<QueueDepth> {
    let config = queues.apalis_config(queue);
    let mut conn = queues.connection();
    let (ready, scheduled, dead): (i64, i64, i64) = redis::pipe()
        .llen(config.active_jobs_list())
        .zcard(config.scheduled_jobs_set())
        .scard(config.dead_jobs_set())
        .query_async(&mut conn)
        .await?;
    Ok(QueueDepth {
        ready,
        scheduled,
        dead,
    })
}

#[derive(sqlx::FromRow)]
struct UnfinishedRow {
    stage: String,
    lane: String,
    state: String,
    jobs: i64,
    oldest_pending_s: f64,
}

impl Metrics {
    /// Refreshes the queue gauges from Redis and PostgreSQL (called at scrape time). A failed read
    /// leaves the last values and counts the error.
    pub async fn observe_queues(&self, queues: &JobQueues, db: &PgPool) {
        let redis_side = async {
            for queue in QueueName::ALL {
                let q = queue.as_str();
                match queue_depth(queues, queue).await {
                    Ok(d) => {
                        for (state, n) in [
                            ("ready", d.ready),
                            ("scheduled", d.scheduled),
                            ("dead", d.dead),
                        ] {
                            self.queues.depth.with_label_values(&[q, state]).set(n);
                        }
                    }
                    Err(e) => self.redis_error("queue_stats", &e),
                }
                match queues.live_workers(queue).await {
                    Ok(n) => self
                        .queues
                        .live_workers
                        .with_label_values(&[q])
                        .set(i64::try_from(n).unwrap_or(i64::MAX)),
                    Err(e) => self.redis_error("queue_stats", &e),
                }
                match queues.fair().pending(queue).await {
                    Ok(lanes) => {
                        for (lane, pending) in Lane::ALL.iter().zip(lanes) {
                            let gauge = &self.scheduling.pending;
                            let l = lane.as_str();
                            gauge.with_label_values(&[q, l, "ready"]).set(pending.ready);
                            gauge
                                .with_label_values(&[q, l, "delayed"])
                                .set(pending.delayed);
                        }
                    }
                    Err(e) => self.redis_error("queue_stats", &e),
                }
            }
            let mut conn = queues.connection();
            let open: redis::RedisResult<i64> = redis::cmd("ZCOUNT")
                .arg(queues.keys().open_breakers())
                .arg(now_ms())
                .arg("+inf")
                .query_async(&mut conn)
                .await;
            match open {
                Ok(n) => self.scheduling.open_breakers.set(n),
                Err(e) => self.redis_error("queue_stats", &e),
            }
        };
        let db_side = async {
            let rows = self.db.time("queue_stats", unfinished_jobs(db)).await;
            match rows {
                Ok(rows) => self.set_unfinished(&rows),
                Err(e) => tracing::warn!(error = %e, "failed to read job backlog for metrics"),
            }
        };
        let both = async { futures::join!(redis_side, db_side) };
        if tokio::time::timeout(READ_TIMEOUT, both).await.is_err() {
            tracing::warn!("queue metrics took longer than {READ_TIMEOUT:?}; serving older values");
        }
    }

    /// Sets each series once (no reset to 0 first, which a concurrent scrape could see).
    fn set_unfinished(&self, rows: &[UnfinishedRow]) {
        for q in QueueName::ALL.map(QueueName::as_str) {
            let mine = || rows.iter().filter(move |r| r.stage == q);
            for state in UNFINISHED_JOB_STATES {
                let jobs = mine().filter(|r| r.state == *state).map(|r| r.jobs).sum();
                self.queues
                    .unfinished_jobs
                    .with_label_values(&[q, state])
                    .set(jobs);
            }
            for lane in Lane::ALL.map(Lane::as_str) {
                let oldest = mine()
                    .filter(|r| r.lane == lane)
                    .map(|r| r.oldest_pending_s)
                    .fold(0.0, f64::max);
                self.queues
                    .oldest_pending_age
                    .with_label_values(&[q, lane])
                    .set(oldest);
            }
        }
    }
}

/// Unfinished jobs per stage, lane and state, with the wait of the oldest one that could run
/// now (queued or retrying and due). Uses the `(state, updated_at)` index.
async fn unfinished_jobs(db: &PgPool) -> sqlx::Result<Vec<UnfinishedRow>> {
    sqlx::query_as(
        "SELECT stage, lane, state, count(*)::int8 AS jobs, \
           COALESCE(EXTRACT(EPOCH FROM now() - min(COALESCE(run_after, updated_at)) \
             FILTER (WHERE state IN ('queued', 'retrying') AND COALESCE(run_after, updated_at) <= now())), 0)::float8 \
             AS oldest_pending_s \
         FROM jobs WHERE state IN ('queued', 'retrying', 'running') AND stage IS NOT NULL \
         GROUP BY stage, lane, state",
    )
    .fetch_all(db)
    .await
}

/// Unix time now, in seconds, for heartbeat gauges.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
