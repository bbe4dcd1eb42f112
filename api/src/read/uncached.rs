//! Answers computed on a cache miss that must not be cached: a keyword fallback (no worker embedded
//! the query in time, so a later request should try the semantic path again) or an error. Shared
//! by search and recommendations, which return `Err(Uncached)` from their cache loaders.

use fuze_shared::cache::Bytes;
use serde::Serialize;

use crate::error::ApiError;

pub enum Uncached {
    /// A complete JSON body to send as is, with `cache-control: no-store`.
    Keyword(Bytes),
    Failed(ApiError),
}

impl From<sqlx::Error> for Uncached {
    fn from(e: sqlx::Error) -> Self {
        Self::Failed(e.into())
    }
}

/// `value` as a JSON body.
pub fn to_json(value: &impl Serialize) -> Result<Bytes, Uncached> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Uncached::Failed(ApiError::Internal(e.into())))
}
