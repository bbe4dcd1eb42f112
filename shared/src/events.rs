//! Invalidation events: whoever writes publishes; every api instance applies them to its L1 cache.

use redis::AsyncCommands;

use crate::cache::{CacheType, Invalidation, LayeredCache};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// This user's bookmarks changed but no analysis did (saved, scraped, embedded, edited,
    /// imported).
    BookmarksChanged { user_id: Uuid },
    /// A bookmark's analysis changed or went with its bookmark (analysed, deleted).
    AnalysesChanged { user_id: Uuid },
    /// This project of this user or one of its tasks changed (created, edited, deleted).
    ProjectChanged { user_id: Uuid, project_id: Uuid },
    /// This user's bookmarks were embedded again (the reindex job): what semantic search and
    /// recommendations find changes; lists and analyses do not.
    VectorsChanged { user_id: Uuid },
}

/// What lists, searches and recommendations show: every bookmark change reaches them.
const BOOKMARK_READS: [CacheType; 3] = [
    CacheType::UserBookmarks,
    CacheType::Query,
    CacheType::Recommendations,
];

/// What semantic search and recommendations read: the vectors alone reach them.
const VECTOR_READS: [CacheType; 2] = [CacheType::Query, CacheType::Recommendations];

impl Event {
    /// The user whose cached reads the event makes stale.
    pub fn user_id(&self) -> Uuid {
        match self {
            Self::BookmarksChanged { user_id }
            | Self::AnalysesChanged { user_id }
            | Self::ProjectChanged { user_id, .. }
            | Self::VectorsChanged { user_id } => *user_id,
        }
    }

    /// The types of the user's cached values the event makes stale. Lists show analyses' tags,
    /// so an analysis change reaches every type; a project only seeds recommendations.
    pub fn stale_types(&self) -> &'static [CacheType] {
        match self {
            Self::BookmarksChanged { .. } => &BOOKMARK_READS,
            Self::AnalysesChanged { .. } => &CacheType::PER_USER,
            Self::ProjectChanged { .. } => &[CacheType::Recommendations],
            Self::VectorsChanged { .. } => &VECTOR_READS,
        }
    }

    /// The invalidation the event asks of every process.
    pub fn invalidation(&self) -> Invalidation {
        Invalidation::User(self.user_id(), self.stale_types())
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
    cache
        .invalidate_user(event.user_id(), event.stale_types())
        .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_names_the_cached_reads_it_makes_stale() {
        let user_id = Uuid::from_u128(1);
        let reindexed = Event::VectorsChanged { user_id };
        assert_eq!(
            reindexed.stale_types(),
            &[CacheType::Query, CacheType::Recommendations]
        );
        assert!(
            Event::BookmarksChanged { user_id }
                .stale_types()
                .contains(&CacheType::UserBookmarks)
        );
        assert!(
            !Event::BookmarksChanged { user_id }
                .stale_types()
                .contains(&CacheType::Analysis)
        );
        assert_eq!(
            serde_json::to_value(&reindexed).expect("json"),
            serde_json::json!({ "type": "vectors_changed", "user_id": user_id })
        );
        assert_eq!(reindexed.user_id(), user_id);
    }
}
