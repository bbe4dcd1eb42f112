//! Prometheus metrics: one registry per process, `fuze_` names, base units, bounded labels.

use std::time::Duration;

use crate::cache::{CacheStatsSnapshot, CacheType, TypeStatsSnapshot};

pub mod db;
pub mod imports;
pub mod queues;
pub mod scheduling;

pub use db::{DB_OPERATIONS, DbMetrics};
pub use imports::ImportMetrics;
pub use queues::{QUEUE_STATES, QueueMetrics, UNFINISHED_JOB_STATES, unix_now};
pub use scheduling::SchedulingMetrics;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets from 0.5 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Job outcomes; every kind × outcome is exported from the start, at 0.
pub const JOB_OUTCOMES: &[&str] = &["succeeded", "retried", "failed", "skipped"];

/// Page fetch outcome classes (`ok` or the scraper's error class), all exported from the start.
pub const SCRAPE_OUTCOMES: &[&str] = &[
    "ok",
    "not_modified",
    "timeout",
    "blocked_target",
    "too_large",
    "not_html",
    "http_4xx",
    "http_5xx",
    "dns",
    "too_many_redirects",
    "invalid_url",
    "network",
    "retry_after",
];

/// Where Redis commands outside the read cache are made (the cache counts its own errors).
pub const REDIS_COMPONENTS: &[&str] = &[
    "queue",
    "scrape_cache",
    "embed_cache",
    "queue_stats",
    "politeness",
    "rate_limit",
];

/// Body sizes from 1 KiB to 16 MiB.
const BYTES_BUCKETS: &[f64] = &[
    1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// Save to ready: from sub-second to an hour (retries with backoff take minutes).
const SAVE_TO_READY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub jobs_enqueued: IntCounterVec,
    pub jobs_deduplicated: IntCounterVec,
    pub jobs_started: IntCounterVec,
    pub jobs_finished: IntCounterVec,
    pub job_duration: HistogramVec,
    pub job_queue_wait: HistogramVec,
    pub jobs_undecodable: IntCounterVec,
    pub worker_restarts: IntCounterVec,
    pub scrape_fetches: IntCounterVec,
    pub scrape_duration: Histogram,
    pub embed_texts: IntCounter,
    pub embed_tokens: IntCounter,
    pub embed_truncated: IntCounter,
    pub model_load_seconds: Gauge,
    /// Bookmarks whose vectors belong to another embedding space than the worker's.
    pub embeddings_stale: IntGauge,
    /// Event streams (`GET /api/v1/events`) open on this api instance.
    pub event_streams_open: IntGauge,
    pub query_lane_seconds: Histogram,
    pub embed_cache: IntCounterVec,
    pub embed_batch_size: Histogram,
    pub embed_duration: Histogram,
    pub build_info: IntGaugeVec,
    pub cache: CacheMetrics,
    pub scrape_response_bytes: Histogram,
    pub embed_batch_tokens: Histogram,
    /// Bookmark saved → embedding stored, observed when the embed stage commits.
    pub save_to_ready: Histogram,
    /// Unix time of the worker's last liveness tick (set by the worker's own runtime).
    pub worker_heartbeat: Gauge,
    pub redis_errors: IntCounterVec,
    pub db: DbMetrics,
    pub queues: QueueMetrics,
    pub scheduling: SchedulingMetrics,
    pub imports: ImportMetrics,
}

/// The read cache's counters, copied from its own stats at scrape time.
#[derive(Clone)]
pub struct CacheMetrics {
    pub requests: IntCounterVec,
    pub shared_loads: IntCounterVec,
    pub l1_entries: IntGauge,
    pub l1_bytes: IntGauge,
    pub l1_evictions: IntCounter,
    pub l1_flushes: IntCounterVec,
    pub invalidations: IntCounter,
    pub redis_errors: IntCounter,
    /// 1 while the invalidation subscriber is subscribed, 0 while it reconnects.
    pub subscriber_up: IntGauge,
    pub requests_deduplicated: IntCounter,
}

impl Metrics {
    /// A registry with every Fuze metric plus process metrics, known label sets set to 0.
    pub fn new(queues: &[&str]) -> anyhow::Result<Self> {
        let registry = Registry::new_custom(Some("fuze".into()), None)?;
        let counter = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )?;
            registry.register(Box::new(h.clone()))?;
            anyhow::Ok(h)
        };
        let plain_counter = |name: &str, help: &str| -> anyhow::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let plain_histogram =
            |name: &str, help: &str, buckets: &[f64]| -> anyhow::Result<Histogram> {
                let h =
                    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let gauge = |name: &str, help: &str| -> anyhow::Result<IntGauge> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let cache = CacheMetrics {
            requests: counter(
                "cache_requests_total",
                "Cache lookups by cache type, layer and result (l3 = loaded from the database).",
                &["cache_type", "layer", "result"],
            )?,
            shared_loads: counter(
                "cache_shared_loads_total",
                "Misses that waited for another request's load of the same key (single flight).",
                &["cache_type"],
            )?,
            l1_entries: gauge("cache_l1_entries", "Entries in this process's L1 cache.")?,
            l1_bytes: gauge("cache_l1_bytes", "Bytes held by this process's L1 cache.")?,
            l1_evictions: plain_counter(
                "cache_l1_evictions_total",
                "L1 entries evicted to stay within bounds.",
            )?,
            l1_flushes: counter(
                "cache_l1_flushes_total",
                "Whole-L1 flushes by reason.",
                &["reason"],
            )?,
            invalidations: plain_counter(
                "cache_invalidations_applied_total",
                "Invalidations applied to this process's cache (made here or received).",
            )?,
            redis_errors: plain_counter(
                "cache_redis_errors_total",
                "Redis errors met by the cache (served as misses).",
            )?,
            // Registered only by the api (see `export_subscriber_up`): no other process subscribes.
            subscriber_up: IntGauge::new(
                "cache_subscriber_up",
                "1 while the invalidation subscriber is subscribed, 0 while it is down.",
            )?,
            requests_deduplicated: plain_counter(
                "requests_deduplicated_total",
                "Repeated submissions answered with the first copy's result.",
            )?,
        };
        let m = Self {
            cache,
            http_requests: counter(
                "http_requests_total",
                "HTTP requests by route template, method and status.",
                &["route", "method", "status"],
            )?,
            http_duration: histogram(
                "http_request_duration_seconds",
                "HTTP request latency by route template.",
                &["route"],
                LATENCY_BUCKETS,
            )?,
            jobs_enqueued: counter("jobs_enqueued_total", "Jobs pushed to a queue.", &["queue"])?,
            jobs_deduplicated: counter(
                "jobs_deduplicated_total",
                "Saves that returned an existing job instead of a new one.",
                &["queue"],
            )?,
            jobs_started: counter("jobs_started_total", "Job runs started.", &["queue"])?,
            jobs_finished: counter(
                "jobs_finished_total",
                "Job runs finished by outcome.",
                &["queue", "outcome"],
            )?,
            job_duration: histogram(
                "job_duration_seconds",
                "Job run duration.",
                &["queue"],
                LATENCY_BUCKETS,
            )?,
            job_queue_wait: histogram(
                "job_queue_wait_seconds",
                "Time from enqueue (or the scheduled retry time) to start.",
                &["queue"],
                LATENCY_BUCKETS,
            )?,
            jobs_undecodable: counter(
                "jobs_undecodable_total",
                "Job payloads that did not decode and were dropped.",
                &["queue"],
            )?,
            worker_restarts: counter(
                "worker_restarts_total",
                "apalis worker restarts.",
                &["queue"],
            )?,
            scrape_fetches: counter(
                "scrape_fetches_total",
                "Page fetches by outcome class.",
                &["outcome"],
            )?,
            scrape_duration: plain_histogram(
                "scrape_fetch_duration_seconds",
                "Page fetch duration, redirects and body included.",
                LATENCY_BUCKETS,
            )?,
            embed_texts: plain_counter("embed_texts_total", "Texts embedded by the model.")?,
            embed_tokens: plain_counter("embed_tokens_total", "Word pieces embedded (unpadded).")?,
            embed_truncated: plain_counter(
                "embed_truncated_total",
                "Texts cut at the model's token limit.",
            )?,
            event_streams_open: gauge(
                "event_streams_open",
                "Server-sent event streams open on this api instance.",
            )?,
            embeddings_stale: {
                let g = IntGauge::new(
                    "embeddings_stale",
                    "Bookmarks whose vectors belong to another embedding space than the current \
                     one (re-embedded by the reindex job; searched by keyword meanwhile).",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            model_load_seconds: {
                let g = Gauge::new(
                    "embed_model_load_seconds",
                    "Time to load the model at start.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            embed_cache: counter(
                "embed_cache_requests_total",
                "Embedding cache lookups by result.",
                &["result"],
            )?,
            query_lane_seconds: plain_histogram(
                "embed_query_lane_duration_seconds",
                "Worker time to answer a batch of query-embedding requests.",
                LATENCY_BUCKETS,
            )?,
            embed_batch_size: plain_histogram(
                "embed_batch_size",
                "Texts per forward pass.",
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
            )?,
            embed_duration: plain_histogram(
                "embed_inference_duration_seconds",
                "Model inference time per batch.",
                LATENCY_BUCKETS,
            )?,
            scrape_response_bytes: plain_histogram(
                "scrape_response_bytes",
                "Size of fetched page bodies as received.",
                BYTES_BUCKETS,
            )?,
            embed_batch_tokens: plain_histogram(
                "embed_batch_tokens",
                "Word pieces per forward pass (unpadded).",
                &[
                    16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
                ],
            )?,
            save_to_ready: plain_histogram(
                "save_to_ready_seconds",
                "Time from saving a bookmark to its embedding being stored.",
                SAVE_TO_READY_BUCKETS,
            )?,
            // Registered only by workers (see `export_worker_heartbeat`).
            worker_heartbeat: Gauge::new(
                "worker_heartbeat_timestamp_seconds",
                "Unix time of the worker's last liveness tick.",
            )?,
            redis_errors: counter(
                "redis_command_errors_total",
                "Failed Redis commands outside the read cache, by component.",
                &["component"],
            )?,
            db: DbMetrics::new(&registry)?,
            queues: QueueMetrics::new()?,
            scheduling: SchedulingMetrics::new(&registry)?,
            imports: ImportMetrics::new(&registry)?,
            build_info: {
                let g = IntGaugeVec::new(Opts::new("build_info", "Fuze build."), &["version"])?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            registry,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        for q in queues {
            for c in [
                &m.jobs_enqueued,
                &m.jobs_deduplicated,
                &m.jobs_started,
                &m.jobs_undecodable,
            ] {
                c.with_label_values(&[q]).reset();
            }
            m.worker_restarts.with_label_values(&[q]).reset();
            for o in JOB_OUTCOMES {
                m.jobs_finished.with_label_values(&[q, o]).reset();
            }
        }
        for r in ["hit", "miss"] {
            m.embed_cache.with_label_values(&[r]).reset();
        }
        for o in SCRAPE_OUTCOMES {
            m.scrape_fetches.with_label_values(&[o]).reset();
        }
        for c in REDIS_COMPONENTS {
            m.redis_errors.with_label_values(&[c]).reset();
        }
        m.observe_cache(&CacheStatsSnapshot {
            types: CacheType::ALL
                .iter()
                .map(|t| TypeStatsSnapshot {
                    cache_type: t.as_str(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        Ok(m)
    }

    pub fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[route, method, status.to_string().as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Brings the cache counters up to the cache's own stats (called at scrape time).
    pub fn observe_cache(&self, stats: &CacheStatsSnapshot) {
        fn catch_up(counter: &IntCounter, total: u64) {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let c = &self.cache;
        for t in &stats.types {
            let ty = t.cache_type;
            let l1_misses = t.requests.saturating_sub(t.l1_hits);
            catch_up(&c.requests.with_label_values(&[ty, "l1", "hit"]), t.l1_hits);
            catch_up(
                &c.requests.with_label_values(&[ty, "l1", "miss"]),
                l1_misses,
            );
            catch_up(&c.requests.with_label_values(&[ty, "l2", "hit"]), t.l2_hits);
            catch_up(
                &c.requests.with_label_values(&[ty, "l2", "miss"]),
                l1_misses.saturating_sub(t.l2_hits),
            );
            catch_up(&c.requests.with_label_values(&[ty, "l3", "load"]), t.loads);
            catch_up(&c.shared_loads.with_label_values(&[ty]), t.shared_loads);
        }
        c.l1_entries
            .set(i64::try_from(stats.l1.entries).unwrap_or(i64::MAX));
        c.l1_bytes
            .set(i64::try_from(stats.l1.bytes).unwrap_or(i64::MAX));
        catch_up(&c.l1_evictions, stats.l1.evictions);
        catch_up(
            &c.l1_flushes.with_label_values(&["subscription_lost"]),
            stats.l1.flushes_subscription_lost,
        );
        catch_up(
            &c.l1_flushes.with_label_values(&["admin"]),
            stats.l1.flushes_admin,
        );
        catch_up(
            &c.l1_flushes.with_label_values(&["other"]),
            stats.l1.flushes_other,
        );
        catch_up(&c.invalidations, stats.invalidations);
        catch_up(&c.redis_errors, stats.l2.errors);
    }

    /// Exports the invalidation subscriber's up/down gauge (processes that run the subscriber).
    pub fn export_subscriber_up(&self) -> anyhow::Result<IntGauge> {
        self.registry
            .register(Box::new(self.cache.subscriber_up.clone()))?;
        Ok(self.cache.subscriber_up.clone())
    }

    /// Exports the heartbeat gauge (worker processes, which tick it).
    pub fn export_worker_heartbeat(&self) -> anyhow::Result<Gauge> {
        self.registry
            .register(Box::new(self.worker_heartbeat.clone()))?;
        self.worker_heartbeat.set(unix_now());
        Ok(self.worker_heartbeat.clone())
    }

    /// Exports the queue and backlog gauges, at 0 until the first [`Self::observe_queues`].
    /// One kind of process (the api) is enough: the values are the same from everywhere.
    pub fn export_queue_gauges(&self) -> anyhow::Result<()> {
        self.queues.register(&self.registry)?;
        self.queues.initialise();
        self.scheduling.export_gauges(&self.registry)
    }

    /// Counts a failed Redis command of `component` (one of [`REDIS_COMPONENTS`]).
    pub fn redis_error(&self, component: &str, error: &redis::RedisError) {
        self.redis_errors.with_label_values(&[component]).inc();
        tracing::warn!(component, error = %error, "redis command failed");
    }

    /// Brings the deduplicated-requests counter up to the deduplicator's own count.
    pub fn observe_dedup(&self, total: u64) {
        let c = &self.cache.requests_deduplicated;
        c.inc_by(total.saturating_sub(c.get()));
    }

    /// The text exposition format for `/metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "failed to encode metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}
