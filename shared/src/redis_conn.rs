//! Redis connections that survive restarts.

use std::time::Duration;

use anyhow::Context;
use redis::{
    IntoConnectionInfo, ProtocolVersion,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

/// A multiplexed, auto-reconnecting connection. The 500 ms default response timeout of redis-rs made
/// apalis workers die on a slow reply; a longer timeout and retries let them ride out a restart.
///
/// Always RESP3: over RESP2 a `ConnectionManager` only notices a dropped connection when a command
/// fails on it, so after a Redis restart the first command of every idle process failed (the api
/// answered 503 to the next save). Over RESP3 it reconnects as soon as the server goes away, and
/// commands issued meanwhile wait for the new connection instead of failing.
pub async fn connection_manager(url: &str) -> anyhow::Result<ConnectionManager> {
    let info = url.into_connection_info().context("invalid REDIS_URL")?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client =
        redis::Client::open(info.set_redis_settings(settings)).context("invalid REDIS_URL")?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(6)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config)
        .await
        .with_context(|| format!("failed to connect to Redis at {url}"))
}
