//! Resilience end to end, on the real services and real worker processes: crashes, graceful stops,
//! poison payloads, transient and permanent scrape errors, the attempt cap, a Redis restart, and
//! idle pickup without a wake-up message.

use std::time::{Duration, Instant};

use apalis::prelude::{TaskBuilder, TaskSink};
use fuze_shared::{
    bookmarks,
    domain::{BookmarkUrl, JobKind, JobState},
    jobs::{
        JobQueues, Lane, Owner, QueueName, RawPayload, StageJob, Ticket,
        queue::new_task_id,
        records::{self, NewJob},
    },
    keys::Keys,
    redis_conn,
};
use fuze_tests::{PageServer, RedisServer, TestApi, TestEnv, WorkerProcess};
use redis::AsyncCommands;
use serde_json::{Value, json};

const LOOPBACK_OK: (&str, &str) = ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8");

fn id_of(saved: &Value, what: &str) -> String {
    saved[what]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{what} id in {saved}"))
        .to_owned()
}

/// Saves a link and expects a new bookmark (202); returns (job id, bookmark id).
async fn save_new(api: &TestApi, token: &str, url: &str) -> (String, String) {
    let (status, saved) = api.save(token, url).await;
    assert_eq!(status, 202, "saving {url}: {saved}");
    (id_of(&saved, "job"), id_of(&saved, "bookmark"))
}

async fn bookmark(api: &TestApi, token: &str, id: &str) -> Value {
    let res = api
        .get(&format!("/api/v1/bookmarks/{id}?include=embedding"), token)
        .send()
        .await
        .expect("get bookmark");
    assert_eq!(res.status(), 200, "bookmark {id}");
    res.json().await.expect("bookmark JSON")
}

/// Polls a bookmark until its status is `status`; panics after 5 s.
///
/// A job is marked failed just before its bookmark (worker/src/jobs/runner.rs `settle_failure`:
/// two separate updates), so a client may briefly see a failed job whose bookmark is `pending`.
async fn wait_for_bookmark_status(api: &TestApi, token: &str, id: &str, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let b = bookmark(api, token, id).await;
        if b["status"] == status {
            if started.elapsed() > Duration::from_millis(20) {
                println!(
                    "bookmark {id} became {status} {:?} after its job",
                    started.elapsed()
                );
            }
            return b;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bookmark never {status}: {b}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The bookmark is ready, with its 384-dimension embedding.
async fn assert_embedded(api: &TestApi, token: &str, id: &str) {
    let b = bookmark(api, token, id).await;
    assert_eq!(b["status"], "ready", "{b}");
    let dims = b["embedding"].as_array().map(Vec::len);
    assert_eq!(dims, Some(384), "bookmark {id} has its embedding");
}

/// The queues of this test, as the api and the worker see them.
async fn queues(env: &TestEnv, overrides: &[(&str, &str)]) -> JobQueues {
    let config = env.config(overrides);
    let conn = redis_conn::connection_manager(&config.redis_url)
        .await
        .expect("redis");
    JobQueues::new(conn, Keys::new(config.redis_prefix.clone()), config.worker)
}

/// The value of one exact series (`name{labels}`) in a Prometheus text exposition.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls the worker's /metrics until `series` has `value`; panics after `timeout`.
async fn wait_for_metric(worker: &WorkerProcess, series: &str, value: f64, timeout: Duration) {
    let started = Instant::now();
    loop {
        let text = worker.metrics().await;
        if metric(&text, series) == Some(value) {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "{series} never reached {value} (now {:?}):\n{text}",
            metric(&text, series)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_job_is_retried_by_another_worker() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let mut a = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;
    let (_, token) = env.user().await;

    let names = ["crash-a", "crash-b", "crash-c"];
    let mut saved = Vec::new();
    for name in names {
        let path = format!("/slow/4000/{name}");
        let (job, bookmark) = save_new(&api, &token, &pages.url(&path)).await;
        saved.push((path, job, bookmark));
    }
    for (_, job, _) in &saved {
        api.wait_until(&token, job, Duration::from_secs(10), |j| {
            j["state"] == "running"
        })
        .await;
    }
    // Wait until every page request of A is in flight (each takes 4 s), then crash.
    let started = Instant::now();
    while saved.iter().any(|(path, ..)| pages.hits(path) == 0) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "A never fetched the pages"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill();
    let killed = Instant::now();
    let _b = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;

    for (path, job, bookmark) in &saved {
        let left = Duration::from_secs(30).saturating_sub(killed.elapsed());
        let done = api.wait_for_job(&token, job, left).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_embedded(&api, &token, bookmark).await;
        // A's request was cut off by the kill, so B fetched the page again.
        assert_eq!(pages.hits(path), 2, "{path}: fetched by A, then once by B");
    }
    println!(
        "all {} orphaned jobs finished {:?} after the kill",
        saved.len(),
        killed.elapsed()
    );
    let succeeded: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'succeeded'")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(succeeded, saved.len() as i64, "no job was lost");
    assert_eq!(env.count("jobs").await, saved.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_jobs_then_exits() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let shutdown_timeout = Duration::from_millis(3000);
    let mut a = WorkerProcess::spawn(
        &env,
        &[LOOPBACK_OK, ("FUZE_WORKER_SHUTDOWN_TIMEOUT_MS", "3000")],
    )
    .await;
    let up = Instant::now();
    let (_, token) = env.user().await;
    // The drain deadline counts from the signal, not from the start of the process: let the
    // worker live longer than its shutdown timeout before it is stopped.
    tokio::time::sleep_until((up + shutdown_timeout + Duration::from_millis(500)).into()).await;

    let path = "/slow/1500/drain";
    let (job_id, bookmark_id) = save_new(&api, &token, &pages.url(path)).await;
    api.wait_until(&token, &job_id, Duration::from_secs(10), |j| {
        j["state"] == "running"
    })
    .await;
    a.terminate();
    let signalled = Instant::now();
    let status = a
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("worker still running 15 s after SIGTERM; log: {}", a.logs()));
    let took = signalled.elapsed();
    assert!(
        status.success(),
        "worker exit status {status}; log: {}",
        a.logs()
    );
    assert!(a.logs().contains("SIGTERM"), "log: {}", a.logs());
    assert!(
        !a.logs().contains("abandoning in-flight jobs"),
        "log: {}",
        a.logs()
    );
    println!("worker exited {took:?} after SIGTERM");

    // The in-flight scrape finished and was recorded: the job moved on to the embed stage.
    let record = records::find(&env.pool, &job_id)
        .await
        .expect("query")
        .expect("job record");
    assert_eq!(
        record.stage.as_deref(),
        Some("embed"),
        "the in-flight scrape was cut off: {record:?}; log: {}",
        a.logs()
    );
    assert_eq!(pages.hits(path), 1);
    let b = bookmark(&api, &token, &bookmark_id).await;
    assert_eq!(b["title"], "drain", "{b}");
    // A stopping worker fetches nothing new, so the embed stage normally waits, still queued,
    // for the next worker; its task must be in Redis (or the stage already done).
    println!(
        "after the stop: stage {:?}, state {:?}",
        record.stage, record.state
    );
    match record.state {
        JobState::Queued => {
            let queues = queues(&env, &[]).await;
            let known = queues
                .fair()
                .contains(QueueName::Embed, &record.task_id)
                .await
                .expect("redis");
            assert!(
                known,
                "the embed ticket of {record:?} is not in Redis: lost"
            );
        }
        JobState::Succeeded => {}
        other => panic!("unexpected state {other:?} after a graceful stop: {record:?}"),
    }

    // The next worker finishes the job without scraping again.
    let _b = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;
    let job = api
        .wait_for_job(&token, &job_id, Duration::from_secs(15))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_embedded(&api, &token, &bookmark_id).await;
    assert_eq!(pages.hits(path), 1, "the page was not fetched again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_payload_never_kills_a_worker() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let mut worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;
    let (_, token) = env.user().await;

    let queues = queues(&env, &[]).await;
    let mut storage = queues.storage(QueueName::Scrape);
    storage
        .push_task(TaskBuilder::new(RawPayload(b"\xff\x00garbage".to_vec())).build())
        .await
        .expect("push garbage");
    let wrong_fields = json!({ "job": "x", "url": "http://example.com/", "attempt": 1 });
    let (user_id, _) = env.user().await;
    let wrong_ticket = new_task_id();
    let ticket = Ticket {
        queue: QueueName::Scrape,
        id: &wrong_ticket,
        owner: Owner::User(user_id),
        lane: Lane::Interactive,
    };
    queues
        .enqueue(ticket, &wrong_fields, None)
        .await
        .expect("enqueue wrong fields");
    wait_for_metric(
        &worker,
        "fuze_jobs_undecodable_total{queue=\"scrape\"}",
        2.0,
        Duration::from_secs(10),
    )
    .await;

    let (job_id, bookmark_id) = save_new(&api, &token, &pages.url("/page/after-poison")).await;
    let job = api
        .wait_for_job(&token, &job_id, Duration::from_secs(30))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_embedded(&api, &token, &bookmark_id).await;

    assert!(
        worker.is_running(),
        "the worker process died; log: {}",
        worker.logs()
    );
    let text = worker.metrics().await;
    let series = |s: &str| metric(&text, s);
    assert_eq!(
        series("fuze_jobs_undecodable_total{queue=\"scrape\"}"),
        Some(2.0),
        "{text}"
    );
    // Not even the apalis worker inside the process died and restarted.
    assert_eq!(
        series("fuze_worker_restarts_total{queue=\"scrape\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        series("fuze_jobs_started_total{queue=\"scrape\"}"),
        Some(1.0),
        "{text}"
    );
    // The poison tasks are gone from the queue, not parked in flight, and the ticket is over.
    let config = queues.apalis_config(QueueName::Scrape);
    let mut conn = queues.connection();
    let active: i64 = conn.llen(config.active_jobs_list()).await.expect("redis");
    assert_eq!(active, 0);
    let alive = queues
        .fair()
        .contains(QueueName::Scrape, &wrong_ticket)
        .await
        .expect("redis");
    assert!(!alive, "the undecodable job's ticket was not finished");
}

/// Backoff base of the retry test: the first `retrying` window lasts 1.5 s, long enough to be seen.
const BACKOFF_BASE_MS: i64 = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_retry_with_backoff_then_succeed() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let base = BACKOFF_BASE_MS.to_string();
    let worker = WorkerProcess::spawn(
        &env,
        &[
            LOOPBACK_OK,
            ("FUZE_JOB_BACKOFF_BASE_MS", &base),
            ("FUZE_JOB_BACKOFF_MAX_MS", "5000"),
        ],
    )
    .await;
    let (_, token) = env.user().await;

    let path = "/flaky/2/flaky-page";
    let (job_id, bookmark_id) = save_new(&api, &token, &pages.url(path)).await;
    // Poll fast and keep every distinct view of the job.
    let started = Instant::now();
    let mut seen: Vec<Value> = Vec::new();
    let done = loop {
        let mut job = api.job(&token, &job_id).await;
        if let Some(o) = job.as_object_mut() {
            o.remove("poll_after_ms");
        }
        if seen.last() != Some(&job) {
            seen.push(job.clone());
        }
        if matches!(job["state"].as_str(), Some("succeeded" | "failed")) {
            break job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not finished: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let history: Vec<String> = seen
        .iter()
        .map(|j| format!("{}/{}/{}", j["stage"], j["state"], j["attempts"]))
        .collect();
    println!("job history: {history:?}");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["error"].is_null(), "{done}");

    // The failed attempts were seen as `retrying` (attempts 1, then 2), with the error and the
    // time of the next try. Under load a fast poller may still miss one of the two windows.
    let retrying: Vec<&Value> = seen.iter().filter(|j| j["state"] == "retrying").collect();
    assert!(!retrying.is_empty(), "never seen retrying: {history:?}");
    for j in &retrying {
        assert_eq!(j["stage"], "scrape", "{j}");
        assert_eq!(j["error"]["code"], "http_5xx", "{j}");
        let message = j["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("503"), "{j}");
        let attempts = j["attempts"].as_i64().unwrap_or_default();
        assert!((1..=2).contains(&attempts), "{j}");
        // Exponential backoff: base × 2^(attempt-1), plus up to 20 % jitter.
        let at = |k: &str| chrono_millis(j[k].as_str().unwrap_or_else(|| panic!("{k} in {j}")));
        let delay = at("next_attempt_at") - at("updated_at");
        let expected = BACKOFF_BASE_MS << (attempts - 1);
        assert!(
            (expected - 50..=expected * 12 / 10 + 50).contains(&delay),
            "attempt {attempts}: retry after {delay} ms, expected {expected} ms + jitter: {j}"
        );
    }

    // The scrape stage ran exactly 3 times (2 × 503, then 200).
    assert_eq!(pages.hits(path), 3);
    let text = worker.metrics().await;
    assert_eq!(
        metric(&text, "fuze_jobs_started_total{queue=\"scrape\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "fuze_jobs_finished_total{outcome=\"retried\",queue=\"scrape\"}"
        ),
        Some(2.0),
        "{text}"
    );
    // `attempts` counts the attempts of the job's current stage: it restarts at each hand-off, so
    // the finished job reports its last (analyze) stage's single attempt.
    assert_eq!(done["stage"], "analyze", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(
        done["total_attempts"], 5,
        "three scrape runs, one embed and one analyze run: {done}"
    );
    assert_embedded(&api, &token, &bookmark_id).await;
}

/// Milliseconds since the epoch of an RFC 3339 timestamp, as the api writes them.
fn chrono_millis(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap_or_else(|e| panic!("timestamp {ts}: {e}"))
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_fail_at_once() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;
    let (_, token) = env.user().await;

    for (path, code) in [("/status/404", "http_4xx"), ("/image", "not_html")] {
        let (job_id, bookmark_id) = save_new(&api, &token, &pages.url(path)).await;
        let job = api
            .wait_for_job(&token, &job_id, Duration::from_secs(30))
            .await;
        assert_eq!(job["state"], "failed", "{path}: {job}");
        assert_eq!(job["stage"], "scrape", "{path}: {job}");
        assert_eq!(
            job["attempts"], 1,
            "{path}: no retry of a permanent error: {job}"
        );
        assert_eq!(job["error"]["code"], code, "{path}: {job}");
        assert!(job["next_attempt_at"].is_null(), "{path}: {job}");
        assert!(job["poll_after_ms"].is_null(), "{path}: {job}");
        let b = wait_for_bookmark_status(&api, &token, &bookmark_id, "failed").await;
        assert!(b["error"].is_string(), "{path}: {b}");
        assert_eq!(pages.hits(path), 1, "{path} was fetched once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_capped() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    // The cap is fixed when the job is created (by the api); the worker's own setting differs on
    // purpose, to show the record's cap is the one that counts.
    let api = TestApi::spawn(&env, &[("FUZE_JOB_MAX_ATTEMPTS", "3")]).await;
    let _worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK, ("FUZE_JOB_MAX_ATTEMPTS", "7")]).await;
    let (_, token) = env.user().await;

    let path = "/status/503";
    let (job_id, bookmark_id) = save_new(&api, &token, &pages.url(path)).await;
    let job = api
        .wait_for_job(&token, &job_id, Duration::from_secs(30))
        .await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempts"], 3, "{job}");
    assert_eq!(job["max_attempts"], 3, "{job}");
    assert_eq!(job["total_attempts"], 3, "{job}");
    assert_eq!(job["error"]["code"], "http_5xx", "{job}");
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("gave up after 3 attempts"), "{job}");
    let b = wait_for_bookmark_status(&api, &token, &bookmark_id, "failed").await;
    assert!(
        b["error"].as_str().is_some_and(|e| e.contains("gave up")),
        "{b}"
    );
    assert_eq!(pages.hits(path), 3);
    // Nothing retries behind our back (apalis-redis would, up to 25 times, if a stage returned an
    // error): the next backoff would have been ~800 ms.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pages.hits(path), 3, "no attempt after giving up");
    assert_eq!(api.job(&token, &job_id).await["state"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_is_survived_without_a_worker_restart() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let redis_url = ("REDIS_URL", url.as_str());
    let api = TestApi::spawn(&env, &[redis_url]).await;
    let mut worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK, redis_url]).await;
    let pid = worker.pid();
    let (_, token) = env.user().await;

    let (job_id, bookmark_id) = save_new(&api, &token, &pages.url("/page/before-restart")).await;
    let job = api
        .wait_for_job(&token, &job_id, Duration::from_secs(30))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");

    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted = Instant::now();
    let ready = api
        .http
        .get(api.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(
        ready.status(),
        200,
        "the api reconnected: {:?}",
        ready.text().await
    );

    let (job_id, bookmark_id2) = save_new(&api, &token, &pages.url("/page/after-restart")).await;
    let job = api
        .wait_for_job(&token, &job_id, Duration::from_secs(30))
        .await;
    assert_eq!(
        job["state"],
        "succeeded",
        "{job}; worker log: {}",
        worker.logs()
    );
    println!(
        "saved and processed {:?} after the restart",
        restarted.elapsed()
    );
    assert_embedded(&api, &token, &bookmark_id).await;
    assert_embedded(&api, &token, &bookmark_id2).await;
    assert!(worker.is_running(), "worker died; log: {}", worker.logs());
    assert_eq!(worker.pid(), pid);
    let text = worker.metrics().await;
    println!(
        "apalis worker restarts: scrape {:?}, embed {:?}",
        metric(&text, "fuze_worker_restarts_total{queue=\"scrape\"}"),
        metric(&text, "fuze_worker_restarts_total{queue=\"embed\"}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_worker_picks_up_without_a_wakeup_message() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    // Default poll interval (100 ms); a heartbeat far beyond the bound checked below.
    let _worker =
        WorkerProcess::spawn(&env, &[LOOPBACK_OK, ("FUZE_WORKER_HEARTBEAT_MS", "30000")]).await;
    let ready = Instant::now();
    let (user_id, _) = env.user().await;
    let queues = queues(&env, &[]).await;

    let mut idle_since = ready;
    for round in 1..=2 {
        // A bookmark and its job record, as the api writes them (committed before the push).
        let url =
            BookmarkUrl::parse(&pages.url(&format!("/page/idle-{round}")), 2048).expect("url");
        let mut tx = env.pool.begin().await.expect("tx");
        let (bookmark, created) =
            bookmarks::insert_or_get(&mut tx, user_id, url.as_str(), &url.hash(), None, None)
                .await
                .expect("bookmark");
        assert!(created);
        let job_id = new_task_id();
        records::insert(
            &mut *tx,
            &NewJob {
                id: &job_id,
                user_id,
                kind: JobKind::Ingest.as_str(),
                stage: QueueName::Scrape.as_str(),
                bookmark_id: Some(bookmark.id),
                max_attempts: 5,
                lane: Lane::Interactive,
            },
        )
        .await
        .expect("job record");
        tx.commit().await.expect("commit");

        // Idle for 2 s, then enqueue without the pub/sub wake-up message.
        tokio::time::sleep_until((idle_since + Duration::from_secs(2)).into()).await;
        let payload = StageJob {
            job_id: job_id.clone(),
            user_id,
            bookmark_id: bookmark.id,
            refresh: false,
        };
        let ticket = Ticket {
            queue: QueueName::Scrape,
            id: &job_id,
            owner: Owner::User(user_id),
            lane: Lane::Interactive,
        };
        queues
            .enqueue_silently(ticket, &payload, None)
            .await
            .expect("enqueue");
        let pushed = Instant::now();

        let started = loop {
            let record = records::find(&env.pool, &job_id)
                .await
                .expect("query")
                .expect("record");
            if record.state != JobState::Queued || record.attempts > 0 {
                break pushed.elapsed();
            }
            assert!(
                pushed.elapsed() < Duration::from_secs(2),
                "round {round}: an idle worker did not pick the job up within 2 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        println!("round {round}: picked up {started:?} after the push");
        let finished = Instant::now();
        loop {
            let record = records::find(&env.pool, &job_id)
                .await
                .expect("query")
                .expect("record");
            match record.state {
                JobState::Succeeded => break,
                JobState::Failed => panic!("{record:?}"),
                _ => {}
            }
            assert!(finished.elapsed() < Duration::from_secs(20), "{record:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        idle_since = Instant::now();
    }
}
