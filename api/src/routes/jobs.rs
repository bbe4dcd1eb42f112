//! The user's own jobs: `GET /api/v1/jobs` (newest first, by state and kind), `GET /jobs/{id}`
//! (cheap status polling) and `POST /jobs/{id}/retry` (a failed one, again).

use super::table::Routes;
use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, ETag, EntityTag},
    web,
};
use chrono::{DateTime, Utc};
use fuze_shared::{
    domain::{JobKind, JobState},
    jobs::JobRecord,
    jobs::records,
    keyset,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{ApiError, ErrorBody},
    routes::common::{Page, cursor, not_modified, page_size},
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(paths(list, get, retry))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/jobs", |m| m.get(list));
    r.resource("/jobs/{id}", |m| m.get(get));
    r.resource("/jobs/{id}/retry", |m| m.post(retry));
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListJobsQuery {
    /// Only jobs in this state.
    #[param(value_type = Option<JobState>)]
    state: Option<String>,
    /// Only jobs of this kind: `ingest` or `refresh`.
    kind: Option<String>,
    /// Page size: 1 to the configured maximum.
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// The user's jobs, newest first; `next_cursor` fetches the following page.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs",
    params(ListJobsQuery),
    responses(
        (status = 200, description = "A page of the user's jobs, newest first", body = Page<JobView>),
        (status = 400, description = "`invalid_state`, `invalid_kind`, `invalid_limit`, `invalid_cursor`, `invalid_query`", body = ErrorBody),
    ),
)]
async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<ListJobsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(query.limit, &state.config.api)?;
    let job_state = query
        .state
        .as_deref()
        .map(|raw| {
            serde_json::from_value::<JobState>(serde_json::Value::String(raw.to_owned())).map_err(
                |_| {
                    ApiError::bad_request(
                        "invalid_state",
                        "state must be one of queued, running, retrying, succeeded, failed",
                    )
                },
            )
        })
        .transpose()?;
    let kind = match query.kind.as_deref() {
        None => None,
        Some(k) => Some(
            JobKind::parse(k)
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_kind", "kind must be ingest or refresh")
                })?
                .as_str(),
        ),
    };
    let after = cursor(query.cursor.as_deref(), keyset::decode)?;
    let filter = records::JobFilter {
        state: job_state,
        kind,
    };
    let jobs = records::list_for_user(&state.db, user.0, &filter, after, limit).await?;
    let next_cursor = (jobs.len() == limit as usize)
        .then(|| jobs.last())
        .flatten()
        .map(|last| keyset::encode(last.created_at, &last.id));
    let items = jobs.into_iter().map(|j| JobView::new(j, &state)).collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(Page { items, next_cursor }))
}

/// Runs the user's failed job again from the stage that failed. 202 with the job; 404 for
/// another user's; 409 unless it is failed.
#[utoipa::path(
    post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "The job")),
    responses(
        (status = 202, description = "Queued again from the stage that failed", body = JobView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the job is not failed", body = ErrorBody),
    ),
)]
async fn retry(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = crate::job_retry::retry_failed(&state, &id, Some(user.0)).await?;
    Ok(HttpResponse::Accepted().json(JobView::new(job, &state)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// A job as the frontend sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    /// Which step of the job runs now: `scrape`, then `embed`.
    pub stage: Option<String>,
    pub state: JobState,
    /// Runs of the current stage; `max_attempts` caps each stage.
    pub attempts: i32,
    /// Runs of all stages so far.
    pub total_attempts: i32,
    pub max_attempts: i32,
    pub error: Option<JobError>,
    pub bookmark_id: Option<Uuid>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Suggested delay before the next poll; `null` once the job is finished.
    pub poll_after_ms: Option<u64>,
}

impl JobView {
    pub fn new(job: JobRecord, state: &AppState) -> Self {
        let poll_after_ms = (!job.state.is_terminal()).then(|| {
            u64::try_from(state.config.api.job_poll_interval.as_millis()).unwrap_or(u64::MAX)
        });
        let error = job.error_code.map(|code| JobError {
            code,
            message: job.error.unwrap_or_default(),
        });
        Self {
            id: job.id,
            kind: job.kind,
            stage: job.stage,
            state: job.state,
            attempts: job.attempts,
            total_attempts: job.total_attempts,
            max_attempts: job.max_attempts,
            error,
            bookmark_id: job.bookmark_id,
            next_attempt_at: job.run_after,
            created_at: job.created_at,
            updated_at: job.updated_at,
            poll_after_ms,
        }
    }

    /// Changes whenever anything a poller cares about changes (every change bumps `updated_at`).
    fn etag(&self) -> EntityTag {
        EntityTag::new_strong(format!(
            "{}-{}",
            self.id,
            self.updated_at.timestamp_micros()
        ))
    }
}

/// One job, for status polling: ETag, `Retry-After` and `poll_after_ms` say when to ask again.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::NotFound);
    }
    let job = records::find_for_user(&state.db, &id, user.0)
        .await?
        .ok_or(ApiError::NotFound)?;
    let view = JobView::new(job, &state);
    let etag = view.etag();
    let unchanged = not_modified(&req, &etag);
    let mut res = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header(ETag(etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if let Some(ms) = view.poll_after_ms {
        // Whole seconds, rounded up, for clients that only read the header.
        res.insert_header((header::RETRY_AFTER, ms.div_ceil(1000).to_string()));
    }
    Ok(if unchanged {
        res.finish()
    } else {
        res.json(view)
    })
}
