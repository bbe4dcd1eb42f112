//! The job queues on apalis-redis, with the configuration that works around its 1.0 sharp edges.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use apalis::prelude::{BackendExt, TaskBuilder, TaskId, TaskSink};
use apalis_core::backend::ext::with_codec::WithCodec;
use apalis_redis::{ConnectionManager, RedisStorage};
use redis::AsyncCommands;
use serde::Serialize;

use super::{
    codec::{PassThroughCodec, RawPayload},
    fair::{FairQueue, Place, Ticket},
};
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
    Reindex,
}

impl QueueName {
    pub const ALL: [QueueName; 5] = [
        QueueName::Scrape,
        QueueName::Embed,
        QueueName::Analyze,
        QueueName::Warm,
        QueueName::Reindex,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scrape => "scrape",
            Self::Embed => "embed",
            Self::Analyze => "analyze",
            Self::Warm => "warm",
            Self::Reindex => "reindex",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == name)
    }

    /// The queue of an ingest job's stage, named in the job's record: `None` for a queue of
    /// best-effort work, which keeps no record and so has no stage to restart.
    pub fn parse_stage(name: &str) -> Option<Self> {
        Self::parse(name).filter(|q| q.is_stage())
    }

    /// Whether its jobs are stages of an ingest job (scrape, embed, analyze), with a record.
    pub fn is_stage(self) -> bool {
        match self {
            Self::Scrape | Self::Embed | Self::Analyze => true,
            Self::Warm | Self::Reindex => false,
        }
    }
}

/// Handles to every queue: the fair queues (where jobs are enqueued), the apalis queues behind
/// them (where the workers' dispatchers hand deliveries over), and the wake-up channel.
#[derive(Clone)]
pub struct JobQueues {
    conn: ConnectionManager,
    keys: Keys,
    worker: WorkerConfig,
    fair: FairQueue,
}

impl JobQueues {
    pub fn new(conn: ConnectionManager, keys: Keys, worker: WorkerConfig) -> Self {
        let fair = FairQueue::new(conn.clone(), keys.clone());
        Self {
            conn,
            keys,
            worker,
            fair,
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The shared Redis connection (for reads of apalis keys).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The fair queues themselves (the workers take, defer and finish tickets there).
    pub fn fair(&self) -> &FairQueue {
        &self.fair
    }

    /// apalis-redis config: our queue name (not the Rust type path), a short heartbeat so a killed
    /// worker's jobs move on within seconds, and batch size 1 (a larger batch starves heartbeats
    /// while tasks sit buffered, and the other workers then run them twice). No results and no
    /// locks: Fuze's records hold the state, and the runner removes each delivery's data itself
    /// when it ends, which apalis's lazy lock writes would otherwise race with.
    pub fn apalis_config(&self, queue: QueueName) -> apalis_redis::Config {
        apalis_redis::Config::default()
            .queue(self.keys.queue(queue.as_str()))
            .batch_size(1)
            .heartbeat_interval(self.worker.heartbeat_interval)
            .missed_heartbeats(self.worker.missed_heartbeats)
            .emit_events(false)
            .persist_results(false)
            .lock_tasks(false)
    }

    pub fn storage(&self, queue: QueueName) -> WorkerStorage {
        RedisStorage::<RawPayload>::new(self.conn.clone())
            .with_config(self.apalis_config(queue))
            .with_codec(PassThroughCodec)
    }

    /// Enqueues a run of a job in the fair queue (after `delay`, if given), then wakes the
    /// workers' dispatchers. Retries and deferred runs go to the front of their owner's list
    /// when due: they already had their turn once.
    pub async fn enqueue<T: Serialize>(
        &self,
        ticket: Ticket<'_>,
        job: &T,
        delay: Option<Duration>,
    ) -> anyhow::Result<()> {
        self.enqueue_silently(ticket, job, delay).await?;
        if delay.is_none() {
            self.wake(ticket.queue).await;
        }
        Ok(())
    }

    /// Enqueues the run of an ingest job's stage (`ticket.queue`), for code that restarts a stage
    /// from its record (the reconciler, an admin retry).
    pub async fn enqueue_stage(
        &self,
        ticket: Ticket<'_>,
        job: &super::StageJob,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            ticket.queue.is_stage(),
            "{} jobs have no stage to restart",
            ticket.queue.as_str()
        );
        self.enqueue(ticket, job, None).await
    }

    /// Enqueues without the wake-up message: dispatchers find it on their next poll. For
    /// measurements.
    pub async fn enqueue_silently<T: Serialize>(
        &self,
        ticket: Ticket<'_>,
        job: &T,
        delay: Option<Duration>,
    ) -> anyhow::Result<()> {
        let place = if delay.is_some() {
            Place::Front
        } else {
            Place::Back
        };
        self.fair
            .enqueue(ticket, job, delay, place)
            .await
            .with_context(|| format!("failed to enqueue to the {} queue", ticket.queue.as_str()))
    }

    /// Hands a taken ticket's envelope to apalis under a fresh task id, then wakes the workers.
    /// Returns the task id.
    pub async fn hand_to_runner(
        &self,
        queue: QueueName,
        envelope: Vec<u8>,
    ) -> anyhow::Result<String> {
        let task_id = new_task_id();
        let id: TaskId = task_id
            .parse()
            .map_err(|e| anyhow::anyhow!("bad task id {task_id}: {e:?}"))?;
        let mut storage = self.storage(queue);
        storage
            .push_task(TaskBuilder::new(RawPayload(envelope)).task_id(id).build())
            .await
            .map_err(|e| anyhow::anyhow!("failed to push to queue {}: {e}", queue.as_str()))?;
        self.wake(queue).await;
        Ok(task_id)
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

    /// Best effort: a lost wake-up only costs the dispatchers' poll interval.
    pub async fn wake(&self, queue: QueueName) {
        let mut conn = self.conn.clone();
        let published: redis::RedisResult<i64> =
            conn.publish(self.keys.wake_channel(), queue.as_str()).await;
        if let Err(e) = published {
            tracing::warn!(error = %e, "failed to publish worker wake-up");
        }
    }
}

/// A fresh job/task id (ULID: sortable, unique across processes).
pub fn new_task_id() -> String {
    ulid3::Ulid::generate().to_string()
}
