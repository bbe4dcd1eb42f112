//! Redis connections that survive restarts.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A multiplexed, auto-reconnecting connection. The 500 ms default response timeout of redis-rs made
/// apalis workers die on a slow reply; a longer timeout and retries let them ride out a restart.
pub async fn connection_manager(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).context("invalid REDIS_URL")?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(6)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config)
        .await
        .with_context(|| format!("failed to connect to Redis at {url}"))
}
