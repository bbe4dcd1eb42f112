//! Every process's `/metrics` follows Prometheus naming: `fuze_` prefix, counters end in `_total`,
//! durations in seconds, and no label carries an unbounded value (ids, URLs, tokens).

use std::time::Duration;

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};

/// (metric name, type) of each `# TYPE` line, and every label value of every sample.
fn parse(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut types = Vec::new();
    let mut values = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            types.push((
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
            ));
        } else if !line.starts_with('#')
            && let (Some(open), Some(close)) = (line.find('{'), line.rfind('}'))
        {
            for pair in line[open + 1..close].split("\",") {
                if let Some((_, value)) = pair.split_once("=\"") {
                    values.push(value.trim_end_matches('"').to_owned());
                }
            }
        }
    }
    (types, values)
}

fn check(process: &str, text: &str) {
    let (types, values) = parse(text);
    assert!(!types.is_empty(), "{process} exports nothing");
    for (name, kind) in &types {
        assert!(
            name.starts_with("fuze_") || name.starts_with("process_"),
            "{process}: {name} lacks the fuze_ prefix"
        );
        if kind == "counter" {
            assert!(
                name.ends_with("_total"),
                "{process}: counter {name} must end in _total"
            );
        } else {
            assert!(
                !name.ends_with("_total"),
                "{process}: {kind} {name} must not end in _total"
            );
        }
        if name.contains("duration") || name.contains("latency") || name.contains("wait") {
            assert!(
                name.ends_with("_seconds"),
                "{process}: {name} must be in seconds"
            );
        }
    }
    for value in values {
        let looks_unbounded = uuid::Uuid::parse_str(&value).is_ok()
            || value.contains("://")
            || value.starts_with("fz_")
            || (value.len() == 26
                && value.chars().all(|c| c.is_ascii_alphanumeric())
                && value.chars().any(|c| c.is_ascii_digit()));
        assert!(
            !looks_unbounded,
            "{process}: label value {value:?} looks unbounded"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_prometheus_naming_on_every_process() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let worker = WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let clock = WorkerProcess::spawn_mode(&env, "clock", &[]).await;
    let (_, token) = env.user().await;
    // Traffic with ids and URLs in it, so a leaking label would show.
    let (_, saved) = api.save(&token, &pages.url("/page/metrics")).await;
    let job_id = saved["job"]["id"].as_str().expect("id").to_owned();
    api.wait_for_job(&token, &job_id, Duration::from_secs(30))
        .await;
    let bookmark = saved["bookmark"]["id"].as_str().expect("id");
    api.get(&format!("/api/v1/bookmarks/{bookmark}"), &token)
        .send()
        .await
        .expect("get");
    api.get("/api/v1/bookmarks", &token)
        .send()
        .await
        .expect("list");
    api.get("/api/v1/bookmarks/not-a-uuid", &token)
        .send()
        .await
        .expect("404");

    let api_metrics = api.metrics_text().await;
    assert!(
        api_metrics.contains("route=\"/api/v1/bookmarks/{id}\""),
        "routes are templates:\n{api_metrics}"
    );
    check("api", &api_metrics);
    check("worker", &worker.metrics().await);
    check("clock", &clock.metrics().await);
}

#[test]
#[should_panic(expected = "must end in _total")]
fn the_check_catches_a_counter_without_total() {
    check("sample", "# TYPE fuze_jobs counter\nfuze_jobs 1\n");
}

#[test]
#[should_panic(expected = "looks unbounded")]
fn the_check_catches_an_id_in_a_label() {
    check(
        "sample",
        "# TYPE fuze_x_total counter\nfuze_x_total{user=\"6f1c7d1e-8a53-4a52-9a51-0f4a4c8a7e10\"} 1\n",
    );
}
