//! Fuze's job status records in PostgreSQL: what the frontend polls and what decides retries.
//!
//! apalis-redis keeps no reliable state for this (`Failed` means both "will retry" and "dead",
//! `Running` lags, nothing expires), so each job has a row here and apalis only transports it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::Lane;
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
    pub lane: Lane,
    /// The import this job crawls an item of.
    pub import_id: Option<Uuid>,
    /// The ticket of the run allowed now (see `jobs::fair`).
    #[serde(skip)]
    pub task_id: String,
    pub run_after: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub(super) const COLUMNS: &str = "id, user_id, kind, stage, state, attempts, total_attempts, max_attempts, error_code, error, \
     bookmark_id, lane, import_id, task_id, run_after, created_at, updated_at, started_at, finished_at";

/// A new queued job whose first ticket equals the job id.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub user_id: Uuid,
    pub kind: &'a str,
    pub stage: &'a str,
    pub bookmark_id: Option<Uuid>,
    pub max_attempts: i32,
    pub lane: Lane,
}

pub async fn insert(db: impl PgExecutor<'_>, job: &NewJob<'_>) -> sqlx::Result<JobRecord> {
    sqlx::query_as(&format!(
        "INSERT INTO jobs (id, user_id, kind, stage, state, max_attempts, bookmark_id, lane, task_id) \
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $1) RETURNING {COLUMNS}"
    ))
    .bind(job.id)
    .bind(job.user_id)
    .bind(job.kind)
    .bind(job.stage)
    .bind(job.max_attempts)
    .bind(job.bookmark_id)
    .bind(job.lane)
    .fetch_one(db)
    .await
}

/// Makes the transaction's other enqueues of this user wait until it ends (a transaction-level
/// advisory lock keyed by the user), so a check of the user's pending jobs and the insert that
/// follows it are one step for concurrent requests.
pub async fn lock_user_enqueues(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))")
        .bind(user_id)
        .execute(db)
        .await
        .map(drop)
}

/// How many of the user's jobs are queued and not started yet, counting at most `cap` of them
/// (so the count costs the same however many there are).
pub async fn not_started(db: impl PgExecutor<'_>, user_id: Uuid, cap: u32) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE user_id = $1 AND state = 'queued' \
           AND started_at IS NULL LIMIT $2) AS waiting",
    )
    .bind(user_id)
    .bind(i64::from(cap))
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

/// What a user's job list shows: only their own jobs, optionally of one state and kind.
#[derive(Debug, Clone, Default)]
pub struct JobFilter<'a> {
    pub state: Option<JobState>,
    pub kind: Option<&'a str>,
}

/// The user's jobs, newest first, after the `(created_at, id)` of the previous page's last.
pub async fn list_for_user(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    filter: &JobFilter<'_>,
    after: Option<(DateTime<Utc>, String)>,
    limit: u32,
) -> sqlx::Result<Vec<JobRecord>> {
    let (at, id) = after.unzip();
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE user_id = $1 \
           AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR kind = $3) \
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
         ORDER BY created_at DESC, id DESC LIMIT $6"
    ))
    .bind(user_id)
    .bind(filter.state)
    .bind(filter.kind)
    .bind(at)
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(db)
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

// Every change a run makes to its job is guarded by the run's ticket: a run whose job was taken
// over meanwhile (the reconciler gave it a new ticket) changes nothing and learns so. Each is also
// safe to repeat: a write whose answer was lost (the connection dropped after the commit) is
// written again, and must then find its own earlier result rather than a stranger's.

/// Hands the job from the run holding `ticket` to its next stage under `next_ticket`. Returns
/// the job's lane, or `None` when the run no longer holds the job.
pub async fn advance(
    db: impl PgExecutor<'_>,
    id: &str,
    ticket: &str,
    stage: &str,
    next_ticket: &str,
) -> sqlx::Result<Option<Lane>> {
    sqlx::query_scalar(
        "UPDATE jobs SET stage = $3, task_id = $4, state = 'queued', attempts = 0, error_code = NULL, \
         error = NULL, updated_at = now() WHERE id = $1 AND task_id IN ($2, $4) \
           AND state IN ('queued', 'retrying', 'running') RETURNING lane",
    )
    .bind(id)
    .bind(ticket)
    .bind(stage)
    .bind(next_ticket)
    .fetch_optional(db)
    .await
}

/// Schedules another attempt of the job's stage under `next_ticket`. Returns the job's lane, or `None`
/// when the run holding `ticket` no longer holds the job.
pub async fn schedule_retry(
    db: impl PgExecutor<'_>,
    id: &str,
    ticket: &str,
    next_ticket: &str,
    error_code: &str,
    error: &str,
    run_after: DateTime<Utc>,
) -> sqlx::Result<Option<Lane>> {
    sqlx::query_scalar(
        "UPDATE jobs SET state = 'retrying', task_id = $3, error_code = $4, error = $5, \
         run_after = $6, updated_at = now() WHERE id = $1 AND task_id IN ($2, $3) \
           AND state IN ('queued', 'retrying', 'running') RETURNING lane",
    )
    .bind(id)
    .bind(ticket)
    .bind(next_ticket)
    .bind(error_code)
    .bind(error)
    .bind(run_after)
    .fetch_optional(db)
    .await
}

/// Gives back the attempt the run holding `ticket` claimed (`claimed` is the record as the claim
/// returned it): it could not do its work for a reason that is not the job's (its site asked to
/// wait). The job waits until `run_after` under the same ticket. Returns false when the run no
/// longer holds the job.
pub async fn defer(
    db: impl PgExecutor<'_>,
    claimed: &JobRecord,
    error_code: &str,
    error: &str,
    run_after: DateTime<Utc>,
) -> sqlx::Result<bool> {
    // Counts set from the claim, not decremented: written twice, they are still right.
    let done = sqlx::query(
        "UPDATE jobs SET state = 'retrying', attempts = GREATEST($3 - 1, 0), \
           total_attempts = GREATEST($4 - 1, 0), error_code = $5, error = $6, \
           run_after = $7, updated_at = now() WHERE id = $1 AND task_id = $2",
    )
    .bind(&claimed.id)
    .bind(&claimed.task_id)
    .bind(claimed.attempts)
    .bind(claimed.total_attempts)
    .bind(error_code)
    .bind(error)
    .bind(run_after)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// What [`succeed`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Settled {
    /// Done; the seconds since its bookmark was saved, if it has one.
    Done { since_save_s: Option<f64> },
    /// The run no longer holds the job.
    NotHeld,
}

/// Marks the job done; reports the seconds since its bookmark was saved (the save → ready
/// latency users feel).
pub async fn succeed(db: impl PgExecutor<'_>, id: &str, ticket: &str) -> sqlx::Result<Settled> {
    let row: Option<(Option<f64>,)> = sqlx::query_as(
        "UPDATE jobs SET state = 'succeeded', error_code = NULL, error = NULL, updated_at = now(), \
         finished_at = COALESCE(finished_at, now()) WHERE id = $1 AND task_id = $2 \
           AND state IN ('queued', 'retrying', 'running', 'succeeded') \
         RETURNING (SELECT EXTRACT(EPOCH FROM clock_timestamp() - saved_at)::float8 \
                    FROM saved_content WHERE saved_content.id = jobs.bookmark_id)",
    )
    .bind(id)
    .bind(ticket)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some((since_save_s,)) => Settled::Done { since_save_s },
        None => Settled::NotHeld,
    })
}

/// Marks the job failed. Returns false when the run holding `ticket` no longer holds the job.
pub async fn fail(
    db: impl PgExecutor<'_>,
    id: &str,
    ticket: &str,
    error_code: &str,
    error: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'failed', error_code = $3, error = $4, updated_at = now(), \
         finished_at = COALESCE(finished_at, now()) WHERE id = $1 AND task_id = $2 \
           AND state IN ('queued', 'retrying', 'running', 'failed')",
    )
    .bind(id)
    .bind(ticket)
    .bind(error_code)
    .bind(error)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}
