//! Saving a link end to end: api → scrape job → embed job → bookmark with title, text and embedding.

use std::time::Duration;

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};

const LOOPBACK_OK: (&str, &str) = ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_link_is_scraped_embedded_and_stored() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;
    let (_, token) = env.user().await;
    let ready: serde_json::Value = api
        .http
        .get(api.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(
        ready["workers"],
        serde_json::json!({"scrape": 1, "embed": 1, "analyze": 1, "warm": 1, "reindex": 1}),
        "{ready}"
    );

    let url = pages.url("/page/Rust%20runtimes?utm_source=newsletter#intro");
    let (status, saved) = api.save(&token, &url).await;
    assert_eq!(status, 202, "{saved}");
    assert_eq!(
        saved["bookmark"]["url"],
        pages.url("/page/Rust%20runtimes"),
        "normalized url"
    );
    assert_eq!(saved["bookmark"]["status"], "pending");
    assert_eq!(saved["job"]["state"], "queued");
    let job_id = saved["job"]["id"].as_str().expect("job id").to_owned();
    let bookmark_id = saved["bookmark"]["id"]
        .as_str()
        .expect("bookmark id")
        .to_owned();

    let job = api
        .wait_for_job(&token, &job_id, Duration::from_secs(30))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "ingest");
    assert_eq!(job["bookmark_id"], bookmark_id.as_str());
    assert!(
        job["poll_after_ms"].is_null(),
        "finished jobs need no more polling"
    );

    let res = api
        .get(
            &format!("/api/v1/bookmarks/{bookmark_id}?include=embedding"),
            &token,
        )
        .send()
        .await
        .expect("get bookmark");
    assert_eq!(res.status(), 200);
    let bookmark: serde_json::Value = res.json().await.expect("json");
    assert_eq!(bookmark["title"], "Rust runtimes");
    assert_eq!(bookmark["description"], "About Rust runtimes");
    assert_eq!(
        bookmark["canonical_url"],
        pages.url("/canonical/Rust%20runtimes")
    );
    assert_eq!(bookmark["status"], "ready");
    let text = bookmark["text"].as_str().expect("text");
    assert!(
        text.contains("work-stealing schedulers"),
        "main text extracted: {text}"
    );
    assert!(
        !text.contains("Copyright"),
        "footer is not main text: {text}"
    );
    let embedding = bookmark["embedding"].as_array().expect("embedding");
    assert_eq!(embedding.len(), 384);
    let norm: f64 = embedding
        .iter()
        .map(|x| x.as_f64().expect("float").powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-3,
        "embeddings are L2-normalized, norm {norm}"
    );

    // Saving the same page again (another spelling of the URL) returns the same bookmark and job.
    let (status, again) = api
        .save(&token, &pages.url("/page/Rust%20runtimes?utm_medium=x"))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["bookmark"]["id"], bookmark_id.as_str());
    assert_eq!(again["job"]["id"], job_id.as_str());
    assert_eq!(env.count("saved_content").await, 1);
    assert_eq!(env.count("jobs").await, 1);
    assert_eq!(
        pages.hits("/page/Rust%20runtimes"),
        1,
        "the page was fetched once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_url_saved_by_two_users_is_fetched_once_and_both_get_embeddings() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;
    let url = pages.url("/page/shared");

    let (_, a) = api.save(&alice, &url).await;
    let a_job = api
        .wait_for_job(
            &alice,
            a["job"]["id"].as_str().expect("id"),
            Duration::from_secs(30),
        )
        .await;
    let (_, b) = api.save(&bob, &url).await;
    assert_ne!(
        a["bookmark"]["id"], b["bookmark"]["id"],
        "each user has their own bookmark"
    );
    let b_job = api
        .wait_for_job(
            &bob,
            b["job"]["id"].as_str().expect("id"),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        (a_job["state"].as_str(), b_job["state"].as_str()),
        (Some("succeeded"), Some("succeeded"))
    );
    assert_eq!(
        pages.hits("/page/shared"),
        1,
        "the second scrape came from the scrape cache"
    );

    let ready: i64 =
        sqlx::query_scalar("SELECT count(*) FROM saved_content WHERE embedding IS NOT NULL")
            .fetch_one(&env.pool)
            .await
            .expect("count");
    assert_eq!(ready, 2);
    let metrics = worker.metrics().await;
    assert!(
        metrics.contains("fuze_embed_cache_requests_total{result=\"hit\"} 1"),
        "the same text was embedded once:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_saves_at_once_all_finish() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;
    let (_, token) = env.user().await;

    let mut jobs = Vec::new();
    for i in 0..12 {
        let (status, saved) = api
            .save(&token, &pages.url(&format!("/page/item-{i}")))
            .await;
        assert_eq!(status, 202, "{saved}");
        jobs.push(saved["job"]["id"].as_str().expect("id").to_owned());
    }
    for id in &jobs {
        let job = api.wait_for_job(&token, id, Duration::from_secs(60)).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "{job}");
    }
    let metrics = worker.metrics().await;
    assert!(
        metrics.contains("fuze_jobs_finished_total{outcome=\"succeeded\",queue=\"embed\"} 12"),
        "worker metrics count the jobs:\n{metrics}"
    );
}

/// A page with a 100,000-character description, and a text page with a NUL character (which
/// PostgreSQL's text type refuses), are stored within limits, not retried until they fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_pages_are_stored_within_limits() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker = WorkerProcess::spawn(
        &env,
        &[LOOPBACK_OK, ("FUZE_SCRAPE_MAX_DESCRIPTION_CHARS", "300")],
    )
    .await;
    let (_, token) = env.user().await;
    let mut stored = Vec::new();
    for path in ["/odd", "/odd.txt"] {
        let (status, saved) = api.save(&token, &pages.url(path)).await;
        assert_eq!(status, 202, "{saved}");
        let job = api
            .wait_for_job(
                &token,
                saved["job"]["id"].as_str().expect("id"),
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(job["state"], "succeeded", "{path}: {job}");
        assert_eq!(
            job["total_attempts"], 3,
            "{path}: one attempt per stage, no retries: {job}"
        );
        let id = saved["bookmark"]["id"].as_str().expect("bookmark id");
        let bookmark: serde_json::Value = api
            .get(&format!("/api/v1/bookmarks/{id}"), &token)
            .send()
            .await
            .expect("bookmark")
            .json()
            .await
            .expect("json");
        stored.push(bookmark);
    }
    let description = stored[0]["description"].as_str().expect("description");
    assert!(
        description.chars().count() <= 300,
        "{} characters",
        description.chars().count()
    );
    assert!(description.starts_with("long long"), "{description:.40}");
    let text = stored[1]["text"].as_str().expect("text");
    assert!(
        text.contains("NULin the middle") && !text.contains('\0'),
        "{text}"
    );
}
