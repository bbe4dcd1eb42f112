//! `POST /api/v1/session`: the frontend calls it when it loads. It confirms the token (the auth
//! middleware already did), records the visit, and asks a worker to warm this user's caches, at
//! most once per cooldown however often the page is reloaded.

use super::table::Routes;
use actix_web::{HttpResponse, web};
use fuze_shared::{auth, jobs::warm};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::{auth::AuthUser, error::ApiError, state::AppState};

#[derive(OpenApi)]
#[openapi(paths(start))]
pub struct Api;

#[derive(Serialize, ToSchema)]
struct Session {
    user_id: Uuid,
    /// `enqueued`, `recent` (warmed within the cooldown) or `unavailable`.
    warming: &'static str,
}

pub fn configure(r: &mut Routes) {
    r.resource("/session", |m| m.post(start));
}

/// Confirms the token, records the visit and asks for the user's caches to be warmed.
#[utoipa::path(
    post, path = "/api/v1/session", tag = "session",
    responses((status = 200, description = "The token is valid", body = Session)),
)]
async fn start(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    auth::touch_session(&state.db, user.0).await?;
    let cooldown = state.config.clock.warm_session_cooldown;
    // Warming is an optimisation: a Redis hiccup must not fail the session start.
    let warming = match warm::request_user(&state.queues, user.0, "session", cooldown).await {
        Ok(enqueued) => {
            if enqueued {
                "enqueued"
            } else {
                "recent"
            }
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not enqueue a session warm-up");
            "unavailable"
        }
    };
    Ok(HttpResponse::Ok().json(Session {
        user_id: user.0,
        warming,
    }))
}
