//! Route families; `configure` mounts them all.

mod admin;
mod admin_jobs;
mod bookmarks;
mod common;
mod health;
mod jobs;
mod projects;
mod search;

use actix_web::{middleware::from_fn, web};

use crate::auth::authenticate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(from_fn(authenticate))
            .configure(bookmarks::configure)
            .configure(jobs::configure)
            .configure(projects::configure)
            .configure(search::configure)
            .configure(admin::configure)
            .configure(admin_jobs::configure),
    )
    .configure(health::configure);
}
