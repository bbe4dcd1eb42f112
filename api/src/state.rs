//! What every handler can reach.

use fuze_shared::{config::Config, jobs::JobQueues, keys::Keys, metrics::Metrics};
use redis::aio::ConnectionManager;
use sqlx::PgPool;

pub struct AppState {
    pub config: Config,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub keys: Keys,
    pub queues: JobQueues,
    pub metrics: Metrics,
}
