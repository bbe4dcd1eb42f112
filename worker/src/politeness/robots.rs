//! `robots.txt` (RFC 9309): fetched through the scraper (so through the SSRF guard), cached in
//! Redis per origin for every worker, parsed with `texting_robots`.
//!
//! - 2xx: the rules for our product token (the user agent up to its first `/`) apply.
//! - 4xx (no file): everything is allowed.
//! - 5xx or no answer: the site is treated as unreachable for a short while (RFC 9309 asks
//!   crawlers to assume a complete disallow then); the job retries later.

use std::time::Duration;

use fuze_shared::keys::Keys;
use redis::{AsyncCommands, aio::ConnectionManager};
use url::Url;

use crate::scrape::{ScrapeError, Scraper};

/// How long an unreachable robots.txt is remembered before it is asked again.
const UNREACHABLE_TTL: Duration = Duration::from_secs(60);

/// What robots.txt says about one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Disallowed,
    /// The site's robots.txt could not be read (5xx, timeout, network): try later.
    Unreachable,
}

/// Cached robots.txt answers in Redis: `A` (no file: allow all), `U` (unreachable), or `R`
/// followed by the file's bytes.
#[derive(Clone)]
pub struct Robots {
    conn: ConnectionManager,
    keys: Keys,
    ttl: Duration,
    agent: String,
}

impl Robots {
    pub fn new(conn: ConnectionManager, keys: Keys, ttl: Duration, user_agent: &str) -> Self {
        Self {
            conn,
            keys,
            ttl,
            agent: product_token(user_agent),
        }
    }

    /// The verdict from the cache, or `None` when this origin's robots.txt must be fetched.
    pub async fn cached(&self, url: &Url) -> redis::RedisResult<Option<Verdict>> {
        let mut conn = self.conn.clone();
        let stored: Option<Vec<u8>> = conn.get(self.keys.robots(&origin(url))).await?;
        Ok(stored.map(|bytes| self.judge(&bytes, url)))
    }

    /// Whether this run may fetch the origin's robots.txt now: one run at a time across every
    /// worker, so jobs for a new site do not each fetch it (the others wait for its answer in the
    /// cache). The claim ends when [`Robots::fetch`] stores the answer, or after `hold`.
    pub async fn claim_fetch(&self, url: &Url, hold: Duration) -> redis::RedisResult<bool> {
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.fetching_key(url))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1))
            .query_async(&mut conn)
            .await?;
        Ok(taken.is_some())
    }

    /// Gives up a claim taken by [`Robots::claim_fetch`] without fetching.
    pub async fn release_fetch(&self, url: &Url) {
        let mut conn = self.conn.clone();
        let done: redis::RedisResult<i64> = conn.del(self.fetching_key(url)).await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "failed to release a robots.txt claim; it expires on its own");
        }
    }

    fn fetching_key(&self, url: &Url) -> String {
        format!("{}:fetching", self.keys.robots(&origin(url)))
    }

    /// Fetches the origin's robots.txt, caches what it says, and judges `url` by it.
    pub async fn fetch(&self, scraper: &Scraper, url: &Url) -> redis::RedisResult<Verdict> {
        let robots_url = url.join("/robots.txt").unwrap_or_else(|_| url.clone());
        let (stored, ttl) = match scraper.fetch_robots_txt(&robots_url).await {
            Ok((status, body)) if (200..300).contains(&status) => {
                let mut stored = Vec::with_capacity(body.len() + 1);
                stored.push(b'R');
                stored.extend_from_slice(&body);
                (stored, self.ttl)
            }
            Ok((status, _)) if (400..500).contains(&status) => (b"A".to_vec(), self.ttl),
            Ok(_)
            | Err(ScrapeError::Http5xx(_) | ScrapeError::Timeout)
            | Err(ScrapeError::Network(_) | ScrapeError::Dns(_)) => {
                (b"U".to_vec(), UNREACHABLE_TTL)
            }
            // Anything else (a redirect to a blocked address, a file too large): no usable file.
            Err(e) => {
                tracing::info!(origin = %origin(url), error = %e, "robots.txt unusable; allowing all");
                (b"A".to_vec(), self.ttl)
            }
        };
        let verdict = self.judge(&stored, url);
        let mut conn = self.conn.clone();
        let secs = ttl.as_secs().max(1);
        conn.set_ex::<_, _, ()>(self.keys.robots(&origin(url)), stored, secs)
            .await?;
        self.release_fetch(url).await;
        Ok(verdict)
    }

    fn judge(&self, stored: &[u8], url: &Url) -> Verdict {
        match stored.split_first() {
            Some((b'R', file)) => match texting_robots::Robot::new(&self.agent, file) {
                Ok(robot) if !robot.allowed(url.as_str()) => Verdict::Disallowed,
                // A file that does not parse sets no rules.
                _ => Verdict::Allowed,
            },
            Some((b'U', _)) => Verdict::Unreachable,
            _ => Verdict::Allowed,
        }
    }
}

/// `scheme://host[:port]`: robots.txt applies per origin.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The user agent's product token: `FuzeBot/0.1 (+...)` is `FuzeBot`.
fn product_token(user_agent: &str) -> String {
    let token: String = user_agent
        .split(['/', ' '])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if token.is_empty() {
        "FuzeBot".to_owned()
    } else {
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_token_is_the_agent_name() {
        assert_eq!(product_token("FuzeBot/0.1 (+bookmark fetcher)"), "FuzeBot");
        assert_eq!(product_token("My Crawler"), "My");
        assert_eq!(product_token(""), "FuzeBot");
    }

    #[test]
    fn rules_for_our_agent_decide() {
        let file =
            b"User-agent: *\nDisallow: /private/\n\nUser-agent: FuzeBot\nDisallow: /no-fuze/\n";
        let robot = texting_robots::Robot::new("FuzeBot", file).expect("parses");
        assert!(!robot.allowed("https://example.com/no-fuze/page"));
        // The specific group replaces the `*` group for us.
        assert!(robot.allowed("https://example.com/private/page"));
        assert!(robot.allowed("https://example.com/"));
    }
}
