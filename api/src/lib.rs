//! Fuze HTTP API: thin handlers that validate, authorize, read, and enqueue.
//!
//! - [`startup`]: builds and runs the server (port 0 in tests)
//! - [`routes`]: route families under `/api/v1`, plus health and metrics
//! - [`read`]: the read path the routes share: cached replies, query embeddings, fallbacks
//! - [`auth`]: bearer-token extractors
//! - [`limits`]: per-user rate limits and database turns
//! - [`error`]: the JSON error format
//! - [`imports`]: import files: their formats and their streamed upload
//! - [`events`]: applies invalidation events to this instance's L1 cache
//! - [`feed`]: the users' live event streams on this instance
//! - [`job_retry`]: retrying a failed job, for its owner and for admins
//! - [`state`]: shared handler state
//! - [`token_cache`]: recently verified bearer tokens

pub mod auth;
pub mod error;
pub mod events;
pub mod feed;
pub mod imports;
pub mod job_retry;
pub mod limits;
pub mod openapi;
pub mod read;
pub mod routes;
pub mod startup;
pub mod state;
pub mod token_cache;
