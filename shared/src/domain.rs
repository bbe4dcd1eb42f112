//! Domain types that can only be built valid: handlers take these, nothing downstream re-validates.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

/// Query parameters that only track the visitor; two links that differ only by these are one bookmark.
const TRACKING_PARAMS: &[&str] = &[
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "mc_cid",
    "mc_eid",
    "igshid",
    "yclid",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "oly_anon_id",
    "oly_enc_id",
    "vero_id",
    "ref_src",
];

/// Why a URL was refused; each variant is a stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("url is longer than {max} characters")]
    TooLong { max: usize },
    #[error("url is not valid: {0}")]
    Invalid(String),
    #[error("only http and https urls can be saved")]
    Scheme,
    #[error("url has no host")]
    NoHost,
    #[error("urls with a user name or password are not accepted")]
    Credentials,
}

impl UrlError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "url_too_long",
            Self::Invalid(_) => "url_invalid",
            Self::Scheme => "url_scheme",
            Self::NoHost => "url_no_host",
            Self::Credentials => "url_credentials",
        }
    }
}

/// A saveable link: http(s), a host, at most `max_len` chars, normalized so equal pages compare equal
/// (lowercase host, default port dropped, no fragment, tracking parameters removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookmarkUrl(Url);

impl BookmarkUrl {
    pub fn parse(raw: &str, max_len: usize) -> Result<Self, UrlError> {
        let raw = raw.trim();
        if raw.chars().count() > max_len {
            return Err(UrlError::TooLong { max: max_len });
        }
        let mut url = Url::parse(raw).map_err(|e| UrlError::Invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        url.set_fragment(None);
        strip_tracking_params(&mut url);
        if url.as_str().len() > max_len {
            return Err(UrlError::TooLong { max: max_len });
        }
        Ok(Self(url))
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// sha256 of the normalized form: the per-user dedupe key and the scrape cache key.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_str().as_bytes()).into()
    }

    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash())
    }
}

fn is_tracking_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("utm_") || TRACKING_PARAMS.contains(&lower.as_str())
}

fn strip_tracking_params(url: &mut Url) {
    if url.query().is_none() {
        return;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !is_tracking_param(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

/// A text to show a person: trimmed, non-empty, at most `max_chars` characters.
pub fn bounded_text(field: &'static str, raw: &str, max_chars: usize) -> Result<String, String> {
    let text = raw.trim();
    if text.contains('\0') {
        return Err(format!("{field} contains a NUL character"));
    }
    if text.chars().count() > max_chars {
        return Err(format!("{field} is longer than {max_chars} characters"));
    }
    Ok(text.to_owned())
}

/// The text of a search or a recommendation request: trimmed, 1 to `max_chars` characters,
/// no NUL (PostgreSQL's text type refuses it, and the keyword fallback queries with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryText(String);

impl QueryText {
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, String> {
        let text = raw.trim();
        if text.is_empty() || text.chars().count() > max_chars {
            return Err(format!("q must have 1 to {max_chars} characters"));
        }
        if text.contains('\0') {
            return Err("q contains a NUL character".to_owned());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Job kinds; the string form is stored and shown to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Saving a link: scrape, then embed. Succeeds once the embedding is stored.
    Ingest,
    /// Fetching a saved page again: a conditional request; embedded again only if its text
    /// changed; a failure keeps the last good content.
    Refresh,
}

impl JobKind {
    pub const ALL: [Self; 2] = [Self::Ingest, Self::Refresh];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Refresh => "refresh",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Job states as the frontend sees them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Retrying,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

#[cfg(test)]
mod query_text_tests {
    use super::QueryText;

    #[test]
    fn queries_are_trimmed_bounded_and_free_of_nul() {
        assert_eq!(
            QueryText::parse("  rust  ", 10).expect("fits").as_str(),
            "rust"
        );
        assert!(QueryText::parse("   ", 10).is_err());
        assert!(QueryText::parse("too long here", 5).is_err());
        assert!(QueryText::parse("nul\0here", 20).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(raw: &str) -> String {
        BookmarkUrl::parse(raw, 2048)
            .expect(raw)
            .as_str()
            .to_owned()
    }

    #[test]
    fn normalizes_host_port_fragment_and_tracking() {
        assert_eq!(
            normalized("HTTPS://Example.COM:443/a/b?utm_source=x&q=1&fbclid=2#frag"),
            "https://example.com/a/b?q=1"
        );
        assert_eq!(
            normalized("http://example.com:80/?utm_medium=a"),
            "http://example.com/"
        );
        assert_eq!(
            normalized("http://example.com:8080/x"),
            "http://example.com:8080/x"
        );
        assert_eq!(
            normalized("  https://example.com/path  "),
            "https://example.com/path"
        );
    }

    #[test]
    fn equal_pages_hash_equal() {
        let a = BookmarkUrl::parse("https://EXAMPLE.com/p?utm_campaign=z", 2048).expect("a");
        let b = BookmarkUrl::parse("https://example.com/p#top", 2048).expect("b");
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn refuses_what_cannot_be_saved() {
        let err = |raw: &str| BookmarkUrl::parse(raw, 2048).expect_err(raw).code();
        assert_eq!(err("ftp://example.com/file"), "url_scheme");
        assert_eq!(err("javascript:alert(1)"), "url_scheme");
        assert_eq!(err("not a url"), "url_invalid");
        assert_eq!(err("http://user:pw@example.com/"), "url_credentials");
        assert_eq!(err(""), "url_invalid");
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(err(&long), "url_too_long");
    }

    #[test]
    fn bounded_text_trims_and_limits() {
        assert_eq!(bounded_text("title", "  hi ", 5).expect("fits"), "hi");
        assert!(bounded_text("title", "toolong", 3).is_err());
        assert!(bounded_text("title", "a\0b", 5).is_err());
    }
}
