//! Fuze worker: runs scrape and embed jobs, holds the embedding model, and the clock.
//!
//! - [`runtime`]: the worker process (apalis Monitor, wake-ups, shutdown)
//! - [`jobs`]: job handlers and the runner that records their outcomes
//! - [`scrape`]: SSRF-safe fetching and main-text extraction
//! - [`politeness`]: each host's turn (in-flight cap, interval, Retry-After, breaker, robots.txt)
//! - [`embed`]: the candle sentence-embedding engine
//! - [`query_lane`]: answers the api's query-embedding requests
//! - [`clock`], [`reconcile`]: the scheduler process (`fuze-clock`) and lost-task recovery
//! - [`cli`]: `embed` and `extract` operator commands

pub mod analyze;
pub mod cli;
pub mod clock;
pub mod context;
pub mod embed;
pub mod jobs;
pub mod metrics_server;
pub mod observe;
pub mod politeness;
pub mod query_lane;
pub mod reconcile;
pub mod runtime;
pub mod scrape;

/// The multi-threaded runtime the worker and the clock run on.
pub fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
