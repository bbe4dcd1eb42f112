//! The worker process: load the model, connect, then run the apalis workers under a Monitor until
//! SIGTERM/SIGINT, finishing in-flight jobs within the shutdown timeout.

use std::{sync::Arc, time::Instant};

use apalis::prelude::Monitor;
use fuze_shared::{
    cache::{L1Config, LayeredCache},
    config::Config,
    db,
    embedding::EmbeddingSpace,
    feed::Feed,
    jobs::{JobQueues, QueueName, wake::WakeHub},
    keys::Keys,
    metrics::Metrics,
    redis_conn,
};

use crate::{
    context::JobContext,
    embed::{Embedder, EmbeddingModel},
    jobs,
    jobs::dispatch::Dispatchers,
    metrics_server,
    observe::PromEmbedObserver,
    politeness::{Politeness, robots::Robots},
    query_lane,
};

pub async fn run(config: Config) -> anyhow::Result<()> {
    let queue_names: Vec<&str> = QueueName::ALL.iter().map(|q| q.as_str()).collect();
    let metrics = Metrics::new(&queue_names)?;

    let loading = Instant::now();
    let embed_cfg = config.embed.clone();
    let model = tokio::task::spawn_blocking(move || EmbeddingModel::load(&embed_cfg)).await??;
    metrics
        .model_load_seconds
        .set(loading.elapsed().as_secs_f64());
    tracing::info!(
        seconds = loading.elapsed().as_secs_f64(),
        model = model.model_id(),
        "model loaded"
    );
    let splitter = Arc::new(model.splitter()?);
    let embedder =
        Embedder::start_with_observer(model, Arc::new(PromEmbedObserver::new(metrics.clone())));

    let db = db::connect(&config).await?;
    let space = EmbeddingSpace::current(&db, &config.embed).await?;
    tracing::info!(space = space.name, "embedding space");
    metrics.db.watch_pool(db.clone())?;
    let redis = redis_conn::connection_manager(&config.redis_url).await?;
    let keys = Keys::new(config.redis_prefix.clone());
    let queues = JobQueues::new(redis.clone(), keys.clone(), config.worker.clone());
    let scraper = crate::scrape::Scraper::new(config.scraper.clone())?;
    if !config.scraper.allow_internal.is_empty() {
        tracing::warn!(
            allow = %config.scraper.allow_internal,
            "FUZE_SCRAPE_ALLOW_INTERNAL opens these internal addresses and host names to the \
             scraper; every other internal target stays refused"
        );
    }

    let hub = WakeHub::default();
    tokio::spawn(
        hub.clone()
            .run_subscriber(config.redis_url.clone(), keys.wake_channel()),
    );

    let metrics_port = metrics_server::spawn(
        &config.worker.metrics_host,
        config.worker.metrics_port,
        metrics.clone(),
    )?;
    let politeness = Politeness::new(
        redis.clone(),
        keys.clone(),
        config.politeness.clone(),
        config.scraper.total_timeout,
    );
    let robots = Robots::new(
        redis.clone(),
        keys.clone(),
        config.politeness.robots_ttl,
        &config.scraper.user_agent,
    );
    let ctx = Arc::new(JobContext {
        config: config.clone(),
        db,
        redis,
        keys: keys.clone(),
        queues: queues.clone(),
        metrics: metrics.clone(),
        politeness,
        robots,
        dispatchers: Dispatchers::default(),
        scraper,
        embedder,
        splitter,
        space,
        feed: Feed::new(keys.clone(), config.feed.clone()),
        cache: worker_cache(&config)?,
        tags: tokio::sync::OnceCell::new(),
    });
    tokio::spawn(query_lane::serve(ctx.clone()));
    tokio::spawn(jobs::reindex::watch(ctx.clone()));
    tokio::spawn(heartbeat(metrics.export_worker_heartbeat()?));
    tracing::info!(metrics_port, "worker ready");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let registration = Arc::new(jobs::Registration {
        ctx: ctx.clone(),
        queues: queues.clone(),
        hub: hub.clone(),
        instance: fuze_shared::jobs::queue::new_task_id(),
        poll: config.worker.poll_interval,
        stop: stopped,
    });
    let monitor = jobs::register_all(Monitor::new(), &registration)
        .should_restart({
            let metrics = metrics.clone();
            move |worker, error| {
                // Any Redis error ends an apalis worker; restart it under a new name.
                let queue = worker.name().split('-').next().unwrap_or("unknown");
                metrics.worker_restarts.with_label_values(&[queue]).inc();
                tracing::warn!(worker = worker.name(), error = %error, "worker stopped; restarting");
                true
            }
        })
        .with_terminator({
            // Lazy: the deadline must start at the signal. `tokio::time::sleep(d)` fixes its deadline
            // when created, so a worker up for longer than `d` dropped its in-flight jobs at once.
            let timeout = config.worker.shutdown_timeout;
            async move {
                tokio::time::sleep(timeout).await;
                tracing::warn!(?timeout, "shutdown timeout reached; abandoning in-flight jobs");
            }
        });
    let signal = async move {
        let received = shutdown_signal().await;
        // No more hand-overs to apalis: what is waiting stays in the fair queue for the others.
        let _ = stop.send(true);
        received
    };
    monitor.run_with_signal(signal).await?;
    tracing::info!("worker stopped");
    Ok(())
}

/// Ticks on the job runtime (not the metrics thread), so a stuck runtime shows as a stale heartbeat
/// even while `/metrics` still answers.
async fn heartbeat(gauge: prometheus::Gauge) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tick.tick().await;
        gauge.set(fuze_shared::metrics::unix_now());
    }
}

const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The worker writes; it only needs the cache to bump users' generations, so no L1.
fn worker_cache(config: &Config) -> anyhow::Result<LayeredCache> {
    let mut cache_config = config.cache.clone();
    cache_config.l1 = L1Config::disabled();
    Ok(LayeredCache::connect_lazy(&config.redis_url, cache_config)?)
}

/// SIGTERM (process managers) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight jobs"),
        _ = int.recv() => tracing::info!("SIGINT: finishing in-flight jobs"),
    }
    Ok(())
}
