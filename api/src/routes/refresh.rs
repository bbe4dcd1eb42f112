//! `POST /api/v1/bookmarks/{id}/refresh`: fetch a saved page again, in the interactive lane.
//! The worker asks the site with the validators of the last fetch; an unchanged page is not
//! embedded again, and a failed refresh keeps the last good content (`worker/src/jobs/scrape.rs`).

use super::table::Routes;
use actix_web::{HttpResponse, web};
use fuze_shared::{
    bookmarks,
    domain::JobKind,
    feed::FeedEvent,
    jobs::{JobRecord, Lane, Owner, QueueName, StageJob, Ticket, queue::new_task_id, records},
};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{ApiError, ErrorBody},
    routes::jobs::JobView,
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(paths(refresh))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/bookmarks/{id}/refresh", |m| m.post(refresh));
}

/// 202 with the refresh job; 404 for another user's bookmark; 409 while a job of the bookmark
/// is still under way.
#[utoipa::path(
    post, path = "/api/v1/bookmarks/{id}/refresh", tag = "bookmarks",
    params(("id" = Uuid, Path, description = "The bookmark")),
    responses(
        (status = 202, description = "The refresh job, queued in the interactive lane", body = JobView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: a job of the bookmark is still under way", body = ErrorBody),
    ),
)]
async fn refresh(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if bookmarks::url_of(&state.db, user.0, *id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    ensure_idle(&state, *id).await?;
    let job = start(&state, user.0, *id).await?;
    Ok(HttpResponse::Accepted().json(JobView::new(job, &state)))
}

/// 409 while a job of the bookmark is still under way (a refresh would race it).
pub(crate) async fn ensure_idle(state: &AppState, bookmark_id: Uuid) -> Result<(), ApiError> {
    match records::latest_for_bookmark(&state.db, bookmark_id).await? {
        Some(latest) if !latest.state.is_terminal() => Err(ApiError::Conflict(format!(
            "job {} of this bookmark is still under way",
            latest.id
        ))),
        _ => Ok(()),
    }
}

/// Records and enqueues a refresh of the user's bookmark (the caller checked it is theirs).
pub(crate) async fn start(
    state: &AppState,
    user_id: Uuid,
    bookmark_id: Uuid,
) -> Result<JobRecord, ApiError> {
    let job_id = new_task_id();
    let job = records::insert(
        &state.db,
        &records::NewJob {
            id: &job_id,
            user_id,
            kind: JobKind::Refresh.as_str(),
            stage: QueueName::Scrape.as_str(),
            bookmark_id: Some(bookmark_id),
            max_attempts: i32::try_from(state.config.jobs.max_attempts).unwrap_or(i32::MAX),
            lane: Lane::Interactive,
        },
    )
    .await?;
    // Told before the enqueue, so no worker's news of the job can come first.
    state
        .feeds
        .tell(&state.redis, user_id, &FeedEvent::job(&job))
        .await;
    let payload = StageJob {
        job_id: job_id.clone(),
        user_id,
        bookmark_id,
        refresh: true,
    };
    let ticket = Ticket {
        queue: QueueName::Scrape,
        id: &job_id,
        owner: Owner::User(user_id),
        lane: Lane::Interactive,
    };
    if let Err(e) = state.queues.enqueue(ticket, &payload, None).await {
        tracing::error!(error = ?e, "refresh not enqueued; taking the job back");
        state
            .metrics
            .redis_errors
            .with_label_values(&["queue"])
            .inc();
        if let Err(e) = sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(&job_id)
            .execute(&state.db)
            .await
        {
            tracing::error!(error = %e, job = job_id, "refresh job left queued; the reconciler enqueues it");
        }
        return Err(ApiError::Unavailable(
            "job queue unavailable; nothing was changed, retry shortly",
        ));
    }
    state
        .metrics
        .jobs_enqueued
        .with_label_values(&["scrape"])
        .inc();
    Ok(job)
}
