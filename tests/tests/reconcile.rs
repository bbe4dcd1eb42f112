//! No job is lost when its queue task is: the clock re-enqueues unfinished jobs that Redis no
//! longer knows (Redis here keeps nothing on disk, so a restart empties every queue).

use std::time::Duration;

use fuze_shared::{
    bookmarks,
    domain::BookmarkUrl,
    jobs::{Lane, Owner, QueueName, StageJob, Ticket, queue::new_task_id, records},
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
            lane: Lane::Interactive,
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

    // A job with a live ticket is left alone: saved normally, then paused by a slow page, and
    // older than the threshold (but not running for longer than any run may take).
    let (_, live) = api.save(&token, &pages.url("/slow/3000/live")).await;
    let live_id = live["job"]["id"].as_str().expect("id").to_owned();
    api.wait_until(&token, &live_id, Duration::from_secs(10), |j| {
        j["state"] == "running"
    })
    .await;
    sqlx::query("UPDATE jobs SET updated_at = now() - interval '2 minutes' WHERE id = $1")
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

/// A job recorded as running far longer than any run may take is taken back even though its
/// ticket is alive (its worker lost the database while settling it and then stopped): found
/// running for good after a Postgres outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_takes_back_a_job_left_running() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let (user_id, token) = env.user().await;
    let stuck = orphaned_job(&env, user_id, &pages.url("/page/stuck")).await;
    // Its ticket is alive (waiting out a long delay, so nothing runs it), and its record says
    // running since ten minutes.
    let record = records::find(&env.pool, &stuck)
        .await
        .expect("query")
        .expect("record");
    let queues = fuze_shared::jobs::JobQueues::new(
        fuze_shared::redis_conn::connection_manager(&env.redis_url)
            .await
            .expect("redis"),
        fuze_shared::keys::Keys::new(env.prefix.clone()),
        env.config(&[]).worker,
    );
    let ticket = Ticket {
        queue: QueueName::Scrape,
        id: &record.task_id,
        owner: Owner::User(user_id),
        lane: Lane::Interactive,
    };
    let stage = StageJob {
        job_id: stuck.clone(),
        user_id,
        bookmark_id: record.bookmark_id.expect("bookmark"),
        refresh: false,
    };
    queues
        .enqueue(ticket, &stage, Some(Duration::from_secs(3600)))
        .await
        .expect("enqueue");
    sqlx::query(
        "UPDATE jobs SET state = 'running', attempts = 1, total_attempts = 1, \
         updated_at = now() - interval '10 minutes' WHERE id = $1",
    )
    .bind(&stuck)
    .execute(&env.pool)
    .await
    .expect("make it look stuck");

    let _clock = WorkerProcess::spawn_mode(
        &env,
        "clock",
        &[
            ("FUZE_CLOCK_RECONCILE_SCHEDULE", "* * * * * *"),
            ("FUZE_JOB_RUNNING_STALE_AFTER_S", "300"),
        ],
    )
    .await;
    let job = api
        .wait_for_job(&token, &stuck, Duration::from_secs(30))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(pages.hits("/page/stuck"), 1);
    let old_alive = queues
        .fair()
        .contains(QueueName::Scrape, &record.task_id)
        .await
        .expect("redis");
    assert!(!old_alive, "the old ticket is over");
}
