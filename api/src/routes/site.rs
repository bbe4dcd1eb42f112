//! What a browser loads: the web app at `/` (built into the binary from `api/web/`), the OpenAPI
//! document, and the API reference page at `/docs`, whose assets are the `swagger-ui-dist`
//! package that `scripts/setup.sh` installs. Nothing here asks any other host for anything.

use std::path::PathBuf;

use actix_web::{
    HttpResponse,
    http::header::{self, ContentType},
    web,
};
use utoipa::OpenApi;

use super::table::Routes;
use crate::{
    error::{ApiError, ErrorBody},
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(paths(openapi_json, app_page, app_script, app_style, docs_page, docs_asset))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/", |m| m.get(app_page));
    r.resource("/app.js", |m| m.get(app_script));
    r.resource("/app.css", |m| m.get(app_style));
    r.resource("/api/v1/openapi.json", |m| m.get(openapi_json));
    r.resource("/docs", |m| m.get(docs_page));
    r.resource("/docs/{file}", |m| m.get(docs_asset));
}

/// The app talks to its own origin only; the browser enforces it.
const APP_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";
/// Swagger UI sets inline styles and shows data: images; still nothing from elsewhere.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; frame-ancestors 'none'";

fn page(content_type: ContentType, policy: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The web app: sign in with a token, save, watch, search, import, retry.
#[utoipa::path(get, path = "/", tag = "site", responses((status = 200, description = "The web app", content_type = "text/html", body = String)))]
async fn app_page() -> HttpResponse {
    page(
        ContentType::html(),
        APP_POLICY,
        include_str!("../../web/index.html"),
    )
}

#[utoipa::path(get, path = "/app.js", tag = "site", responses((status = 200, description = "The web app's script", content_type = "text/javascript", body = String)))]
async fn app_script() -> HttpResponse {
    page(
        ContentType(mime_js()),
        APP_POLICY,
        include_str!("../../web/app.js"),
    )
}

#[utoipa::path(get, path = "/app.css", tag = "site", responses((status = 200, description = "The web app's style sheet", content_type = "text/css", body = String)))]
async fn app_style() -> HttpResponse {
    page(
        ContentType(mime_css()),
        APP_POLICY,
        include_str!("../../web/app.css"),
    )
}

/// This document. Public: it says what the API accepts, never whose data there is.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "site", responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(crate::openapi::json())
}

/// The API reference, rendered by Swagger UI from `/api/v1/openapi.json`.
#[utoipa::path(get, path = "/docs", tag = "site", responses((status = 200, description = "The API reference page", content_type = "text/html", body = String)))]
async fn docs_page() -> HttpResponse {
    page(
        ContentType::html(),
        DOCS_POLICY,
        include_str!("../../web/docs.html"),
    )
}

/// The reference page's own start script and Swagger UI's files.
#[utoipa::path(
    get, path = "/docs/{file}", tag = "site",
    params(("file" = String, Path, description = "`docs.js`, `swagger-ui.css` or `swagger-ui-bundle.js`")),
    responses(
        (status = 200, description = "The file", body = String),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable`: Swagger UI is not installed (run `scripts/setup.sh`)", body = ErrorBody),
    ),
)]
async fn docs_asset(
    state: web::Data<AppState>,
    file: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (content_type, name) = match file.as_str() {
        "docs.js" => {
            let script = include_str!("../../web/docs.js");
            return Ok(page(ContentType(mime_js()), DOCS_POLICY, script));
        }
        "swagger-ui.css" => (ContentType(mime_css()), "swagger-ui.css"),
        "swagger-ui-bundle.js" => (ContentType(mime_js()), "swagger-ui-bundle.js"),
        _ => return Err(ApiError::NotFound),
    };
    let dir = state
        .config
        .api
        .docs_assets_dir
        .clone()
        .unwrap_or_else(default_assets_dir);
    match tokio::fs::read(dir.join(name)).await {
        Ok(bytes) => Ok(HttpResponse::Ok()
            .insert_header(content_type)
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(bytes)),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "Swagger UI's files are missing");
            Err(ApiError::Unavailable(
                "the API reference's files are not installed: run scripts/setup.sh",
            ))
        }
    }
}

/// Where `scripts/setup.sh` puts the package, next to this crate's sources.
fn default_assets_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/web/node_modules/swagger-ui-dist"
    ))
}

fn mime_js() -> actix_web::mime::Mime {
    "text/javascript; charset=utf-8"
        .parse()
        .expect("a valid media type")
}

fn mime_css() -> actix_web::mime::Mime {
    actix_web::mime::TEXT_CSS_UTF_8
}
