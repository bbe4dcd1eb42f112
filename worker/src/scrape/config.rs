//! Scraper limits and identity.

use std::time::Duration;

/// Limits for one fetch. The defaults suit the production worker; tests shrink them.
#[derive(Debug, Clone)]
pub struct ScraperConfig {
    /// TCP (and TLS) connect limit per hop.
    pub connect_timeout: Duration,
    /// Limit for the whole fetch: every redirect hop plus reading the body.
    pub total_timeout: Duration,
    /// Redirects followed before giving up with `TooManyRedirects`.
    pub max_redirects: usize,
    /// Largest body accepted, counted after content decoding (so gzip bombs stop too).
    pub max_body_bytes: usize,
    /// TEST-ONLY: lets 127.0.0.0/8 and ::1 through the SSRF guard so tests can use a local
    /// server. Lifts nothing else (not even IPv4-mapped loopback). Never set in production.
    pub allow_loopback: bool,
    pub user_agent: String,
}

impl Default for ScraperConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            max_redirects: 5,
            max_body_bytes: 5 * 1024 * 1024,
            allow_loopback: false,
            user_agent: "FuzeBot/0.1 (+bookmark fetcher)".to_owned(),
        }
    }
}
