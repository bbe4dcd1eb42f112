//! What each queue carries. Ids only: the database holds the state, so a payload never goes stale.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Fetch and extract a saved link. `job_id` is the Fuze job record that tracks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeJob {
    pub job_id: String,
    pub user_id: Uuid,
    pub bookmark_id: Uuid,
}

/// Embed a scraped bookmark's title, description and main text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedJob {
    pub job_id: String,
    pub user_id: Uuid,
    pub bookmark_id: Uuid,
}
