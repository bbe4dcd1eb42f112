//! Takes back unfinished jobs that nothing will run, and enqueues them again:
//! - jobs whose ticket is alive nowhere in Redis (a Redis restart without persistence, an
//!   enqueue lost after its record was written);
//! - jobs recorded as running for far longer than any run may take
//!   (`FUZE_JOB_RUNNING_STALE_AFTER_S`): their worker died, or lost the database while settling
//!   them and was stopped before it could write the outcome.
//!
//! Taking a job back gives it a new ticket first, so a run that still holds the old one (a slow
//! worker, after all) finds the job no longer its own and changes nothing.

use std::time::Duration;

use apalis::prelude::BoxDynError;
use fuze_shared::{
    config::Config,
    domain::JobKind,
    jobs::{JobQueues, Lane, Owner, QueueName, StageJob, Ticket, queue::new_task_id},
};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

/// At most this many jobs per pass; the next tick takes the rest.
const BATCH: i64 = 200;

#[derive(FromRow)]
struct Candidate {
    id: String,
    user_id: Uuid,
    bookmark_id: Uuid,
    stage: String,
    kind: String,
    task_id: String,
    lane: Lane,
    /// Running for longer than any run may take.
    stuck_running: bool,
}

/// Re-enqueues unfinished jobs older than `stale_after` whose ticket is alive nowhere, and jobs
/// running for longer than `running_stale_after`. Returns how many were re-enqueued.
pub async fn requeue_stale(
    db: &PgPool,
    queues: &JobQueues,
    config: &Config,
) -> Result<usize, BoxDynError> {
    let stale: Duration = config.clock.stale_after;
    let running_stale: Duration = config.jobs.running_stale_after;
    let candidates: Vec<Candidate> = sqlx::query_as(
        "SELECT id, user_id, bookmark_id, stage, kind, task_id, lane, \
           (state = 'running' AND updated_at < now() - make_interval(secs => $2)) AS stuck_running \
         FROM jobs \
         WHERE state IN ('queued', 'retrying', 'running') AND user_id IS NOT NULL AND bookmark_id IS NOT NULL \
           AND COALESCE(run_after, updated_at) < now() - make_interval(secs => $1) \
         ORDER BY updated_at LIMIT $3",
    )
    .bind(stale.as_secs_f64())
    .bind(running_stale.as_secs_f64())
    .bind(BATCH)
    .fetch_all(db)
    .await?;
    let mut requeued = 0;
    for job in candidates {
        let Some(queue) = QueueName::parse_stage(&job.stage) else {
            continue;
        };
        if !job.stuck_running && queues.fair().contains(queue, &job.task_id).await? {
            continue; // waiting, delayed, or running within its time
        }
        // Take the job over first (only if nobody moved it on meanwhile), then enqueue: a ticket
        // must never arrive before its record names it. If the enqueue fails, the next pass
        // finds the new ticket alive nowhere and tries again.
        let ticket = new_task_id();
        let taken = sqlx::query(
            "UPDATE jobs SET task_id = $3, state = 'queued', run_after = NULL, updated_at = now() \
             WHERE id = $1 AND task_id = $2 AND state IN ('queued', 'retrying', 'running')",
        )
        .bind(&job.id)
        .bind(&job.task_id)
        .bind(&ticket)
        .execute(db)
        .await?;
        if taken.rows_affected() == 0 {
            continue;
        }
        if job.stuck_running {
            tracing::warn!(
                job = job.id,
                stage = job.stage,
                "taking back a job running for too long"
            );
            // Its old ticket is over: whatever still holds it finds the job gone.
            queues.fair().finish(queue, &job.task_id).await?;
        }
        let next = Ticket {
            queue,
            id: &ticket,
            owner: Owner::User(job.user_id),
            lane: job.lane,
        };
        let stage = StageJob {
            job_id: job.id.clone(),
            user_id: job.user_id,
            bookmark_id: job.bookmark_id,
            refresh: job.kind == JobKind::Refresh.as_str(),
        };
        queues.enqueue_stage(next, &stage).await?;
        tracing::warn!(
            job = job.id,
            stage = job.stage,
            "re-enqueued a job nothing would run"
        );
        requeued += 1;
    }
    Ok(requeued)
}
