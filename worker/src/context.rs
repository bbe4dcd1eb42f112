//! Everything a job handler needs, built once per worker process.

use std::sync::Arc;

use fuze_shared::{
    cache::LayeredCache,
    config::Config,
    embedding::EmbeddingSpace,
    events::{self, Event},
    jobs::JobQueues,
    keys::Keys,
    metrics::Metrics,
};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    analyze::TagIndex,
    embed::{Embedder, Splitter},
    jobs::dispatch::Dispatchers,
    politeness::{Politeness, robots::Robots},
    scrape::Scraper,
};

pub struct JobContext {
    pub config: Config,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub keys: Keys,
    pub queues: JobQueues,
    pub metrics: Metrics,
    pub scraper: Scraper,
    /// Each host's turn, shared with every worker process.
    pub politeness: Politeness,
    pub robots: Robots,
    /// Wakes this process's dispatchers when a run ends.
    pub dispatchers: Dispatchers,
    pub embedder: Embedder,
    /// Cuts pages into passages of the model's window.
    pub splitter: Arc<Splitter>,
    /// The embedding space this worker writes (model, weights, passage scheme).
    pub space: EmbeddingSpace,
    /// For invalidation only (generation bumps); workers keep no L1.
    pub cache: LayeredCache,
    /// The tag vocabulary's embeddings, computed on first use.
    pub tags: tokio::sync::OnceCell<Arc<TagIndex>>,
}

pub type SharedContext = Arc<JobContext>;

impl JobContext {
    /// After a stage changed a bookmark (page, embedding, status) but not its analysis.
    pub async fn bookmarks_changed(&self, user_id: Uuid) {
        self.announce(&Event::BookmarksChanged { user_id }).await;
    }

    /// After the reindex job embedded some of the user's bookmarks again.
    pub async fn vectors_changed(&self, user_id: Uuid) {
        self.announce(&Event::VectorsChanged { user_id }).await;
    }

    /// After the analyze stage stored a bookmark's analysis.
    pub async fn analyses_changed(&self, user_id: Uuid) {
        self.announce(&Event::AnalysesChanged { user_id }).await;
    }

    async fn announce(&self, event: &Event) {
        let mut conn = self.redis.clone();
        events::announce(&self.cache, &mut conn, &self.keys.events_channel(), event).await;
    }
}
