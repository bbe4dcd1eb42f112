//! Everything a job handler needs, built once per worker process.

use std::sync::Arc;

use fuze_shared::{
    config::Config,
    events::{self, Event},
    jobs::JobQueues,
    keys::Keys,
    metrics::Metrics,
};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{embed::Embedder, scrape::Scraper};

pub struct JobContext {
    pub config: Config,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub keys: Keys,
    pub queues: JobQueues,
    pub metrics: Metrics,
    pub scraper: Scraper,
    pub embedder: Embedder,
}

pub type SharedContext = Arc<JobContext>;

impl JobContext {
    pub async fn bookmarks_changed(&self, user_id: Uuid) {
        let mut conn = self.redis.clone();
        events::publish(
            &mut conn,
            &self.keys.events_channel(),
            &Event::BookmarksChanged { user_id },
        )
        .await;
    }
}
