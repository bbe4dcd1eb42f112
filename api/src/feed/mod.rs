//! Users' live events on this instance: one subscription to the feed channel ([`subscriber`])
//! hands each event to the open streams of its user ([`hub`]); each stream ([`stream`]) replays
//! what a reconnecting client missed, then follows, with heartbeats.

pub mod hub;
pub mod stream;
pub mod subscriber;

use fuze_shared::feed::{BookmarkChange, Feed, FeedEvent, OpenStreams};
use redis::aio::ConnectionManager;
use uuid::Uuid;

pub use hub::Hub;

/// What the events route needs: where events are kept, the live hand-off, the per-user cap.
pub struct Feeds {
    pub feed: Feed,
    pub hub: std::sync::Arc<Hub>,
    pub open: OpenStreams,
}

impl Feeds {
    /// Sends an event to the user's streams (best effort).
    pub async fn tell(&self, conn: &ConnectionManager, user_id: Uuid, event: &FeedEvent) {
        let mut conn = conn.clone();
        self.feed.publish(&mut conn, user_id, event).await;
    }

    pub async fn bookmark(
        &self,
        conn: &ConnectionManager,
        user_id: Uuid,
        bookmark_id: Uuid,
        change: BookmarkChange,
    ) {
        let event = FeedEvent::Bookmark {
            bookmark_id,
            change,
        };
        self.tell(conn, user_id, &event).await;
    }
}
