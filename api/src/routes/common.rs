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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl ListQuery {
    /// The page size and position, checked as for bookmarks (400 when invalid).
    pub fn page(&self, limits: &ApiConfig) -> Result<(u32, Option<Cursor>), ApiError> {
        let limit = self.limit.unwrap_or(limits.page_size_default);
        if limit == 0 || limit > limits.page_size_max {
            return Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and {}", limits.page_size_max),
            ));
        }
        let after = self
            .cursor
            .as_deref()
            .map(|raw| {
                Cursor::decode(raw)
                    .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is not valid"))
            })
            .transpose()?;
        Ok((limit, after))
    }
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
