//! `GET /api/v1/bookmarks/{id}/analysis`: keywords, tags, reading time, language and quality of a
//! bookmark, as the worker's analyze stage stored them; cached (24 h by default) with an ETag.

use super::table::Routes;
use actix_web::{HttpRequest, HttpResponse, web};
use fuze_shared::{
    analysis,
    cache::{Bytes, CacheType},
    views,
};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{ApiError, ErrorBody},
    read::cached_json,
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(paths(get))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/bookmarks/{id}/analysis", |m| m.get(get));
}

#[utoipa::path(
    get, path = "/api/v1/bookmarks/{id}/analysis", tag = "bookmarks",
    params(("id" = Uuid, Path, description = "The bookmark")),
    responses(
        (status = 200, description = "The analysis", body = analysis::Analysis),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`analysis_not_ready`: not analysed yet; poll again", body = ErrorBody),
    ),
)]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (value, _layer) = state
        .cache
        .get_or_load_value(
            CacheType::Analysis,
            Some(user.0),
            &views::analysis_key(id),
            load(&state, user.0, id),
        )
        .await?;
    Ok(cached_json(&req, value))
}

/// Only found analyses are cached: "not yet" is an error, so the next poll asks the database again.
async fn load(state: &AppState, user_id: Uuid, id: Uuid) -> Result<Bytes, ApiError> {
    match analysis::find(&state.db, user_id, id).await? {
        None => Err(ApiError::NotFound),
        Some(None) => Err(ApiError::NotReady {
            code: "analysis_not_ready",
            message: "the bookmark has not been analysed yet".to_owned(),
        }),
        Some(Some(found)) => views::analysis_json(&found).map_err(ApiError::Internal),
    }
}
