//! Admin endpoints (admin token from `FUZE_ADMIN_TOKEN`).

use super::table::Routes;
use actix_web::{HttpResponse, web};
use fuze_shared::cache::CacheStatsSnapshot;
use fuze_shared::{
    auth::{self, CreateUserError},
    embedding,
    jobs::{reindex, warm},
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    auth::Admin,
    error::{ApiError, ErrorBody},
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(paths(create_user, cache_stats, warm_caches, reindex_status))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/admin/users", |m| m.post(create_user));
    r.resource("/admin/cache/stats", |m| m.get(cache_stats));
    r.resource("/admin/cache/warm", |m| m.post(warm_caches));
    r.resource("/admin/reindex", |m| m.get(reindex_status));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
}

#[derive(Serialize, ToSchema)]
struct CreatedUser {
    id: Uuid,
    /// The user's bearer token, shown only this once.
    token: String,
}

/// Creates a user and returns its token, shown only this once.
#[utoipa::path(
    post, path = "/api/v1/admin/users", tag = "admin",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = CreatedUser),
        (status = 409, description = "`conflict`: a user has this email", body = ErrorBody),
        (status = 422, description = "`invalid_email`, `invalid_body`", body = ErrorBody),
    ),
)]
async fn create_user(
    state: web::Data<AppState>,
    _admin: Admin,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    match auth::create_user(&state.db, &body.email).await {
        Ok((id, token)) => Ok(HttpResponse::Created().json(CreatedUser { id, token })),
        Err(e @ CreateUserError::Exists(_)) => Err(ApiError::Conflict(e.to_string())),
        Err(e @ CreateUserError::InvalidEmail(_)) => {
            Err(ApiError::unprocessable("invalid_email", e.to_string()))
        }
        Err(CreateUserError::Db(e)) => Err(e.into()),
    }
}

/// Hits and misses per layer and type, L1 entries and bytes, invalidations and flushes.
#[utoipa::path(
    get, path = "/api/v1/admin/cache/stats", tag = "admin",
    responses((status = 200, description = "This instance's cache counters", body = CacheStatsSnapshot)),
)]
async fn cache_stats(state: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(state.cache.stats())
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct WarmRequest {
    /// One user; omitted: the most recently seen users (`FUZE_WARM_MAX_USERS`).
    user_id: Option<Uuid>,
}

/// Enqueues a cache warm-up (for a system cron, or by hand). 202: a worker does the work.
#[derive(Serialize, ToSchema)]
struct WarmQueued {
    /// Always `true`.
    enqueued: bool,
    user_id: Option<Uuid>,
}

#[utoipa::path(
    post, path = "/api/v1/admin/cache/warm", tag = "admin",
    request_body(content = Option<WarmRequest>, description = "Optional: one user"),
    responses(
        (status = 202, description = "A worker will warm the caches", body = WarmQueued),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
    ),
)]
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
    Ok(HttpResponse::Accepted().json(WarmQueued {
        enqueued: true,
        user_id,
    }))
}

/// The current embedding space, how many bookmarks are stale (vectors of another space, found
/// by keyword search only until the reindex job embeds them again), how many bookmarks each
/// space holds, and the progress of the reindex pass.
#[derive(Serialize, ToSchema)]
struct ReindexStatus {
    /// The space the workers write now.
    space: String,
    /// Bookmarks whose vectors belong to another space.
    stale: i64,
    spaces: Vec<SpaceCount>,
    /// The reindex pass of the current space, if one ran.
    pass: Option<reindex::Progress>,
}

#[derive(Serialize, ToSchema)]
struct SpaceCount {
    /// `null` for bookmarks without vectors.
    name: Option<String>,
    bookmarks: i64,
}

#[utoipa::path(
    get, path = "/api/v1/admin/reindex", tag = "admin",
    responses((status = 200, description = "Embedding spaces and the reindex pass", body = ReindexStatus)),
)]
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
    let spaces = spaces
        .into_iter()
        .map(|(name, bookmarks)| SpaceCount { name, bookmarks })
        .collect();
    Ok(HttpResponse::Ok().json(ReindexStatus {
        space: space.name.clone(),
        stale,
        spaces,
        pass,
    }))
}
