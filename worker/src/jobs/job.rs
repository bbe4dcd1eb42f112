//! One job type = one [`Job`] impl: its queue, how many run at once, whether it has a record,
//! what must be true before it runs, and what it does. [`register_all`] is the one list of the
//! job types a worker runs.

use std::{future::Future, sync::Arc, time::Duration};

use apalis::prelude::{
    BackendExt, BoxDynError, Data, Monitor, TaskId, WorkerBuilder, WorkerBuilderExt, WorkerContext,
};
use fuze_shared::{
    config::Config,
    jobs::{
        JobQueues, QueueName, RawPayload, StageJob,
        wake::{WakeHub, WakeOrInterval},
    },
};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    Failure, analyze::Analyze, deliveries::Delivery, dispatch, embed::Embed, reindex::Reindex,
    runner, runner::Run, scrape::Scrape, warm::Warm,
};
use crate::context::{JobContext, SharedContext};

pub trait Job: Send + Sync + 'static {
    /// The queue its payloads travel on.
    const QUEUE: QueueName;
    /// Whether a failure that ends the job also marks its bookmark failed. False for a stage
    /// that runs once the bookmark is already usable.
    const FAILURE_FAILS_BOOKMARK: bool = true;
    /// Whether this stage's success ends its ingest job (the last stage).
    const LAST_STAGE: bool = false;

    type Payload: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// What [`Job::admit`] hands to [`Job::run`] (a host lease, say).
    type Permit: Send;

    /// How many of these one worker process runs at once.
    fn concurrency(config: &Config) -> usize;

    /// The ingest job this payload is a stage of, or `None` for best-effort work that keeps no
    /// record (claimed, retried and settled by the runner only when it has one).
    fn record(job: &Self::Payload) -> Option<&StageJob>;

    /// Whether the job may run now. Asked before the claim: a job told to wait spends no
    /// attempt and holds no worker slot while it waits.
    fn admit(
        ctx: &JobContext,
        run: &Run,
        job: &Self::Payload,
    ) -> impl Future<Output = Admission<Self::Permit>> + Send;

    fn run(
        ctx: &JobContext,
        run: &Run,
        job: Self::Payload,
        permit: Self::Permit,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// The answer of [`Job::admit`].
#[derive(Debug)]
pub enum Admission<P> {
    /// Run now.
    Go(P),
    /// Not now: the job waits `wait` in the fair queue. `reason` is a metric label.
    Wait {
        wait: Duration,
        reason: &'static str,
    },
}

/// What registering a job type's apalis worker needs.
pub struct Registration {
    pub ctx: SharedContext,
    pub queues: JobQueues,
    pub hub: WakeHub,
    /// Unique per process: apalis refuses a worker name whose heartbeat is still fresh.
    pub instance: String,
    pub poll: Duration,
    /// Turns true at shutdown: the dispatchers stop handing work to apalis.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// Every job type this worker runs: one apalis worker and one dispatcher each.
pub fn register_all(monitor: Monitor, r: &Arc<Registration>) -> Monitor {
    let monitor = register::<Scrape>(monitor, r);
    let monitor = register::<Embed>(monitor, r);
    let monitor = register::<Analyze>(monitor, r);
    let monitor = register::<Reindex>(monitor, r);
    register::<Warm>(monitor, r)
}

fn register<J: Job>(monitor: Monitor, r: &Arc<Registration>) -> Monitor {
    let concurrency = J::concurrency(&r.ctx.config).max(1);
    tokio::spawn(dispatch::run(
        r.ctx.clone(),
        J::QUEUE,
        u32::try_from(concurrency).unwrap_or(u32::MAX),
        r.hub.subscribe(J::QUEUE),
        r.stop.clone(),
    ));
    let r = r.clone();
    monitor.register(move |restarts| {
        let strategy = WakeOrInterval::new(r.hub.subscribe(J::QUEUE), r.poll);
        WorkerBuilder::new(format!("{}-{}-{restarts}", J::QUEUE.as_str(), r.instance))
            .backend(r.queues.storage(J::QUEUE).poll_with_strategy(strategy))
            .concurrency(concurrency)
            .data(r.ctx.clone())
            .build(handle::<J>)
    })
}

/// The apalis handler of every job type. It never fails: the runner settles every outcome.
async fn handle<J: Job>(
    payload: RawPayload,
    task_id: TaskId,
    worker: WorkerContext,
    ctx: Data<SharedContext>,
) -> Result<(), BoxDynError> {
    let delivery = Delivery {
        task_id: task_id.to_string(),
        worker: worker.name().to_owned(),
    };
    runner::run::<J>(&ctx, &payload, &delivery).await;
    Ok(())
}
