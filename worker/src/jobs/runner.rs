//! The bookkeeping around every job stage.
//!
//! apalis-redis retries every failure linearly up to a hard-coded 25 attempts and cannot tell a
//! retry from a dead job, so stages never return errors to apalis: the runner records the outcome
//! in Fuze's job record and schedules retries itself (exponential backoff, a real attempt cap).
//! Only infrastructure errors around the record itself go back to apalis, to be run again.

use std::{
    panic::AssertUnwindSafe,
    time::{Duration, Instant},
};

use apalis::prelude::{BoxDynError, TaskId};
use chrono::Utc;
use futures::FutureExt;
use fuze_shared::{
    bookmarks,
    jobs::{
        AnalyzeJob, EmbedJob, QueueName, RawPayload, ScrapeJob,
        queue::new_task_id,
        records::{self, Claimed},
        retry::{self, RetryDecision},
    },
};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::Failure;
use crate::context::JobContext;

/// What the runner needs to know of a payload.
pub trait JobPayload: Serialize + DeserializeOwned + Send + Sync {
    fn job_id(&self) -> &str;
    fn user_id(&self) -> Uuid;
    fn bookmark_id(&self) -> Uuid;
}

macro_rules! bookmark_payload {
    ($t:ty) => {
        impl JobPayload for $t {
            fn job_id(&self) -> &str {
                &self.job_id
            }
            fn user_id(&self) -> Uuid {
                self.user_id
            }
            fn bookmark_id(&self) -> Uuid {
                self.bookmark_id
            }
        }
    };
}
bookmark_payload!(ScrapeJob);
bookmark_payload!(EmbedJob);
bookmark_payload!(AnalyzeJob);

/// Runs one delivery of a task of `queue` through `stage`.
pub async fn run<P, F, Fut>(
    ctx: &JobContext,
    queue: QueueName,
    payload: &RawPayload,
    task_id: &TaskId,
    stage: F,
) -> Result<(), BoxDynError>
where
    P: JobPayload,
    F: FnOnce(P, Claimed) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let q = queue.as_str();
    let job: P = match serde_json::from_slice(&payload.0) {
        Ok(job) => job,
        Err(e) => {
            // Nothing to retry: the same bytes would fail again. Drop the task, keep the worker.
            ctx.metrics.jobs_undecodable.with_label_values(&[q]).inc();
            tracing::error!(queue = q, task = %task_id, error = %e, "dropping undecodable job payload");
            return Ok(());
        }
    };
    let task = task_id.to_string();
    let claimed = {
        let mut conn = ctx.metrics.db.acquire(&ctx.db).await?;
        let claim = records::claim(&mut *conn, job.job_id(), &task, q);
        ctx.metrics.db.time("job_claim", claim).await?
    };
    let Some(claimed) = claimed else {
        not_claimed(ctx, queue, job.job_id(), &task).await;
        return Ok(());
    };
    let metrics = &ctx.metrics;
    metrics.jobs_started.with_label_values(&[q]).inc();
    metrics
        .job_queue_wait
        .with_label_values(&[q])
        .observe(claimed.queue_wait_s);
    let attempt = u32::try_from(claimed.record.attempts).unwrap_or(u32::MAX);
    // The cap the job was created with, even if the worker's own setting differs.
    let max_attempts = u32::try_from(claimed.record.max_attempts).unwrap_or(1);
    tracing::info!(queue = q, job = job.job_id(), attempt, "job started");

    let started = Instant::now();
    let timeout = ctx.config.worker.job_timeout;
    let outcome = tokio::time::timeout(
        timeout,
        AssertUnwindSafe(stage(clone_payload(&job)?, claimed)).catch_unwind(),
    )
    .await
    .unwrap_or_else(|_| {
        Ok(Err(Failure::transient(
            "timeout",
            format!("stage took longer than {timeout:?}"),
        )))
    })
    .unwrap_or_else(|_| Err(Failure::transient("panic", "the job handler panicked")));
    metrics
        .job_duration
        .with_label_values(&[q])
        .observe(started.elapsed().as_secs_f64());

    let outcome_label = match outcome {
        Ok(()) => "succeeded",
        Err(failure) => settle_failure(ctx, queue, &job, attempt, max_attempts, failure).await?,
    };
    metrics
        .jobs_finished
        .with_label_values(&[q, outcome_label])
        .inc();
    Ok(())
}

fn clone_payload<P: JobPayload>(job: &P) -> Result<P, BoxDynError> {
    Ok(serde_json::from_value(serde_json::to_value(job)?)?)
}

/// The task is not the job's current task: a stale duplicate (the reconciler or a retry replaced
/// it) or the job is finished. Records are committed before their task is pushed, so this is never
/// a task that arrived before its record.
async fn not_claimed(ctx: &JobContext, queue: QueueName, job_id: &str, task: &str) {
    tracing::info!(
        queue = queue.as_str(),
        job = job_id,
        task,
        "skipping stale task"
    );
    ctx.metrics
        .jobs_finished
        .with_label_values(&[queue.as_str(), "skipped"])
        .inc();
}

/// Records a failure: permanent ones (and exhausted retries) fail the job; others are rescheduled.
async fn settle_failure<P: JobPayload>(
    ctx: &JobContext,
    queue: QueueName,
    job: &P,
    attempt: u32,
    max_attempts: u32,
    failure: Failure,
) -> Result<&'static str, BoxDynError> {
    let (code, message, retry_in) = match failure {
        Failure::Permanent { code, message } => (code, message, None),
        Failure::Transient { code, message } => {
            match retry::after_failure(&ctx.config.jobs, attempt, max_attempts) {
                RetryDecision::RetryAfter(delay) => (code, message, Some(delay)),
                RetryDecision::GiveUp => (
                    code,
                    format!("gave up after {attempt} attempts: {message}"),
                    None,
                ),
            }
        }
    };
    if let Some(delay) = retry_in {
        schedule_retry(ctx, queue, job, code, &message, delay).await?;
        tracing::warn!(queue = queue.as_str(), job = job.job_id(), attempt, code, %message, ?delay, "job will retry");
        return Ok("retried");
    }
    // One transaction: a poller never sees a failed job with a pending bookmark. An analysis
    // that fails leaves the bookmark as it is: it is already searchable.
    let mut tx = ctx.metrics.db.begin(&ctx.db).await?;
    let failed = async {
        if queue != QueueName::Analyze {
            bookmarks::mark_failed(&mut *tx, job.user_id(), job.bookmark_id(), &message).await?;
        }
        records::fail(&mut *tx, job.job_id(), code, &message).await?;
        tx.commit().await
    };
    ctx.metrics.db.time("job_settle", failed).await?;
    ctx.bookmarks_changed(job.user_id()).await;
    tracing::warn!(queue = queue.as_str(), job = job.job_id(), attempt, code, %message, "job failed");
    Ok("failed")
}

/// Records the retry, then pushes it (a task never arrives before its record). If the push fails,
/// the clock's reconciler finds the job without a task and enqueues it again.
async fn schedule_retry<P: JobPayload>(
    ctx: &JobContext,
    queue: QueueName,
    job: &P,
    code: &str,
    message: &str,
    delay: Duration,
) -> Result<(), BoxDynError> {
    let task = new_task_id();
    let run_after = Utc::now() + chrono::Duration::from_std(delay)?;
    let recorded = records::schedule_retry(
        &ctx.db,
        job.job_id(),
        queue.as_str(),
        &task,
        code,
        message,
        run_after,
    );
    ctx.metrics.db.time("job_settle", recorded).await?;
    if let Err(e) = ctx.queues.push(queue, &task, job, Some(delay)).await {
        ctx.metrics.redis_errors.with_label_values(&["queue"]).inc();
        return Err(e.into());
    }
    Ok(())
}

/// Moves a job to its next stage: records the change, then pushes. If the push fails the next
/// stage would never run, so the error goes back as transient and the current stage retries.
pub async fn hand_off<P: Serialize>(
    ctx: &JobContext,
    job_id: &str,
    next: QueueName,
    payload: &P,
) -> Result<(), Failure> {
    let task = new_task_id();
    records::advance(&ctx.db, job_id, next.as_str(), &task).await?;
    ctx.queues
        .push(next, &task, payload, None)
        .await
        .map_err(|e| {
            ctx.metrics.redis_errors.with_label_values(&["queue"]).inc();
            Failure::transient(
                "queue",
                format!("failed to enqueue the {} stage: {e:#}", next.as_str()),
            )
        })?;
    ctx.metrics
        .jobs_enqueued
        .with_label_values(&[next.as_str()])
        .inc();
    Ok(())
}
