//! Admin endpoints (admin token from `FUZE_ADMIN_TOKEN`).

use actix_web::{HttpResponse, web};
use fuze_shared::auth::{self, CreateUserError};
use serde::Deserialize;
use serde_json::json;

use crate::{auth::Admin, error::ApiError, state::AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::post().to(create_user))
        .route("/admin/cache/stats", web::get().to(cache_stats));
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
