//! Replies of the read path: cached values with their ETag (304 when the client has it), and
//! uncached bodies marked `no-store`.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, EntityTag, Header, IfNoneMatch},
};
use fuze_shared::cache::{Bytes, CachedValue};

use crate::{error::ApiError, read::Uncached};

/// A finished answer: cacheable, or not (a keyword fallback, to be computed again next time).
#[derive(Clone)]
pub enum Answer {
    Cached(CachedValue),
    Uncached(Bytes),
}

impl Answer {
    /// The answer of a cache load whose loader may decline to cache (`Err(Uncached)`).
    pub fn from_load<L>(loaded: Result<(CachedValue, L), Uncached>) -> Result<Self, ApiError> {
        match loaded {
            Ok((value, _layer)) => Ok(Answer::Cached(value)),
            Err(Uncached::Keyword(body)) => Ok(Answer::Uncached(body)),
            Err(Uncached::Failed(e)) => Err(e),
        }
    }

    pub fn respond(self, req: &HttpRequest) -> HttpResponse {
        match self {
            Answer::Cached(value) => cached_json(req, value),
            Answer::Uncached(body) => no_store_json(body),
        }
    }
}

/// A cached JSON body with its ETag; 304 when the client already has it.
pub fn cached_json(req: &HttpRequest, value: CachedValue) -> HttpResponse {
    let etag = value
        .etag
        .as_deref()
        .map(|e| EntityTag::new_strong(e.trim_matches('"').to_owned()));
    let unchanged = etag
        .as_ref()
        .is_some_and(|etag| match IfNoneMatch::parse(req) {
            Ok(IfNoneMatch::Any) => true,
            Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(etag)),
            Err(_) => false,
        });
    let mut res = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::CACHE_CONTROL, "private, no-cache"));
    if let Some(etag) = etag {
        res.insert_header(header::ETag(etag));
    }
    if unchanged {
        res.finish()
    } else {
        res.content_type("application/json").body(value.bytes)
    }
}

/// A JSON body that no cache may keep.
pub fn no_store_json(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}
