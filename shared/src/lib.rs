//! Fuze shared crate: what the api and the worker both need.
//!
//! - [`config`]: settings from the environment
//! - [`domain`]: validated domain types (URLs, job states)
//! - [`auth`]: users and bearer tokens
//! - [`cache`]: layered read cache (in-process L1, Redis L2, single flight, deduplication)
//! - [`db`], [`bookmarks`]: PostgreSQL pool, migrations, bookmark storage
//! - [`projects`]: project and task storage
//! - [`redis_conn`], [`keys`]: Redis connections and key names
//! - [`jobs`]: job payloads, queues, status records, retries, wake-ups
//! - [`events`]: cache invalidation events
//! - [`metrics`]: Prometheus registry
//! - [`telemetry`]: logging setup

pub mod auth;
pub mod bookmarks;
pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod projects;
pub mod redis_conn;
pub mod telemetry;
