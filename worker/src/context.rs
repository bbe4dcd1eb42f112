//! Everything a job handler needs, built once per worker process.

use std::sync::Arc;

use fuze_shared::{
    cache::LayeredCache,
    config::Config,
    embedding::EmbeddingSpace,
    events::{self, Event},
    feed::{BookmarkChange, Feed, FeedEvent},
    imports::progress,
    jobs::{JobQueues, JobRecord, records},
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
    /// Users' live events (jobs, imports, bookmarks).
    pub feed: Feed,
    /// For invalidation only (generation bumps); workers keep no L1.
    pub cache: LayeredCache,
    /// The tag vocabulary's embeddings, computed on first use.
    pub tags: tokio::sync::OnceCell<Arc<TagIndex>>,
}

pub type SharedContext = Arc<JobContext>;

impl JobContext {
    /// After a stage changed a bookmark (page, embedding, status) but not its analysis.
    pub async fn bookmark_changed(&self, user_id: Uuid, bookmark_id: Uuid) {
        self.announce(&Event::BookmarksChanged { user_id }).await;
        self.tell(user_id, &bookmark_updated(bookmark_id)).await;
    }

    /// After the reindex job embedded some of the user's bookmarks again.
    pub async fn vectors_changed(&self, user_id: Uuid) {
        self.announce(&Event::VectorsChanged { user_id }).await;
    }

    /// After the analyze stage replaced a bookmark's analysis.
    pub async fn analysis_changed(&self, user_id: Uuid, bookmark_id: Uuid) {
        self.announce(&Event::AnalysesChanged { user_id }).await;
        self.tell(user_id, &bookmark_updated(bookmark_id)).await;
    }

    /// After a run changed its job's record: tells the owner, unless the job is an import's
    /// crawl (the import's progress speaks for those).
    pub async fn job_changed(&self, job_id: &str) {
        match records::find(&self.db, job_id).await {
            Ok(Some(job)) => self.job_seen(&job).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(job = job_id, error = %e, "job event not sent"),
        }
    }

    /// As [`Self::job_changed`], with the record at hand.
    pub async fn job_seen(&self, job: &JobRecord) {
        if let (Some(user_id), None) = (job.user_id, job.import_id) {
            self.tell(user_id, &FeedEvent::job(job)).await;
        }
    }

    /// After one of an import's crawls ended: its progress, at most once per
    /// `FUZE_EVENTS_IMPORT_INTERVAL_MS`, and always when it is `completed`.
    pub async fn import_progressed(&self, import_id: Uuid, completed: bool) {
        if !completed && !self.import_turn(import_id).await {
            return;
        }
        match progress::event(&self.db, import_id).await {
            Ok(Some((user_id, event))) => self.tell(user_id, &event).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(import = %import_id, error = %e, "import event not sent"),
        }
    }

    /// Whether this import's progress may be sent now (no other was, within the interval).
    async fn import_turn(&self, import_id: Uuid) -> bool {
        let interval = self.feed.config().import_interval;
        let ms = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut conn = self.redis.clone();
        let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(self.keys.feed_import_throttle(import_id))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await;
        // Redis away: the event would not get through either.
        matches!(set, Ok(Some(_)))
    }

    async fn tell(&self, user_id: Uuid, event: &FeedEvent) {
        let mut conn = self.redis.clone();
        self.feed.publish(&mut conn, user_id, event).await;
    }

    async fn announce(&self, event: &Event) {
        let mut conn = self.redis.clone();
        events::announce(&self.cache, &mut conn, &self.keys.events_channel(), event).await;
    }
}

fn bookmark_updated(bookmark_id: Uuid) -> FeedEvent {
    FeedEvent::Bookmark {
        bookmark_id,
        change: BookmarkChange::Updated,
    }
}
