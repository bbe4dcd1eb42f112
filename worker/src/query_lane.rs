//! Serves query embeddings to the api over the Redis lane (see `fuze_shared::query_lane`).
//! Whatever has queued while the model was busy is embedded together in one call.

use std::{num::NonZeroUsize, time::Duration};

use fuze_shared::query_lane::{LaneReply, LaneRequest, encode_vector, now_ms, requests_key};
use redis::{AsyncCommands, AsyncConnectionConfig};

use crate::context::SharedContext;

/// Most requests taken in one go (one embed call).
const MAX_BATCH: usize = 32;

/// Runs until the process ends; reconnects after errors.
pub async fn serve(ctx: SharedContext) {
    loop {
        if let Err(e) = serve_connected(&ctx).await {
            tracing::warn!(error = %e, "query lane failed; reconnecting");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn serve_connected(ctx: &SharedContext) -> anyhow::Result<()> {
    let client = redis::Client::open(ctx.config.redis_url.as_str())?;
    // A connection of its own: BRPOP blocks it. The timeout must outlast the BRPOP wait.
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let key = requests_key(&ctx.keys);
    loop {
        let popped: Option<(String, String)> = conn.brpop(&key, 1.0).await?;
        let Some((_, first)) = popped else { continue };
        let more: Option<Vec<String>> = conn.rpop(&key, NonZeroUsize::new(MAX_BATCH - 1)).await?;
        let now = now_ms();
        let batch: Vec<LaneRequest> = std::iter::once(first)
            .chain(more.into_iter().flatten())
            .filter_map(|raw| serde_json::from_str::<LaneRequest>(&raw).ok())
            .filter(|r| r.deadline_ms > now)
            .collect();
        if !batch.is_empty() {
            answer(ctx, batch).await;
        }
    }
}

async fn answer(ctx: &SharedContext, batch: Vec<LaneRequest>) {
    let started = std::time::Instant::now();
    let texts = batch.iter().map(|r| r.text.clone()).collect();
    let vectors = match ctx.embedder.embed(texts).await {
        Ok(v) => v,
        Err(e) => return tracing::warn!(error = %e, "query embedding failed"),
    };
    let mut conn = ctx.redis.clone();
    let ttl = ctx.config.ttl.embedding.as_secs().max(1);
    for (request, vector) in batch.into_iter().zip(vectors) {
        let cache_key = ctx.keys.embedding(&ctx.space.name, &request.text);
        let reply = LaneReply {
            id: request.id,
            embedding: vector,
        };
        let Ok(payload) = serde_json::to_vec(&reply) else {
            continue;
        };
        let sent: redis::RedisResult<()> = redis::pipe()
            .publish(&request.reply_to, payload)
            .ignore()
            .set_ex(cache_key, encode_vector(&reply.embedding), ttl)
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "query embedding reply failed");
        }
    }
    ctx.metrics
        .query_lane_seconds
        .observe(started.elapsed().as_secs_f64());
}
