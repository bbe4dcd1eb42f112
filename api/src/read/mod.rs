//! The read path shared by the routes that answer from the cache: cached replies with their
//! ETags, the query embedding, answers that must not be cached, and turning ranked ids into
//! bookmarks. Routes call this module; it calls no route.
//!
//! - [`respond`]: a cached value or an uncached body as an HTTP reply
//! - [`uncached`]: answers computed on a miss that must not be cached (keyword fallback, errors)
//! - [`query_embedding`]: a query's vector, from the shared cache or a worker
//! - [`hydrate`]: ranked bookmark ids to bookmarks, in rank order

pub mod hydrate;
pub mod query_embedding;
pub mod respond;
pub mod uncached;

pub use hydrate::hydrate;
pub use query_embedding::query_embedding;
pub use respond::{Answer, cached_json, no_store_json};
pub use uncached::{Uncached, to_json};
