//! Cached reads stay correct across api instances: a write through one instance, or by a worker,
//! is not served stale by another once the event lands; a lost subscription flushes L1.

use std::time::{Duration, Instant};

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess, redis_server::RedisServer};
use serde_json::Value;

async fn list(api: &TestApi, token: &str) -> Value {
    let res = api
        .get("/api/v1/bookmarks", token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}

/// Polls `api`'s list until `pred` holds; returns how long that took.
async fn until_list(api: &TestApi, token: &str, pred: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if pred(&list(api, token).await) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "instance never saw the change"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_one_instance_or_a_worker_are_not_served_stale_by_another() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let a = TestApi::spawn(&env, &[]).await;
    let b = TestApi::spawn(&env, &[]).await;
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;

    // B caches an empty list, then serves it from L1.
    assert_eq!(list(&b, &alice).await["items"], serde_json::json!([]));
    assert_eq!(list(&b, &alice).await["items"], serde_json::json!([]));
    let before = b.cache_stats().await;
    assert!(before["l1"]["hits"].as_u64().unwrap_or(0) >= 1, "{before}");
    let metrics = b.metrics_text().await;
    let l1_hits = metrics
        .lines()
        .find(|l| l.starts_with("fuze_cache_requests_total{cache_type=\"user_bookmarks\",layer=\"l1\",result=\"hit\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(l1_hits >= Some(1), "cache metrics are exported:\n{metrics}");

    // A write through A: B drops its entry when the event lands.
    let (status, saved) = a.save(&alice, &pages.url("/page/cross")).await;
    assert_eq!(status, 202);
    let waited = until_list(&b, &alice, |l| {
        l["items"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    assert!(
        waited < Duration::from_secs(1),
        "B saw the save after {waited:?}"
    );
    assert_eq!(
        list(&b, &bob).await["items"],
        serde_json::json!([]),
        "bob sees nothing of alice"
    );

    // A change made by a worker (scrape, then embed) reaches B's cached list too.
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let job = a
        .wait_for_job(
            &alice,
            saved["job"]["id"].as_str().expect("id"),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(job["state"], "succeeded");
    until_list(&b, &alice, |l| {
        l["items"][0]["status"] == "ready" && l["items"][0]["title"] == "cross"
    })
    .await;

    // Conditional requests on the cached page.
    let first = b
        .get("/api/v1/bookmarks", &alice)
        .send()
        .await
        .expect("list");
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    let again = b
        .get("/api/v1/bookmarks", &alice)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("list");
    assert_eq!(again.status(), 304);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscription_flushes_l1() {
    let env = TestEnv::new().await;
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let api = TestApi::spawn(&env, &[("REDIS_URL", url.as_str())]).await;
    let (_, token) = env.user().await;
    list(&api, &token).await;
    list(&api, &token).await;
    let before = api.cache_stats().await;
    assert!(
        before["l1"]["entries"].as_u64().unwrap_or(0) >= 1,
        "{before}"
    );
    let flushes = before["l1"]["flushes_subscription_lost"]
        .as_u64()
        .unwrap_or(0);

    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .expect("kill");
    assert!(killed >= 1, "the api's subscription was connected");

    let started = Instant::now();
    loop {
        let now = api.cache_stats().await;
        if now["l1"]["flushes_subscription_lost"].as_u64().unwrap_or(0) > flushes {
            assert_eq!(now["l1"]["entries"], 0, "{now}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no flush after the kill: {now}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Redis going away entirely does not fail reads: they come from Postgres.
    redis.kill();
    assert_eq!(list(&api, &token).await["items"], serde_json::json!([]));
}

/// `fuze_jobs_finished_total{outcome="succeeded",queue="scrape"}` of one worker.
fn scrapes_done(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("fuze_jobs_finished_total{outcome=\"succeeded\",queue=\"scrape\"} ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_two_workers_share_the_work_and_stay_coherent() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let a = TestApi::spawn(&env, &[]).await;
    let b = TestApi::spawn(&env, &[]).await;
    // One scrape at a time per worker and slow pages: six saves at once need both workers.
    let vars = [
        ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8"),
        ("FUZE_SCRAPE_CONCURRENCY", "1"),
    ];
    let w1 = WorkerProcess::spawn(&env, &vars).await;
    let w2 = WorkerProcess::spawn(&env, &vars).await;
    let (_, alice) = env.user().await;

    // Both instances cache Alice's (empty) list first.
    for api in [&a, &b] {
        assert_eq!(list(api, &alice).await["items"], serde_json::json!([]));
    }
    let mut jobs = Vec::new();
    for i in 0..6 {
        let api = if i % 2 == 0 { &a } else { &b };
        let (status, saved) = api
            .save(&alice, &pages.url(&format!("/slow/300/page{i}")))
            .await;
        assert_eq!(status, 202, "{saved}");
        jobs.push(saved["job"]["id"].as_str().expect("id").to_owned());
    }
    for job in &jobs {
        let done = a.wait_for_job(&alice, job, Duration::from_secs(60)).await;
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    let (m1, m2) = (w1.metrics().await, w2.metrics().await);
    let (d1, d2) = (scrapes_done(&m1), scrapes_done(&m2));
    assert_eq!(d1 + d2, 6.0, "each job scraped once");
    assert!(
        d1 >= 1.0 && d2 >= 1.0,
        "both workers took work: {d1} / {d2}"
    );

    // The workers' writes reached both instances' cached lists.
    for api in [&a, &b] {
        until_list(api, &alice, |l| {
            l["items"].as_array().is_some_and(|items| {
                items.len() == 6 && items.iter().all(|i| i["status"] == "ready")
            })
        })
        .await;
    }
    // An edit through B is visible through A.
    let listed = list(&a, &alice).await;
    let id = listed["items"][0]["id"].as_str().expect("id").to_owned();
    let res = b
        .patch(&format!("/api/v1/bookmarks/{id}"), &alice)
        .json(&serde_json::json!({"title": "renamed through B"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 200);
    let waited = until_list(&a, &alice, |l| {
        l["items"][0]["title"] == "renamed through B"
    })
    .await;
    assert!(
        waited < Duration::from_secs(1),
        "A saw B's edit after {waited:?}"
    );
}
