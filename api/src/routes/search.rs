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
    search,
};
use serde::{Deserialize, Serialize};

use crate::{
    auth::AuthUser,
    error::ApiError,
    read::{self, Answer, Uncached, to_json},
    state::AppState,
};

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
    Ok(Answer::from_load(loaded)?.respond(&req))
}

async fn run(state: &AppState, user: AuthUser, q: &str, limit: u32) -> Result<Bytes, Uncached> {
    let Some(vector) = read::query_embedding(state, q).await else {
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
    let ranked = nearest.into_iter().map(|(id, d)| (id, 1.0 - d)).collect();
    let items = read::hydrate(&state.db, user.0, ranked)
        .await?
        .into_iter()
        .map(|(bookmark, score)| Hit { bookmark, score })
        .collect();
    to_json(&Results {
        mode: "semantic",
        query: q,
        items,
    })
}
