//! Per-user semantic search over bookmark embeddings (cosine distance).
//!
//! Two steps in one statement, both restricted to the user's rows (never the global HNSW index,
//! which post-filters and silently loses rows, see docs/SEARCH.md):
//!
//! 1. **Scan:** every row of the user is scored in half precision, from the covering index
//!    `(user_id) INCLUDE (id, embedding_half)`, where `embedding_half` is a stored `halfvec` copy of
//!    the embedding: half the bytes of the f32 one, and no table reads. The best
//!    [`rerank_count`] rows are kept.
//! 2. **Re-rank:** those rows are scored exactly (`embedding <=> query`, f32) and sorted.
//!
//! Half precision moves a distance by about 1e-4, much less than the gaps between the nearest
//! rows and the [`rerank_count`]-th, so the exact top results are among the candidates. Recall and
//! latency per user size, on 100k synthetic clustered rows, are in docs/SEARCH.md
//! (`cargo bench -p fuze-tests --bench vector_search`).

use std::sync::LazyLock;

use pgvector::Vector;
use sqlx::PgPool;
use uuid::Uuid;

/// Fewest candidates the exact re-rank sees, whatever the limit.
pub const RERANK_MIN: u32 = 64;
/// Candidates per requested result.
pub const RERANK_PER_RESULT: u32 = 4;

/// How many half-precision candidates are re-ranked exactly for `limit` results.
pub fn rerank_count(limit: u32) -> u32 {
    limit.saturating_mul(RERANK_PER_RESULT).max(RERANK_MIN)
}

/// The two steps as CTEs ending in `scored (id, distance)`. Parameters: `$1` user, `$2` query
/// vector, `$4` candidate count (`$3`, the result limit, is the caller's).
///
/// The query is converted to `halfvec` once (an InitPlan): written inline, a generic plan would
/// convert it again for every row. All CTEs are MATERIALIZED and none orders by `embedding`, so no
/// plan can route the query through the global HNSW index.
pub(crate) const NEAREST_CTES: &str = "query AS MATERIALIZED ( \
       SELECT $2::halfvec(384) AS half), \
     candidates AS MATERIALIZED ( \
       SELECT id FROM saved_content \
       WHERE user_id = $1 AND embedding_half IS NOT NULL \
       ORDER BY embedding_half <=> (SELECT half FROM query) LIMIT $4), \
     scored AS MATERIALIZED ( \
       SELECT id, embedding <=> $2 AS distance FROM saved_content \
       WHERE user_id = $1 AND id IN (SELECT id FROM candidates))";

/// The search query (built once).
pub fn nearest_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH {NEAREST_CTES} SELECT id, distance::float4 FROM scored \
             ORDER BY distance, id LIMIT $3"
        )
    });
    &SQL
}

/// Binds the parameters of [`NEAREST_CTES`] after `$1` (user) and `$2` (query).
pub(crate) fn bind_nearest<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    limit: u32,
    candidates: u32,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(i64::from(limit.max(1)))
        .bind(i64::from(candidates.max(limit)))
}

/// The `limit` bookmarks of `user_id` nearest to `query` (an embedding of the stored dimension,
/// 384), nearest first, with their cosine distance (0 = same direction, 2 = opposite). Bookmarks
/// without an embedding yet are skipped.
pub async fn nearest_bookmarks(
    db: &PgPool,
    user_id: Uuid,
    query: &[f32],
    limit: u32,
) -> sqlx::Result<Vec<(Uuid, f32)>> {
    nearest_bookmarks_among(db, user_id, query, limit, rerank_count(limit)).await
}

/// [`nearest_bookmarks`] re-ranking an explicit number of candidates (at least `limit`).
pub async fn nearest_bookmarks_among(
    db: impl sqlx::PgExecutor<'_>,
    user_id: Uuid,
    query: &[f32],
    limit: u32,
    candidates: u32,
) -> sqlx::Result<Vec<(Uuid, f32)>> {
    let query = sqlx::query_as::<_, (Uuid, f32)>(nearest_sql())
        .bind(user_id)
        .bind(Vector::from(query.to_vec()));
    bind_nearest(query, limit, candidates).fetch_all(db).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerank_count_grows_with_the_limit_from_a_floor() {
        assert_eq!(rerank_count(1), RERANK_MIN);
        assert_eq!(rerank_count(10), RERANK_MIN);
        assert_eq!(rerank_count(50), 200);
        assert_eq!(rerank_count(u32::MAX), u32::MAX);
    }
}
