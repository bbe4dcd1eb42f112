//! Request pieces every route family shares: pagination parameters and pages, PATCH fields,
//! bounded optional text.

use fuze_shared::{bookmarks::Cursor, config::ApiConfig, domain::bounded_text};
use serde::{Deserialize, Deserializer};

pub use fuze_shared::views::Page;

use crate::error::ApiError;

/// Trimmed and bounded; empty means none.
pub fn optional_text(
    field: &'static str,
    raw: Option<&str>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    raw.map(|t| bounded_text(field, t, max))
        .transpose()
        .map(|t| t.filter(|s| !s.is_empty()))
        .map_err(invalid_field)
}

/// PATCH fields: absent is `None`, `null` is `Some(None)`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size: 1 to the configured maximum (`FUZE_PAGE_SIZE_MAX`).
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// The page size and position, checked as for bookmarks (400 when invalid).
    pub fn page(&self, limits: &ApiConfig) -> Result<(u32, Option<Cursor>), ApiError> {
        Ok((
            page_size(self.limit, limits)?,
            cursor(self.cursor.as_deref(), Cursor::decode)?,
        ))
    }
}

/// The page size asked for, or the default; 400 `invalid_limit` outside 1..=max.
pub fn page_size(limit: Option<u32>, limits: &ApiConfig) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(limits.page_size_default);
    if limit == 0 || limit > limits.page_size_max {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {}", limits.page_size_max),
        ));
    }
    Ok(limit)
}

/// A page's position token read by `decode`; 400 `invalid_cursor` when it does not decode.
pub fn cursor<T>(
    raw: Option<&str>,
    decode: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    raw.map(|raw| {
        decode(raw).ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is not valid"))
    })
    .transpose()
}

/// 422 `invalid_field`: a field's value is not acceptable.
pub fn invalid_field(message: String) -> ApiError {
    ApiError::unprocessable("invalid_field", message)
}

/// Whether the client already has the version `etag` names (`If-None-Match`): answer 304.
pub fn not_modified(
    req: &actix_web::HttpRequest,
    etag: &actix_web::http::header::EntityTag,
) -> bool {
    use actix_web::http::header::{Header, IfNoneMatch};
    match IfNoneMatch::parse(req) {
        Ok(IfNoneMatch::Any) => true,
        Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(etag)),
        Err(_) => false,
    }
}
