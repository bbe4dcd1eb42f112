//! `nearest_bookmarks` finds the exact nearest neighbours of a user's bookmarks (recall@10 >= 0.98)
//! for small, medium and large users, with the migration's global HNSW index present (which the
//! planner must not be allowed to post-filter). Synthetic clustered embeddings, see
//! `tests/src/vector_seed.rs`; the full measurement is `cargo bench -p fuze-tests --bench
//! vector_search` (docs/SEARCH.md).

#[path = "../src/vector_seed.rs"]
mod vector_seed;

use std::num::NonZeroU32;

use fuze_shared::search::nearest_bookmarks;
use fuze_tests::TestEnv;
use vector_seed::recall;

const QUERIES: usize = 50;
const K: u32 = 10;
/// The default of `FUZE_SEARCH_SCAN_PARTS`.
const TWO: NonZeroU32 = NonZeroU32::MIN.saturating_add(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearest_bookmarks_recall_at_10() {
    let env = TestEnv::new().await;
    // 20k rows over 20 users: one with 5k, the rest Zipf (about 4.2k down to 220).
    let sizes = vector_seed::skewed_sizes(20, 20_000, 5_000);
    let corpus = vector_seed::seed(&env.pool, &sizes, 300, 30, 7).await;
    let hnsw: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'saved_content_embedding_hnsw')",
    )
    .fetch_one(&env.pool)
    .await
    .expect("index lookup");
    assert!(hnsw, "the HNSW index must be present, as in production");

    for (i, (class, target)) in [("small", 300), ("medium", 2_000), ("large", 5_000)]
        .into_iter()
        .enumerate()
    {
        let user = corpus.user_near(target);
        let mut total = 0.0;
        for (q, _) in corpus.queries(user, QUERIES, 100 + i as u64) {
            let exact = vector_seed::exact(&env.pool, user.id, &q, i64::from(K)).await;
            let got = nearest_bookmarks(&env.pool, &corpus.space, user.id, &q, K, TWO)
                .await
                .expect("nearest_bookmarks");
            assert_eq!(got.len(), K as usize, "{class}: a full page of results");
            assert!(
                got.windows(2).all(|w| w[0].distance <= w[1].distance),
                "{class}: nearest first"
            );
            assert!(
                got.iter().all(|n| (0.0..=2.0).contains(&n.distance)),
                "{class}: cosine distances"
            );
            let ids: Vec<_> = got.iter().map(|n| n.id).collect();
            total += recall(&ids, &exact);
            // However the rows are split, the merged parts give the same answer.
            for parts in [1, 3] {
                let parts = NonZeroU32::new(parts).expect("positive");
                let other = nearest_bookmarks(&env.pool, &corpus.space, user.id, &q, K, parts)
                    .await
                    .expect("nearest_bookmarks");
                assert_eq!(other, got, "{class}: {parts} parts against 2");
            }
        }
        let mean = total / QUERIES as f64;
        println!("{class} user ({} rows): recall@10 = {mean:.3}", user.rows);
        assert!(
            mean >= 0.98,
            "{class} user ({} rows): recall@10 {mean:.3} < 0.98",
            user.rows
        );
    }

    // A user with no bookmarks gets an empty list, not an error.
    let (empty_user, _) = env.user().await;
    let none = nearest_bookmarks(
        &env.pool,
        &corpus.space,
        empty_user,
        &corpus.centroids[0],
        K,
        TWO,
    )
    .await
    .expect("empty user");
    assert!(none.is_empty());

    vector_seed::drop_database(&env.database_url, env.pool.clone()).await;
}
