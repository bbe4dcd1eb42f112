//! Fair share between users: one user's thousand queued links do not hold up another user's
//! single save. Order, not time, is asserted.

use std::time::Duration;

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};

/// How many of a user's jobs have started (claimed at least once).
async fn started(env: &TestEnv, user: uuid::Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE user_id = $1 AND started_at IS NOT NULL")
        .bind(user)
        .fetch_one(&env.pool)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_single_save_does_not_wait_behind_anothers_backlog() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[("FUZE_RATE_WRITES_PER_S", "0")]).await;
    let _worker = WorkerProcess::spawn(
        &env,
        &[
            ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8"),
            ("FUZE_SCRAPE_CONCURRENCY", "2"),
        ],
    )
    .await;
    let (a, a_token) = env.user().await;
    let (_, b_token) = env.user().await;
    let a_pages = PageServer::start_on("127.0.0.7").await;
    let b_pages = PageServer::start_on("127.0.0.8").await;

    // User A queues a thousand slow pages, eight saves at a time (one text for all, so the
    // model embeds it once and the embedding cache serves the rest).
    let urls: Vec<String> = (0..1000)
        .map(|i| a_pages.url(&format!("/slow/200/backlog?n={i}")))
        .collect();
    api.save_new_links(&a_token, &urls, 8).await;
    let a_started_before = started(&env, a).await;

    let (status, saved) = api.save(&b_token, &b_pages.url("/page/b-only")).await;
    assert_eq!(status, 202, "{saved}");
    let b_job = saved["job"]["id"].as_str().expect("id").to_owned();
    let job = api
        .wait_for_job(&b_token, &b_job, Duration::from_secs(60))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let b_started_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT started_at FROM jobs WHERE id = $1")
            .bind(&b_job)
            .fetch_one(&env.pool)
            .await
            .expect("started_at");
    let a_started_before_b: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE user_id = $1 AND started_at < $2")
            .bind(a)
            .bind(b_started_at)
            .fetch_one(&env.pool)
            .await
            .expect("count");
    println!(
        "A: {a_started_before} started when B saved, {a_started_before_b} when B's job started"
    );
    // B's ticket waits for at most one turn of A's, behind what apalis already holds (the
    // dispatcher's window, two) and the runs in progress (two).
    assert!(
        a_started_before_b - a_started_before <= 6,
        "{} of A's jobs started between B's save and B's start",
        a_started_before_b - a_started_before
    );
    assert!(
        a_started_before_b < 900,
        "B's job started before A's queue drained ({a_started_before_b} of 1000 started)"
    );
}
