//! The real api, in this test process, on a free port.

use std::time::{Duration, Instant};

use fuze_api::startup::Application;
use serde_json::Value;

use crate::TestEnv;

pub struct TestApi {
    pub base: String,
    pub http: reqwest::Client,
}

impl TestApi {
    pub async fn spawn(env: &TestEnv, overrides: &[(&str, &str)]) -> Self {
        let app = Application::build(env.config(overrides))
            .await
            .expect("build api");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// `GET /api/v1/admin/cache/stats` with the test admin token.
    pub async fn cache_stats(&self) -> Value {
        self.get("/api/v1/admin/cache/stats", "test-admin-token")
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json")
    }

    /// The api's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(token)
    }

    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(token)
    }

    pub fn patch(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.patch(self.url(path)).bearer_auth(token)
    }

    pub fn delete(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(token)
    }

    /// Saves a link; returns the status and the JSON reply.
    pub async fn save(&self, token: &str, url: &str) -> (u16, Value) {
        let res = self
            .post("/api/v1/bookmarks", token)
            .json(&serde_json::json!({ "url": url }))
            .send()
            .await
            .expect("save request");
        let status = res.status().as_u16();
        (status, res.json().await.expect("save reply is JSON"))
    }

    /// Saves a link and waits until its job succeeded; returns the bookmark's id.
    pub async fn save_ready(&self, token: &str, url: &str, timeout: Duration) -> String {
        let (status, saved) = self.save(token, url).await;
        assert_eq!(status, 202, "{saved}");
        let job = self
            .wait_for_job(token, saved["job"]["id"].as_str().expect("job id"), timeout)
            .await;
        assert_eq!(job["state"], "succeeded", "{job}");
        saved["bookmark"]["id"]
            .as_str()
            .expect("bookmark id")
            .to_owned()
    }

    /// Saves every link, `at_once` requests at a time, expecting each to be new (202); returns
    /// the job ids in order.
    pub async fn save_new_links(
        &self,
        token: &str,
        urls: &[String],
        at_once: usize,
    ) -> Vec<String> {
        let mut jobs = Vec::with_capacity(urls.len());
        for chunk in urls.chunks(at_once.max(1)) {
            let saves = chunk.iter().map(|url| self.save(token, url));
            for (status, saved) in futures::future::join_all(saves).await {
                assert_eq!(status, 202, "{saved}");
                jobs.push(saved["job"]["id"].as_str().expect("job id").to_owned());
            }
        }
        jobs
    }

    pub async fn job(&self, token: &str, id: &str) -> Value {
        let res = self
            .get(&format!("/api/v1/jobs/{id}"), token)
            .send()
            .await
            .expect("job request");
        assert_eq!(res.status(), 200, "job {id} should be visible to its owner");
        res.json().await.expect("job JSON")
    }

    /// Polls a job until it succeeds or fails; panics after `timeout`.
    pub async fn wait_for_job(&self, token: &str, id: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let job = self.job(token, id).await;
            if matches!(job["state"].as_str(), Some("succeeded" | "failed")) {
                return job;
            }
            assert!(
                started.elapsed() < timeout,
                "job {id} not finished after {timeout:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls a job until `pred` holds; panics after `timeout`.
    pub async fn wait_until(
        &self,
        token: &str,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let job = self.job(token, id).await;
            if pred(&job) {
                return job;
            }
            assert!(
                started.elapsed() < timeout,
                "job {id} never reached the expected state: {job}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
