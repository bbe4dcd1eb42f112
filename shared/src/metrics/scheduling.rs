//! Scheduling metrics: the fair queues' hand-overs and waits, host politeness, apalis data
//! cleaned, per-user limits at the api, and outcomes that had to be written again.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::jobs::{Lane, QueueName};

/// Why a job waited instead of running (job admission); every queue × reason starts at 0.
pub const WAIT_REASONS: &[&str] = &[
    "busy",
    "interval",
    "retry_after",
    "breaker_open",
    "robots",
    "database",
    "unavailable",
];
/// What happened to a finished delivery's apalis data.
pub const CLEANED: &[&str] = &["removed", "retained", "expired", "worker_keys"];
/// Why the api refused a request of a user's (429).
pub const LIMIT_REASONS: &[&str] = &["rate_limited", "too_many_pending_jobs", "db_busy"];
/// Writes of a job's outcome that are retried until they succeed.
pub const SETTLE_TARGETS: &[&str] = &["job_settle", "queue"];
/// Fair-queue states a pending ticket can be in.
pub const PENDING_STATES: &[&str] = &["ready", "delayed"];

/// Suggested waits, from a few milliseconds (an interval) to an hour (a long Retry-After).
const WAIT_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

#[derive(Clone)]
pub struct SchedulingMetrics {
    pub dispatched: IntCounterVec,
    pub deferred: IntCounterVec,
    pub host_wait_seconds: HistogramVec,
    pub breakers_opened: IntCounter,
    pub deliveries_cleaned: IntCounterVec,
    pub settle_retries: IntCounterVec,
    pub limited: IntCounterVec,
    /// Computed at scrape time (api only, like the other queue gauges).
    pub pending: IntGaugeVec,
    pub open_breakers: IntGauge,
}

impl SchedulingMetrics {
    pub(super) fn new(registry: &Registry) -> anyhow::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let host_wait_seconds = HistogramVec::new(
            HistogramOpts::new(
                "scrape_host_wait_seconds",
                "Waits handed to scrape jobs whose host could not take a request now, by reason.",
            )
            .buckets(WAIT_BUCKETS.to_vec()),
            &["reason"],
        )?;
        registry.register(Box::new(host_wait_seconds.clone()))?;
        let breakers_opened = IntCounter::new(
            "scrape_breakers_opened_total",
            "Host breakers opened after repeated failures.",
        )?;
        registry.register(Box::new(breakers_opened.clone()))?;
        let m = Self {
            dispatched: counter(
                "jobs_dispatched_total",
                "Tickets handed from the fair queue to apalis.",
                &["queue"],
            )?,
            deferred: counter(
                "jobs_deferred_total",
                "Runs sent back to wait in the fair queue before their claim (no attempt spent), by reason.",
                &["queue", "reason"],
            )?,
            host_wait_seconds,
            breakers_opened,
            deliveries_cleaned: counter(
                "queue_tasks_cleaned_total",
                "Finished apalis tasks whose data was removed (or retained, then expired), and \
                 leftovers of gone workers removed.",
                &["queue", "how"],
            )?,
            settle_retries: counter(
                "job_settle_retries_total",
                "Failed writes of a job's outcome, each retried until it succeeds.",
                &["target"],
            )?,
            limited: counter(
                "http_limited_total",
                "Requests refused with 429 by a per-user limit, by route and reason.",
                &["route", "reason"],
            )?,
            pending: IntGaugeVec::new(
                Opts::new(
                    "jobs_pending",
                    "Tickets waiting in the fair queues by stage, lane and state, at scrape time.",
                ),
                &["queue", "lane", "state"],
            )?,
            open_breakers: IntGauge::new(
                "scrape_open_breakers",
                "Hosts whose breaker is open now, at scrape time.",
            )?,
        };
        for q in QueueName::ALL.map(QueueName::as_str) {
            m.dispatched.with_label_values(&[q]).reset();
            for r in WAIT_REASONS {
                m.deferred.with_label_values(&[q, r]).reset();
            }
            for how in CLEANED {
                m.deliveries_cleaned.with_label_values(&[q, how]).reset();
            }
        }
        for t in SETTLE_TARGETS {
            m.settle_retries.with_label_values(&[t]).reset();
        }
        // Host waits are scrape-side reasons only (the database/unavailable ones are not a host's).
        for r in &WAIT_REASONS[..4] {
            let _ = m.host_wait_seconds.with_label_values(&[r]);
        }
        Ok(m)
    }

    /// A run of `queue` waits instead of running, for `reason` (one of [`WAIT_REASONS`]).
    pub fn waits(&self, queue: &str, reason: &str) {
        self.deferred.with_label_values(&[queue, reason]).inc();
    }

    /// A scrape waits `wait` for its host, for `reason`.
    pub fn host_wait(&self, reason: &str, wait: std::time::Duration) {
        self.host_wait_seconds
            .with_label_values(&[reason])
            .observe(wait.as_secs_f64());
    }

    /// Exports the gauges read at scrape time (the api), at 0 until the first reading.
    pub(super) fn export_gauges(&self, registry: &Registry) -> anyhow::Result<()> {
        registry.register(Box::new(self.pending.clone()))?;
        registry.register(Box::new(self.open_breakers.clone()))?;
        for q in QueueName::ALL.map(QueueName::as_str) {
            for lane in Lane::ALL.map(Lane::as_str) {
                for state in PENDING_STATES {
                    self.pending.with_label_values(&[q, lane, state]).set(0);
                }
            }
        }
        Ok(())
    }

    /// Every route × reason a limit applies to, at 0, so panels have a series from the start.
    pub fn initialise_limits(&self, routes: &[&str]) {
        for route in routes {
            for reason in LIMIT_REASONS {
                self.limited.with_label_values(&[route, reason]).reset();
            }
        }
    }
}
