//! Redis never grows with the jobs ever run: after a few thousand job runs (succeeded and
//! failed alike) the test's keys and their memory come back to where they were before.
//! Caches are bounded by their TTLs, shortened here to a second so that they expire within the
//! test too; the queues' own data must go as the runs end.

use std::time::{Duration, Instant};

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};
use redis::AsyncCommands;

/// Saved pages that succeed, and pages that fail for good (404: their queue data is retained
/// for the failed-job retention, then swept).
const GOOD: usize = 1000;
const FAILING: usize = 100;

/// Keys and bytes (`MEMORY USAGE`) under the test's prefix.
async fn footprint(conn: &mut redis::aio::ConnectionManager, prefix: &str) -> (u64, u64) {
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<String> =
            conn.scan_match(format!("{prefix}:*")).await.expect("scan");
        let mut keys = Vec::new();
        while let Some(key) = futures::StreamExt::next(&mut iter).await {
            keys.push(key.expect("key"));
        }
        keys
    };
    let mut bytes = 0;
    for key in &keys {
        let used: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(conn)
            .await
            .expect("memory usage");
        bytes += used.unwrap_or(0);
    }
    (keys.len() as u64, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_comes_back_to_its_baseline_after_thousands_of_runs() {
    let env = TestEnv::new().await;
    let short_lived = [
        ("FUZE_TTL_SCRAPED_S", "1"),
        // Long enough that the one text is embedded once, short enough to expire in the test.
        ("FUZE_TTL_EMBEDDING_S", "10"),
        ("FUZE_TTL_USER_BOOKMARKS_S", "1"),
        ("FUZE_TTL_RECOMMENDATIONS_S", "1"),
        ("FUZE_TTL_ANALYSIS_S", "1"),
        ("FUZE_TTL_QUERY_S", "1"),
        ("FUZE_SCRAPE_ROBOTS_TTL_S", "1"),
        // The user's kept events (their event stream) go a second after the last one.
        ("FUZE_EVENTS_RETAIN_S", "1"),
        ("FUZE_JOB_FAILED_RETENTION_S", "2"),
        ("FUZE_RATE_WRITES_PER_S", "0"),
        ("FUZE_CLOCK_RECONCILE_SCHEDULE", "* * * * * *"),
        ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8"),
    ];
    let api = TestApi::spawn(&env, &short_lived).await;
    let _worker = WorkerProcess::spawn(&env, &short_lived).await;
    let _clock = WorkerProcess::spawn_mode(&env, "clock", &short_lived).await;
    let (_, token) = env.user().await;
    let pages = PageServer::start_on("127.0.0.9").await;
    let mut conn = fuze_shared::redis_conn::connection_manager(&env.redis_url)
        .await
        .expect("redis");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = footprint(&mut conn, &env.prefix).await;

    // One short text for every page: after the first, embeddings come from the embedding cache,
    // which keeps the model's work (not what this test is about) small.
    let page = pages.doc_url("Same page", "Short and identical text on every page.");
    let mut urls: Vec<String> = (0..GOOD).map(|i| format!("{page}&n={i}")).collect();
    urls.extend((0..FAILING).map(|i| pages.url(&format!("/status/404?n={i}"))));
    api.save_new_links(&token, &urls, 16).await;
    let started = Instant::now();
    env.wait_until_jobs_final(Duration::from_secs(300)).await;
    let (succeeded, failed): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'failed') FROM jobs",
    )
    .fetch_one(&env.pool)
    .await
    .expect("count");
    assert_eq!((succeeded, failed), (GOOD as i64, FAILING as i64));
    let right_after = footprint(&mut conn, &env.prefix).await;
    println!(
        "{} runs in {:?}; keys and bytes before {before:?}, right after {right_after:?}",
        3 * GOOD + FAILING,
        started.elapsed()
    );

    // A few keys per queue and user may stay (counters, a user's cache generation): bounded by
    // queues and users, not by jobs.
    const MARGIN_KEYS: u64 = 12;
    let settled = Instant::now();
    let after = loop {
        let now = footprint(&mut conn, &env.prefix).await;
        let bytes_ok = now.1 as f64 <= before.1 as f64 * 1.05 + 8192.0;
        if now.0 <= before.0 + MARGIN_KEYS && bytes_ok {
            break now;
        }
        assert!(
            settled.elapsed() < Duration::from_secs(30),
            "Redis did not come back: before {before:?}, now {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "back to {after:?} {:?} after the last job",
        settled.elapsed()
    );

    // And specifically: nothing of any run is left in the queues.
    let queues = fuze_shared::jobs::JobQueues::new(
        conn.clone(),
        fuze_shared::keys::Keys::new(env.prefix.clone()),
        env.config(&[]).worker,
    );
    for queue in fuze_shared::jobs::QueueName::ALL {
        let config = queues.apalis_config(queue);
        let data: u64 = conn.hlen(config.job_data_hash()).await.expect("hlen");
        assert_eq!(data, 0, "{}: task data left", queue.as_str());
        let pending = queues.fair().pending(queue).await.expect("pending");
        assert!(
            pending.iter().all(|l| l.ready == 0 && l.delayed == 0),
            "{pending:?}"
        );
    }
}
