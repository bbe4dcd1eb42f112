//! Per-user limits at the api: token buckets answer 429 with Retry-After and write nothing, the
//! pending-jobs cap holds under concurrent saves, and one user's searches cannot take every
//! database turn. No worker runs: saved jobs stay queued (not started).

use std::time::Duration;

use fuze_tests::{TestApi, TestEnv};
use reqwest::StatusCode;
use serde_json::Value;

async fn counts(env: &TestEnv) -> (i64, i64) {
    (env.count("saved_content").await, env.count("jobs").await)
}

/// Status, error code and Retry-After of a response.
async fn outcome(res: reqwest::Response) -> (StatusCode, String, Option<u64>) {
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: Value = res.json().await.unwrap_or_default();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_and_write_nothing() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(
        &env,
        &[
            ("FUZE_RATE_WRITES_PER_S", "0.2"),
            ("FUZE_RATE_WRITES_BURST", "3"),
            ("FUZE_RATE_SEARCHES_PER_S", "0.2"),
            ("FUZE_RATE_SEARCHES_BURST", "2"),
            ("FUZE_QUERY_EMBED_TIMEOUT_MS", "50"),
        ],
    )
    .await;
    let (_, token) = env.user().await;
    let (_, other) = env.user().await;
    for i in 0..3 {
        let (status, saved) = api.save(&token, &format!("https://example.com/{i}")).await;
        assert_eq!(status, 202, "within the burst: {saved}");
    }
    let before = counts(&env).await;
    let res = api
        .post("/api/v1/bookmarks", &token)
        .json(&serde_json::json!({"url": "https://example.com/over"}))
        .send()
        .await
        .expect("save");
    let (status, code, retry_after) = outcome(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    // One token every 5 s.
    assert!(
        retry_after.is_some_and(|s| (1..=5).contains(&s)),
        "{retry_after:?}"
    );
    assert_eq!(
        counts(&env).await,
        before,
        "a limited request writes nothing"
    );
    // Another user has a bucket of their own.
    let (status, _) = api.save(&other, "https://example.com/other").await;
    assert_eq!(status, 202);

    for _ in 0..2 {
        let res = api
            .get("/api/v1/search?q=rust", &token)
            .send()
            .await
            .expect("search");
        assert_eq!(res.status(), 200);
    }
    let res = api
        .get("/api/v1/search?q=rust", &token)
        .send()
        .await
        .expect("search");
    let (status, code, retry_after) = outcome(res).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(retry_after.is_some());
    // Reads that are not searches are not limited.
    let res = api
        .get("/api/v1/bookmarks", &token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 200);

    let metrics = api.metrics_text().await;
    for series in [
        "fuze_http_limited_total{reason=\"rate_limited\",route=\"bookmarks\"} 1",
        "fuze_http_limited_total{reason=\"rate_limited\",route=\"search\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_jobs_cap_holds_under_concurrent_saves() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(
        &env,
        &[
            ("FUZE_USER_MAX_PENDING_JOBS", "10"),
            ("FUZE_RATE_WRITES_PER_S", "0"),
        ],
    )
    .await;
    let (_, token) = env.user().await;
    let saves = (0..40).map(|i| {
        let api = &api;
        let token = token.as_str();
        async move {
            let res = api
                .post("/api/v1/bookmarks", token)
                .json(&serde_json::json!({"url": format!("https://example.com/page/{i}")}))
                .send()
                .await
                .expect("save");
            outcome(res).await
        }
    });
    let outcomes = futures::future::join_all(saves).await;
    let accepted = outcomes
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::ACCEPTED)
        .count();
    let refused: Vec<_> = outcomes
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(accepted, 10, "{outcomes:?}");
    assert_eq!(refused.len(), 30, "{outcomes:?}");
    assert!(
        refused
            .iter()
            .all(|(_, code, retry)| code == "too_many_pending_jobs" && retry.is_some())
    );
    assert_eq!(counts(&env).await, (10, 10), "refused saves wrote nothing");
    // The cap is the user's: another user saves as before.
    let (_, other) = env.user().await;
    let (status, _) = api.save(&other, "https://example.com/page/0").await;
    assert_eq!(status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_searches_cannot_take_every_database_turn() {
    let env = TestEnv::new().await;
    // No worker answers the query lane, so each search holds its turn for the whole embedding
    // timeout (then answers with keyword search).
    let api = TestApi::spawn(
        &env,
        &[
            ("FUZE_USER_DB_CONCURRENCY", "1"),
            ("FUZE_USER_DB_WAIT_MS", "50"),
            ("FUZE_QUERY_EMBED_TIMEOUT_MS", "600"),
            ("FUZE_RATE_SEARCHES_PER_S", "0"),
        ],
    )
    .await;
    let (_, greedy) = env.user().await;
    let (_, other) = env.user().await;
    let search = |token: String, q: &'static str| {
        let api = &api;
        async move {
            let res = api
                .get(&format!("/api/v1/search?q={q}"), &token)
                .send()
                .await
                .expect("search");
            outcome(res).await
        }
    };
    let greedy_searches =
        futures::future::join_all((0..4).map(|i| search(greedy.clone(), ["a", "b", "c", "d"][i])));
    let other_search = async {
        // Starts while the greedy user's searches hold or wait for their one turn.
        tokio::time::sleep(Duration::from_millis(100)).await;
        search(other.clone(), "e").await
    };
    let (greedy_outcomes, other_outcome) = tokio::join!(greedy_searches, other_search);
    let ok = greedy_outcomes
        .iter()
        .filter(|o| o.0 == StatusCode::OK)
        .count();
    let busy = greedy_outcomes
        .iter()
        .filter(|o| o.0 == StatusCode::TOO_MANY_REQUESTS && o.1 == "rate_limited")
        .count();
    assert_eq!((ok, busy), (1, 3), "{greedy_outcomes:?}");
    assert_eq!(
        other_outcome.0,
        StatusCode::OK,
        "another user is not held up"
    );
    let metrics = api.metrics_text().await;
    assert!(
        metrics.contains("fuze_http_limited_total{reason=\"db_busy\",route=\"search\"} 3"),
        "db_busy refusals are counted"
    );
}
