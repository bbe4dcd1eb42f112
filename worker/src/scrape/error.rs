//! Typed scrape failures, with a stable metric class and a retry hint.

/// Why a fetch failed. `class()` is a stable code for metrics and stored job errors;
/// `is_permanent()` tells the job runner whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The SSRF guard refused the target (which address, and why).
    #[error("blocked target: {0}")]
    BlockedTarget(String),
    /// The whole fetch (connect, redirects, body) took longer than allowed.
    #[error("timed out")]
    Timeout,
    /// The body is larger than the configured cap.
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The response is not a page we can extract text from (holds the content type).
    #[error("not an HTML or text page: {0}")]
    NotHtml(String),
    #[error("HTTP client error {0}")]
    Http4xx(u16),
    #[error("HTTP server error {0}")]
    Http5xx(u16),
    /// The host name did not resolve.
    #[error("DNS resolution failed: {0}")]
    Dns(String),
    #[error("too many redirects")]
    TooManyRedirects,
    /// Unparseable URL, unsupported scheme, or a bad redirect `Location`.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// Connect, reset, TLS, or body-decoding failure.
    #[error("network error: {0}")]
    Network(String),
    /// A 429 or 503 with `Retry-After`: the site asked us to come back after `wait`.
    #[error("the site asked to come back in {} s (HTTP {status})", wait.as_secs())]
    SlowDown {
        status: u16,
        wait: std::time::Duration,
    },
}

impl ScrapeError {
    /// Stable snake_case code, safe to use as a metric label.
    pub fn class(&self) -> &'static str {
        match self {
            Self::BlockedTarget(_) => "blocked_target",
            Self::Timeout => "timeout",
            Self::TooLarge { .. } => "too_large",
            Self::NotHtml(_) => "not_html",
            Self::Http4xx(_) => "http_4xx",
            Self::Http5xx(_) => "http_5xx",
            Self::Dns(_) => "dns",
            Self::TooManyRedirects => "too_many_redirects",
            Self::InvalidUrl(_) => "invalid_url",
            Self::Network(_) => "network",
            Self::SlowDown { .. } => "retry_after",
        }
    }

    /// Whether the host failed to answer usefully: what counts toward its breaker.
    pub fn is_host_failure(&self) -> bool {
        matches!(self, Self::Timeout | Self::Network(_) | Self::Http5xx(_))
            || matches!(self, Self::Http4xx(429))
    }

    /// True when the same request will fail the same way again, so the job should not retry.
    /// 408 (request timeout) and 429 (rate limited) are 4xx codes that do clear up with time.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::BlockedTarget(_)
            | Self::TooLarge { .. }
            | Self::NotHtml(_)
            | Self::TooManyRedirects
            | Self::InvalidUrl(_) => true,
            Self::Http4xx(code) => !matches!(code, 408 | 429),
            Self::Timeout
            | Self::Http5xx(_)
            | Self::Dns(_)
            | Self::Network(_)
            | Self::SlowDown { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ScrapeError;

    #[test]
    fn class_and_permanence() {
        let cases: Vec<(ScrapeError, &str, bool)> = vec![
            (
                ScrapeError::BlockedTarget("x".into()),
                "blocked_target",
                true,
            ),
            (ScrapeError::Timeout, "timeout", false),
            (ScrapeError::TooLarge { limit: 1 }, "too_large", true),
            (ScrapeError::NotHtml("image/png".into()), "not_html", true),
            (ScrapeError::Http4xx(404), "http_4xx", true),
            (ScrapeError::Http4xx(410), "http_4xx", true),
            (ScrapeError::Http4xx(408), "http_4xx", false),
            (ScrapeError::Http4xx(429), "http_4xx", false),
            (ScrapeError::Http5xx(503), "http_5xx", false),
            (ScrapeError::Dns("x".into()), "dns", false),
            (ScrapeError::TooManyRedirects, "too_many_redirects", true),
            (ScrapeError::InvalidUrl("x".into()), "invalid_url", true),
            (ScrapeError::Network("x".into()), "network", false),
            (
                ScrapeError::SlowDown {
                    status: 429,
                    wait: std::time::Duration::from_secs(2),
                },
                "retry_after",
                false,
            ),
        ];
        for (err, class, permanent) in cases {
            assert_eq!(err.class(), class, "{err:?}");
            assert_eq!(err.is_permanent(), permanent, "{err:?}");
        }
    }
}
