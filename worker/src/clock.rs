//! `fuze-clock`: the scheduler process (apalis-cron, six-field cron with seconds).
//! - Re-enqueues jobs whose ticket was lost (Redis restarted without persistence, an enqueue that
//!   failed after its record was written) or that stayed running far too long.
//! - Sweeps apalis's data: failed jobs' deliveries past their retention, leftovers of workers
//!   that are gone.
//! - Enqueues a cache warm-up of the most recently seen users; with several clocks running, a
//!   per-tick idempotency key lets exactly one of them enqueue each tick.

use std::{str::FromStr, sync::Arc};

use apalis::prelude::{BoxDynError, Data, Monitor, WorkerBuilder};
use apalis_cron::{CronScheduler, Tick};
use fuze_shared::{
    config::Config,
    db, imports,
    jobs::{JobQueues, QueueName, warm},
    keys::Keys,
    metrics::Metrics,
    redis_conn,
};

use crate::{jobs::deliveries, metrics_server, reconcile, runtime::shutdown_signal};

struct ClockContext {
    db: sqlx::PgPool,
    queues: JobQueues,
    config: Config,
    metrics: Metrics,
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let queue_names: Vec<&str> = QueueName::ALL.iter().map(|q| q.as_str()).collect();
    let metrics = Metrics::new(&queue_names)?;
    let db = db::connect(&config).await?;
    metrics.db.watch_pool(db.clone())?;
    let redis = redis_conn::connection_manager(&config.redis_url).await?;
    let queues = JobQueues::new(
        redis,
        Keys::new(config.redis_prefix.clone()),
        config.worker.clone(),
    );
    let port = metrics_server::spawn(
        &config.worker.metrics_host,
        config.worker.clock_metrics_port,
        metrics.clone(),
    )?;
    let schedule = cron::Schedule::from_str(&config.clock.reconcile_schedule)
        .map_err(|e| anyhow::anyhow!("invalid FUZE_CLOCK_RECONCILE_SCHEDULE: {e}"))?;
    let warm_schedule = cron::Schedule::from_str(&config.clock.warm_schedule)
        .map_err(|e| anyhow::anyhow!("invalid FUZE_CLOCK_WARM_SCHEDULE: {e}"))?;
    tracing::info!(
        metrics_port = port,
        reconcile = %config.clock.reconcile_schedule,
        warm = %config.clock.warm_schedule,
        "clock ready"
    );
    let ctx = Arc::new(ClockContext {
        db,
        queues,
        config,
        metrics,
    });
    let warm_ctx = ctx.clone();
    Monitor::new()
        .register(move |restarts| {
            WorkerBuilder::new(format!("clock-reconcile-{restarts}"))
                .backend(CronScheduler::new(schedule.clone()))
                .data(ctx.clone())
                .build(on_tick)
        })
        .register(move |restarts| {
            WorkerBuilder::new(format!("clock-warm-{restarts}"))
                .backend(CronScheduler::new(warm_schedule.clone()))
                .data(warm_ctx.clone())
                .build(on_warm_tick)
        })
        .should_restart(|_, _| true)
        .run_with_signal(shutdown_signal())
        .await?;
    Ok(())
}

/// Reconciling and sweeping are idempotent, so two clocks firing the same tick do no harm.
async fn on_tick(_tick: Tick, ctx: Data<Arc<ClockContext>>) -> Result<(), BoxDynError> {
    let requeued = reconcile::requeue_stale(&ctx.db, &ctx.queues, &ctx.config).await?;
    if requeued > 0 {
        tracing::warn!(
            requeued,
            "re-enqueued jobs whose ticket was lost or that ran too long"
        );
    }
    let fed = imports::feed::feed_running(
        &ctx.db,
        &ctx.queues,
        ctx.config.imports.crawl_window,
        i32::try_from(ctx.config.jobs.max_attempts).unwrap_or(i32::MAX),
    )
    .await?;
    if fed > 0 {
        tracing::debug!(fed, "topped up the crawl windows of running imports");
    }
    for queue in QueueName::ALL {
        let swept = deliveries::sweep(&ctx.queues, queue).await?;
        let cleaned = &ctx.metrics.scheduling.deliveries_cleaned;
        cleaned
            .with_label_values(&[queue.as_str(), "expired"])
            .inc_by(swept.expired);
        cleaned
            .with_label_values(&[queue.as_str(), "worker_keys"])
            .inc_by(swept.worker_keys);
    }
    Ok(())
}

/// The tick's scheduled time (not the time it fired) names it, so every clock agrees on the key.
async fn on_warm_tick(tick: Tick, ctx: Data<Arc<ClockContext>>) -> Result<(), BoxDynError> {
    if warm::request_tick(&ctx.queues, tick.get_timestamp()).await? {
        tracing::info!(
            tick = tick.get_timestamp(),
            "enqueued the scheduled cache warm-up"
        );
    }
    Ok(())
}
