//! `/metrics`, `/healthz` and `/readyz` on the worker's (or clock's) own port, served by actix-web
//! on a thread of its own so it answers even while job futures keep the main runtime busy.

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use fuze_shared::metrics::Metrics;

/// Binds now (so the port is known and errors surface at start), serves in the background.
pub fn spawn(host: &str, port: u16, metrics: Metrics) -> anyhow::Result<u16> {
    let listener = TcpListener::bind((host, port))
        .with_context(|| format!("failed to bind metrics port {host}:{port}"))?;
    let bound = listener.local_addr()?.port();
    let metrics = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .route("/metrics", web::get().to(render))
            .route("/healthz", web::get().to(ok))
            .route("/readyz", web::get().to(ok))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            if let Err(e) = actix_web::rt::System::new().block_on(server) {
                tracing::error!(error = %e, "metrics server stopped");
            }
        })
        .context("failed to start the metrics thread")?;
    Ok(bound)
}

async fn render(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

/// The server starts only once the process is ready (model loaded), so answering means ready.
async fn ok() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}
