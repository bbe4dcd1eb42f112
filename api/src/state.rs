//! What every handler can reach.

use std::sync::Arc;

use fuze_shared::{
    cache::{LayeredCache, RequestDedup},
    config::Config,
    jobs::JobQueues,
    keys::Keys,
    metrics::Metrics,
    query_lane::QueryLane,
};
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::read::Answer;

pub struct AppState {
    pub config: Config,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub keys: Keys,
    pub queues: JobQueues,
    pub metrics: Metrics,
    /// Read cache: this process's L1 over Redis L2.
    pub cache: Arc<LayeredCache>,
    /// Query embeddings from the workers.
    pub lane: QueryLane,
    /// Recently verified bearer tokens.
    pub tokens: crate::token_cache::TokenCache,
    /// Absorbs repeated recommendation requests (double clicks).
    pub recommend_dedup: RequestDedup<Answer>,
    /// Per-user rate limits and database turns.
    pub limits: crate::limits::UserLimits,
    /// The embedding space searched: the configured model's, as the workers compute it.
    pub space: fuze_shared::embedding::EmbeddingSpace,
    /// Users' live events: where they are kept, this instance's open streams, the per-user cap.
    pub feeds: crate::feed::Feeds,
}
