//! Database metrics: pool gauges read at scrape time, acquire time, and query duration and errors
//! for a handful of named operations (an operation name, never the SQL text, is the label).

use std::{future::Future, time::Instant};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use sqlx::{PgPool, Postgres, Transaction, pool::PoolConnection};

use super::LATENCY_BUCKETS;

/// The operations timed by [`DbMetrics::time`]; all are exported from the start, at 0.
pub const DB_OPERATIONS: &[&str] = &[
    "bookmark_save",
    "job_claim",
    "job_settle",
    "store_scraped",
    "store_embedding",
    "queue_stats",
    "admin_jobs",
    "job_retry",
];

#[derive(Clone)]
pub struct DbMetrics {
    registry: Registry,
    pub acquire: Histogram,
    pub query: HistogramVec,
    pub errors: IntCounterVec,
}

impl DbMetrics {
    pub(super) fn new(registry: &Registry) -> anyhow::Result<Self> {
        let acquire = Histogram::with_opts(
            HistogramOpts::new(
                "db_pool_acquire_duration_seconds",
                "Time to get a connection from the pool.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let query = HistogramVec::new(
            HistogramOpts::new(
                "db_query_duration_seconds",
                "Query (or short transaction) duration by named operation.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "db_errors_total",
                "Database errors by named operation (acquire = no connection from the pool).",
            ),
            &["operation"],
        )?;
        registry.register(Box::new(acquire.clone()))?;
        registry.register(Box::new(query.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        for op in DB_OPERATIONS {
            query.with_label_values(&[op]);
            errors.with_label_values(&[op]).reset();
        }
        errors.with_label_values(&["acquire"]).reset();
        Ok(Self {
            registry: registry.clone(),
            acquire,
            query,
            errors,
        })
    }

    /// Exports the pool's size, idle and in-use connections, read at every scrape.
    pub fn watch_pool(&self, pool: PgPool) -> anyhow::Result<()> {
        self.registry
            .register(Box::new(PoolCollector::new(pool)?))?;
        Ok(())
    }

    /// Times `fut` as `operation` and counts its error, if any.
    pub async fn time<T, E, F>(&self, operation: &str, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let result = fut.await;
        self.query
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.errors.with_label_values(&[operation]).inc();
        }
        result
    }

    /// A pooled connection, its wait observed.
    pub async fn acquire(&self, pool: &PgPool) -> sqlx::Result<PoolConnection<Postgres>> {
        self.timed_acquire(pool.acquire()).await
    }

    /// A transaction; beginning one is mostly waiting for a connection.
    pub async fn begin(&self, pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.timed_acquire(pool.begin()).await
    }

    async fn timed_acquire<T>(
        &self,
        fut: impl Future<Output = sqlx::Result<T>>,
    ) -> sqlx::Result<T> {
        let started = Instant::now();
        let result = fut.await;
        self.acquire.observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.errors.with_label_values(&["acquire"]).inc();
        }
        result
    }
}

/// Reads the pool when Prometheus scrapes, so the gauges are never stale.
struct PoolCollector {
    pool: PgPool,
    size: IntGauge,
    idle: IntGauge,
    in_use: IntGauge,
    max: IntGauge,
}

impl PoolCollector {
    fn new(pool: PgPool) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            size: IntGauge::new("db_pool_connections", "Open connections in the pool.")?,
            idle: IntGauge::new("db_pool_idle_connections", "Idle connections in the pool.")?,
            in_use: IntGauge::new(
                "db_pool_in_use_connections",
                "Connections lent out by the pool.",
            )?,
            max: IntGauge::new("db_pool_max_connections", "The pool's configured maximum.")?,
        })
    }

    fn gauges(&self) -> [&IntGauge; 4] {
        [&self.size, &self.idle, &self.in_use, &self.max]
    }
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges().into_iter().flat_map(|g| g.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let size = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
        self.size.set(size);
        self.idle.set(idle);
        self.in_use.set((size - idle).max(0));
        self.max
            .set(i64::from(self.pool.options().get_max_connections()));
        self.gauges()
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}
