//! The dashboard and the alert rules, proven against a real Prometheus: the api, a worker and the
//! clock are scraped every second with `dashboards/prometheus.yml`, real traffic runs (saves,
//! reads, a search, a failing scrape), then every panel query must return data and every alert
//! rule must evaluate. A metric the dashboard names that no process exports fails the test.

use std::{
    collections::HashSet,
    io::Write,
    process::Stdio,
    time::{Duration, Instant},
};

use fuze_tests::{
    PageServer, PrometheusServer, TestApi, TestEnv, WorkerProcess,
    dashboard::{alert_names, dashboard, metric_names, panel_queries, substitute},
    prometheus::{Targets, tool},
};
use serde_json::Value;

const LOOPBACK_OK: (&str, &str) = ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8");
const WAIT: Duration = Duration::from_secs(30);

/// Alerts that must stay quiet while everything runs (each would page someone for nothing).
const QUIET_WHEN_HEALTHY: &[&str] = &[
    "FuzeNoWorkerHeartbeat",
    "FuzeWorkerStalled",
    "FuzeCacheSubscriberDown",
    "FuzeNoLiveQueueWorkers",
    "FuzeTargetDown",
    "FuzeDatabaseErrors",
    "FuzeRedisErrors",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_and_alert_evaluates_against_a_real_prometheus() {
    let started = Instant::now();
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    // One attempt per stage, so the failing scrape fails for good at once.
    let api = TestApi::spawn(&env, &[("FUZE_JOB_MAX_ATTEMPTS", "1")]).await;
    let worker = WorkerProcess::spawn(&env, &[LOOPBACK_OK]).await;
    let clock = WorkerProcess::spawn_mode(&env, "clock", &[]).await;
    let prom = PrometheusServer::start(&Targets {
        api: api.base.trim_start_matches("http://").to_owned(),
        worker: format!("127.0.0.1:{}", worker.metrics_port),
        clock: format!("127.0.0.1:{}", clock.metrics_port),
    })
    .await;
    prom.wait_for("count(up{job=~\"fuze-.*\"} == 1)", 3.0, WAIT)
        .await;

    drive_traffic(&api, &env, &pages).await;
    // Scraped after the traffic: the jobs' outcomes are visible, then a few more scrapes so every
    // rate window holds several samples.
    prom.wait_for("sum(fuze_save_to_ready_seconds_count)", 2.0, WAIT)
        .await;
    prom.wait_for(
        "sum(fuze_scrape_fetches_total{outcome=\"http_5xx\"})",
        1.0,
        WAIT,
    )
    .await;
    prom.wait_for(
        "sum(fuze_http_requests_total{route=\"/api/v1/search\"})",
        1.0,
        WAIT,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let exported = exported_names(&prom).await;
    let d = dashboard();
    let queries = panel_queries(&d);
    assert!(queries.len() > 40, "only {} panel queries", queries.len());
    let mut failures = Vec::new();
    for (panel, expr) in &queries {
        for name in metric_names(expr) {
            if !exported.contains(&name) {
                failures.push(format!("{panel}: {name} is not exported by any process"));
            }
        }
        match prom.query(&substitute(expr)).await {
            Ok(result) if result.is_empty() => {
                failures.push(format!("{panel}: no data for `{expr}`"));
            }
            Ok(_) => {}
            Err(e) => failures.push(format!("{panel}: `{expr}` failed: {e}")),
        }
    }
    // The instance variable lists every scraped process.
    let instances = prom
        .query("count by (instance) (fuze_build_info)")
        .await
        .expect("instances");
    assert_eq!(instances.len(), 3, "{instances:?}");

    check_alerts(&prom, &exported, &mut failures).await;
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // What each process exports passes promtool's own lint.
    for (process, text) in [
        ("api", fetch(&api.url("/metrics")).await),
        ("worker", worker.metrics().await),
        ("clock", clock.metrics().await),
    ] {
        lint(process, &text);
    }
    eprintln!("prometheus e2e took {:?}", started.elapsed());
}

/// Saves that succeed, one whose page answers 500, reads (one 404) and a search.
async fn drive_traffic(api: &TestApi, env: &TestEnv, pages: &PageServer) {
    let (_, token) = env.user().await;
    let mut jobs = Vec::new();
    for url in [
        pages.url("/page/prometheus-one"),
        pages.url("/page/prometheus-two"),
        pages.url("/status/500"),
    ] {
        let (status, saved) = api.save(&token, &url).await;
        assert_eq!(status, 202, "{saved}");
        jobs.push(saved["job"]["id"].as_str().expect("job id").to_owned());
    }
    let mut states = Vec::new();
    for id in &jobs {
        let job = api.wait_for_job(&token, id, WAIT).await;
        states.push(job["state"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(states, ["succeeded", "succeeded", "failed"]);
    for path in [
        "/api/v1/bookmarks",
        "/api/v1/bookmarks?limit=1",
        "/api/v1/bookmarks/00000000-0000-0000-0000-000000000000",
        "/api/v1/search?q=prometheus",
    ] {
        let res = api.get(path, &token).send().await.expect("read");
        assert!(
            res.status().is_success() || res.status() == 404,
            "{path}: {}",
            res.status()
        );
    }
}

/// Every metric name Prometheus holds.
async fn exported_names(prom: &PrometheusServer) -> HashSet<String> {
    let names = prom
        .api("label/__name__/values", &[])
        .await
        .expect("metric names");
    names
        .as_array()
        .expect("names")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// Every rule of alerts.yml is loaded and evaluates without error; the health alerts are quiet.
async fn check_alerts(
    prom: &PrometheusServer,
    exported: &HashSet<String>,
    failures: &mut Vec<String>,
) {
    let rules = prom
        .api("rules", &[("type", "alert")])
        .await
        .expect("rules");
    let loaded: Vec<Value> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let mut names: Vec<String> = loaded
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    let mut expected = alert_names();
    expected.sort();
    assert_eq!(
        names, expected,
        "Prometheus loaded every rule of alerts.yml"
    );
    for rule in &loaded {
        let name = rule["name"].as_str().unwrap_or("?");
        let expr = rule["query"].as_str().unwrap_or("");
        if rule["health"] != "ok" {
            failures.push(format!(
                "alert {name}: health {} {}",
                rule["health"], rule["lastError"]
            ));
        }
        for metric in metric_names(expr) {
            if !exported.contains(&metric) {
                failures.push(format!(
                    "alert {name}: {metric} is not exported by any process"
                ));
            }
        }
        match prom.query(expr).await {
            Err(e) => failures.push(format!("alert {name}: `{expr}` failed: {e}")),
            Ok(result) if QUIET_WHEN_HEALTHY.contains(&name) && !result.is_empty() => {
                failures.push(format!(
                    "alert {name} fires on a healthy system: {result:?}"
                ));
            }
            Ok(_) => {}
        }
    }
    // One scrape of three failed for good: the failure-ratio alert's condition holds for scrape.
    let ratio = loaded
        .iter()
        .find(|r| r["name"] == "FuzeJobFailureRatioHigh")
        .and_then(|r| r["query"].as_str())
        .expect("failure ratio rule");
    let firing = prom.query(ratio).await.expect("ratio");
    let queues: Vec<&str> = firing
        .iter()
        .filter_map(|s| s["metric"]["queue"].as_str())
        .collect();
    assert_eq!(queues, ["scrape"], "{firing:?}");
}

async fn fetch(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// `promtool check metrics` reads an exposition on stdin and reports naming problems.
fn lint(process: &str, text: &str) {
    let mut child = tool("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "{process}: promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
