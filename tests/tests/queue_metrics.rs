//! The scrape-time gauges tell the truth: a job waiting with no worker shows in its lane of the
//! fair queue, the unfinished records and the oldest pending age; once a worker runs it, they
//! drop back to 0,
//! and the worker reports its heartbeat and the save → ready latency.

use std::time::Duration;

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};

const WAIT: Duration = Duration::from_secs(30);

/// The value of one sample line (`name{labels} value`) in an exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_gauges_follow_a_job_from_waiting_to_done() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[("FUZE_DB_MAX_CONNECTIONS", "7")]).await;
    let (_, token) = env.user().await;

    let before = api.metrics_text().await;
    assert_eq!(
        sample(
            &before,
            r#"fuze_jobs_pending{lane="interactive",queue="scrape",state="ready"}"#
        ),
        0.0
    );
    assert_eq!(
        sample(
            &before,
            r#"fuze_jobs_unfinished{queue="scrape",state="queued"}"#
        ),
        0.0
    );
    assert_eq!(sample(&before, "fuze_db_pool_max_connections"), 7.0);
    assert!(
        !before.contains("fuze_worker_heartbeat_timestamp_seconds"),
        "api has no heartbeat"
    );

    // No worker yet: the job waits its turn in the fair queue; apalis holds nothing.
    let (status, saved) = api.save(&token, &pages.url("/page/gauges")).await;
    assert_eq!(status, 202, "{saved}");
    let job = saved["job"]["id"].as_str().expect("id").to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let waiting = api.metrics_text().await;
    let ready = r#"fuze_jobs_pending{lane="interactive",queue="scrape",state="ready"}"#;
    assert_eq!(sample(&waiting, ready), 1.0, "{waiting}");
    assert_eq!(
        sample(
            &waiting,
            r#"fuze_jobs_pending{lane="bulk",queue="scrape",state="ready"}"#
        ),
        0.0
    );
    assert_eq!(
        sample(
            &waiting,
            r#"fuze_queue_depth{queue="scrape",state="ready"}"#
        ),
        0.0,
        "nothing is handed to apalis without a worker's dispatcher"
    );
    assert_eq!(
        sample(
            &waiting,
            r#"fuze_jobs_unfinished{queue="scrape",state="queued"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&waiting, r#"fuze_queue_live_workers{queue="scrape"}"#),
        0.0
    );
    let age = sample(
        &waiting,
        r#"fuze_job_oldest_pending_age_seconds{lane="interactive",queue="scrape"}"#,
    );
    assert!(age >= 1.0, "the job has waited over a second: {age}");
    for (lane, queue) in [("interactive", "embed"), ("bulk", "scrape")] {
        let series =
            format!(r#"fuze_job_oldest_pending_age_seconds{{lane="{lane}",queue="{queue}"}}"#);
        assert_eq!(sample(&waiting, &series), 0.0, "{series}");
    }

    let worker = WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let done = api.wait_for_job(&token, &job, WAIT).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let after = api.metrics_text().await;
    for queue in ["scrape", "embed"] {
        for state in ["ready", "scheduled", "dead"] {
            let series = format!(r#"fuze_queue_depth{{queue="{queue}",state="{state}"}}"#);
            assert_eq!(sample(&after, &series), 0.0, "{series}");
        }
        for state in ["queued", "retrying", "running"] {
            let series = format!(r#"fuze_jobs_unfinished{{queue="{queue}",state="{state}"}}"#);
            assert_eq!(sample(&after, &series), 0.0, "{series}");
        }
        for lane in ["interactive", "bulk"] {
            let series =
                format!(r#"fuze_job_oldest_pending_age_seconds{{lane="{lane}",queue="{queue}"}}"#);
            assert_eq!(sample(&after, &series), 0.0, "{series}");
            let series =
                format!(r#"fuze_jobs_pending{{lane="{lane}",queue="{queue}",state="ready"}}"#);
            assert_eq!(sample(&after, &series), 0.0, "{series}");
        }
        let series = format!(r#"fuze_queue_live_workers{{queue="{queue}"}}"#);
        assert_eq!(sample(&after, &series), 1.0, "{series}");
    }

    // Subscribed long since (it connects in the background at start).
    assert_eq!(sample(&after, "fuze_cache_subscriber_up"), 1.0);

    let w = worker.metrics().await;
    assert_eq!(sample(&w, "fuze_save_to_ready_seconds_count"), 1.0);
    // It waited over a second for a worker, so that is what the user felt.
    assert!(sample(&w, "fuze_save_to_ready_seconds_sum") >= 1.0);
    assert_eq!(
        sample(&w, r#"fuze_scrape_fetches_total{outcome="ok"}"#),
        1.0
    );
    assert_eq!(sample(&w, "fuze_scrape_response_bytes_count"), 1.0);
    assert!(sample(&w, "fuze_embed_batch_tokens_sum") > 0.0);
    assert!(
        sample(
            &w,
            r#"fuze_db_query_duration_seconds_count{operation="job_claim"}"#
        ) >= 2.0
    );
    assert!(sample(&w, "fuze_db_pool_acquire_duration_seconds_count") >= 2.0);
    let beat = sample(&w, "fuze_worker_heartbeat_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - beat).abs() < 10.0, "heartbeat {beat} vs now {now}");
}
