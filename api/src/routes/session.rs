//! `POST /api/v1/session`: the frontend calls it when it loads. It confirms the token (the auth
//! middleware already did), records the visit, and asks a worker to warm this user's caches, at
//! most once per cooldown however often the page is reloaded.

use actix_web::{HttpResponse, web};
use fuze_shared::{auth, jobs::warm};
use serde_json::json;

use crate::{auth::AuthUser, error::ApiError, state::AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/session", web::post().to(start));
}

async fn start(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    auth::touch_session(&state.db, user.0).await?;
    let cooldown = state.config.clock.warm_session_cooldown;
    // Warming is an optimisation: a Redis hiccup must not fail the session start.
    let warming = match warm::request_user(&state.queues, user.0, "session", cooldown).await {
        Ok(enqueued) => json!(if enqueued { "enqueued" } else { "recent" }),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not enqueue a session warm-up");
            json!("unavailable")
        }
    };
    Ok(HttpResponse::Ok().json(json!({ "user_id": user.0, "warming": warming })))
}
