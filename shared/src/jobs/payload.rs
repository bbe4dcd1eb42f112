//! What each queue carries. Ids only: the database holds the state, so a payload never goes stale.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One stage of an ingest job (scrape, embed or analyze: the queue says which). `job_id` is the
/// Fuze job record that tracks all three.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageJob {
    pub job_id: String,
    pub user_id: Uuid,
    pub bookmark_id: Uuid,
    /// A refresh of a page already saved (`JobKind::Refresh`), not its first fetch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh: bool,
}

/// Load hot read-path keys into the Redis cache: one user's, or the most active users'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmJob {
    /// `None`: the most recently active users (up to the configured number).
    pub user_id: Option<Uuid>,
    /// Why it runs (`session`, `admin`, `clock`), for logs.
    pub reason: String,
}
