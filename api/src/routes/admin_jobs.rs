//! `GET /api/v1/admin/jobs` (queue depth, job counts, failed jobs with their errors) and
//! `POST /api/v1/admin/jobs/{id}/retry` (put a failed job back in its queue). Admin only.

use super::table::Routes;
use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use fuze_shared::{
    jobs::{
        JobRecord, Lane, QueueName,
        admin::{self, FailedCursor},
    },
    metrics::queues::queue_depth,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    auth::Admin,
    error::{ApiError, ErrorBody},
    routes::{
        common::{Page, cursor, page_size},
        jobs::JobView,
    },
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(paths(overview, retry))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/admin/jobs", |m| m.get(overview));
    r.resource("/admin/jobs/{id}/retry", |m| m.post(retry));
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FailedQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A queue as apalis-redis holds it right now (`null` counts when Redis did not answer).
#[derive(Serialize, ToSchema)]
struct QueueView {
    /// Deliveries apalis holds for a free worker.
    ready: Option<i64>,
    scheduled: Option<i64>,
    dead: Option<i64>,
    live_workers: Option<u64>,
    /// Jobs waiting their turn in the fair queue, per lane: `{ready, delayed}`.
    waiting: Option<BTreeMap<&'static str, LaneView>>,
}

#[derive(Serialize, ToSchema)]
struct LaneView {
    ready: i64,
    delayed: i64,
}

#[derive(Serialize, ToSchema)]
struct FailedJob {
    id: String,
    kind: String,
    /// The stage that failed; a retry runs it again.
    stage: Option<String>,
    user_id: Option<Uuid>,
    bookmark_id: Option<Uuid>,
    attempts: i32,
    total_attempts: i32,
    max_attempts: i32,
    error: ErrorView,
    created_at: DateTime<Utc>,
    failed_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    #[schema(ignore)]
    cursor: FailedCursor,
}

#[derive(Serialize, ToSchema)]
struct ErrorView {
    code: Option<String>,
    message: Option<String>,
}

impl From<JobRecord> for FailedJob {
    fn from(job: JobRecord) -> Self {
        Self {
            cursor: FailedCursor::of(&job),
            id: job.id,
            kind: job.kind,
            stage: job.stage,
            user_id: job.user_id,
            bookmark_id: job.bookmark_id,
            attempts: job.attempts,
            total_attempts: job.total_attempts,
            max_attempts: job.max_attempts,
            error: ErrorView {
                code: job.error_code,
                message: job.error,
            },
            created_at: job.created_at,
            failed_at: job.finished_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct Overview {
    /// Tasks per apalis-redis queue and place (ready, scheduled, dead).
    queues: BTreeMap<&'static str, QueueView>,
    /// Job records per current stage and state.
    jobs: BTreeMap<String, BTreeMap<String, i64>>,
    /// Failed jobs, newest failure first, keyset-paginated (`cursor` = the previous `next_cursor`).
    failed: Page<FailedJob>,
}

/// Queue depths, job counts per stage and state, and a page of failed jobs (newest first).
#[utoipa::path(
    get, path = "/api/v1/admin/jobs", tag = "admin",
    params(FailedQuery),
    responses(
        (status = 200, description = "The overview", body = Overview),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`, `invalid_query`", body = ErrorBody),
    ),
)]
async fn overview(
    state: web::Data<AppState>,
    _admin: Admin,
    query: web::Query<FailedQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, after) = page(&query, &state)?;
    let mut queues = BTreeMap::new();
    for queue in QueueName::ALL {
        let depth = queue_depth(&state.queues, queue)
            .await
            .inspect_err(|e| state.metrics.redis_error("queue_stats", e))
            .ok();
        let live_workers = state.queues.live_workers(queue).await.ok();
        let waiting = state.queues.fair().pending(queue).await.ok().map(|lanes| {
            Lane::ALL
                .iter()
                .zip(lanes)
                .map(|(lane, p)| {
                    let view = LaneView {
                        ready: p.ready,
                        delayed: p.delayed,
                    };
                    (lane.as_str(), view)
                })
                .collect()
        });
        queues.insert(
            queue.as_str(),
            QueueView {
                ready: depth.map(|d| d.ready),
                scheduled: depth.map(|d| d.scheduled),
                dead: depth.map(|d| d.dead),
                live_workers,
                waiting,
            },
        );
    }
    let db = &state.metrics.db;
    let mut jobs: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for c in db.time("admin_jobs", admin::counts(&state.db)).await? {
        jobs.entry(c.stage).or_default().insert(c.state, c.jobs);
    }
    let failed = db
        .time(
            "admin_jobs",
            admin::failed(&state.db, after.as_ref(), limit),
        )
        .await?;
    let items: Vec<FailedJob> = failed.into_iter().map(FailedJob::from).collect();
    // A full page may have a successor: its last item is the next cursor.
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|last| last.cursor.encode()))
        .flatten();
    let failed = Page { items, next_cursor };
    Ok(HttpResponse::Ok().json(Overview {
        queues,
        jobs,
        failed,
    }))
}

/// Page size and position, checked as for every list (400 when invalid).
fn page(query: &FailedQuery, state: &AppState) -> Result<(u32, Option<FailedCursor>), ApiError> {
    Ok((
        page_size(query.limit, &state.config.api)?,
        cursor(query.cursor.as_deref(), FailedCursor::decode)?,
    ))
}

/// Retries a failed job of any user (`crate::job_retry`). 202 with the job; 409 unless failed.
#[utoipa::path(
    post, path = "/api/v1/admin/jobs/{id}/retry", tag = "admin",
    params(("id" = String, Path, description = "The job")),
    responses(
        (status = 202, description = "Queued again from the stage that failed", body = JobView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the job is not failed", body = ErrorBody),
    ),
)]
async fn retry(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = crate::job_retry::retry_failed(&state, &id, None).await?;
    Ok(HttpResponse::Accepted().json(JobView::new(job, &state)))
}
