//! Retrying a failed job, for its owner (`POST /jobs/{id}/retry`) and for admins
//! (`POST /admin/jobs/{id}/retry`): the same reset and enqueue for both.

use fuze_shared::{
    domain::JobKind,
    events::{self, Event},
    feed::FeedEvent,
    jobs::{JobRecord, Owner, QueueName, StageJob, Ticket, admin, queue::new_task_id, records},
};
use uuid::Uuid;

use crate::{error::ApiError, state::AppState};

/// Resets a failed job (fresh attempts for the stage that failed) and enqueues it the way a save
/// does: record committed first, then pushed. `owner`: only that user's job (another user's is
/// not found). 404 when missing, 409 unless it is failed.
pub async fn retry_failed(
    state: &AppState,
    id: &str,
    owner: Option<Uuid>,
) -> Result<JobRecord, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::NotFound);
    }
    let task = new_task_id();
    let mut tx = state.metrics.db.begin(&state.db).await?;
    let reset = state
        .metrics
        .db
        .time("job_retry", admin::reset_failed(&mut tx, id, owner, &task))
        .await?;
    let Some(job) = reset else {
        tx.rollback().await?;
        let exists = match owner {
            Some(user_id) => records::find_for_user(&state.db, id, user_id).await?,
            None => records::find(&state.db, id).await?,
        };
        return Err(match exists {
            None => ApiError::NotFound,
            Some(j) => ApiError::Conflict(format!(
                "only failed jobs can be retried; this one is {}",
                format!("{:?}", j.state).to_lowercase()
            )),
        });
    };
    let (Some(user_id), Some(bookmark_id), Some(queue)) = (
        job.user_id,
        job.bookmark_id,
        job.stage.as_deref().and_then(QueueName::parse_stage),
    ) else {
        tx.rollback().await?;
        return Err(ApiError::Conflict(
            "this job has no bookmark or stage left to run".into(),
        ));
    };
    tx.commit().await?;
    state
        .feeds
        .tell(&state.redis, user_id, &FeedEvent::job(&job))
        .await;
    let ticket = Ticket {
        queue,
        id: &task,
        owner: Owner::User(user_id),
        lane: job.lane,
    };
    let stage = StageJob {
        job_id: job.id.clone(),
        user_id,
        bookmark_id,
        refresh: job.kind == JobKind::Refresh.as_str(),
    };
    if let Err(e) = state.queues.enqueue_stage(ticket, &stage).await {
        // The record says queued, so the clock's reconciler enqueues it once Redis is back.
        tracing::error!(error = ?e, job = %job.id, "retry enqueue failed");
        state
            .metrics
            .redis_errors
            .with_label_values(&["queue"])
            .inc();
        return Err(ApiError::Unavailable(
            "job queue unavailable; the job is queued and will be enqueued once it is back",
        ));
    }
    state
        .metrics
        .jobs_enqueued
        .with_label_values(&[queue.as_str()])
        .inc();
    // The bookmark's status changed back: drop cached reads of it.
    let mut conn = state.redis.clone();
    events::announce(
        &state.cache,
        &mut conn,
        &state.keys.events_channel(),
        &Event::BookmarksChanged { user_id },
    )
    .await;
    tracing::info!(job = %job.id, stage = queue.as_str(), by_admin = owner.is_none(), "failed job retried");
    Ok(job)
}
