//! `GET /api/v1/search?q=&limit=`: semantic search over the user's bookmarks.
//!
//! The query is embedded by a worker (the api never loads the model) through the query lane, or
//! read from the embedding cache; results are cached per user (`query`, 5 min) and invalidated with
//! the user's bookmarks. If no worker answers in time, Postgres full-text search answers instead and
//! the reply says `"mode": "keyword"` (those results are not cached).

use actix_web::{HttpRequest, HttpResponse, web};
use fuze_shared::{
    bookmarks::{self, Bookmark},
    cache::{Bytes, CacheType, hash_parts},
    domain::QueryText,
    query_lane, search,
};
use serde::{Deserialize, Serialize};

use crate::{
    auth::AuthUser,
    error::ApiError,
    routes::{
        bookmarks::cached_json,
        uncached::{Uncached, to_json},
    },
    state::AppState,
};

/// The dimension of stored embeddings (`saved_content.embedding vector(384)`).
const EMBEDDING_DIMENSIONS: usize = 384;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/search", web::get().to(search));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    q: String,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct Hit {
    bookmark: Bookmark,
    /// Cosine similarity (semantic) or text rank (keyword): higher is better.
    score: f32,
}

#[derive(Serialize)]
struct Results<'a> {
    mode: &'static str,
    query: &'a str,
    items: Vec<Hit>,
}

async fn search(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.config.api;
    let q = QueryText::parse(&query.q, limits.max_query_chars)
        .map_err(|m| ApiError::bad_request("invalid_query", m))?;
    let q = q.as_str();
    let limit = query.limit.unwrap_or(10);
    if limit == 0 || limit > limits.search_limit_max {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {}", limits.search_limit_max),
        ));
    }
    let key = hash_parts(&[q.as_bytes(), &limit.to_le_bytes()]);
    let loaded = state
        .cache
        .get_or_load_value(
            CacheType::Query,
            Some(user.0),
            &key,
            run(&state, user, q, limit),
        )
        .await;
    match loaded {
        Ok((value, _layer)) => Ok(cached_json(&req, value)),
        Err(Uncached::Keyword(body)) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("cache-control", "no-store"))
            .body(body)),
        Err(Uncached::Failed(e)) => Err(e),
    }
}

async fn run(state: &AppState, user: AuthUser, q: &str, limit: u32) -> Result<Bytes, Uncached> {
    let Some(vector) = query_embedding(state, q).await else {
        let items = bookmarks::keyword_search(&state.db, user.0, q, limit)
            .await?
            .into_iter()
            .map(|(bookmark, score)| Hit { bookmark, score })
            .collect();
        return Err(Uncached::Keyword(to_json(&Results {
            mode: "keyword",
            query: q,
            items,
        })?));
    };
    let parts = state.config.api.search_scan_parts;
    let nearest = search::nearest_bookmarks(&state.db, user.0, &vector, limit, parts).await?;
    let ids: Vec<_> = nearest.iter().map(|(id, _)| *id).collect();
    let mut found = bookmarks::by_ids(&state.db, user.0, &ids)
        .await?
        .into_iter();
    // `by_ids` keeps the order of `ids` and skips rows deleted meanwhile.
    let mut items = Vec::with_capacity(ids.len());
    for (id, distance) in nearest {
        if let Some(bookmark) = found.as_slice().first().filter(|b| b.id == id).cloned() {
            found.next();
            items.push(Hit {
                bookmark,
                score: 1.0 - distance,
            });
        }
    }
    to_json(&Results {
        mode: "semantic",
        query: q,
        items,
    })
}

/// From the shared embedding cache, else from a worker within the configured timeout.
pub(crate) async fn query_embedding(state: &AppState, q: &str) -> Option<Vec<f32>> {
    let key = state.keys.embedding(&state.config.embed.model_id(), q);
    let mut conn = state.redis.clone();
    if let Some(v) = query_lane::cached_embedding(&mut conn, &key, EMBEDDING_DIMENSIONS).await {
        return Some(v);
    }
    state
        .lane
        .embed(q, state.config.api.query_embed_timeout)
        .await
}
