//! Test harness: each test gets its own database and Redis key prefix on the real services, the
//! real api (in process) and real worker processes, and a local HTTP server with the pages to scrape.

pub mod api;
pub mod api_process;
pub mod bench;
pub mod browser;
pub mod dashboard;
pub mod env;
pub mod pages;
pub mod prometheus;
pub mod redis_server;
pub mod sse;
pub mod tcp_proxy;
pub mod worker;

pub use api::TestApi;
pub use api_process::ApiProcess;
pub use env::TestEnv;
pub use pages::PageServer;
pub use prometheus::PrometheusServer;
pub use redis_server::RedisServer;
pub use tcp_proxy::TcpProxy;
pub use worker::WorkerProcess;

/// A port that was free a moment ago (for processes that must be told their port up front).
///
/// Taken below the kernel's ephemeral range (32768+ on Linux): a port from there can be handed to
/// any outgoing connection or `:0` listener (the api, the page server) before the process it was
/// meant for binds it, and with many tests at once that happened (a worker then failed to start).
pub fn free_port() -> u16 {
    const LOW: u128 = 20_000;
    const HIGH: u128 = 32_767;
    for _ in 0..1000 {
        let candidate = (LOW + uuid::Uuid::new_v4().as_u128() % (HIGH - LOW + 1)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            return candidate;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}
