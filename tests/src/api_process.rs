//! The real `fuze-api` binary as a process of its own, for tests that kill it.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{TestEnv, free_port, worker::binary};

pub struct ApiProcess {
    child: Child,
    pub base: String,
}

impl ApiProcess {
    /// Starts `fuze-api serve` and waits until it answers its health check.
    pub async fn spawn(env: &TestEnv, overrides: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut vars = env.vars(overrides);
        vars.insert("FUZE_API_PORT".into(), port.to_string());
        let child = Command::new(binary("fuze-api"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&vars)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fuze-api");
        // Owned from here on: a panic below kills it (Drop).
        let api = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        loop {
            if let Ok(res) = reqwest::get(api.url("/healthz")).await
                && res.status().is_success()
            {
                return api;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "fuze-api did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no shutdown, no cleanup, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
