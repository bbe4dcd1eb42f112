//! A real Prometheus (Debian's `prometheus` package, installed by `scripts/setup.sh`) scraping the
//! test's processes with `dashboards/prometheus.yml`, adapted to their ports, and its alert rules.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::free_port;

/// `dashboards/` in the repository.
pub fn dashboards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

/// A tool the setup script installs; a clear failure when it is missing.
pub fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is missing: run scripts/setup.sh (it installs Debian's prometheus)"
    );
    Command::new(name)
}

/// The processes to scrape (host:port each).
pub struct Targets {
    pub api: String,
    pub worker: String,
    pub clock: String,
}

pub struct PrometheusServer {
    child: Child,
    dir: PathBuf,
    pub base: String,
    http: reqwest::Client,
}

impl PrometheusServer {
    /// Starts Prometheus on a free loopback port, scraping and evaluating rules every second.
    pub async fn start(targets: &Targets) -> Self {
        let dir = std::env::temp_dir().join(format!("fuze-prometheus-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("data")).expect("prometheus temp dir");
        let config = adapt_config(targets);
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = tool("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let server = Self {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        server.wait_ready(Duration::from_secs(20)).await;
        server
    }

    async fn wait_ready(&self, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(res) = self.http.get(format!("{}/-/ready", self.base)).send().await
                && res.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "prometheus not ready after {timeout:?}: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/{path}` with query parameters; the `data` of a successful answer, or the error.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let res = self
            .http
            .get(format!("{}/api/v1/{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = res.json().await.map_err(|e| e.to_string())?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }

    /// An instant query's result vector (or scalar as a one-element vector).
    pub async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self.api("query", &[("query", promql)]).await?;
        Ok(match &data["result"] {
            Value::Array(items) => items.clone(),
            Value::Null => Vec::new(),
            scalar => vec![scalar.clone()],
        })
    }

    /// The value of a query that returns one sample, if it does.
    pub async fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).await.ok()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `promql` returns one sample at least `min`.
    pub async fn wait_for(&self, promql: &str, min: f64, timeout: Duration) {
        let started = Instant::now();
        loop {
            if self.value(promql).await.is_some_and(|v| v >= min) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "`{promql}` never reached {min} (now {:?}); prometheus log: {}",
                self.value(promql).await,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `dashboards/prometheus.yml` with the test's ports, 1 s intervals and an absolute rules path.
/// Every replacement must apply: if the file changes shape, this fails instead of testing less.
fn adapt_config(targets: &Targets) -> String {
    let dir = dashboards_dir();
    let mut config = std::fs::read_to_string(dir.join("prometheus.yml")).expect("prometheus.yml");
    let rules = dir.join("alerts.yml");
    for (from, to) in [
        ("scrape_interval: 15s", "scrape_interval: 1s".to_owned()),
        (
            "evaluation_interval: 15s",
            "evaluation_interval: 1s".to_owned(),
        ),
        ("127.0.0.1:8080", targets.api.clone()),
        ("127.0.0.1:9101", targets.worker.clone()),
        ("127.0.0.1:9102", targets.clock.clone()),
        ("- alerts.yml", format!("- {}", absolute(&rules))),
    ] {
        assert!(
            config.contains(from),
            "prometheus.yml no longer contains {from:?}"
        );
        config = config.replace(from, &to);
    }
    config
}

fn absolute(path: &Path) -> String {
    path.canonicalize()
        .expect("dashboards/alerts.yml exists")
        .display()
        .to_string()
}
