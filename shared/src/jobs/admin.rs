//! Operator views of the job records: counts, the failed jobs, and putting a failed job back.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};

use super::records::{COLUMNS, JobRecord};
use crate::keyset;

/// Job records per stage and state.
#[derive(Debug, Clone, FromRow)]
pub struct StateCount {
    pub stage: String,
    pub state: String,
    pub jobs: i64,
}

pub async fn counts(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<StateCount>> {
    sqlx::query_as(
        "SELECT COALESCE(stage, 'none') AS stage, state, count(*)::int8 AS jobs \
         FROM jobs GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(db)
    .await
}

/// Position in the failed list: newest failure first, id breaks ties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCursor {
    pub updated_at: DateTime<Utc>,
    pub id: String,
}

impl FailedCursor {
    pub fn of(job: &JobRecord) -> Self {
        Self {
            updated_at: job.updated_at,
            id: job.id.clone(),
        }
    }

    pub fn encode(&self) -> String {
        keyset::encode(self.updated_at, &self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (updated_at, id) = keyset::decode(s)?;
        (!id.is_empty() && id.len() <= 64).then_some(Self { updated_at, id })
    }
}

/// Failed jobs, newest first; a range scan of the `(state, updated_at)` index whatever the page.
pub async fn failed(
    db: impl PgExecutor<'_>,
    after: Option<&FailedCursor>,
    limit: u32,
) -> sqlx::Result<Vec<JobRecord>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE state = 'failed' \
           AND ($1::timestamptz IS NULL OR (updated_at, id) < ($1, $2)) \
         ORDER BY updated_at DESC, id DESC LIMIT $3"
    ))
    .bind(after.map(|c| c.updated_at))
    .bind(after.map(|c| c.id.as_str()))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
}

/// Puts a failed job back in the queue of the stage it failed in, under a new task id, with a fresh
/// attempt budget for that stage, and its bookmark back to the status that stage starts from.
/// `None` when the job does not exist, is not `owner`'s (when given), or is not failed (a
/// concurrent retry got there first).
pub async fn reset_failed(
    db: &mut sqlx::PgConnection,
    id: &str,
    owner: Option<uuid::Uuid>,
    task_id: &str,
) -> sqlx::Result<Option<JobRecord>> {
    let job: Option<JobRecord> = sqlx::query_as(&format!(
        "UPDATE jobs SET state = 'queued', task_id = $2, attempts = 0, error_code = NULL, error = NULL, \
           run_after = NULL, finished_at = NULL, updated_at = now() \
         WHERE id = $1 AND state = 'failed' AND ($3::uuid IS NULL OR user_id = $3) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(task_id)
    .bind(owner)
    .fetch_optional(&mut *db)
    .await?;
    if let Some(job) = &job {
        sqlx::query(
            "UPDATE saved_content SET status = CASE $2 WHEN 'embed' THEN 'scraped' \
               WHEN 'analyze' THEN status ELSE 'pending' END, \
               error = NULL, updated_at = now() WHERE id = $1",
        )
        .bind(job.bookmark_id)
        .bind(job.stage.as_deref())
        .execute(&mut *db)
        .await?;
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = FailedCursor {
            updated_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("valid time"),
            id: "01KAXYZ0000000000000000000".into(),
        };
        assert_eq!(FailedCursor::decode(&c.encode()), Some(c));
        assert_eq!(FailedCursor::decode("not base64 !"), None);
        let no_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("123|");
        assert_eq!(FailedCursor::decode(&no_id), None);
    }
}
