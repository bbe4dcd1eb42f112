//! `GET /api/v1/jobs/{id}`: cheap status polling for the job's owner.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, ETag, EntityTag},
    web,
};
use chrono::{DateTime, Utc};
use fuze_shared::{domain::JobState, jobs::JobRecord, jobs::records};
use serde::Serialize;
use uuid::Uuid;

use crate::{auth::AuthUser, error::ApiError, routes::common::not_modified, state::AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/jobs/{id}").get(get));
}

#[derive(Debug, Serialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// A job as the frontend sees it.
#[derive(Debug, Serialize)]
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
