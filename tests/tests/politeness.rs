//! Politeness per host across worker processes, with page servers on several loopback addresses
//! (each one host to the scraper): the in-flight cap, Retry-After, the breaker and robots.txt.

use std::time::{Duration, Instant};

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};
use serde_json::Value;

const INTERNAL_OK: (&str, &str) = ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8");

async fn wait_all(api: &TestApi, token: &str, jobs: &[String], timeout: Duration) -> Vec<Value> {
    let mut done = Vec::new();
    for job in jobs {
        done.push(api.wait_for_job(token, job, timeout).await);
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_never_sees_more_than_its_cap_across_workers() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[("FUZE_RATE_WRITES_PER_S", "0")]).await;
    let polite = [
        INTERNAL_OK,
        ("FUZE_SCRAPE_HOST_CONCURRENCY", "2"),
        ("FUZE_SCRAPE_HOST_INTERVAL_MS", "0"),
        ("FUZE_SCRAPE_CONCURRENCY", "4"),
    ];
    // Two processes with four scrape slots each: eight requests could start at once.
    let _a = WorkerProcess::spawn(&env, &polite).await;
    let _b = WorkerProcess::spawn(&env, &polite).await;
    let (_, token) = env.user().await;
    let busy = PageServer::start_on("127.0.0.2").await;
    let other = PageServer::start_on("127.0.0.3").await;
    let mut urls: Vec<String> = (0..12)
        .map(|i| busy.url(&format!("/slow/400/busy{i}")))
        .collect();
    urls.extend((0..6).map(|i| other.url(&format!("/slow/400/other{i}"))));
    let started = Instant::now();
    let jobs = api.save_new_links(&token, &urls, 1).await;
    for job in wait_all(&api, &token, &jobs, Duration::from_secs(60)).await {
        assert_eq!(job["state"], "succeeded", "{job}");
        // Waiting for a host's turn spends no attempt.
        assert_eq!(job["total_attempts"], 3, "{job}");
    }
    println!(
        "18 pages in {:?}; peak in flight: {} and {}",
        started.elapsed(),
        busy.peak_in_flight(),
        other.peak_in_flight()
    );
    assert_eq!(
        busy.peak_in_flight(),
        2,
        "the cap is reached and never passed"
    );
    assert!(other.peak_in_flight() <= 2);
    // Twelve 400 ms pages two at a time take at least 2.4 s.
    assert!(started.elapsed() >= Duration::from_millis(2400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_defers_the_host_without_spending_an_attempt() {
    let env = TestEnv::new().await;
    // One attempt per job: a 429 that spent it would fail the job.
    let api = TestApi::spawn(&env, &[("FUZE_JOB_MAX_ATTEMPTS", "1")]).await;
    let worker =
        WorkerProcess::spawn(&env, &[INTERNAL_OK, ("FUZE_SCRAPE_HOST_CONCURRENCY", "2")]).await;
    let (_, token) = env.user().await;
    let site = PageServer::start_on("127.0.0.4").await;
    // The first request gets 429 with Retry-After: 2, then the page.
    let path = "/limited/2/1/patience";
    let saved_at = Instant::now();
    let jobs = api.save_new_links(&token, &[site.url(path)], 1).await;
    let deferred = api
        .wait_until(&token, &jobs[0], Duration::from_secs(20), |j| {
            j["state"] == "retrying" || j["state"] == "succeeded"
        })
        .await;
    assert_eq!(deferred["state"], "retrying", "{deferred}");
    assert_eq!(deferred["error"]["code"], "retry_after", "{deferred}");
    assert_eq!(
        deferred["attempts"], 0,
        "the attempt was given back: {deferred}"
    );
    // A page of the same host saved meanwhile also waits for the hold to end.
    let second = api
        .save_new_links(&token, &[site.url("/page/same-host")], 1)
        .await;
    let done = wait_all(
        &api,
        &token,
        &[jobs[0].clone(), second[0].clone()],
        Duration::from_secs(30),
    )
    .await;
    let elapsed = saved_at.elapsed();
    for job in &done {
        assert_eq!(job["state"], "succeeded", "{job}");
        // With one attempt allowed, a spent attempt would have failed the job.
        assert_eq!(job["total_attempts"], 3, "{job}");
    }
    assert!(
        elapsed >= Duration::from_secs(2),
        "the host was held for 2 s: {elapsed:?}"
    );
    assert_eq!(site.hits(path), 2, "one 429, then the page");
    let text = worker.metrics().await;
    assert!(
        text.contains("fuze_jobs_deferred_total{queue=\"scrape\",reason=\"retry_after\"}"),
        "the waiting job counts as deferred"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_txt_is_obeyed_and_fetched_once() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker = WorkerProcess::spawn(&env, &[INTERNAL_OK]).await;
    let (_, token) = env.user().await;
    let site = PageServer::start_on("127.0.0.5").await;
    site.set_robots(
        "User-agent: *\nDisallow: /page/private\n\nUser-agent: OtherBot\nDisallow: /\n",
    );
    let jobs = api
        .save_new_links(
            &token,
            &[
                site.url("/page/private-notes"),
                site.url("/page/public-notes"),
                site.url("/page/more-public-notes"),
            ],
            1,
        )
        .await;
    let done = wait_all(&api, &token, &jobs, Duration::from_secs(30)).await;
    assert_eq!(done[0]["state"], "failed", "{}", done[0]);
    assert_eq!(done[0]["error"]["code"], "robots_disallowed", "{}", done[0]);
    assert_eq!(done[0]["attempts"], 1, "a disallowed page is not retried");
    assert_eq!(done[1]["state"], "succeeded", "{}", done[1]);
    assert_eq!(done[2]["state"], "succeeded", "{}", done[2]);
    assert_eq!(
        site.hits("/page/private-notes"),
        0,
        "the disallowed page was never fetched"
    );
    assert_eq!(
        site.hits("/robots.txt"),
        1,
        "robots.txt is cached per origin"
    );

    // With robots.txt ignored (an operator's choice), the same page is fetched.
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker = WorkerProcess::spawn(
        &env,
        &[INTERNAL_OK, ("FUZE_SCRAPE_RESPECT_ROBOTS", "false")],
    )
    .await;
    let (_, token) = env.user().await;
    let jobs = api
        .save_new_links(&token, &[site.url("/page/private-notes")], 1)
        .await;
    let done = wait_all(&api, &token, &jobs, Duration::from_secs(30)).await;
    assert_eq!(done[0]["state"], "succeeded", "{}", done[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_open_the_hosts_breaker() {
    let env = TestEnv::new().await;
    // One attempt per job (the api sets the cap when it creates the job): each 503 fails its job.
    let api = TestApi::spawn(&env, &[("FUZE_JOB_MAX_ATTEMPTS", "1")]).await;
    let worker = WorkerProcess::spawn(
        &env,
        &[
            INTERNAL_OK,
            ("FUZE_SCRAPE_HOST_CONCURRENCY", "1"),
            ("FUZE_SCRAPE_BREAKER_FAILURES", "3"),
            ("FUZE_SCRAPE_BREAKER_OPEN_S", "3"),
        ],
    )
    .await;
    let (_, token) = env.user().await;
    let down = PageServer::start_on("127.0.0.6").await;
    let urls: Vec<String> = (0..5)
        .map(|i| down.url(&format!("/status/503?n={i}")))
        .collect();
    let started = Instant::now();
    let jobs = api.save_new_links(&token, &urls, 1).await;
    let done = wait_all(&api, &token, &jobs, Duration::from_secs(30)).await;
    for job in &done {
        assert_eq!(job["state"], "failed", "{job}");
    }
    // Three failures opened the breaker: the other two waited for it instead of sending requests
    // (each later one let through as a trial, then waited again).
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let text = worker.metrics().await;
    let value = |series: &str| {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Opened after the third failure, and again after the one trial request it let through.
    assert!(value("fuze_scrape_breakers_opened_total ") >= 1.0, "{text}");
    let waited = value("fuze_jobs_deferred_total{queue=\"scrape\",reason=\"breaker_open\"}");
    assert!(waited >= 2.0, "jobs waited for the breaker: {waited}");
}
