//! Per-user semantic search over bookmark embeddings (cosine distance).
//!
//! The query is exact: it reads the user's rows through the `user_id` btree indexes, computes the
//! distance for each and keeps the `limit` nearest. It deliberately does NOT use the global HNSW
//! index (`saved_content_embedding_hnsw`): with `WHERE user_id = $1` the planner scans that index
//! and filters afterwards, which silently returns too few or wrong rows for all but the largest
//! users, and pgvector 0.8's iterative scans did not reach the recall bar either.
//!
//! Measured (docs/SEARCH.md, `cargo bench -p fuze-tests --bench vector_search`, 2026-11-25,
//! 100k synthetic clustered 384-d rows over 100 users, 200 queries per user, 2 shared cores):
//!
//! | strategy (users of 302 / 2069 / 7243 / 25000 rows)       | recall@10 vs exact        | p50 ms              |
//! |----------------------------------------------------------|---------------------------|---------------------|
//! | global HNSW + `WHERE user_id` (defaults)                 | 1.00* / 0.54 / 0.75 / 0.73 | 0.4 / 1.4 / 1.5 / 1.9 |
//! | HNSW `relaxed_order`, ef_search 200, top 40 re-sorted    | 1.00* / 0.979 / 0.96 / 0.92 | 0.5 / 5.2 / 3.2 / 4.9 |
//! | HNSW `relaxed_order`, ef_search 500, top 100 re-sorted   | 1.00* / 1.00* / 0.983 / 0.96 | 0.8 / 2.5 / 8.5 / 8.2 |
//! | this query (exact via the `user_id` indexes)             | 1.00 / 1.00 / 1.00 / 1.00 | 0.4 / 2.5 / 18 / 99 (p95 151) |
//! | same query + covering index (not in the migration)       | 1.00 / 1.00 / 1.00 / 1.00 | 0.5 / 3.0 / 12 / 41 |
//!
//! (* the planner picked a `user_id` index, i.e. an exact plan, for that user.) The HNSW misses
//! are mostly queries on topics the user has few bookmarks about (on-topic queries alone reached
//! 0.995 at ef_search 200), but they fail the recall bar (>= 0.98) all the same. Cost grows with
//! the user's row count (every row of the user is read): ~100 ms for 25k rows with the current
//! schema; docs/SEARCH.md proposes the covering index `(user_id) INCLUDE (id, embedding)`, which
//! the planner picks up for this query without code changes. Any plan the planner picks for this
//! query is exact, so correctness does not depend on statistics or generic plans.

use pgvector::Vector;
use sqlx::PgPool;
use uuid::Uuid;

/// Exact nearest neighbours among one user's rows. The MATERIALIZED CTE has no ORDER BY, so no
/// vector index can serve it: the planner reads the user's rows via a `user_id` index (or a
/// sequential scan for a very large share of the table) and sorts by distance (top-N heap sort).
const NEAREST_SQL: &str = "WITH mine AS MATERIALIZED ( \
       SELECT id, embedding <=> $2 AS distance FROM saved_content \
       WHERE user_id = $1 AND embedding IS NOT NULL) \
     SELECT id, distance::float4 FROM mine ORDER BY distance, id LIMIT $3";

/// The `limit` bookmarks of `user_id` nearest to `query` (an embedding of the stored dimension,
/// 384), nearest first, with their cosine distance (0 = same direction, 2 = opposite). Bookmarks
/// without an embedding yet are skipped.
pub async fn nearest_bookmarks(
    db: &PgPool,
    user_id: Uuid,
    query: &[f32],
    limit: u32,
) -> sqlx::Result<Vec<(Uuid, f32)>> {
    sqlx::query_as::<_, (Uuid, f32)>(NEAREST_SQL)
        .bind(user_id)
        .bind(Vector::from(query.to_vec()))
        .bind(i64::from(limit))
        .fetch_all(db)
        .await
}
