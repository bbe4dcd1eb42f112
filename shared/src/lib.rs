//! Fuze shared crate: what the api and the worker both need.
//!
//! - [`config`]: settings from the environment ([`allow_internal`]: the scraper's allow-list)
//! - [`domain`]: validated domain types (URLs, job states)
//! - [`auth`]: users and bearer tokens
//! - [`cache`]: layered read cache (in-process L1, Redis L2, single flight, deduplication)
//! - [`db`], [`bookmarks`]: PostgreSQL pool, migrations, bookmark storage
//! - [`search`]: per-user nearest-neighbour search over bookmark embeddings ([`embedding`]: their length)
//! - [`projects`]: project and task storage
//! - [`analysis`]: content analyses: keywords, tags, reading time, quality
//! - [`recommend`]: recommendations: candidates, ranking, near-duplicate removal
//! - [`query_lane`]: query embeddings from the workers, request/reply over Redis
//! - [`redis_conn`], [`keys`], [`clock`]: Redis connections, key names, millisecond times
//! - [`jobs`]: job payloads, queues, status records, retries, wake-ups
//! - [`events`]: cache invalidation events
//! - [`feed`]: the users' live events (jobs, imports, bookmarks), kept briefly for reconnects
//! - [`imports`]: bulk import sessions: staging, progress, crawl feeding, control
//! - [`metrics`]: Prometheus registry
//! - [`telemetry`]: logging setup
//! - [`cli`]: how the command-line programs report errors
//! - [`views`]: the cached JSON views and their keys, shared by the api and the warm job

pub mod allow_internal;
pub mod analysis;
pub mod auth;
pub mod bookmarks;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod embedding;
pub mod events;
pub mod feed;
pub mod imports;
pub mod jobs;
pub mod keys;
pub mod keyset;
pub mod metrics;
pub mod projects;
pub mod query_lane;
pub mod recommend;
pub mod redis_conn;
pub mod search;
pub mod telemetry;
pub mod views;
