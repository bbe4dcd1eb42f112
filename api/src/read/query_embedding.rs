//! A query's vector: from the shared embedding cache, else from a worker through the query lane
//! within the configured timeout (the api never loads the model).

use fuze_shared::{embedding::DIMENSIONS, query_lane};

use crate::state::AppState;

/// `None` when no worker answered in time; callers fall back to keyword search.
pub async fn query_embedding(state: &AppState, q: &str) -> Option<Vec<f32>> {
    let key = state.keys.embedding(&state.space.name, q);
    let mut conn = state.redis.clone();
    if let Some(v) = query_lane::cached_embedding(&mut conn, &key, DIMENSIONS).await {
        return Some(v);
    }
    state
        .lane
        .embed(q, state.config.api.query_embed_timeout)
        .await
}
