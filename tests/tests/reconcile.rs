//! No job is lost when its queue task is: the clock re-enqueues unfinished jobs that Redis no
//! longer knows (Redis here keeps nothing on disk, so a restart empties every queue).

use std::time::Duration;

use fuze_shared::{
    bookmarks,
    domain::BookmarkUrl,
    jobs::{QueueName, queue::new_task_id, records},
};
use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};

/// A saved bookmark whose job record exists but whose task was never pushed (as after a Redis
/// restart), made to look older than the reconciler's threshold.
async fn orphaned_job(env: &TestEnv, user_id: uuid::Uuid, url: &str) -> String {
    let url = BookmarkUrl::parse(url, 2048).expect("url");
    let mut conn = env.pool.acquire().await.expect("conn");
    let (bookmark, _) =
        bookmarks::insert_or_get(&mut conn, user_id, url.as_str(), &url.hash(), None, None)
            .await
            .expect("bookmark");
    let job_id = new_task_id();
    records::insert(
        &mut *conn,
        &records::NewJob {
            id: &job_id,
            user_id,
            kind: "ingest",
            stage: QueueName::Scrape.as_str(),
            bookmark_id: Some(bookmark.id),
            max_attempts: 3,
        },
    )
    .await
    .expect("job");
    sqlx::query("UPDATE jobs SET updated_at = now() - interval '10 minutes' WHERE id = $1")
        .bind(&job_id)
        .execute(&mut *conn)
        .await
        .expect("age the job");
    job_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_re_enqueues_jobs_whose_task_was_lost() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let (user_id, token) = env.user().await;

    // A job with a live task is left alone: saved normally, then paused by a slow page.
    let (_, live) = api.save(&token, &pages.url("/slow/3000/live")).await;
    let live_id = live["job"]["id"].as_str().expect("id").to_owned();
    api.wait_until(&token, &live_id, Duration::from_secs(10), |j| {
        j["state"] == "running"
    })
    .await;
    sqlx::query("UPDATE jobs SET updated_at = now() - interval '10 minutes' WHERE id = $1")
        .bind(&live_id)
        .execute(&env.pool)
        .await
        .expect("age");

    let lost = orphaned_job(&env, user_id, &pages.url("/page/lost")).await;
    // Nothing runs it: no task exists.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.job(&token, &lost).await["state"], "queued");

    // Two clocks at once, ticking every second: reconciling is idempotent.
    let clock_vars = [
        ("FUZE_CLOCK_RECONCILE_SCHEDULE", "* * * * * *"),
        ("FUZE_CLOCK_STALE_AFTER_S", "60"),
    ];
    let _clock_a = WorkerProcess::spawn_mode(&env, "clock", &clock_vars).await;
    let _clock_b = WorkerProcess::spawn_mode(&env, "clock", &clock_vars).await;

    let job = api
        .wait_for_job(&token, &lost, Duration::from_secs(30))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["total_attempts"], 3,
        "one scrape, one embed and one analyze run, no duplicates: {job}"
    );
    assert_eq!(pages.hits("/page/lost"), 1);

    let live_job = api
        .wait_for_job(&token, &live_id, Duration::from_secs(30))
        .await;
    assert_eq!(live_job["state"], "succeeded", "{live_job}");
    assert_eq!(
        pages.hits("/slow/3000/live"),
        1,
        "a job whose task exists was not enqueued again"
    );
}
