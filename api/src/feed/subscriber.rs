//! Hears every user's feed events on the feed channel and hands them to this instance's streams.
//! Events published while not subscribed are still kept in each user's stream, so every
//! (re)connect tells the open streams to catch up from there.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use fuze_shared::feed::Entry;

use super::Hub;

/// Runs until the process ends, reconnecting with backoff.
pub async fn run(hub: Arc<Hub>, redis_url: String, channel: String) {
    let mut delay = Duration::from_millis(50);
    loop {
        match listen(&hub, &redis_url, &channel).await {
            Ok(()) => tracing::warn!("feed subscription ended; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "feed subscription failed; reconnecting"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

async fn listen(hub: &Hub, redis_url: &str, channel: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(redis_url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    hub.catch_up_all();
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let payload: String = msg.get_payload().unwrap_or_default();
        match Entry::parse_message(&payload) {
            Some(entry) => hub.deliver(entry),
            None => tracing::warn!("ignoring a feed message that does not parse"),
        }
    }
    Ok(())
}
