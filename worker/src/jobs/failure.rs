//! How a stage fails: permanently (fail the job now) or transiently (retry with backoff).

use crate::scrape::ScrapeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Permanent { code: &'static str, message: String },
    Transient { code: &'static str, message: String },
}

impl Failure {
    pub fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self::Permanent {
            code,
            message: message.into(),
        }
    }

    pub fn transient(code: &'static str, message: impl Into<String>) -> Self {
        Self::Transient {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Permanent { code, .. } | Self::Transient { code, .. } => code,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Permanent { message, .. } | Self::Transient { message, .. } => message,
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Self::transient("database", e.to_string())
    }
}

/// What users read when the guard refused a target: never which internal address it was (that
/// would map the network for whoever saves the links); the worker's log has the details.
pub const BLOCKED_TARGET_MESSAGE: &str =
    "the page's address is not publicly reachable (private, loopback, link-local or reserved)";

impl From<ScrapeError> for Failure {
    fn from(e: ScrapeError) -> Self {
        if let ScrapeError::BlockedTarget(detail) = &e {
            tracing::warn!(detail, "scrape target refused by the SSRF guard");
            return Self::permanent(e.class(), BLOCKED_TARGET_MESSAGE);
        }
        if e.is_permanent() {
            Self::permanent(e.class(), e.to_string())
        } else {
            Self::transient(e.class(), e.to_string())
        }
    }
}
