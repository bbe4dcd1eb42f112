//! Admin endpoints (admin token from `FUZE_ADMIN_TOKEN`).

use actix_web::{HttpResponse, web};
use fuze_shared::{
    auth::{self, CreateUserError},
    embedding,
    jobs::{reindex, warm},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{auth::Admin, error::ApiError, state::AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::post().to(create_user))
        .route("/admin/cache/stats", web::get().to(cache_stats))
        .route("/admin/cache/warm", web::post().to(warm_caches))
        .route("/admin/reindex", web::get().to(reindex_status));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
}

/// Creates a user and returns its token, shown only this once.
async fn create_user(
    state: web::Data<AppState>,
    _admin: Admin,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    match auth::create_user(&state.db, &body.email).await {
        Ok((id, token)) => Ok(HttpResponse::Created().json(json!({ "id": id, "token": token }))),
        Err(e @ CreateUserError::Exists(_)) => Err(ApiError::Conflict(e.to_string())),
        Err(e @ CreateUserError::InvalidEmail(_)) => {
            Err(ApiError::unprocessable("invalid_email", e.to_string()))
        }
        Err(CreateUserError::Db(e)) => Err(e.into()),
    }
}

/// Hits and misses per layer and type, L1 entries and bytes, invalidations and flushes.
async fn cache_stats(state: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(state.cache.stats())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WarmRequest {
    /// One user; omitted: the most recently seen users (`FUZE_WARM_MAX_USERS`).
    user_id: Option<Uuid>,
}

/// Enqueues a cache warm-up (for a system cron, or by hand). 202: a worker does the work.
async fn warm_caches(
    state: web::Data<AppState>,
    _admin: Admin,
    body: Option<web::Json<WarmRequest>>,
) -> Result<HttpResponse, ApiError> {
    let user_id = body.map(|b| b.into_inner()).unwrap_or_default().user_id;
    warm::push(&state.queues, user_id, "admin")
        .await
        .map_err(|e| {
            tracing::warn!(error = %format!("{e:#}"), "could not enqueue a warm-up");
            ApiError::Unavailable("the job queue is unavailable; retry shortly")
        })?;
    Ok(HttpResponse::Accepted().json(json!({ "enqueued": true, "user_id": user_id })))
}

/// The current embedding space, how many bookmarks are stale (vectors of another space, found
/// by keyword search only until the reindex job embeds them again), how many bookmarks each
/// space holds, and the progress of the reindex pass.
async fn reindex_status(
    state: web::Data<AppState>,
    _admin: Admin,
) -> Result<HttpResponse, ApiError> {
    let space = &state.space;
    let (stale, spaces) = tokio::try_join!(
        embedding::stale_count(&state.db, space),
        embedding::bookmarks_per_space(&state.db),
    )?;
    let pass = reindex::progress(&state.queues, &space.name)
        .await
        .map_err(|e| {
            tracing::warn!(error = %format!("{e:#}"), "could not read the reindex progress");
            ApiError::Unavailable("the job queue is unavailable; retry shortly")
        })?;
    let spaces: Vec<_> = spaces
        .into_iter()
        .map(|(name, bookmarks)| json!({ "name": name, "bookmarks": bookmarks }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "space": space.name,
        "stale": stale,
        "spaces": spaces,
        "pass": pass,
    })))
}
