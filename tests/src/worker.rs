//! Real `fuze-worker` processes, so tests can SIGKILL and SIGTERM them.

use std::{
    fs::File,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{TestEnv, free_port};

pub struct WorkerProcess {
    child: Child,
    pub metrics_port: u16,
    pub log: PathBuf,
}

/// `target/<profile>/<name>` (`fuze-worker`, `fuze-api`), next to this test binary's `deps/` folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first (make test does)",
        path.display()
    );
    path
}

impl WorkerProcess {
    /// Starts a worker and waits until it reports ready (model loaded, metrics port open).
    pub async fn spawn(env: &TestEnv, overrides: &[(&str, &str)]) -> Self {
        Self::spawn_mode(env, "run", overrides).await
    }

    pub async fn spawn_mode(env: &TestEnv, mode: &str, overrides: &[(&str, &str)]) -> Self {
        let metrics_port = free_port();
        let port = metrics_port.to_string();
        let mut vars = env.vars(overrides);
        vars.insert("FUZE_WORKER_METRICS_PORT".into(), port.clone());
        vars.insert("FUZE_CLOCK_METRICS_PORT".into(), port);
        vars.entry("RUST_LOG".into())
            .or_insert_with(|| "info,fuze_worker=debug".into());
        let log_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log = log_dir.join(format!(
            "{}-{mode}-{metrics_port}.log",
            env.prefix.replace(':', "_")
        ));
        let out = File::create(&log).expect("log file");
        // The clock is its own program; every other mode is a worker subcommand.
        let (program, command) = match mode {
            "clock" => ("fuze-clock", "run"),
            other => ("fuze-worker", other),
        };
        let child = Command::new(binary(program))
            .arg(command)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&vars)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let mut worker = Self {
            child,
            metrics_port,
            log,
        };
        worker.wait_ready(Duration::from_secs(60)).await;
        worker
    }

    async fn wait_ready(&mut self, timeout: Duration) {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        loop {
            // Exited first: then whoever answers on the port is not this worker.
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "worker exited with {status} before ready; log: {}",
                    self.logs()
                );
            }
            if let Ok(res) = reqwest::get(&url).await
                && res.status().is_success()
                && self.is_running()
            {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "worker not ready after {timeout:?}; log: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it has not exited or been killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics text")
    }

    /// SIGKILL: no chance to clean up, like a crash or an OOM kill.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as a process manager stops it.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit; returns whether it did within `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
