//! Bulk imports: a session per uploaded file and an item per entry (`imports`, `import_items`).
//!
//! - [`stage`]: the upload's writes: the session, then batches of items merged into bookmarks
//! - [`progress`]: what a user reads: sessions, counts per item state, item pages
//! - [`feed`]: keeps a bounded window of an import's crawl jobs in the bulk lane
//! - [`control`]: pause, resume, cancel, retry the failed
//!
//! An item's crawl is an ordinary ingest job (`jobs.import_id` names its import); whether the
//! item is `crawled` or `failed` is read from that job, never copied, so the two cannot disagree.

pub mod control;
pub mod feed;
pub mod progress;
pub mod stage;

use serde::{Deserialize, Serialize};

/// Where an import is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ImportState {
    /// Its crawls are being fed to the workers.
    Running,
    /// No new crawl starts until it is resumed.
    Paused,
    /// Stopped by its user: what was saved stays, the rest is `skipped`.
    Cancelled,
    /// Every item is final.
    Completed,
}

impl ImportState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
        }
    }
}

/// An item's state as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Read from the file, not yet a bookmark. Staging and merging are one transaction, so no
    /// reader ever sees an item in this state; it is counted so the states add up by definition.
    Staged,
    /// Its bookmark exists; its crawl (if the import crawls) has not finished yet.
    Saved,
    /// Merged into a bookmark the user already had (or an earlier entry of the same file).
    Duplicate,
    /// Saved and its page fetched, embedded and analysed.
    Crawled,
    /// The entry could not be read, or its crawl failed for good.
    Failed,
    /// Cancelled before its crawl started.
    Skipped,
}

impl ItemState {
    pub const ALL: [ItemState; 6] = [
        Self::Staged,
        Self::Saved,
        Self::Duplicate,
        Self::Crawled,
        Self::Failed,
        Self::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staged => "staged",
            Self::Saved => "saved",
            Self::Duplicate => "duplicate",
            Self::Crawled => "crawled",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The SQL expression of an item's user-facing state (`i`: the item, `j`: its crawl job).
const ITEM_STATE_SQL: &str = "CASE WHEN i.state = 'saved' AND j.state = 'succeeded' THEN 'crawled' \
     WHEN i.state = 'saved' AND j.state = 'failed' THEN 'failed' ELSE i.state END";
