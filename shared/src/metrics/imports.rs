//! Import metrics: files received, items staged by state, and crawls of imports that ended.

use prometheus::{IntCounterVec, Opts, Registry};

/// What an import's item became when it was staged.
pub const STAGED_STATES: &[&str] = &["saved", "duplicate", "failed"];
/// How an import's crawl ended.
pub const CRAWL_OUTCOMES: &[&str] = &["crawled", "failed"];

#[derive(Clone)]
pub struct ImportMetrics {
    /// Import files staged, by format.
    pub started: IntCounterVec,
    /// Items staged, by state.
    pub items_staged: IntCounterVec,
    /// Crawls of import items that ended, by outcome (their rate is the import throughput).
    pub crawls_ended: IntCounterVec,
}

impl ImportMetrics {
    pub(super) fn new(registry: &Registry) -> anyhow::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let m = Self {
            started: counter(
                "imports_started_total",
                "Import files staged, by format.",
                &["format"],
            )?,
            items_staged: counter(
                "import_items_staged_total",
                "Import items staged, by the state they were staged in.",
                &["state"],
            )?,
            crawls_ended: counter(
                "import_crawls_ended_total",
                "Crawls of import items that ended, by outcome.",
                &["outcome"],
            )?,
        };
        for state in STAGED_STATES {
            m.items_staged.with_label_values(&[state]);
        }
        for outcome in CRAWL_OUTCOMES {
            m.crawls_ended.with_label_values(&[outcome]);
        }
        Ok(m)
    }
}
