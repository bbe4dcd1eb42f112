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
        QueueName, RawPayload, StageJob,
        queue::new_task_id,
        records,
        retry::{self, RetryDecision},
    },
};
use serde::Serialize;

use super::{Failure, job::Job};
use crate::context::JobContext;

/// Runs one delivery of a task of `J`'s queue.
pub async fn run<J: Job>(
    ctx: &JobContext,
    payload: &RawPayload,
    task_id: &TaskId,
) -> Result<(), BoxDynError> {
    let q = J::QUEUE.as_str();
    let job: J::Payload = match serde_json::from_slice(&payload.0) {
        Ok(job) => job,
        Err(e) => {
            // Nothing to retry: the same bytes would fail again. Drop the task, keep the worker.
            ctx.metrics.jobs_undecodable.with_label_values(&[q]).inc();
            tracing::error!(queue = q, task = %task_id, error = %e, "dropping undecodable job payload");
            return Ok(());
        }
    };
    match J::record(&job).cloned() {
        Some(stage) => run_recorded::<J>(ctx, job, &stage, &task_id.to_string()).await,
        None => {
            run_unrecorded::<J>(ctx, job).await;
            Ok(())
        }
    }
}

/// A stage of an ingest job: claimed on its record, retried and settled there.
async fn run_recorded<J: Job>(
    ctx: &JobContext,
    job: J::Payload,
    stage: &StageJob,
    task: &str,
) -> Result<(), BoxDynError> {
    let queue = J::QUEUE;
    let q = queue.as_str();
    let claimed = {
        let mut conn = ctx.metrics.db.acquire(&ctx.db).await?;
        let claim = records::claim(&mut *conn, &stage.job_id, task, q);
        ctx.metrics.db.time("job_claim", claim).await?
    };
    let Some(claimed) = claimed else {
        not_claimed(ctx, queue, &stage.job_id, task).await;
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
    tracing::info!(queue = q, job = stage.job_id, attempt, "job started");

    let outcome = run_guarded::<J>(ctx, job).await;
    let outcome_label = match outcome {
        Ok(()) => "succeeded",
        Err(failure) => settle_failure::<J>(ctx, stage, attempt, max_attempts, failure).await?,
    };
    metrics
        .jobs_finished
        .with_label_values(&[q, outcome_label])
        .inc();
    Ok(())
}

/// Best-effort work without a record: run once, log and count the outcome, never retried.
async fn run_unrecorded<J: Job>(ctx: &JobContext, job: J::Payload) {
    let q = J::QUEUE.as_str();
    ctx.metrics.jobs_started.with_label_values(&[q]).inc();
    let outcome = match run_guarded::<J>(ctx, job).await {
        Ok(()) => "succeeded",
        Err(failure) => {
            tracing::warn!(
                queue = q,
                code = failure.code(),
                message = failure.message(),
                "job failed"
            );
            "failed"
        }
    };
    ctx.metrics
        .jobs_finished
        .with_label_values(&[q, outcome])
        .inc();
}

/// Runs the job within the job timeout, a panic counting as a transient failure.
async fn run_guarded<J: Job>(ctx: &JobContext, job: J::Payload) -> Result<(), Failure> {
    let started = Instant::now();
    let timeout = ctx.config.worker.job_timeout;
    let outcome = tokio::time::timeout(timeout, AssertUnwindSafe(J::run(ctx, job)).catch_unwind())
        .await
        .unwrap_or_else(|_| {
            Ok(Err(Failure::transient(
                "timeout",
                format!("stage took longer than {timeout:?}"),
            )))
        })
        .unwrap_or_else(|_| Err(Failure::transient("panic", "the job handler panicked")));
    ctx.metrics
        .job_duration
        .with_label_values(&[J::QUEUE.as_str()])
        .observe(started.elapsed().as_secs_f64());
    outcome
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
async fn settle_failure<J: Job>(
    ctx: &JobContext,
    job: &StageJob,
    attempt: u32,
    max_attempts: u32,
    failure: Failure,
) -> Result<&'static str, BoxDynError> {
    let queue = J::QUEUE;
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
        tracing::warn!(queue = queue.as_str(), job = job.job_id, attempt, code, %message, ?delay, "job will retry");
        return Ok("retried");
    }
    // One transaction: a poller never sees a failed job with a pending bookmark. An analysis
    // that fails leaves the bookmark as it is: it is already searchable.
    let mut tx = ctx.metrics.db.begin(&ctx.db).await?;
    let failed = async {
        if J::FAILURE_FAILS_BOOKMARK {
            bookmarks::mark_failed(&mut *tx, job.user_id, job.bookmark_id, &message).await?;
        }
        records::fail(&mut *tx, &job.job_id, code, &message).await?;
        tx.commit().await
    };
    ctx.metrics.db.time("job_settle", failed).await?;
    ctx.bookmarks_changed(job.user_id).await;
    tracing::warn!(queue = queue.as_str(), job = job.job_id, attempt, code, %message, "job failed");
    Ok("failed")
}

/// Records the retry, then pushes it (a task never arrives before its record). If the push fails,
/// the clock's reconciler finds the job without a task and enqueues it again.
async fn schedule_retry(
    ctx: &JobContext,
    queue: QueueName,
    job: &StageJob,
    code: &str,
    message: &str,
    delay: Duration,
) -> Result<(), BoxDynError> {
    let task = new_task_id();
    let run_after = Utc::now() + chrono::Duration::from_std(delay)?;
    let recorded = records::schedule_retry(
        &ctx.db,
        &job.job_id,
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
