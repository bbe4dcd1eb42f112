//! Per-user semantic search over bookmark embeddings (cosine distance).
//!
//! Two stages, both restricted to the user's rows by a `user_id` btree (never the global HNSW
//! index, which post-filters and silently loses rows, see docs/SEARCH.md):
//!
//! 1. **Prefilter:** every row of the user is ranked by Hamming distance between 1-bit-per-dimension
//!    codes (`embedding_bits`, a generated column: the sign of each dimension). A code is 48 bytes,
//!    so this reads ~30x less than the embeddings and costs ~5 ms for a 25k-row user.
//! 2. **Re-rank:** the best [`RERANK_CANDIDATES`] rows are scored by exact cosine distance, their
//!    embeddings read from the `(user_id, id) INCLUDE (embedding)` index.
//!
//! A user with fewer rows than that is searched exactly. Above it, the candidates are trusted only
//! when their Hamming distances show a clear gap ([`CONFIDENT_GAP_BITS`]); otherwise every row of
//! the user is scored exactly. Recall and latency per user size are measured on 100k synthetic
//! clustered rows in docs/SEARCH.md (`cargo bench -p fuze-tests --bench vector_search`).

use std::sync::LazyLock;

use pgvector::Vector;
use sqlx::PgPool;
use uuid::Uuid;

/// Rows of a user re-ranked exactly after the Hamming prefilter (chosen by measurement: recall@10
/// and latency per candidate count are in docs/SEARCH.md).
pub const RERANK_CANDIDATES: u32 = 1_000;

/// How many bits (of 384) the last candidate must be farther than the `limit`-th for the prefilter
/// to be trusted. The Hamming distance of a row to the query scatters by up to ~10 bits around its
/// expectation, so a wider gap means the true nearest rows are among the candidates. Queries about
/// something the user never saved see a flat distance profile and get the exact scan instead.
pub const CONFIDENT_GAP_BITS: u32 = 40;

/// The two stages as CTEs ending in `scored (id, distance)`. Parameters: `$1` user, `$2` query
/// vector, `$3` result limit, `$4` candidate count, `$5` gap in bits.
///
/// `trusted` is true when the candidates are all of the user's rows (the re-rank is then exact) or
/// when the gap holds; otherwise the second branch scores every row of the user exactly. Both
/// branches are gated by that one-time condition, so only one of them runs. All CTEs are
/// MATERIALIZED and unordered on the embedding column, so no plan can route the query through the
/// global HNSW index.
pub(crate) const NEAREST_CTES: &str = "candidates AS MATERIALIZED ( \
       SELECT id, embedding_bits <~> binary_quantize($2)::bit(384) AS bits FROM saved_content \
       WHERE user_id = $1 AND embedding_bits IS NOT NULL ORDER BY bits LIMIT $4), \
     trusted AS MATERIALIZED ( \
       SELECT count(*) < $4 \
           OR max(bits) - (SELECT bits FROM candidates ORDER BY bits OFFSET $3 - 1 LIMIT 1) >= $5 \
           AS ok FROM candidates), \
     scored AS MATERIALIZED ( \
       SELECT id, embedding <=> $2 AS distance FROM saved_content \
       WHERE (SELECT ok FROM trusted) \
         AND user_id = $1 AND id = ANY(ARRAY(SELECT id FROM candidates)) \
       UNION ALL \
       SELECT id, embedding <=> $2 FROM saved_content \
       WHERE NOT (SELECT ok FROM trusted) AND user_id = $1 AND embedding IS NOT NULL)";

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
    gap_bits: u32,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(i64::from(limit.max(1)))
        .bind(i64::from(candidates.max(limit)))
        .bind(i32::try_from(gap_bits).unwrap_or(i32::MAX))
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
    nearest_bookmarks_among(
        db,
        user_id,
        query,
        limit,
        RERANK_CANDIDATES,
        CONFIDENT_GAP_BITS,
    )
    .await
}

/// [`nearest_bookmarks`] with explicit prefilter settings (`candidates` at least `limit`).
pub async fn nearest_bookmarks_among(
    db: impl sqlx::PgExecutor<'_>,
    user_id: Uuid,
    query: &[f32],
    limit: u32,
    candidates: u32,
    gap_bits: u32,
) -> sqlx::Result<Vec<(Uuid, f32)>> {
    let query = sqlx::query_as::<_, (Uuid, f32)>(nearest_sql())
        .bind(user_id)
        .bind(Vector::from(query.to_vec()));
    bind_nearest(query, limit, candidates, gap_bits)
        .fetch_all(db)
        .await
}
