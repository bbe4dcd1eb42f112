//! Fuze's job status records in PostgreSQL: what the frontend polls and what decides retries.
//!
//! apalis-redis keeps no reliable state for this (`Failed` means both "will retry" and "dead",
//! `Running` lags, nothing expires), so each job has a row here and apalis only transports it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use crate::domain::JobState;

#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct JobRecord {
    pub id: String,
    pub user_id: Option<Uuid>,
    pub kind: String,
    pub stage: Option<String>,
    pub state: JobState,
    pub attempts: i32,
    pub total_attempts: i32,
    pub max_attempts: i32,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub bookmark_id: Option<Uuid>,
    #[serde(skip)]
    pub task_id: String,
    pub run_after: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub(super) const COLUMNS: &str = "id, user_id, kind, stage, state, attempts, total_attempts, max_attempts, error_code, error, \
     bookmark_id, task_id, run_after, created_at, updated_at, started_at, finished_at";

/// A new queued job whose first apalis task id equals the job id.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub user_id: Uuid,
    pub kind: &'a str,
    pub stage: &'a str,
    pub bookmark_id: Option<Uuid>,
    pub max_attempts: i32,
}

pub async fn insert(db: impl PgExecutor<'_>, job: &NewJob<'_>) -> sqlx::Result<JobRecord> {
    sqlx::query_as(&format!(
        "INSERT INTO jobs (id, user_id, kind, stage, state, max_attempts, bookmark_id, task_id) \
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $1) RETURNING {COLUMNS}"
    ))
    .bind(job.id)
    .bind(job.user_id)
    .bind(job.kind)
    .bind(job.stage)
    .bind(job.max_attempts)
    .bind(job.bookmark_id)
    .fetch_one(db)
    .await
}

/// A job as its owner sees it; another user's job is indistinguishable from a missing one.
pub async fn find_for_user(
    db: impl PgExecutor<'_>,
    id: &str,
    user_id: Uuid,
) -> sqlx::Result<Option<JobRecord>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
}

pub async fn latest_for_bookmark(
    db: impl PgExecutor<'_>,
    bookmark_id: Uuid,
) -> sqlx::Result<Option<JobRecord>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE bookmark_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .bind(bookmark_id)
    .fetch_optional(db)
    .await
}

/// A job a worker took, with how long it waited since it became runnable.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub record: JobRecord,
    pub queue_wait_s: f64,
}

/// Marks the job running for this apalis task and counts the attempt. `None` when the task is not
/// (or not yet) the job's current task, or the job already finished: see [`find`] to tell which.
/// A re-run of the same task after a crash is allowed: delivery is at least once.
pub async fn claim(
    db: impl PgExecutor<'_>,
    id: &str,
    task_id: &str,
    stage: &str,
) -> sqlx::Result<Option<Claimed>> {
    let row: Option<ClaimRow> = sqlx::query_as(&format!(
        "UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, total_attempts = jobs.total_attempts + 1, updated_at = now(), \
           run_after = NULL, started_at = COALESCE(jobs.started_at, clock_timestamp()) \
         FROM (SELECT id, COALESCE(run_after, updated_at) AS ready_at FROM jobs WHERE id = $1) AS before \
         WHERE jobs.id = before.id AND jobs.task_id = $2 AND jobs.stage = $3 \
           AND jobs.state IN ('queued', 'retrying', 'running') \
         RETURNING {}, GREATEST(EXTRACT(EPOCH FROM clock_timestamp() - before.ready_at), 0)::float8 AS queue_wait_s",
        COLUMNS.split(", ").map(|c| format!("jobs.{c}")).collect::<Vec<_>>().join(", ")
    ))
    .bind(id)
    .bind(task_id)
    .bind(stage)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Claimed {
        record: r.record,
        queue_wait_s: r.queue_wait_s,
    }))
}

#[derive(FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    record: JobRecord,
    queue_wait_s: f64,
}

pub async fn find(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Option<JobRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Hands the job to its next stage under a new task id.
pub async fn advance(
    db: impl PgExecutor<'_>,
    id: &str,
    stage: &str,
    task_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET stage = $2, task_id = $3, state = 'queued', attempts = 0, error_code = NULL, \
         error = NULL, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(stage)
    .bind(task_id)
    .execute(db)
    .await
    .map(drop)
}

/// Schedules another attempt of `stage` under a new task id.
pub async fn schedule_retry(
    db: impl PgExecutor<'_>,
    id: &str,
    stage: &str,
    task_id: &str,
    error_code: &str,
    error: &str,
    run_after: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'retrying', stage = $2, task_id = $3, error_code = $4, error = $5, \
         run_after = $6, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(stage)
    .bind(task_id)
    .bind(error_code)
    .bind(error)
    .bind(run_after)
    .execute(db)
    .await
    .map(drop)
}

/// Marks the job done; returns the seconds since its bookmark was saved (the save → ready
/// latency users feel), if the job has a bookmark.
pub async fn succeed(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<Option<f64>> {
    let row: Option<(Option<f64>,)> = sqlx::query_as(
        "UPDATE jobs SET state = 'succeeded', error_code = NULL, error = NULL, updated_at = now(), \
         finished_at = now() WHERE id = $1 \
         RETURNING (SELECT EXTRACT(EPOCH FROM clock_timestamp() - saved_at)::float8 \
                    FROM saved_content WHERE saved_content.id = jobs.bookmark_id)",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|(s,)| s))
}

pub async fn fail(
    db: impl PgExecutor<'_>,
    id: &str,
    error_code: &str,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'failed', error_code = $2, error = $3, updated_at = now(), \
         finished_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(error_code)
    .bind(error)
    .execute(db)
    .await
    .map(drop)
}
