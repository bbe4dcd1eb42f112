//! How a stage fails: permanently (fail the job now), transiently (retry with backoff), for a
//! while for reasons that are not the job's (wait without spending an attempt), or because the
//! job was taken over by another run meanwhile.

use std::time::Duration;

use crate::scrape::ScrapeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Permanent {
        code: &'static str,
        message: String,
    },
    Transient {
        code: &'static str,
        message: String,
    },
    /// Try again after `wait`, and give the attempt back (a site asked us to come back later).
    Deferred {
        code: &'static str,
        message: String,
        wait: Duration,
    },
    /// The run no longer holds its job (the reconciler gave the job a new ticket): stop quietly.
    Superseded,
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
            Self::Permanent { code, .. }
            | Self::Transient { code, .. }
            | Self::Deferred { code, .. } => code,
            Self::Superseded => "superseded",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Permanent { message, .. }
            | Self::Transient { message, .. }
            | Self::Deferred { message, .. } => message,
            Self::Superseded => "the job was taken over by another run",
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
        if let ScrapeError::SlowDown { wait, .. } = &e {
            return Self::Deferred {
                code: e.class(),
                message: e.to_string(),
                wait: *wait,
            };
        }
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
