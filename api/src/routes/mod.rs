//! Route families; `configure` mounts them all.

mod admin;
mod admin_jobs;
mod analysis;
mod bookmarks;
mod common;
mod events;
mod health;
mod imports;
mod jobs;
mod projects;
mod recommendations;
mod refresh;
mod search;
mod session;

use actix_web::{middleware::from_fn, web};

use crate::{auth::authenticate, limits};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            // The last wrap runs first: authenticate, then the user's limits.
            .wrap(from_fn(limits::per_user))
            .wrap(from_fn(authenticate))
            .configure(bookmarks::configure)
            .configure(refresh::configure)
            .configure(analysis::configure)
            .configure(jobs::configure)
            .configure(events::configure)
            .configure(imports::configure)
            .configure(projects::configure)
            .configure(search::configure)
            .configure(recommendations::configure)
            .configure(session::configure)
            .configure(admin::configure)
            .configure(admin_jobs::configure),
    )
    .configure(health::configure);
}
