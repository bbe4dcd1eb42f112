//! The job queues on apalis-redis, with the configuration that works around its 1.0 sharp edges.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use apalis::prelude::{BackendExt, TaskBuilder, TaskId, TaskSink};
use apalis_core::backend::ext::with_codec::WithCodec;
use apalis_redis::{ConnectionManager, RedisStorage};
use redis::AsyncCommands;
use serde::Serialize;

use super::codec::{PassThroughCodec, RawPayload};
use crate::{config::WorkerConfig, keys::Keys};

/// A queue's storage as both the api (push) and the worker (consume) see it.
pub type WorkerStorage = WithCodec<RedisStorage<RawPayload>, PassThroughCodec>;

/// The queues Fuze runs; one apalis queue each, so a slow kind never blocks another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueName {
    Scrape,
    Embed,
    Analyze,
    Warm,
}

impl QueueName {
    pub const ALL: [QueueName; 4] = [
        QueueName::Scrape,
        QueueName::Embed,
        QueueName::Analyze,
        QueueName::Warm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scrape => "scrape",
            Self::Embed => "embed",
            Self::Analyze => "analyze",
            Self::Warm => "warm",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == name)
    }
}

/// Handles to every queue plus the wake-up channel.
#[derive(Clone)]
pub struct JobQueues {
    conn: ConnectionManager,
    keys: Keys,
    worker: WorkerConfig,
}

impl JobQueues {
    pub fn new(conn: ConnectionManager, keys: Keys, worker: WorkerConfig) -> Self {
        Self { conn, keys, worker }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The shared Redis connection (for reads of apalis keys).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// apalis-redis config: our queue name (not the Rust type path), a short heartbeat so a killed
    /// worker's jobs move on within seconds, and batch size 1 (a larger batch starves heartbeats
    /// while tasks sit buffered, and the other workers then run them twice).
    pub fn apalis_config(&self, queue: QueueName) -> apalis_redis::Config {
        apalis_redis::Config::default()
            .queue(self.keys.queue(queue.as_str()))
            .batch_size(1)
            .heartbeat_interval(self.worker.heartbeat_interval)
            .missed_heartbeats(self.worker.missed_heartbeats)
            .emit_events(false)
            .persist_results(false)
    }

    pub fn storage(&self, queue: QueueName) -> WorkerStorage {
        RedisStorage::<RawPayload>::new(self.conn.clone())
            .with_config(self.apalis_config(queue))
            .with_codec(PassThroughCodec)
    }

    /// Pushes a payload under a task id we chose (apalis would not tell us its own), then wakes workers.
    pub async fn push<T: Serialize>(
        &self,
        queue: QueueName,
        task_id: &str,
        payload: &T,
        run_after: Option<Duration>,
    ) -> anyhow::Result<()> {
        self.push_task(queue, task_id, payload, run_after).await?;
        if run_after.is_none() {
            self.wake(queue).await;
        }
        Ok(())
    }

    /// Pushes the payload of an ingest job's stage (`queue`), for code that restarts a stage from its
    /// record (the reconciler, an admin retry). Warm jobs keep no record, so they have no stage.
    pub async fn push_stage(
        &self,
        queue: QueueName,
        task_id: &str,
        job_id: &str,
        user_id: uuid::Uuid,
        bookmark_id: uuid::Uuid,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            queue != QueueName::Warm,
            "warm jobs have no stage to restart"
        );
        let job = super::StageJob {
            job_id: job_id.to_owned(),
            user_id,
            bookmark_id,
        };
        self.push(queue, task_id, &job, None).await
    }

    /// Pushes without the wake-up message: workers find it on their next poll. For measurements.
    pub async fn push_silently<T: Serialize>(
        &self,
        queue: QueueName,
        task_id: &str,
        payload: &T,
    ) -> anyhow::Result<()> {
        self.push_task(queue, task_id, payload, None).await
    }

    async fn push_task<T: Serialize>(
        &self,
        queue: QueueName,
        task_id: &str,
        payload: &T,
        run_after: Option<Duration>,
    ) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(payload).context("failed to encode job payload")?;
        let id: TaskId = task_id
            .parse()
            .map_err(|e| anyhow::anyhow!("bad task id {task_id}: {e:?}"))?;
        let mut builder = TaskBuilder::new(RawPayload(bytes)).task_id(id);
        if let Some(delay) = run_after {
            builder = builder.run_at_timestamp(due_second(SystemTime::now() + delay));
        }
        let mut storage = self.storage(queue);
        storage
            .push_task(builder.build())
            .await
            .map_err(|e| anyhow::anyhow!("failed to push to queue {}: {e}", queue.as_str()))?;
        Ok(())
    }

    /// Workers of `queue` whose last heartbeat is recent enough that their jobs are still theirs.
    pub async fn live_workers(&self, queue: QueueName) -> redis::RedisResult<u64> {
        let config = self.apalis_config(queue);
        let window = config.orphaned_duration().as_secs();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut conn = self.conn.clone();
        conn.zcount(config.workers_set(), now.saturating_sub(window), "+inf")
            .await
    }

    /// Best effort: a lost wake-up only costs the workers' poll interval.
    async fn wake(&self, queue: QueueName) {
        let mut conn = self.conn.clone();
        let published: redis::RedisResult<i64> =
            conn.publish(self.keys.wake_channel(), queue.as_str()).await;
        if let Err(e) = published {
            tracing::warn!(error = %e, "failed to publish worker wake-up");
        }
    }
}

/// apalis-redis schedules in whole seconds and `run_after` rounds down, which would run a task up to
/// a second early; round up instead, so a retry never comes before the time its record promises.
fn due_second(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    since.as_secs() + u64::from(since.subsec_nanos() > 0)
}

/// A fresh job/task id (ULID: sortable, unique across processes).
pub fn new_task_id() -> String {
    ulid3::Ulid::generate().to_string()
}
