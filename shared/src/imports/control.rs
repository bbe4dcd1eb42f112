//! A user's control of their import: pause, resume, cancel, retry the failed.
//!
//! Pausing and cancelling take back the import's crawls that have not started (at most its
//! window: see [`super::feed`]) by deleting their job records, in the same transaction as the
//! state change; a ticket of a deleted job finds no record and is dropped by the worker, so no
//! crawl of the import starts after the answer. Crawls already running finish.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{ImportState, progress};

/// Why a control request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no such import")]
    NotFound,
    #[error("the import is {}", .0.as_str())]
    Conflict(ImportState),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What a control request changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    pub state: ImportState,
    /// Whether the import may have crawls to feed now (the caller feeds it).
    pub feed: bool,
    /// Items affected: crawls taken back, items skipped or items queued again.
    pub items: u64,
}

pub async fn pause(db: &PgPool, user_id: Uuid, id: Uuid) -> Result<Changed, ControlError> {
    let mut tx = db.begin().await?;
    let items = match lock(&mut tx, user_id, id).await? {
        ImportState::Running => {
            set_state(&mut tx, id, ImportState::Paused).await?;
            take_back_unstarted(&mut tx, id).await?
        }
        ImportState::Paused => 0,
        other => return Err(ControlError::Conflict(other)),
    };
    tx.commit().await?;
    Ok(Changed {
        state: ImportState::Paused,
        feed: false,
        items,
    })
}

pub async fn resume(db: &PgPool, user_id: Uuid, id: Uuid) -> Result<Changed, ControlError> {
    let mut tx = db.begin().await?;
    match lock(&mut tx, user_id, id).await? {
        ImportState::Paused => set_state(&mut tx, id, ImportState::Running).await?,
        ImportState::Running => {}
        other => return Err(ControlError::Conflict(other)),
    }
    tx.commit().await?;
    Ok(Changed {
        state: ImportState::Running,
        feed: true,
        items: 0,
    })
}

/// Stops crawling: crawls not started are taken back and their items `skipped`; what is saved
/// stays (a skipped item's bookmark is `not_crawled`, crawlable later).
pub async fn cancel(db: &PgPool, user_id: Uuid, id: Uuid) -> Result<Changed, ControlError> {
    let mut tx = db.begin().await?;
    let items = match lock(&mut tx, user_id, id).await? {
        ImportState::Running | ImportState::Paused => {
            set_state(&mut tx, id, ImportState::Cancelled).await?;
            take_back_unstarted(&mut tx, id).await?;
            skip_unfed(&mut tx, id).await?
        }
        ImportState::Cancelled => 0,
        other => return Err(ControlError::Conflict(other)),
    };
    tx.commit().await?;
    Ok(Changed {
        state: ImportState::Cancelled,
        feed: false,
        items,
    })
}

/// Queues again the items whose crawl failed (entries that could not be read stay failed).
/// A completed import runs again; a paused one stays paused.
pub async fn retry_failed(db: &PgPool, user_id: Uuid, id: Uuid) -> Result<Changed, ControlError> {
    let mut tx = db.begin().await?;
    let state = lock(&mut tx, user_id, id).await?;
    if state == ImportState::Cancelled {
        return Err(ControlError::Conflict(state));
    }
    sqlx::query(
        "WITH failed AS (UPDATE import_items AS i SET job_id = NULL FROM jobs AS j \
           WHERE i.import_id = $1 AND i.state = 'saved' AND j.id = i.job_id AND j.state = 'failed' \
           RETURNING i.bookmark_id) \
         UPDATE saved_content SET status = 'pending', error = NULL, updated_at = now() \
         WHERE id IN (SELECT bookmark_id FROM failed) AND status = 'failed'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    // Counted from the items, not the bookmarks (a bookmark may have changed state meanwhile).
    let requeued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM import_items WHERE import_id = $1 AND state = 'saved' AND job_id IS NULL",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let state = if state == ImportState::Completed && requeued > 0 {
        set_state(&mut tx, id, ImportState::Running).await?;
        ImportState::Running
    } else {
        state
    };
    tx.commit().await?;
    Ok(Changed {
        state,
        feed: state == ImportState::Running,
        items: u64::try_from(requeued).unwrap_or(0),
    })
}

/// The import's state, its row locked until the transaction ends (feeders wait for it).
async fn lock(db: &mut PgConnection, user_id: Uuid, id: Uuid) -> Result<ImportState, ControlError> {
    let state: Option<ImportState> =
        sqlx::query_scalar("SELECT state FROM imports WHERE id = $1 AND user_id = $2 FOR UPDATE")
            .bind(id)
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    state.ok_or(ControlError::NotFound)
}

async fn set_state(db: &mut PgConnection, id: Uuid, state: ImportState) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE imports SET state = $2, updated_at = now(), \
           finished_at = CASE WHEN $2 IN ('cancelled', 'completed') THEN now() END WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .execute(db)
    .await
    .map(drop)
}

/// Deletes the import's crawl jobs that wait to fetch their page (queued, or waiting for a
/// retry); their items become unfed again. Jobs past the fetch finish as they are.
async fn take_back_unstarted(db: &mut PgConnection, id: Uuid) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM jobs WHERE import_id = $1 AND stage = 'scrape' AND state IN ('queued', 'retrying')",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Marks the items never fed `skipped`, and their bookmarks `not_crawled`.
async fn skip_unfed(db: &mut PgConnection, id: Uuid) -> sqlx::Result<u64> {
    let skipped: Vec<Option<Uuid>> = sqlx::query_scalar(
        "UPDATE import_items SET state = 'skipped' \
         WHERE import_id = $1 AND state = 'saved' AND job_id IS NULL RETURNING bookmark_id",
    )
    .bind(id)
    .fetch_all(&mut *db)
    .await?;
    let bookmarks: Vec<Uuid> = skipped.iter().flatten().copied().collect();
    sqlx::query(
        "UPDATE saved_content SET status = 'not_crawled', updated_at = now() \
         WHERE id = ANY($1) AND status = 'pending'",
    )
    .bind(&bookmarks)
    .execute(db)
    .await?;
    Ok(skipped.len() as u64)
}

/// The import as its user sees it after a change.
pub async fn record(
    db: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<progress::ImportRecord, ControlError> {
    progress::find(db, user_id, id)
        .await?
        .ok_or(ControlError::NotFound)
}
