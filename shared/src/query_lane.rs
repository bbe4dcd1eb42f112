//! The low-latency request/reply lane for query embeddings: the api (which never loads the model)
//! asks, any worker answers. Requests go on a Redis list that every worker pops; replies come back on
//! the asking api instance's own pub/sub channel, so one subscription serves all its requests.
//! A request carries a deadline: workers skip what the api stopped waiting for.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use dashmap::DashMap;
use futures::StreamExt;
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::keys::Keys;

/// Requests not popped within this long expire with their list (no worker is running).
const REQUEST_LIST_TTL_S: i64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaneRequest {
    pub id: String,
    pub text: String,
    pub reply_to: String,
    /// Unix milliseconds after which nobody waits for the answer.
    pub deadline_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaneReply {
    pub id: String,
    pub embedding: Vec<f32>,
}

pub fn requests_key(keys: &Keys) -> String {
    format!("{}:qembed:requests", keys.prefix())
}

pub fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// The api side: send a text, wait for its embedding or give up at the timeout.
#[derive(Clone)]
pub struct QueryLane {
    conn: ConnectionManager,
    requests: String,
    reply_channel: String,
    pending: Arc<DashMap<String, oneshot::Sender<Vec<f32>>>>,
}

impl QueryLane {
    /// Starts the reply subscriber of this instance (a unique channel per process).
    pub fn start(conn: ConnectionManager, keys: &Keys, redis_url: String) -> Self {
        let instance = crate::jobs::queue::new_task_id();
        let lane = Self {
            conn,
            requests: requests_key(keys),
            reply_channel: format!("{}:qembed:reply:{instance}", keys.prefix()),
            pending: Arc::default(),
        };
        tokio::spawn(lane.clone().run_replies(redis_url));
        lane
    }

    /// The embedding of `text`, or `None` if no worker answered within `timeout`.
    pub async fn embed(&self, text: &str, timeout: Duration) -> Option<Vec<f32>> {
        let id = crate::jobs::queue::new_task_id();
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id.clone(), tx);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let request = LaneRequest {
            id: id.clone(),
            text: text.to_owned(),
            reply_to: self.reply_channel.clone(),
            deadline_ms: now_ms().saturating_add(timeout_ms),
        };
        let answer = async {
            let payload = serde_json::to_string(&request).ok()?;
            let mut conn = self.conn.clone();
            let pushed: redis::RedisResult<()> = redis::pipe()
                .lpush(&self.requests, payload)
                .ignore()
                .expire(&self.requests, REQUEST_LIST_TTL_S)
                .ignore()
                .query_async(&mut conn)
                .await;
            if let Err(e) = pushed {
                tracing::warn!(error = %e, "query lane push failed");
                return None;
            }
            rx.await.ok()
        };
        let result = tokio::time::timeout(timeout, answer).await.ok().flatten();
        self.pending.remove(&id);
        result
    }

    async fn run_replies(self, redis_url: String) {
        let mut delay = Duration::from_millis(50);
        loop {
            if let Err(e) = self.listen(&redis_url).await {
                tracing::warn!(error = %e, "query lane reply subscription failed; reconnecting");
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn listen(&self, redis_url: &str) -> redis::RedisResult<()> {
        let client = redis::Client::open(redis_url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&self.reply_channel).await?;
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let payload: Vec<u8> = msg.get_payload().unwrap_or_default();
            let Ok(reply) = serde_json::from_slice::<LaneReply>(&payload) else {
                continue;
            };
            if let Some((_, tx)) = self.pending.remove(&reply.id) {
                let _ = tx.send(reply.embedding);
            }
        }
        Ok(())
    }
}

/// Reads a cached embedding (little-endian f32s, as the worker writes them).
pub async fn cached_embedding(
    conn: &mut ConnectionManager,
    key: &str,
    dims: usize,
) -> Option<Vec<f32>> {
    let bytes: Option<Vec<u8>> = conn.get(key).await.ok().flatten();
    decode_vector(&bytes?, dims)
}

/// Little-endian f32s: 1.5 KiB for 384 dimensions, no parsing.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn decode_vector(bytes: &[u8], dims: usize) -> Option<Vec<f32>> {
    (bytes.len() == dims * 4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_wrong_sizes_are_ignored() {
        let v = vec![0.25f32, -1.5, 3.0];
        assert_eq!(decode_vector(&encode_vector(&v), 3), Some(v));
        assert_eq!(decode_vector(&[0u8; 8], 3), None);
    }
}
