//! Feeds an import's crawls to the bulk lane a window at a time: at most `crawl_window` of its
//! jobs are queued or running at once, and each one that ends makes room for the next. So a
//! 10,000-link import holds a few dozen tickets in Redis rather than 10,000, and pausing or
//! cancelling it has only the window to take back.
//!
//! Fed after the upload (the api), after each of its crawls ends (the worker), and on the clock's
//! tick for any running import (the safety net when one of those was lost). Passes on one import
//! take turns on its row lock, so two feeders never overfill the window.

use sqlx::PgPool;
use uuid::Uuid;

use super::ImportState;
use crate::{
    domain::JobKind,
    jobs::{JobQueues, Lane, Owner, QueueName, StageJob, Ticket, queue::new_task_id},
};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Crawl jobs created and enqueued.
    pub started: usize,
    /// The pass found every item final and marked the import completed.
    pub completed: bool,
}

/// Tops up the import's window of crawl jobs; marks it completed once nothing is left.
/// An enqueue that fails after the commit leaves a queued job without a ticket, which the
/// clock's reconciler enqueues again.
pub async fn feed(
    db: &PgPool,
    queues: &JobQueues,
    import_id: Uuid,
    window: u32,
    max_attempts: i32,
) -> anyhow::Result<Fed> {
    let mut tx = db.begin().await?;
    let import: Option<(Uuid, ImportState, bool)> =
        sqlx::query_as("SELECT user_id, state, crawl FROM imports WHERE id = $1 FOR UPDATE")
            .bind(import_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((user_id, ImportState::Running, crawl)) = import else {
        return Ok(Fed::default());
    };
    // A bookmark deleted before its crawl leaves nothing to crawl.
    sqlx::query(
        "UPDATE import_items SET state = 'skipped', error_code = 'bookmark_deleted', \
           error = 'the bookmark was deleted before its page was fetched' \
         WHERE import_id = $1 AND state = 'saved' AND job_id IS NULL AND bookmark_id IS NULL",
    )
    .bind(import_id)
    .execute(&mut *tx)
    .await?;
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE import_id = $1 AND state IN ('queued', 'running', 'retrying')",
    )
    .bind(import_id)
    .fetch_one(&mut *tx)
    .await?;
    let room = (i64::from(window) - open).max(0);
    let next: Vec<(i32, Uuid)> = if crawl && room > 0 {
        sqlx::query_as(
            "SELECT seq, bookmark_id FROM import_items \
             WHERE import_id = $1 AND state = 'saved' AND job_id IS NULL AND bookmark_id IS NOT NULL \
             ORDER BY seq LIMIT $2",
        )
        .bind(import_id)
        .bind(room)
        .fetch_all(&mut *tx)
        .await?
    } else {
        Vec::new()
    };
    if next.is_empty() {
        let left: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM import_items WHERE import_id = $1 AND state = 'saved' \
               AND job_id IS NULL AND bookmark_id IS NOT NULL)",
        )
        .bind(import_id)
        .fetch_one(&mut *tx)
        .await?;
        let completed = open == 0 && !(crawl && left);
        if completed {
            sqlx::query(
                "UPDATE imports SET state = 'completed', finished_at = now(), updated_at = now() \
                 WHERE id = $1",
            )
            .bind(import_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        return Ok(Fed {
            started: 0,
            completed,
        });
    }
    let job_ids: Vec<String> = next.iter().map(|_| new_task_id()).collect();
    let seqs: Vec<i32> = next.iter().map(|(seq, _)| *seq).collect();
    let bookmark_ids: Vec<Uuid> = next.iter().map(|(_, id)| *id).collect();
    sqlx::query(
        "INSERT INTO jobs (id, user_id, kind, stage, state, max_attempts, bookmark_id, lane, task_id, import_id) \
         SELECT x.id, $2, $3, $4, 'queued', $5, x.bookmark_id, 'bulk', x.id, $1 \
         FROM UNNEST($6::text[], $7::uuid[]) AS x(id, bookmark_id)",
    )
    .bind(import_id)
    .bind(user_id)
    .bind(JobKind::Ingest.as_str())
    .bind(QueueName::Scrape.as_str())
    .bind(max_attempts)
    .bind(&job_ids)
    .bind(&bookmark_ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE import_items AS i SET job_id = x.id FROM UNNEST($2::int[], $3::text[]) AS x(seq, id) \
         WHERE i.import_id = $1 AND i.seq = x.seq",
    )
    .bind(import_id)
    .bind(&seqs)
    .bind(&job_ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE imports SET updated_at = now() WHERE id = $1")
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    // Records first, then tickets: a worker always finds the record of the ticket it receives.
    for (job_id, bookmark_id) in job_ids.iter().zip(bookmark_ids) {
        let ticket = Ticket {
            queue: QueueName::Scrape,
            id: job_id,
            owner: Owner::User(user_id),
            lane: Lane::Bulk,
        };
        let payload = StageJob {
            job_id: job_id.clone(),
            user_id,
            bookmark_id,
            refresh: false,
        };
        if let Err(e) = queues.enqueue_silently(ticket, &payload, None).await {
            tracing::warn!(job = job_id, error = %format!("{e:#}"), "import crawl not enqueued; the reconciler will");
        }
    }
    queues.wake(QueueName::Scrape).await;
    Ok(Fed {
        started: job_ids.len(),
        completed: false,
    })
}

/// Feeds every running import (the clock's pass); returns how many crawls it started.
pub async fn feed_running(
    db: &PgPool,
    queues: &JobQueues,
    window: u32,
    max_attempts: i32,
) -> anyhow::Result<usize> {
    let running: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM imports WHERE state = 'running' ORDER BY updated_at LIMIT 500",
    )
    .fetch_all(db)
    .await?;
    let mut started = 0;
    for import_id in running {
        started += feed(db, queues, import_id, window, max_attempts)
            .await?
            .started;
    }
    Ok(started)
}
