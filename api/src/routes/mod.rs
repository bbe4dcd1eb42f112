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
mod site;

mod table;

use actix_web::{App, middleware::from_fn, web};

pub use table::MountedRoute;
use table::Routes;

use crate::{auth::authenticate, limits};

/// Mounts every route on the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    mount(cfg, &mut Vec::new());
}

/// Each route family's part of the OpenAPI document.
pub fn documented() -> Vec<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    vec![
        bookmarks::Api::openapi(),
        refresh::Api::openapi(),
        analysis::Api::openapi(),
        jobs::Api::openapi(),
        events::Api::openapi(),
        imports::Api::openapi(),
        projects::Api::openapi(),
        search::Api::openapi(),
        recommendations::Api::openapi(),
        session::Api::openapi(),
        admin::Api::openapi(),
        admin_jobs::Api::openapi(),
        health::Api::openapi(),
        site::Api::openapi(),
    ]
}

/// Every route `configure` mounts, with its method: what the OpenAPI document must describe.
pub fn mounted() -> Vec<MountedRoute> {
    let mut mounted = Vec::new();
    // Building an app runs its configuration; nothing is served.
    let _app = App::new().configure(|cfg| mount(cfg, &mut mounted));
    mounted
}

fn mount(cfg: &mut web::ServiceConfig, mounted: &mut Vec<MountedRoute>) {
    const API: &str = "/api/v1";
    // Public pages first: the scope below answers every other /api/v1 path.
    site::configure(&mut Routes::new(cfg, "", mounted));
    let mut api = Vec::new();
    cfg.service(
        web::scope(API)
            // The last wrap runs first: authenticate, then the user's limits.
            .wrap(from_fn(limits::per_user))
            .wrap(from_fn(authenticate))
            .configure(|cfg| {
                let r = &mut Routes::new(cfg, API, &mut api);
                bookmarks::configure(r);
                refresh::configure(r);
                analysis::configure(r);
                jobs::configure(r);
                events::configure(r);
                imports::configure(r);
                projects::configure(r);
                search::configure(r);
                recommendations::configure(r);
                session::configure(r);
                admin::configure(r);
                admin_jobs::configure(r);
            }),
    );
    mounted.append(&mut api);
    health::configure(&mut Routes::new(cfg, "", mounted));
}
