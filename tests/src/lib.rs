//! Test harness: each test gets its own database and Redis key prefix on the real services, the
//! real api (in process) and real worker processes, and a local HTTP server with the pages to scrape.

pub mod api;
pub mod env;
pub mod pages;
pub mod worker;

pub use api::TestApi;
pub use env::TestEnv;
pub use pages::PageServer;
pub use worker::WorkerProcess;

/// A port that was free a moment ago (for processes that must be told their port up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}
