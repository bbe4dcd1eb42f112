//! Finds jobs whose apalis task no longer exists in Redis and enqueues them again, so that a Redis
//! restart without persistence (or a push lost after its record was written) loses no job.

use std::time::Duration;

use apalis::prelude::BoxDynError;
use fuze_shared::{
    config::Config,
    jobs::{JobQueues, QueueName, queue::new_task_id},
};
use redis::AsyncCommands;
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
    task_id: String,
}

/// Re-enqueues unfinished jobs older than `stale_after` whose current task is unknown to Redis.
/// Returns how many were re-enqueued.
pub async fn requeue_stale(
    db: &PgPool,
    queues: &JobQueues,
    config: &Config,
) -> Result<usize, BoxDynError> {
    let stale: Duration = config.clock.stale_after;
    let candidates: Vec<Candidate> = sqlx::query_as(
        "SELECT id, user_id, bookmark_id, stage, task_id FROM jobs \
         WHERE state IN ('queued', 'retrying', 'running') AND user_id IS NOT NULL AND bookmark_id IS NOT NULL \
           AND COALESCE(run_after, updated_at) < now() - make_interval(secs => $1) \
         ORDER BY updated_at LIMIT $2",
    )
    .bind(stale.as_secs_f64())
    .bind(BATCH)
    .fetch_all(db)
    .await?;
    let mut requeued = 0;
    for job in candidates {
        // Warm jobs keep no record, so no record points at their queue.
        let Some(queue) = QueueName::parse(&job.stage).filter(|q| *q != QueueName::Warm) else {
            continue;
        };
        let mut conn = queues.connection();
        let known: bool = conn
            .hexists(queues.apalis_config(queue).job_data_hash(), &job.task_id)
            .await?;
        if known {
            continue; // apalis still has it: waiting, scheduled or in flight (orphans are its job)
        }
        // Take the job over first (only if nobody moved it on meanwhile), then push: a task must
        // never arrive before its record names it. If the push fails, the next pass retries it.
        let task = new_task_id();
        let taken = sqlx::query(
            "UPDATE jobs SET task_id = $3, state = 'queued', run_after = NULL, updated_at = now() \
             WHERE id = $1 AND task_id = $2 AND state IN ('queued', 'retrying', 'running')",
        )
        .bind(&job.id)
        .bind(&job.task_id)
        .bind(&task)
        .execute(db)
        .await?;
        if taken.rows_affected() == 0 {
            continue;
        }
        queues
            .push_stage(queue, &task, &job.id, job.user_id, job.bookmark_id)
            .await?;
        requeued += 1;
    }
    Ok(requeued)
}
