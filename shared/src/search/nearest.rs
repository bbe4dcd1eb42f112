//! Per-user semantic search over bookmark passages (cosine distance), in one embedding space.
//!
//! A page is embedded as passages (`bookmark_passages`); a bookmark's distance to a query is its
//! best passage's: a page that answers the query in one paragraph is as near as a page about
//! nothing else (docs/SEARCH.md says why the best passage and not a mean). Only passages of the
//! current embedding space are compared ([`crate::embedding`]).
//!
//! Two steps in one statement, both restricted to the user's rows (never a global vector
//! index, which post-filters and silently loses rows, see docs/SEARCH.md):
//!
//! 1. **Scan:** every passage of the user in the space is scored in half precision, from the
//!    covering index `(user_id, space_id, bookmark_id) INCLUDE (ordinal, embedding_half)`, with
//!    no table reads; the best passage per bookmark streams out of the index order, and the
//!    [`rerank_count`] best bookmarks are kept.
//! 2. **Re-rank:** those bookmarks' passages are scored exactly (`embedding <=> query`, f32) and
//!    each bookmark keeps its best.
//!
//! The user's bookmarks are split by id into [`id_ranges`], each searched by its own statement
//! on its own connection at the same time, and the parts' results merged: one scan per core
//! instead of one scan for the whole user (Postgres' own parallel index scan was slower here,
//! docs/SEARCH.md). Each part returns its own exact top results, so the merge is exact too.
//!
//! Half precision moves a distance by about 1e-4, much less than the gaps between the nearest
//! rows and the [`rerank_count`]-th, so the exact top results are among the candidates. Recall and
//! latency per user size, on 100k synthetic clustered rows, are in docs/SEARCH.md
//! (`cargo bench -p fuze-tests --bench vector_search`).

use std::num::NonZeroU32;
use std::sync::LazyLock;

use pgvector::Vector;
use sqlx::PgPool;
use uuid::Uuid;

use crate::embedding::EmbeddingSpace;

/// Fewest candidates the exact re-rank sees, whatever the limit.
pub const RERANK_MIN: u32 = 64;
/// Candidates per requested result.
pub const RERANK_PER_RESULT: u32 = 4;

/// How many half-precision candidates are re-ranked exactly for `limit` results.
pub fn rerank_count(limit: u32) -> u32 {
    limit.saturating_mul(RERANK_PER_RESULT).max(RERANK_MIN)
}

/// The two steps as CTEs ending in `scored (id, ordinal, start_char, end_char, distance)`: each
/// candidate bookmark with its best passage. Parameters: `$1` user, `$2` query vector, `$4`
/// candidate count, `$5`..=`$6` the bookmark id range, `$7` the embedding space (`$3`, the result
/// limit, is the caller's).
///
/// The query is converted to `halfvec` once (an InitPlan): written inline, a generic plan would
/// convert it again for every row. All CTEs are MATERIALIZED and none orders by a vector column
/// alone, so no plan can route the query through a global vector index.
pub(crate) const NEAREST_CTES: &str = "query AS MATERIALIZED ( \
       SELECT $2::halfvec(384) AS half), \
     candidates AS MATERIALIZED ( \
       SELECT bookmark_id FROM bookmark_passages \
       WHERE user_id = $1 AND space_id = $7 AND bookmark_id BETWEEN $5 AND $6 \
       GROUP BY bookmark_id \
       ORDER BY min(embedding_half <=> (SELECT half FROM query)) LIMIT $4), \
     scored AS MATERIALIZED ( \
       SELECT DISTINCT ON (bookmark_id) bookmark_id AS id, ordinal, start_char, end_char, \
         embedding <=> $2 AS distance \
       FROM bookmark_passages \
       WHERE user_id = $1 AND space_id = $7 \
         AND bookmark_id IN (SELECT bookmark_id FROM candidates) \
       ORDER BY bookmark_id, embedding <=> $2, ordinal)";

/// The search query (built once).
pub fn nearest_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH {NEAREST_CTES} SELECT id, distance::float4, ordinal, start_char, end_char \
             FROM scored \
             ORDER BY distance, id LIMIT $3"
        )
    });
    &SQL
}

/// One bookmark near the query.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct Nearest {
    pub id: Uuid,
    /// Cosine distance of its best passage (0 = same direction, 2 = opposite).
    pub distance: f32,
    #[sqlx(flatten)]
    pub passage: PassageRef,
}

/// Which passage of a page: its position and where it is in the embedded text (title,
/// description and body joined by newlines), in chars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PassageRef {
    /// 0 = the page's start.
    #[sqlx(rename = "ordinal")]
    pub index: i16,
    pub start_char: i32,
    pub end_char: i32,
}

/// Binds the parameters of [`NEAREST_CTES`] after `$1` (user) and `$2` (query).
pub(crate) fn bind_nearest<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    limit: u32,
    candidates: u32,
    (first, last): (Uuid, Uuid),
    space: &EmbeddingSpace,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(i64::from(limit.max(1)))
        .bind(i64::from(candidates.max(limit)))
        .bind(first)
        .bind(last)
        .bind(space.id)
}

/// `parts` ranges of ids, first to last inclusive, that together cover every UUID. Bookmark ids
/// are random (v4), so each range holds about `1 / parts` of any user's rows.
pub fn id_ranges(parts: NonZeroU32) -> Vec<(Uuid, Uuid)> {
    let parts = u128::from(parts.get());
    // Cut points on the top 64 bits: (i << 64) / parts fits in u128 for any i <= parts.
    let start = |i: u128| ((i << 64) / parts) << 64;
    (0..parts)
        .map(|i| {
            let last = if i + 1 == parts {
                u128::MAX
            } else {
                start(i + 1) - 1
            };
            (Uuid::from_u128(start(i)), Uuid::from_u128(last))
        })
        .collect()
}

/// Runs `search` on every id range at once and keeps the `limit` nearest rows of all parts,
/// ordered by `(distance, id)` as each part is.
pub(crate) async fn in_parts<T, Fut>(
    parts: NonZeroU32,
    limit: u32,
    search: impl Fn((Uuid, Uuid)) -> Fut,
    distance_and_id: impl Fn(&T) -> (f32, Uuid),
) -> sqlx::Result<Vec<T>>
where
    Fut: Future<Output = sqlx::Result<Vec<T>>>,
{
    let found = futures::future::try_join_all(id_ranges(parts).into_iter().map(search)).await?;
    let mut all: Vec<T> = found.into_iter().flatten().collect();
    all.sort_by(|a, b| {
        let ((da, ia), (db, ib)) = (distance_and_id(a), distance_and_id(b));
        da.total_cmp(&db).then(ia.cmp(&ib))
    });
    all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(all)
}

/// The `limit` bookmarks of `user_id` nearest to `query` (an embedding of
/// [`DIMENSIONS`](crate::embedding::DIMENSIONS) in `space`), nearest first, by their best
/// passage, searched in `parts` concurrent scans. Bookmarks without vectors in `space` (not
/// embedded yet, or stale) are skipped.
pub async fn nearest_bookmarks(
    db: &PgPool,
    space: &EmbeddingSpace,
    user_id: Uuid,
    query: &[f32],
    limit: u32,
    parts: NonZeroU32,
) -> sqlx::Result<Vec<Nearest>> {
    nearest_bookmarks_among(db, space, user_id, query, limit, rerank_count(limit), parts).await
}

/// [`nearest_bookmarks`] re-ranking an explicit number of candidates (at least `limit`) per part.
pub async fn nearest_bookmarks_among(
    db: &PgPool,
    space: &EmbeddingSpace,
    user_id: Uuid,
    query: &[f32],
    limit: u32,
    candidates: u32,
    parts: NonZeroU32,
) -> sqlx::Result<Vec<Nearest>> {
    let query = Vector::from(query.to_vec());
    in_parts(
        parts,
        limit,
        |range| {
            let q = sqlx::query_as::<_, Nearest>(nearest_sql())
                .bind(user_id)
                .bind(query.clone());
            bind_nearest(q, limit, candidates, range, space).fetch_all(db)
        },
        |n: &Nearest| (n.distance, n.id),
    )
    .await
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

    #[test]
    fn id_ranges_cover_every_uuid_once_in_equal_shares() {
        for parts in [1u32, 2, 3, 7] {
            let ranges = id_ranges(NonZeroU32::new(parts).expect("positive"));
            assert_eq!(ranges.len(), parts as usize);
            assert_eq!(ranges[0].0, Uuid::nil());
            assert_eq!(ranges[ranges.len() - 1].1, Uuid::max());
            for pair in ranges.windows(2) {
                assert_eq!(
                    pair[0].1.as_u128() + 1,
                    pair[1].0.as_u128(),
                    "{parts} parts"
                );
            }
            let share = u128::MAX / u128::from(parts);
            for (first, last) in &ranges {
                let size = last.as_u128() - first.as_u128();
                assert!(
                    size.abs_diff(share) < share / 1_000_000,
                    "{parts} parts: {size}"
                );
            }
        }
    }
}
