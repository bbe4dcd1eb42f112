//! Invalidation events: whoever writes publishes; every api instance applies them to its L1 cache.

use redis::AsyncCommands;

use crate::cache::LayeredCache;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Anything in this user's bookmarks changed (saved, scraped, embedded, edited, deleted).
    BookmarksChanged { user_id: Uuid },
    /// This project of this user or one of its tasks changed (created, edited, deleted).
    ProjectChanged { user_id: Uuid, project_id: Uuid },
}

impl Event {
    /// The user whose cached reads the event makes stale.
    pub fn user_id(&self) -> Uuid {
        match self {
            Self::BookmarksChanged { user_id } | Self::ProjectChanged { user_id, .. } => *user_id,
        }
    }
}

/// After a committed write: makes the user's cached reads unreachable everywhere (a generation
/// bump in Redis, this process's L1), then tells the other processes so they drop their L1 too.
pub async fn announce(
    cache: &LayeredCache,
    conn: &mut redis::aio::ConnectionManager,
    channel: &str,
    event: &Event,
) {
    cache.invalidate_user(event.user_id()).await;
    publish(conn, channel, event).await;
}

/// Publishes an event. Best effort: a lost event is bounded by the cache TTLs, so a write never
/// fails because Redis is down.
pub async fn publish(conn: &mut redis::aio::ConnectionManager, channel: &str, event: &Event) {
    let payload = match serde_json::to_string(event) {
        Ok(p) => p,
        Err(e) => return tracing::error!(error = %e, "failed to encode event"),
    };
    let sent: redis::RedisResult<i64> = conn.publish(channel, payload).await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, "failed to publish invalidation event");
    }
}
