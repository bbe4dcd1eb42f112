//! Whole pages in semantic search, and vectors tied to their embedding space: a fact deep in a
//! long article is found by its passage; after the space changes (here, the passage overlap),
//! semantic search skips the stale rows, keyword search still finds them, the reindex job embeds
//! them all again in the bulk lane, and the stale gauge comes back to 0.

use std::time::{Duration, Instant};

use fuze_shared::{
    config::EmbedderConfig,
    embedding::{self, EmbeddingSpace},
    search,
};
use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess, env::model_dir};
use serde_json::Value;

const ALLOW_PAGES: (&str, &str) = ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8");
const ADMIN: &str = "test-admin-token";

const FACT: &str = "The station master kept a ginger cat called Marmalade who caught the mice \
                    in the ticket office and slept on the warm stove in the waiting room.";
const FACT_QUERY: &str = "a ginger cat that caught mice in the ticket office";

async fn get_json(api: &TestApi, path: &str, token: &str) -> (u16, Value) {
    let res = api.get(path, token).send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

fn search_path(q: &str, more: &str) -> String {
    let q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
    format!("/api/v1/search?q={q}{more}")
}

async fn save_ready(api: &TestApi, token: &str, url: &str) -> String {
    api.save_ready(token, url, Duration::from_secs(60)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_deep_in_a_long_article_is_found_by_its_passage() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker = WorkerProcess::spawn(&env, &[ALLOW_PAGES]).await;
    let (_, token) = env.user().await;

    let long = save_ready(
        &api,
        &token,
        &pages.long_url("A history of the railways", FACT),
    )
    .await;
    for (title, body) in [
        (
            "Keeping bees in the garden",
            "A hive needs a sunny spot, a water source nearby and an inspection every week in summer.",
        ),
        (
            "Sourdough bread at home",
            "Feed the starter with flour and water, let the dough rise overnight and bake it hot.",
        ),
    ] {
        save_ready(&api, &token, &pages.doc_url(title, body)).await;
    }

    let passages: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bookmark_passages WHERE bookmark_id = $1::uuid")
            .bind(&long)
            .fetch_one(&env.pool)
            .await
            .expect("passages");
    assert!(
        passages >= 4,
        "a long page has several passages: {passages}"
    );
    let text_chars: i32 = sqlx::query_scalar(
        "SELECT char_length(COALESCE(title, scraped_title) || E'\\n' || text)::int4 \
         FROM saved_content WHERE id = $1::uuid",
    )
    .bind(&long)
    .fetch_one(&env.pool)
    .await
    .expect("text length");

    let (status, found) = get_json(
        &api,
        &search_path(FACT_QUERY, "&mode=semantic&explain=true"),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let top = &found["items"][0];
    assert_eq!(top["bookmark"]["id"], long.as_str(), "{found}");
    let best = &top["explain"]["best_passage"];
    assert!(
        best["index"].as_i64() > Some(0),
        "found by a later passage: {found}"
    );
    let end = best["end_char"].as_i64().expect("end_char");
    assert!(
        end > i64::from(text_chars) / 2,
        "the passage reaches into the second half ({end} of {text_chars} chars): {found}"
    );
    // Hybrid shows the same passage in its explanation.
    let (_, hybrid) = get_json(&api, &search_path(FACT_QUERY, "&explain=true"), &token).await;
    assert_eq!(
        hybrid["items"][0]["bookmark"]["id"],
        long.as_str(),
        "{hybrid}"
    );
    assert_eq!(hybrid["items"][0]["explain"]["best_passage"], *best);
}

/// The space a process computes with this passage overlap.
async fn space_with_overlap(env: &TestEnv, overlap: usize) -> EmbeddingSpace {
    let cfg = EmbedderConfig {
        model_dir: model_dir(),
        passage_overlap: overlap,
        ..EmbedderConfig::default()
    };
    EmbeddingSpace::current(&env.pool, &cfg)
        .await
        .expect("space")
}

fn stale_gauge(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("fuze_embeddings_stale "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_embedding_space_reindexes_stale_rows_in_the_background() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let (_, token) = env.user().await;
    let titles = [
        "Keeping bees in the garden",
        "Sourdough bread at home",
        "Marathon training plan",
    ];
    {
        let api = TestApi::spawn(&env, &[]).await;
        let _worker = WorkerProcess::spawn(&env, &[ALLOW_PAGES]).await;
        for title in titles {
            let body = format!("{title}: what to know before you start, step by step.");
            save_ready(&api, &token, &pages.doc_url(title, &body)).await;
        }
    }

    // Another passage overlap is another space: every row is stale in it.
    const OVERLAP: &str = "48";
    let old = space_with_overlap(&env, 32).await;
    let new = space_with_overlap(&env, 48).await;
    assert_ne!(old.name, new.name);
    assert_eq!(
        embedding::stale_count(&env.pool, &new)
            .await
            .expect("stale"),
        3
    );
    let (user_id,): (uuid::Uuid,) = sqlx::query_as("SELECT user_id FROM saved_content LIMIT 1")
        .fetch_one(&env.pool)
        .await
        .expect("user");
    let some_vector: pgvector::Vector =
        sqlx::query_scalar("SELECT embedding FROM saved_content LIMIT 1")
            .fetch_one(&env.pool)
            .await
            .expect("vector");
    let two = std::num::NonZeroU32::new(2).expect("positive");
    let in_new =
        search::nearest_bookmarks(&env.pool, &new, user_id, some_vector.as_slice(), 10, two)
            .await
            .expect("search");
    assert!(
        in_new.is_empty(),
        "stale vectors are never compared: {in_new:?}"
    );
    let in_old =
        search::nearest_bookmarks(&env.pool, &old, user_id, some_vector.as_slice(), 10, two)
            .await
            .expect("search");
    assert_eq!(in_old.len(), 3);

    // The api of the new space, before any worker of it runs: keyword search finds the rows.
    let api = TestApi::spawn(&env, &[("FUZE_EMBED_PASSAGE_OVERLAP", OVERLAP)]).await;
    let (status, keyword) = get_json(
        &api,
        &search_path("sourdough bread", "&mode=keyword"),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{keyword}");
    assert_eq!(
        keyword["items"][0]["bookmark"]["title"], "Sourdough bread at home",
        "{keyword}"
    );
    let (status, before) = get_json(&api, "/api/v1/admin/reindex", ADMIN).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["space"], new.name.as_str(), "{before}");
    assert_eq!(before["stale"], 3, "{before}");
    let (status, denied) = get_json(&api, "/api/v1/admin/reindex", &token).await;
    assert!(status == 401 || status == 403, "{status}: {denied}");

    // A worker of the new space embeds them all again, and the gauge falls to 0.
    let worker = WorkerProcess::spawn(
        &env,
        &[
            ALLOW_PAGES,
            ("FUZE_EMBED_PASSAGE_OVERLAP", OVERLAP),
            ("FUZE_REINDEX_CHECK_INTERVAL_MS", "200"),
            ("FUZE_REINDEX_BATCH", "2"),
        ],
    )
    .await;
    let started = Instant::now();
    let status = loop {
        let (_, status) = get_json(&api, "/api/v1/admin/reindex", ADMIN).await;
        if status["stale"] == 0 && !status["pass"]["finished_at"].is_null() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the reindex never finished: {status}\n{}",
            worker.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["pass"]["done"], 3, "{status}");
    assert_eq!(status["pass"]["failed"], 0, "{status}");
    assert_eq!(status["pass"]["stale_at_start"], 3, "{status}");
    assert_eq!(
        status["spaces"],
        serde_json::json!([{ "name": new.name, "bookmarks": 3 }]),
        "{status}"
    );
    let in_new =
        search::nearest_bookmarks(&env.pool, &new, user_id, some_vector.as_slice(), 10, two)
            .await
            .expect("search");
    assert_eq!(in_new.len(), 3, "every row is searchable in the new space");
    let started = Instant::now();
    loop {
        let gauge = stale_gauge(&worker.metrics().await);
        if gauge == Some(0.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "gauge never reached 0: {gauge:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Semantic search of the new space finds the pages again.
    let (status, semantic) = get_json(
        &api,
        &search_path("how do I bake bread", "&mode=semantic"),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{semantic}");
    assert_eq!(semantic["mode"], "semantic", "{semantic}");
    assert_eq!(
        semantic["items"][0]["bookmark"]["title"], "Sourdough bread at home",
        "{semantic}"
    );
}
