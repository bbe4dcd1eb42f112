//! `GET /api/v1/search?q=&limit=&mode=&explain=`: the user's bookmarks for a query.
//!
//! - `mode=hybrid` (the default): the keyword and the semantic rankings' normalized scores
//!   blended (`FUZE_SEARCH_SEMANTIC_WEIGHT`), pages whose title nearly is the query first
//!   (`fuze_shared::search::fuse`);
//! - `mode=semantic`: bookmarks by their nearest passage only;
//! - `mode=keyword`: the indexed keyword ranking only, titles first.
//!
//! The query is embedded by a worker (the api never loads the model) through the query lane, or
//! read from the embedding cache. Results are cached per user (`query`, 5 min) and invalidated with
//! the user's bookmarks. If no worker embeds the query in time, the indexed keyword ranking answers
//! and the reply says `"mode": "keyword"` (that answer is not cached, so the next request tries
//! the semantic path again). `explain=true` adds where each hit came from.

use super::table::Routes;
use actix_web::{HttpRequest, HttpResponse, web};
use fuze_shared::{
    bookmarks::Bookmark,
    cache::{Bytes, CacheType, hash_parts},
    domain::QueryText,
    search::{
        self, PassageRef,
        fuse::{self, Fused, SemanticHit},
        keyword::{self, KeywordHit},
    },
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

#[derive(OpenApi)]
#[openapi(paths(search))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/search", |m| m.get(search));
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// The query (at most `FUZE_MAX_QUERY_CHARS` characters).
    q: String,
    /// How many hits: 1 to `FUZE_SEARCH_LIMIT_MAX` (10 by default).
    limit: Option<u32>,
    /// `hybrid` (default), `semantic` or `keyword`.
    mode: Option<String>,
    /// Add where each hit came from.
    explain: Option<bool>,
}

/// How results are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Hybrid,
    Semantic,
    Keyword,
}

impl Mode {
    fn parse(mode: Option<&str>) -> Result<Self, ApiError> {
        match mode {
            None | Some("hybrid") => Ok(Mode::Hybrid),
            Some("semantic") => Ok(Mode::Semantic),
            Some("keyword") => Ok(Mode::Keyword),
            Some(other) => Err(ApiError::bad_request(
                "invalid_mode",
                format!("mode must be hybrid, semantic or keyword, not {other:?}"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Semantic => "semantic",
            Mode::Keyword => "keyword",
        }
    }
}

/// One validated search.
struct Search<'a> {
    user: Uuid,
    q: &'a str,
    limit: u32,
    mode: Mode,
    explain: bool,
}

#[derive(Serialize, ToSchema)]
struct Hit {
    bookmark: Bookmark,
    /// Higher is better: the fused score (hybrid), the cosine similarity (semantic) or the text
    /// rank (keyword).
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<Explain>,
}

/// Where a hit came from (`explain=true`).
#[derive(Serialize, ToSchema)]
struct Explain {
    /// Position in the keyword ranking (1 = best), if the page matched the words.
    keyword_rank: Option<u32>,
    /// The keyword ranking's text rank.
    keyword_score: Option<f32>,
    /// Cosine similarity of the page's best passage to the query, if it was a semantic candidate.
    semantic_similarity: Option<f32>,
    /// That passage: its position in the page and where it is in the page's text.
    best_passage: Option<PassageRef>,
    /// How closely the title matches the query (1 = same words), if it nearly does; such pages
    /// rank first.
    title_match: Option<f32>,
    /// Blended score of both lists, 0..1 (hybrid).
    fused_score: Option<f32>,
}

#[derive(Serialize, ToSchema)]
struct Results<'a> {
    /// The ranking that answered: `keyword` when semantic search was asked for but no worker
    /// embedded the query in time.
    mode: &'static str,
    query: &'a str,
    items: Vec<Hit>,
}

#[utoipa::path(
    get, path = "/api/v1/search", tag = "search",
    params(SearchParams),
    responses(
        (status = 200, description = "The hits, best first", body = Results),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, description = "`invalid_query`, `invalid_limit`, `invalid_mode`", body = ErrorBody),
    ),
)]
async fn search(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.config.api;
    let q = QueryText::parse(&params.q, limits.max_query_chars)
        .map_err(|m| ApiError::bad_request("invalid_query", m))?;
    let limit = params.limit.unwrap_or(10);
    if limit == 0 || limit > limits.search_limit_max {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {}", limits.search_limit_max),
        ));
    }
    let search = Search {
        user: user.0,
        q: q.as_str(),
        limit,
        mode: Mode::parse(params.mode.as_deref())?,
        explain: params.explain.unwrap_or(false),
    };
    let key = hash_parts(&[
        search.q.as_bytes(),
        &limit.to_le_bytes(),
        search.mode.as_str().as_bytes(),
        &[u8::from(search.explain)],
    ]);
    let loaded = state
        .cache
        .get_or_load_value(CacheType::Query, Some(user.0), &key, run(&state, &search))
        .await;
    Ok(Answer::from_load(loaded)?.respond(&req))
}

async fn run(state: &AppState, s: &Search<'_>) -> Result<Bytes, Uncached> {
    match s.mode {
        Mode::Keyword => to_json(&keyword_results(state, s, None).await?),
        Mode::Semantic => match read::query_embedding(state, s.q).await {
            Some(vector) => to_json(&semantic_results(state, s, &vector).await?),
            None => Err(keyword_fallback(state, s, None).await?),
        },
        Mode::Hybrid => {
            // The keyword ranking runs while a worker embeds the query.
            let depth = state.config.api.search_fusion_depth.max(s.limit);
            let (keyword, nearest) = tokio::join!(
                keyword::keyword_ranked(&state.db, s.user, s.q, depth),
                nearest_to_query(state, s.user, s.q, depth),
            );
            let keyword = keyword?;
            let Some(nearest) = nearest? else {
                return Err(keyword_fallback(state, s, Some(keyword)).await?);
            };
            let weight = state.config.api.search_semantic_weight;
            let fused = fuse::fuse(s.q, &keyword, &nearest, weight);
            to_json(&Results {
                mode: "hybrid",
                query: s.q,
                items: fused_hits(state, s, fused, true).await?,
            })
        }
    }
}

/// The semantic candidates, best first; `None` when no worker embedded the query.
async fn nearest_to_query(
    state: &AppState,
    user: Uuid,
    q: &str,
    depth: u32,
) -> sqlx::Result<Option<Vec<SemanticHit>>> {
    let Some(vector) = read::query_embedding(state, q).await else {
        return Ok(None);
    };
    Ok(Some(nearest(state, user, &vector, depth).await?))
}

/// The `limit` bookmarks whose best passage is nearest to `vector`, in the current space.
async fn nearest(
    state: &AppState,
    user: Uuid,
    vector: &[f32],
    limit: u32,
) -> sqlx::Result<Vec<SemanticHit>> {
    let parts = state.config.api.search_scan_parts;
    let found =
        search::nearest_bookmarks(&state.db, &state.space, user, vector, limit, parts).await?;
    Ok(found
        .into_iter()
        .map(|n| SemanticHit {
            id: n.id,
            similarity: 1.0 - n.distance,
            passage: n.passage,
        })
        .collect())
}

async fn semantic_results<'a>(
    state: &AppState,
    s: &Search<'a>,
    vector: &[f32],
) -> Result<Results<'a>, Uncached> {
    let ranked = nearest(state, s.user, vector, s.limit)
        .await?
        .into_iter()
        .map(|hit| (hit.id, hit))
        .collect();
    let items = read::hydrate(&state.db, s.user, ranked)
        .await?
        .into_iter()
        .map(|(bookmark, hit)| Hit {
            bookmark,
            score: hit.similarity,
            explain: s.explain.then_some(Explain {
                keyword_rank: None,
                keyword_score: None,
                semantic_similarity: Some(hit.similarity),
                best_passage: Some(hit.passage),
                title_match: None,
                fused_score: None,
            }),
        })
        .collect();
    Ok(Results {
        mode: "semantic",
        query: s.q,
        items,
    })
}

/// The indexed keyword ranking, pages whose title nearly is the query first. `fetched` is a
/// ranking already read (at least `limit` deep, best first), so it is not read twice.
async fn keyword_results<'a>(
    state: &AppState,
    s: &Search<'a>,
    fetched: Option<Vec<KeywordHit>>,
) -> Result<Results<'a>, Uncached> {
    let mut keyword = match fetched {
        Some(keyword) => keyword,
        None => keyword::keyword_ranked(&state.db, s.user, s.q, s.limit).await?,
    };
    keyword.truncate(s.limit as usize);
    let ordered = fuse::fuse(s.q, &keyword, &[], 0.0);
    Ok(Results {
        mode: "keyword",
        query: s.q,
        items: fused_hits(state, s, ordered, false).await?,
    })
}

/// No worker embedded the query in time: the keyword ranking, not cached.
async fn keyword_fallback(
    state: &AppState,
    s: &Search<'_>,
    fetched: Option<Vec<KeywordHit>>,
) -> Result<Uncached, Uncached> {
    Ok(Uncached::Keyword(to_json(
        &keyword_results(state, s, fetched).await?,
    )?))
}

/// The first `limit` of `fused` as hits, scored by the fused score (`hybrid`) or else by the
/// text rank (the fusion then only put titles first).
async fn fused_hits(
    state: &AppState,
    s: &Search<'_>,
    mut fused: Vec<Fused>,
    hybrid: bool,
) -> sqlx::Result<Vec<Hit>> {
    fused.truncate(s.limit as usize);
    let ranked = fused.into_iter().map(|f| (f.id, f)).collect();
    Ok(read::hydrate(&state.db, s.user, ranked)
        .await?
        .into_iter()
        .map(|(bookmark, f)| Hit {
            bookmark,
            score: if hybrid {
                f.score
            } else {
                f.keyword_score.unwrap_or(0.0)
            },
            explain: s.explain.then(|| Explain {
                keyword_rank: f.keyword_rank,
                keyword_score: f.keyword_score,
                semantic_similarity: f.similarity,
                best_passage: f.passage,
                title_match: f.title_match,
                fused_score: hybrid.then_some(f.score),
            }),
        })
        .collect())
}
