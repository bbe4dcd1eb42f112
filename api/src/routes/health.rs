//! `/healthz` (alive), `/readyz` (Postgres and Redis reachable), `/metrics`.

use actix_web::{HttpResponse, web};
use fuze_shared::jobs::QueueName;
use serde_json::json;

use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when Postgres and Redis answer. Live workers per queue are reported for operators but do
/// not gate readiness: the api still serves reads while no worker runs.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = sqlx::query("SELECT 1").execute(&state.db).await.is_ok();
    let mut conn = state.redis.clone();
    let redis = redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok();
    let mut workers = serde_json::Map::new();
    for queue in QueueName::ALL {
        let live = state.queues.live_workers(queue).await.ok();
        workers.insert(queue.as_str().to_owned(), json!(live));
    }
    let body = json!({ "postgres": db, "redis": redis, "workers": workers });
    if db && redis {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.observe_cache(&state.cache.stats());
    state
        .metrics
        .observe_dedup(state.recommend_dedup.deduplicated());
    state.metrics.observe_queues(&state.queues, &state.db).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
