//! A private `redis-server` child process, for tests that stop and restart Redis.
//!
//! No persistence (`--save '' --appendonly no`): a restart comes back empty, like a cache node
//! that lost its memory.

use std::{
    fs::File,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::free_port;

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    log_dir: PathBuf,
    starts: u32,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub async fn start() -> Self {
        let log_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let mut server = Self {
            child: None,
            port: 0,
            log_dir,
            starts: 0,
        };
        // The port was free a moment ago; if something took it since, take another.
        for _ in 0..5 {
            server.port = free_port();
            if server.launch().await {
                return server;
            }
        }
        panic!("redis-server did not start: {}", server.last_log());
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the server disappears mid-conversation, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty); kills a running one first.
    pub async fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        // After a kill the OS may take a moment to release the port.
        while !self.launch().await {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "redis-server did not restart on port {}: {}",
                self.port,
                self.last_log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Spawns redis-server on `self.port`; true once it answers (false: it exited or hung).
    async fn launch(&mut self) -> bool {
        self.starts += 1;
        let out = File::create(self.log_path()).expect("redis log file");
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        if self.wait_ready(Duration::from_secs(5)).await {
            return true;
        }
        self.kill();
        false
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir
            .join(format!("redis-{}-{}.log", self.port, self.starts))
    }

    fn last_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the server answers; false if it exited, did not answer in time, or the port
    /// is held by another server.
    async fn wait_ready(&mut self, timeout: Duration) -> bool {
        let started = Instant::now();
        let client = redis::Client::open(self.url()).expect("redis url");
        while started.elapsed() < timeout {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                // Our server, not another one that holds the port: compare process ids.
                let info: redis::RedisResult<String> = redis::cmd("INFO")
                    .arg("server")
                    .query_async(&mut conn)
                    .await;
                if let Ok(info) = info {
                    let pid = self.child.as_ref().map(Child::id);
                    let theirs = info
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("process_id:"))
                        .and_then(|p| p.parse().ok());
                    return pid.is_some() && theirs == pid;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
