//! The HTTP side: client setup, manual redirect following with a guard check per hop,
//! status mapping, and the overall deadline.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, CONTENT_TYPE, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
    LOCATION, RETRY_AFTER,
};
use url::Url;

use super::body;
use super::extract::{ExtractedPage, FieldLimits, extract, extract_plain};
use super::guard::check_url;
use super::resolve::{GuardedResolver, Rejection};
use super::{ScrapeError, ScraperConfig};

const ACCEPT_VALUE: &str = "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1";

/// A successfully fetched page, body already decoded to UTF-8.
#[derive(Debug, Clone)]
pub struct FetchedPage {
    /// URL of the last hop, after redirects.
    pub final_url: Url,
    pub status: u16,
    /// Media type without parameters, lowercase: "text/html", "application/xhtml+xml" or
    /// "text/plain" ("text/html" also when sniffed from a response without Content-Type).
    pub content_type: String,
    pub body: String,
    /// Body size in bytes as received (after content decoding, before charset decoding).
    pub bytes: usize,
    /// What the response said about the page's version, for the next conditional request.
    pub validators: Validators,
}

/// A page version's `ETag` and `Last-Modified`, as the server sent them (bounded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    /// Longer header values are not kept: no real validator is this long.
    const MAX_CHARS: usize = 256;

    fn of(headers: &HeaderMap) -> Self {
        let read = |name| {
            headers
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= Self::MAX_CHARS)
                .map(str::to_owned)
        };
        Self {
            etag: read(ETAG),
            last_modified: read(LAST_MODIFIED),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// A conditional fetch's answer.
#[derive(Debug, Clone)]
pub enum Refetched {
    /// The server says the page has not changed since `Validators` (304).
    NotModified,
    Page(FetchedPage),
}

impl FetchedPage {
    /// Extracts title/description/text, treating text/plain bodies as the text itself.
    /// CPU-bound on large pages: async callers may want `spawn_blocking`.
    pub fn extract(&self) -> ExtractedPage {
        if self.content_type == "text/plain" {
            extract_plain(&self.body)
        } else {
            extract(&self.body, &self.final_url)
        }
    }
}

/// Fetches user-supplied URLs without letting them reach internal addresses.
/// Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Scraper {
    client: reqwest::Client,
    cfg: Arc<ScraperConfig>,
}

impl Scraper {
    pub fn new(cfg: ScraperConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            // Redirects are followed by hand so every hop goes through the guard again.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect on our behalf, out of the guard's sight.
            .no_proxy()
            // All name resolution goes through the vetting resolver; connections only ever
            // go to the addresses it approved.
            .dns_resolver(GuardedResolver::new(cfg.allow_internal.clone()))
            .connect_timeout(cfg.connect_timeout)
            .user_agent(cfg.user_agent.as_str())
            .build()?;
        Ok(Self {
            client,
            cfg: Arc::new(cfg),
        })
    }

    pub fn config(&self) -> &ScraperConfig {
        &self.cfg
    }

    /// How much of a page's title, description and canonical URL is kept.
    pub fn field_limits(&self) -> FieldLimits {
        FieldLimits {
            title: self.cfg.max_title_chars,
            description: self.cfg.max_description_chars,
            canonical_url: self.cfg.max_canonical_chars,
        }
    }

    /// Fetches `url`, following up to `max_redirects` redirects, within `total_timeout`.
    pub async fn fetch(&self, url: &Url) -> Result<FetchedPage, ScrapeError> {
        match self.fetch_if_changed(url, &Validators::default()).await? {
            Refetched::Page(page) => Ok(page),
            // Not asked for: a server that answers 304 anyway gave us no page.
            Refetched::NotModified => Err(ScrapeError::Network(format!(
                "unexpected status 304 from {url}"
            ))),
        }
    }

    /// As [`Scraper::fetch`], sending `known` back (`If-None-Match`, `If-Modified-Since`) so an
    /// unchanged page answers 304 without a body.
    pub async fn fetch_if_changed(
        &self,
        url: &Url,
        known: &Validators,
    ) -> Result<Refetched, ScrapeError> {
        // One deadline for everything (DNS, connects, redirects, a slow-dripping body):
        // per-operation timeouts alone would let a server keep us busy indefinitely.
        match tokio::time::timeout(self.cfg.total_timeout, self.fetch_inner(url, known)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(ScrapeError::Timeout),
        }
    }

    async fn fetch_inner(&self, start: &Url, known: &Validators) -> Result<Refetched, ScrapeError> {
        let (url, resp) = self.follow_redirects(start, known).await?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED && !known.is_empty() {
            return Ok(Refetched::NotModified);
        }
        if matches!(status.as_u16(), 429 | 503)
            && let Some(wait) = retry_after(resp.headers())
        {
            return Err(ScrapeError::SlowDown {
                status: status.as_u16(),
                wait,
            });
        }
        if status.is_client_error() {
            return Err(ScrapeError::Http4xx(status.as_u16()));
        }
        if status.is_server_error() {
            return Err(ScrapeError::Http5xx(status.as_u16()));
        }
        if !status.is_success() {
            return Err(ScrapeError::Network(format!(
                "unexpected status {status} from {url}"
            )));
        }
        self.read_page(url, resp).await.map(Refetched::Page)
    }

    /// Fetches a site's robots.txt through the same guard and limits (its own size cap, any
    /// content type): the final status and, for a success, the body.
    pub async fn fetch_robots_txt(&self, url: &Url) -> Result<(u16, Vec<u8>), ScrapeError> {
        let fetch = async {
            let (_, resp) = self.follow_redirects(url, &Validators::default()).await?;
            let status = resp.status().as_u16();
            if !resp.status().is_success() {
                return Ok((status, Vec::new()));
            }
            Ok((status, body::read_capped(resp, MAX_ROBOTS_BYTES).await?))
        };
        match tokio::time::timeout(self.cfg.total_timeout, fetch).await {
            Ok(result) => result,
            Err(_elapsed) => Err(ScrapeError::Timeout),
        }
    }

    /// GETs `start`, following up to `max_redirects` redirects with a guard check per hop.
    /// Returns the last hop's URL and response, whatever its status.
    /// `known` goes with every hop: a redirecting hop ignores it.
    async fn follow_redirects(
        &self,
        start: &Url,
        known: &Validators,
    ) -> Result<(Url, reqwest::Response), ScrapeError> {
        let mut current = start.clone();
        let mut redirects = 0usize;
        loop {
            check_url(&current, &self.cfg.allow_internal)?;
            let mut request = self
                .client
                .get(current.clone())
                .header(ACCEPT, ACCEPT_VALUE);
            if let Some(etag) = &known.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(at) = &known.last_modified {
                request = request.header(IF_MODIFIED_SINCE, at);
            }
            let resp = request.send().await.map_err(send_error)?;
            let status = resp.status();
            if !is_followed_redirect(status) {
                return Ok((current, resp));
            }
            let Some(location) = resp.headers().get(LOCATION) else {
                return Err(ScrapeError::Network(format!(
                    "redirect {status} from {current} without Location"
                )));
            };
            if redirects >= self.cfg.max_redirects {
                return Err(ScrapeError::TooManyRedirects);
            }
            // Location may be relative; lossy decoding tolerates raw non-ASCII bytes.
            let location = String::from_utf8_lossy(location.as_bytes());
            let next = current.join(location.trim()).map_err(|e| {
                ScrapeError::InvalidUrl(format!("bad redirect Location {location:?}: {e}"))
            })?;
            tracing::debug!(from = %current, to = %next, %status, "following redirect");
            redirects += 1;
            current = next;
        }
    }

    async fn read_page(
        &self,
        url: Url,
        resp: reqwest::Response,
    ) -> Result<FetchedPage, ScrapeError> {
        let status = resp.status().as_u16();
        let validators = Validators::of(resp.headers());
        let header = resp
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        // Checked before reading so an image or a video costs nothing to refuse.
        let declared = body::check_content_type(header.as_deref())?;
        let raw = body::read_capped(resp, self.cfg.max_body_bytes).await?;
        let content_type = match declared {
            Some(mime) => mime,
            None => body::sniff(&raw)?,
        };
        let text = body::decode(&raw, header.as_deref(), content_type != "text/plain");
        Ok(FetchedPage {
            final_url: url,
            status,
            content_type,
            bytes: raw.len(),
            body: text,
            validators,
        })
    }
}

/// The largest robots.txt read; RFC 9309 asks crawlers to read at least 500 KiB.
const MAX_ROBOTS_BYTES: usize = 512 * 1024;

/// `Retry-After` as seconds or as an HTTP date (RFC 9110), from now; `None` when absent or
/// unreadable.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The redirect codes browsers follow for GET. Other 3xx (300, 304, ...) carry no
/// instruction we could act on.
fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn send_error(err: reqwest::Error) -> ScrapeError {
    // The resolver's verdict is wrapped several layers deep (reqwest -> hyper-util -> connect
    // error); walk the chain to recover it.
    let mut source: Option<&(dyn StdError + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(rejection) = e.downcast_ref::<Rejection>() {
            return rejection.into();
        }
        source = e.source();
    }
    if err.is_timeout() {
        ScrapeError::Timeout
    } else if err.is_builder() {
        ScrapeError::InvalidUrl(error_chain(&err))
    } else {
        ScrapeError::Network(error_chain(&err))
    }
}

/// "outer: inner: innermost", since reqwest's own Display hides the useful part (e.g.
/// "connection refused" or the TLS failure).
pub(crate) fn error_chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let msg = e.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let header = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).expect("header"));
            h
        };
        assert_eq!(retry_after(&header("2")), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(&header(" 120 ")),
            Some(Duration::from_secs(120))
        );
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        let wait = retry_after(&header(&in_a_minute)).expect("a date");
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(retry_after(&header(&past)), Some(Duration::ZERO));
        assert_eq!(retry_after(&header("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
