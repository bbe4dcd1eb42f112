//! The bookkeeping around every run of a job.
//!
//! A delivery from apalis carries an envelope (`jobs::fair`): a ticket, its owner and lane, and
//! the job. For each one the runner
//! 1. asks the job whether it may run now ([`Job::admit`]: its site's turn, robots.txt). If not,
//!    the ticket goes back to wait in the fair queue, with no claim and no attempt spent, and the
//!    worker slot goes to other work;
//! 2. claims the job's record for the ticket (one attempt). A database that does not answer sends
//!    the ticket back to wait a second instead: the job is never lost with the delivery;
//! 3. runs the job under the job timeout, a panic counting as a transient failure;
//! 4. settles the outcome in the record: done, a retry with backoff under a new ticket, failed,
//!    or deferred (the attempt given back). Settling retries until the database answers, so a
//!    job whose outcome cannot be written now is not left `running` for good; a shutdown ends the
//!    wait, and the reconciler later takes back a job left running;
//! 5. finishes the ticket and removes the delivery's data from apalis ([`super::deliveries`]).
//!
//! apalis never sees an error: it would retry linearly up to a hard-coded 25 times and cannot
//! tell a retry from a dead job.

use std::{
    panic::AssertUnwindSafe,
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::FutureExt;
use fuze_shared::{
    bookmarks, imports,
    jobs::{
        Lane, Owner, QueueName, RawPayload, StageJob, Ticket,
        fair::Envelope,
        queue::new_task_id,
        records::{self, Claimed},
        retry::{self, RetryDecision},
    },
};
use serde::Serialize;

use super::{
    Failure,
    deliveries::{self, Delivery, Retention},
    job::{Admission, Job},
};
use crate::context::JobContext;

/// One run of a job: the ticket it holds and where that ticket waits.
#[derive(Debug, Clone)]
pub struct Run {
    pub queue: QueueName,
    pub ticket: String,
    pub lane: Lane,
    /// The time this run was told to wait for, when it comes back from a deferral.
    pub promised: Option<u64>,
}

/// The ticket of an envelope whose job does not decode.
#[derive(serde::Deserialize)]
struct TicketOnly {
    ticket: String,
}

/// How a delivery ended, as far as its apalis data is concerned.
enum Ended {
    /// Nothing to keep.
    Done,
    /// The job failed for good: its delivery's data is kept for the failed-job retention.
    JobFailed,
}

/// Runs one delivery of `J`'s queue, start to end; never fails back to apalis.
pub async fn run<J: Job>(ctx: &JobContext, payload: &RawPayload, delivery: &Delivery) {
    let ended = deliver::<J>(ctx, payload, delivery).await;
    let retention = match ended {
        Ended::Done => Retention::None,
        Ended::JobFailed => Retention::Failed,
    };
    deliveries::clean(ctx, J::QUEUE, delivery, retention).await;
    ctx.dispatchers.slot_freed(J::QUEUE);
}

async fn deliver<J: Job>(ctx: &JobContext, payload: &RawPayload, delivery: &Delivery) -> Ended {
    let q = J::QUEUE.as_str();
    let envelope: Envelope<J::Payload> = match serde_json::from_slice(&payload.0) {
        Ok(envelope) => envelope,
        Err(e) => {
            // Nothing to retry: the same bytes would fail again. Drop the delivery (and its
            // ticket, if one can be read), keep the worker.
            ctx.metrics.jobs_undecodable.with_label_values(&[q]).inc();
            tracing::error!(queue = q, task = delivery.task_id, error = %e, "dropping undecodable job payload");
            if let Ok(header) = serde_json::from_slice::<TicketOnly>(&payload.0) {
                let run = Run {
                    queue: J::QUEUE,
                    ticket: header.ticket,
                    lane: Lane::Interactive,
                    promised: None,
                };
                finish_ticket(ctx, &run).await;
            }
            return Ended::Done;
        }
    };
    let run = Run {
        queue: J::QUEUE,
        ticket: envelope.ticket,
        lane: envelope.lane,
        promised: envelope.promised,
    };
    let job = envelope.job;
    let permit = match J::admit(ctx, &run, &job).await {
        Admission::Go(permit) => permit,
        Admission::Wait { wait, reason } => {
            ctx.metrics.scheduling.waits(q, reason);
            defer_ticket(ctx, &run, wait).await;
            return Ended::Done;
        }
    };
    let ended = match J::record(&job).cloned() {
        Some(stage) => run_recorded::<J>(ctx, &run, job, permit, &stage).await,
        None => {
            run_unrecorded::<J>(ctx, &run, job, permit).await;
            RunEnd::Finished(Ended::Done)
        }
    };
    match ended {
        RunEnd::Finished(ended) => {
            finish_ticket(ctx, &run).await;
            ended
        }
        RunEnd::Waiting => Ended::Done,
    }
}

/// Whether the run's ticket is over, or waits again in the fair queue.
enum RunEnd {
    Finished(Ended),
    Waiting,
}

/// A stage of an ingest job: claimed on its record, retried and settled there.
async fn run_recorded<J: Job>(
    ctx: &JobContext,
    run: &Run,
    job: J::Payload,
    permit: J::Permit,
    stage: &StageJob,
) -> RunEnd {
    let q = run.queue.as_str();
    let claimed = {
        let claim = async {
            let mut conn = ctx.metrics.db.acquire(&ctx.db).await?;
            let claim = records::claim(&mut *conn, &stage.job_id, &run.ticket, q);
            ctx.metrics.db.time("job_claim", claim).await
        };
        match claim.await {
            Ok(claimed) => claimed,
            Err(e) => {
                // The database is away: the ticket waits a moment and comes back, unclaimed.
                tracing::warn!(queue = q, job = stage.job_id, error = %e, "claim failed; the job waits");
                ctx.metrics.scheduling.waits(q, "database");
                defer_ticket(ctx, run, CLAIM_RETRY).await;
                return RunEnd::Waiting;
            }
        }
    };
    let Some(claimed) = claimed else {
        not_claimed(ctx, run, &stage.job_id);
        return RunEnd::Finished(Ended::Done);
    };
    ctx.metrics.jobs_started.with_label_values(&[q]).inc();
    ctx.job_seen(&claimed.record).await;
    ctx.metrics
        .job_queue_wait
        .with_label_values(&[q])
        .observe(claimed.queue_wait_s);
    tracing::info!(
        queue = q,
        job = stage.job_id,
        attempt = claimed.record.attempts,
        "job started"
    );

    let outcome = run_guarded::<J>(ctx, run, job, permit).await;
    let (label, end) = match outcome {
        Ok(()) => ("succeeded", RunEnd::Finished(Ended::Done)),
        Err(failure) => settle_failure::<J>(ctx, run, stage, &claimed, failure).await,
    };
    ctx.metrics
        .jobs_finished
        .with_label_values(&[q, label])
        .inc();
    if let Some(import_id) = claimed.record.import_id {
        let ended = match label {
            "succeeded" if J::LAST_STAGE => Some("crawled"),
            "failed" => Some("failed"),
            _ => None,
        };
        if let Some(outcome) = ended {
            import_crawl_ended(ctx, import_id, outcome).await;
        }
    }
    end
}

/// A crawl of an import ended: it makes room in the import's window for the next one. A failed
/// feed is the clock's to redo.
async fn import_crawl_ended(ctx: &JobContext, import_id: uuid::Uuid, outcome: &str) {
    ctx.metrics
        .imports
        .crawls_ended
        .with_label_values(&[outcome])
        .inc();
    let fed = imports::feed::feed(
        &ctx.db,
        &ctx.queues,
        import_id,
        ctx.config.imports.crawl_window,
        i32::try_from(ctx.config.jobs.max_attempts).unwrap_or(i32::MAX),
    )
    .await;
    match fed {
        Ok(fed) => ctx.import_progressed(import_id, fed.completed).await,
        Err(e) => {
            tracing::warn!(import = %import_id, error = %format!("{e:#}"), "import not fed; the clock will");
        }
    }
}

/// A claim that found the database away is tried again after this long.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// Best-effort work without a record: run once, log and count the outcome, never retried.
async fn run_unrecorded<J: Job>(ctx: &JobContext, run: &Run, job: J::Payload, permit: J::Permit) {
    let q = run.queue.as_str();
    ctx.metrics.jobs_started.with_label_values(&[q]).inc();
    let outcome = match run_guarded::<J>(ctx, run, job, permit).await {
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
async fn run_guarded<J: Job>(
    ctx: &JobContext,
    run: &Run,
    job: J::Payload,
    permit: J::Permit,
) -> Result<(), Failure> {
    let started = Instant::now();
    let timeout = ctx.config.worker.job_timeout;
    let work = AssertUnwindSafe(J::run(ctx, run, job, permit)).catch_unwind();
    let outcome = tokio::time::timeout(timeout, work)
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
        .with_label_values(&[run.queue.as_str()])
        .observe(started.elapsed().as_secs_f64());
    outcome
}

/// The ticket is not the job's current one: a stale duplicate (the reconciler or a retry
/// replaced it) or the job is finished. Records are committed before their ticket is enqueued,
/// so this is never a ticket that arrived before its record.
fn not_claimed(ctx: &JobContext, run: &Run, job_id: &str) {
    tracing::info!(
        queue = run.queue.as_str(),
        job = job_id,
        ticket = run.ticket,
        "skipping stale ticket"
    );
    ctx.metrics
        .jobs_finished
        .with_label_values(&[run.queue.as_str(), "skipped"])
        .inc();
}

/// Records a failure: permanent ones (and exhausted retries) fail the job, transient ones are
/// retried under a new ticket, deferred ones wait under the same ticket with the attempt given
/// back. Returns the outcome's metric label and whether the ticket is over.
async fn settle_failure<J: Job>(
    ctx: &JobContext,
    run: &Run,
    job: &StageJob,
    claimed: &Claimed,
    failure: Failure,
) -> (&'static str, RunEnd) {
    let attempt = u32::try_from(claimed.record.attempts).unwrap_or(u32::MAX);
    // The cap the job was created with, even if the worker's own setting differs.
    let max_attempts = u32::try_from(claimed.record.max_attempts).unwrap_or(1);
    let q = run.queue.as_str();
    let (code, message, retry_in) = match failure {
        Failure::Superseded => {
            not_claimed(ctx, run, &job.job_id);
            return ("skipped", RunEnd::Finished(Ended::Done));
        }
        Failure::Deferred {
            code,
            message,
            wait,
        } => {
            let run_after = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            let held = until_written(ctx, "job_settle", || {
                records::defer(&ctx.db, &claimed.record, code, &message, run_after)
            })
            .await;
            if !held {
                return ("skipped", RunEnd::Finished(Ended::Done));
            }
            ctx.job_changed(&job.job_id).await;
            tracing::info!(
                queue = q,
                job = job.job_id,
                code,
                ?wait,
                "job deferred without spending an attempt"
            );
            defer_ticket(ctx, run, wait).await;
            return ("deferred", RunEnd::Waiting);
        }
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
        if !schedule_retry(ctx, run, job, code, &message, delay).await {
            return ("skipped", RunEnd::Finished(Ended::Done));
        }
        tracing::warn!(queue = q, job = job.job_id, attempt, code, %message, ?delay, "job will retry");
        return ("retried", RunEnd::Finished(Ended::Done));
    }
    // One transaction: a poller never sees a failed job with a pending bookmark. An analysis
    // that fails leaves the bookmark as it is: it is already searchable.
    let failed = until_written(ctx, "job_settle", || async {
        let mut tx = ctx.metrics.db.begin(&ctx.db).await?;
        if !records::fail(&mut *tx, &job.job_id, &run.ticket, code, &message).await? {
            return Ok::<_, sqlx::Error>(false);
        }
        // A refresh that fails keeps the page's last good content.
        if J::FAILURE_FAILS_BOOKMARK && !job.refresh {
            bookmarks::mark_failed(&mut *tx, job.user_id, job.bookmark_id, &message).await?;
        }
        tx.commit().await?;
        Ok(true)
    })
    .await;
    if !failed {
        return ("skipped", RunEnd::Finished(Ended::Done));
    }
    ctx.bookmark_changed(job.user_id, job.bookmark_id).await;
    ctx.job_changed(&job.job_id).await;
    tracing::warn!(queue = q, job = job.job_id, attempt, code, %message, "job failed");
    ("failed", RunEnd::Finished(Ended::JobFailed))
}

/// Records the retry under a new ticket, then enqueues that ticket (a ticket never arrives
/// before its record). If the enqueue fails, the clock's reconciler finds the job without a live
/// ticket and enqueues it again. Returns false when the run no longer holds the job.
async fn schedule_retry(
    ctx: &JobContext,
    run: &Run,
    job: &StageJob,
    code: &str,
    message: &str,
    delay: Duration,
) -> bool {
    let next = new_task_id();
    let run_after = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
    let lane = until_written(ctx, "job_settle", || {
        records::schedule_retry(
            &ctx.db,
            &job.job_id,
            &run.ticket,
            &next,
            code,
            message,
            run_after,
        )
    })
    .await;
    let Some(lane) = lane else {
        return false;
    };
    ctx.job_changed(&job.job_id).await;
    let ticket = Ticket {
        queue: run.queue,
        id: &next,
        owner: Owner::User(job.user_id),
        lane,
    };
    if let Err(e) = ctx.queues.enqueue(ticket, job, Some(delay)).await {
        ctx.metrics.redis_errors.with_label_values(&["queue"]).inc();
        tracing::warn!(job = job.job_id, error = %format!("{e:#}"), "retry not enqueued; the reconciler will");
    }
    true
}

/// Moves a job to its next stage: records the change under a new ticket (until the database
/// answers: the stage's work is done and stored, and a lost answer must not make it run again),
/// then enqueues it in the same lane. If the enqueue fails, the record already names the new
/// stage and ticket, and the clock's reconciler enqueues it.
pub async fn hand_off<P: Serialize>(
    ctx: &JobContext,
    run: &Run,
    job_id: &str,
    owner: Owner,
    next: QueueName,
    payload: &P,
) -> Result<(), Failure> {
    let ticket = new_task_id();
    let lane = until_written(ctx, "job_settle", || {
        records::advance(&ctx.db, job_id, &run.ticket, next.as_str(), &ticket)
    })
    .await
    .ok_or(Failure::Superseded)?;
    ctx.job_changed(job_id).await;
    let next_ticket = Ticket {
        queue: next,
        id: &ticket,
        owner,
        lane,
    };
    match ctx.queues.enqueue(next_ticket, payload, None).await {
        Ok(()) => ctx
            .metrics
            .jobs_enqueued
            .with_label_values(&[next.as_str()])
            .inc(),
        Err(e) => {
            ctx.metrics.redis_errors.with_label_values(&["queue"]).inc();
            tracing::warn!(job = job_id, error = %format!("{e:#}"), "next stage not enqueued; the reconciler will");
        }
    }
    Ok(())
}

/// Sends the run's ticket back to wait `wait` in the fair queue. Retried until Redis answers:
/// the delivery's data (kept until this returns) is the only other trace of the ticket.
async fn defer_ticket(ctx: &JobContext, run: &Run, wait: Duration) {
    let deferred = until_written(ctx, "queue", || async {
        ctx.queues.fair().defer(run.queue, &run.ticket, wait).await
    })
    .await;
    if !deferred {
        tracing::info!(
            queue = run.queue.as_str(),
            ticket = run.ticket,
            "deferred ticket was no longer alive"
        );
    }
}

/// The ticket's run is over. Retried until Redis answers (a forgotten ticket would stay in the
/// items hash).
async fn finish_ticket(ctx: &JobContext, run: &Run) {
    until_written(ctx, "queue", || async {
        ctx.queues.fair().finish(run.queue, &run.ticket).await
    })
    .await;
}

/// Retries `write` with backoff until it succeeds, counting the failures. Only a shutdown
/// (which drops the whole run) ends the wait.
pub(crate) async fn until_written<T, E, F, Fut>(
    ctx: &JobContext,
    what: &'static str,
    mut write: F,
) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match write().await {
            Ok(value) => return value,
            Err(e) => {
                ctx.metrics
                    .scheduling
                    .settle_retries
                    .with_label_values(&[what])
                    .inc();
                tracing::warn!(what, error = %e, ?delay, "could not record a job's outcome; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
