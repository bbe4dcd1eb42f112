//! What users read about their imports. Every query is scoped by the user (through the import).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::{ITEM_STATE_SQL, ImportState, ItemState};

/// An import session.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow, utoipa::ToSchema)]
pub struct ImportRecord {
    pub id: Uuid,
    pub format: String,
    pub crawl: bool,
    pub tags: Vec<String>,
    pub state: ImportState,
    /// Entries in the file, valid or not: the items' counts add up to it.
    pub entries: i32,
    pub bytes: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, format, crawl, tags, state, entries, bytes, created_at, updated_at, finished_at";

/// The user's import, or `None` (another user's import is indistinguishable from a missing one).
pub async fn find(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<ImportRecord>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM imports WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// The user's imports, newest first, after the `(created_at, id)` of the previous page's last.
pub async fn list(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u32,
) -> sqlx::Result<Vec<ImportRecord>> {
    let (at, id) = after.unzip();
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM imports WHERE user_id = $1 \
           AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(user_id)
    .bind(at)
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
}

/// How many items are in each state, and how many crawls have ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub staged: i64,
    pub saved: i64,
    pub duplicate: i64,
    pub crawled: i64,
    pub failed: i64,
    pub skipped: i64,
    /// Crawls that ended (crawled, or failed while crawling): the basis of the rate.
    #[serde(skip)]
    pub crawls_ended: i64,
}

impl Counts {
    pub fn total(&self) -> i64 {
        self.staged + self.saved + self.duplicate + self.crawled + self.failed + self.skipped
    }

    fn add(&mut self, state: ItemState, n: i64) {
        let slot = match state {
            ItemState::Staged => &mut self.staged,
            ItemState::Saved => &mut self.saved,
            ItemState::Duplicate => &mut self.duplicate,
            ItemState::Crawled => &mut self.crawled,
            ItemState::Failed => &mut self.failed,
            ItemState::Skipped => &mut self.skipped,
        };
        *slot += n;
    }
}

pub async fn counts(db: impl PgExecutor<'_>, import_id: Uuid) -> sqlx::Result<Counts> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT {ITEM_STATE_SQL} AS state, count(*), \
           count(*) FILTER (WHERE j.state IN ('succeeded', 'failed')) \
         FROM import_items i LEFT JOIN jobs j ON j.id = i.job_id \
         WHERE i.import_id = $1 GROUP BY 1"
    ))
    .bind(import_id)
    .fetch_all(db)
    .await?;
    let mut counts = Counts::default();
    for (state, n, ended) in rows {
        if let Some(state) = ItemState::parse(&state) {
            counts.add(state, n);
        }
        counts.crawls_ended += ended;
    }
    Ok(counts)
}

/// Crawl speed so far and the time left at that speed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pace {
    /// Crawls ended per second since the import started.
    pub items_per_s: f64,
    /// Seconds until the items still `saved` are crawled at that rate; `None` when nothing is
    /// left, or nothing has ended yet to measure a rate by.
    pub eta_s: Option<f64>,
}

impl Pace {
    pub fn of(import: &ImportRecord, counts: &Counts, now: DateTime<Utc>) -> Self {
        let end = import.finished_at.unwrap_or(now);
        let elapsed = (end - import.created_at).as_seconds_f64().max(0.001);
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let items_per_s = counts.crawls_ended as f64 / elapsed;
        let left = if import.crawl && import.state != ImportState::Cancelled {
            counts.saved
        } else {
            0
        };
        #[allow(clippy::cast_precision_loss)]
        let eta_s = (left > 0 && items_per_s > 0.0).then(|| left as f64 / items_per_s);
        Self { items_per_s, eta_s }
    }
}

/// One item of an import.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow, utoipa::ToSchema)]
pub struct ItemView {
    pub seq: i32,
    pub url: String,
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub added_at: Option<DateTime<Utc>>,
    /// The entry's line in the file, where the format has lines.
    pub line: Option<i32>,
    pub state: String,
    pub bookmark_id: Option<Uuid>,
    pub job_id: Option<String>,
    /// Why it failed: the entry's problem, or its crawl's error code (as jobs report them).
    pub error_code: Option<String>,
    pub error: Option<String>,
}

/// A page of an import's items in file order, optionally of one state, after item `after_seq`.
pub async fn items(
    db: impl PgExecutor<'_>,
    import_id: Uuid,
    state: Option<ItemState>,
    after_seq: Option<i32>,
    limit: u32,
) -> sqlx::Result<Vec<ItemView>> {
    sqlx::query_as(&format!(
        "SELECT i.seq, i.url, i.title, i.tags, i.added_at, i.line, {ITEM_STATE_SQL} AS state, \
           i.bookmark_id, i.job_id, \
           COALESCE(i.error_code, CASE WHEN j.state = 'failed' THEN j.error_code END) AS error_code, \
           COALESCE(i.error, CASE WHEN j.state = 'failed' THEN j.error END) AS error \
         FROM import_items i LEFT JOIN jobs j ON j.id = i.job_id \
         WHERE i.import_id = $1 AND ($2::text IS NULL OR {ITEM_STATE_SQL} = $2) AND i.seq > $3 \
         ORDER BY i.seq LIMIT $4"
    ))
    .bind(import_id)
    .bind(state.map(ItemState::as_str))
    .bind(after_seq.unwrap_or(-1))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
}

/// The import's progress as its owner's feed tells it, with the owner; `None` if it is gone.
pub async fn event(
    db: &sqlx::PgPool,
    import_id: Uuid,
) -> sqlx::Result<Option<(Uuid, crate::feed::FeedEvent)>> {
    let owner: Option<(Uuid,)> = sqlx::query_as("SELECT user_id FROM imports WHERE id = $1")
        .bind(import_id)
        .fetch_optional(db)
        .await?;
    let Some((user_id,)) = owner else {
        return Ok(None);
    };
    let Some(import) = find(db, user_id, import_id).await? else {
        return Ok(None);
    };
    let counts = counts(db, import_id).await?;
    Ok(Some((user_id, feed_event(&import, &counts))))
}

/// How far the import is: `finished` counts the entries that will not change any more.
pub fn feed_event(import: &ImportRecord, counts: &Counts) -> crate::feed::FeedEvent {
    let finished = match import.state {
        ImportState::Completed | ImportState::Cancelled => counts.total(),
        ImportState::Running | ImportState::Paused => {
            let settled = counts.crawled + counts.failed + counts.skipped + counts.duplicate;
            // Without a crawl, a saved entry is as far as it goes.
            settled + if import.crawl { 0 } else { counts.saved }
        }
    };
    crate::feed::FeedEvent::Import {
        import_id: import.id,
        state: import.state,
        entries: i64::from(import.entries),
        finished,
        failed: counts.failed,
    }
}
