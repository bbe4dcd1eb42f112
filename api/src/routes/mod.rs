//! Route families; `configure` mounts them all.

mod admin;
mod bookmarks;
mod health;
mod jobs;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .configure(bookmarks::configure)
            .configure(jobs::configure)
            .configure(admin::configure),
    )
    .configure(health::configure);
}
