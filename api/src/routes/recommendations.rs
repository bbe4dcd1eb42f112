//! `GET /api/v1/recommendations?project_id=&q=&limit=`: the user's bookmarks ranked for a project
//! (its name, description and open tasks) or a query, by similarity, quality and recency, without
//! near-duplicates (see `fuze_shared::recommend`).
//!
//! Cached 30 min (by default) under the user's generation of recommendations, which every
//! bookmark, analysis, project and task change bumps. Repeats of one request within a short window (a double click) share one piece of
//! work, including the uncached keyword fallback used when no worker embeds the seed in time.

use super::table::Routes;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use fuze_shared::{
    bookmarks::Bookmark,
    cache::{Bytes, CacheType, DedupKey, hash_parts},
    domain::QueryText,
    recommend::{self, Weights},
    search::keyword,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{ApiError, ErrorBody},
    read::{self, Answer, Uncached, to_json},
    state::AppState,
};

/// Candidates re-ranked per recommendation asked for.
const CANDIDATES_PER_PICK: u32 = 5;
/// A project's seed: at most this many open tasks, cut at this many characters.
const SEED_MAX_TASKS: u32 = 50;
const SEED_MAX_CHARS: usize = 4_000;

#[derive(OpenApi)]
#[openapi(paths(recommendations))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/recommendations", |m| m.get(recommendations));
}

/// Exactly one of `project_id` and `q`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RecommendQuery {
    project_id: Option<Uuid>,
    q: Option<String>,
    limit: Option<u32>,
}

/// What the recommendations are for.
enum Seed {
    Project(Uuid),
    Query(String),
}

#[derive(Serialize, ToSchema)]
struct Item {
    bookmark: Bookmark,
    /// The blended ranking score (higher is better).
    score: f32,
    /// Cosine similarity to the seed (semantic), or text rank (keyword).
    similarity: f32,
}

#[derive(Serialize, ToSchema)]
struct Results {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    items: Vec<Item>,
}

#[utoipa::path(
    get, path = "/api/v1/recommendations", tag = "search",
    params(RecommendQuery),
    responses(
        (status = 200, description = "Recommended bookmarks, best first", body = Results),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, description = "`invalid_query`, `invalid_limit`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such project of this user", body = ErrorBody),
    ),
)]
async fn recommendations(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<RecommendQuery>,
) -> Result<HttpResponse, ApiError> {
    let (seed, limit) = validate(&state, query.into_inner())?;
    let key = match &seed {
        Seed::Project(id) => format!("project:{id}:{limit}"),
        Seed::Query(q) => format!("q:{}:{limit}", hash_parts(&[q.as_bytes()])),
    };
    // The user's generation of recommendations is part of the submission: a repeat after a write is new work, not a
    // duplicate (the window would otherwise serve an answer the write made stale).
    let generation = state
        .cache
        .generation(user.0, CacheType::Recommendations)
        .await
        .unwrap_or_default();
    let submission = format!("{key}:g{generation}");
    let dedup_key = DedupKey::new(user.0, "recommendations", submission.as_bytes());
    let (answer, _duplicate) = state
        .recommend_dedup
        .run(dedup_key, || answer(&state, user.0, &seed, limit, &key))
        .await?;
    Ok(answer.respond(&req))
}

fn validate(state: &AppState, q: RecommendQuery) -> Result<(Seed, u32), ApiError> {
    let limits = &state.config.api;
    let limit = q.limit.unwrap_or(10);
    if limit == 0 || limit > limits.recommend_limit_max {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {}", limits.recommend_limit_max),
        ));
    }
    let seed = match (q.project_id, q.q.as_deref()) {
        (Some(id), None) => Seed::Project(id),
        (None, Some(text)) => QueryText::parse(text, limits.max_query_chars)
            .map(|t| Seed::Query(t.as_str().to_owned()))
            .map_err(|m| ApiError::bad_request("invalid_query", m))?,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "give exactly one of project_id and q",
            ));
        }
    };
    Ok((seed, limit))
}

async fn answer(
    state: &AppState,
    user: Uuid,
    seed: &Seed,
    limit: u32,
    key: &str,
) -> Result<Answer, ApiError> {
    let loaded = state
        .cache
        .get_or_load_value(
            CacheType::Recommendations,
            Some(user),
            key,
            compute(state, user, seed, limit),
        )
        .await;
    Answer::from_load(loaded)
}

async fn compute(state: &AppState, user: Uuid, seed: &Seed, limit: u32) -> Result<Bytes, Uncached> {
    let (project_id, query, text) = match seed {
        Seed::Project(id) => {
            let text =
                recommend::project_seed_text(&state.db, user, *id, SEED_MAX_TASKS, SEED_MAX_CHARS)
                    .await?
                    .ok_or(Uncached::Failed(ApiError::NotFound))?;
            (Some(*id), None, text)
        }
        Seed::Query(q) => (None, Some(q.clone()), q.clone()),
    };
    let Some(vector) = read::query_embedding(state, &text).await else {
        // No worker answered in time: full-text search over the same seed, said so, not cached.
        let ranked = keyword::keyword_ranked(&state.db, user, &text, limit)
            .await?
            .into_iter()
            .map(|hit| (hit.id, hit.rank))
            .collect();
        let items = read::hydrate(&state.db, user, ranked)
            .await?
            .into_iter()
            .map(|(bookmark, rank)| Item {
                bookmark,
                score: rank,
                similarity: rank,
            })
            .collect();
        let body = to_json(&Results {
            mode: "keyword",
            project_id,
            query,
            items,
        })?;
        return Err(Uncached::Keyword(body));
    };
    let candidates = recommend::candidates(
        &state.db,
        &state.space,
        user,
        &vector,
        limit * CANDIDATES_PER_PICK,
        state.config.api.search_scan_parts,
    )
    .await?;
    let picks = recommend::rank(&candidates, Utc::now(), &Weights::default(), limit as usize);
    let ranked = picks.into_iter().map(|p| (p.id, p)).collect();
    let items = read::hydrate(&state.db, user, ranked)
        .await?
        .into_iter()
        .map(|(bookmark, pick)| Item {
            bookmark,
            score: pick.score,
            similarity: pick.similarity,
        })
        .collect();
    to_json(&Results {
        mode: "semantic",
        project_id,
        query,
        items,
    })
}
