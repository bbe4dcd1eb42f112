//! `/healthz` (alive), `/readyz` (Postgres and Redis reachable), `/metrics`.

use super::table::Routes;
use actix_web::{HttpResponse, web};
use fuze_shared::jobs::QueueName;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::{OpenApi, ToSchema};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(paths(healthz, readyz, metrics))]
pub struct Api;

#[derive(Serialize, ToSchema)]
struct Alive {
    /// Always `ok`.
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
struct Readiness {
    postgres: bool,
    redis: bool,
    /// Live workers per queue (`null` when Redis did not answer); informational only.
    workers: BTreeMap<&'static str, Option<u64>>,
}

pub fn configure(r: &mut Routes) {
    r.resource("/healthz", |m| m.get(healthz));
    r.resource("/readyz", |m| m.get(readyz));
    r.resource("/metrics", |m| m.get(metrics));
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Alive)))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Alive { status: "ok" })
}

/// Ready when Postgres and Redis answer. Live workers per queue are reported for operators but do
/// not gate readiness: the api still serves reads while no worker runs.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Postgres and Redis answer", body = Readiness),
        (status = 503, description = "Postgres or Redis does not answer", body = Readiness),
    ),
)]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = sqlx::query("SELECT 1").execute(&state.db).await.is_ok();
    let mut conn = state.redis.clone();
    let redis = redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok();
    let mut workers = BTreeMap::new();
    for queue in QueueName::ALL {
        let live = state.queues.live_workers(queue).await.ok();
        workers.insert(queue.as_str(), live);
    }
    let body = Readiness {
        postgres: db,
        redis,
        workers,
    };
    if db && redis {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics of this instance.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)),
)]
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
