//! Applies invalidation events from every writer (api instances and workers) to this instance's
//! L1 cache. Events published while not subscribed are lost, so every (re)connect flushes L1.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use fuze_shared::{
    cache::{FlushReason, LayeredCache},
    events::Event,
};
use prometheus::IntGauge;

/// Runs until the process ends, reconnecting with backoff.
/// `up` is 1 while subscribed and 0 otherwise, for the "subscriber down" alert.
pub async fn run_subscriber(
    cache: Arc<LayeredCache>,
    up: IntGauge,
    redis_url: String,
    channel: String,
) {
    let mut delay = Duration::from_millis(50);
    loop {
        let listened = listen(&cache, &up, &redis_url, &channel).await;
        up.set(0);
        match listened {
            Ok(()) => tracing::warn!("event subscription ended; flushing L1 and reconnecting"),
            Err(e) => tracing::warn!(error = %e, "event subscription failed; reconnecting"),
        }
        cache.flush_all(FlushReason::SubscriptionLost);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

async fn listen(
    cache: &LayeredCache,
    up: &IntGauge,
    redis_url: &str,
    channel: &str,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(redis_url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    // Anything published before this point was missed.
    cache.flush_all(FlushReason::SubscriptionLost);
    up.set(1);
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let payload: String = msg.get_payload().unwrap_or_default();
        match serde_json::from_str::<Event>(&payload) {
            Ok(event) => cache.apply_event(&event.invalidation()),
            Err(e) => tracing::warn!(error = %e, "ignoring an event that does not decode"),
        }
    }
    Ok(())
}
