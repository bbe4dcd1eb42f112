//! Response body handling: content-type policy, size-capped reading, charset decoding.

use encoding_rs::{Encoding, UTF_8};

use super::ScrapeError;

/// Media types we extract text from.
const ACCEPTED: &[&str] = &["text/html", "application/xhtml+xml", "text/plain"];

/// The media type without parameters, lowercased ("Text/HTML; charset=x" -> "text/html").
pub(crate) fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Decides from the header alone. `Ok(None)` means no usable header: sniff the body later.
pub(crate) fn check_content_type(header: Option<&str>) -> Result<Option<String>, ScrapeError> {
    let Some(mime) = header.map(essence).filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    if ACCEPTED.contains(&mime.as_str()) {
        Ok(Some(mime))
    } else {
        Err(ScrapeError::NotHtml(mime))
    }
}

/// For responses without a Content-Type: HTML if the first non-blank byte is '<'.
pub(crate) fn sniff(body: &[u8]) -> Result<String, ScrapeError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => Ok("text/html".to_owned()),
        _ => Err(ScrapeError::NotHtml(
            "(missing content type, body not HTML)".to_owned(),
        )),
    }
}

/// Reads the body chunk by chunk and stops as soon as it would pass `limit`, so a huge or
/// endless response costs at most `limit` bytes of memory.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ScrapeError> {
    // Refuse early when the server announces the size. (reqwest hides Content-Length when it
    // decompresses, which is fine: the streaming count below covers that case.)
    if resp.content_length().is_some_and(|len| len > limit as u64) {
        return Err(ScrapeError::TooLarge { limit });
    }
    let hint = resp.content_length().map_or(0, |n| n as usize);
    let mut buf = Vec::with_capacity(hint.min(limit).min(256 * 1024));
    while let Some(chunk) = resp.chunk().await.map_err(body_error)? {
        if buf.len() + chunk.len() > limit {
            return Err(ScrapeError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn body_error(err: reqwest::Error) -> ScrapeError {
    if err.is_timeout() {
        ScrapeError::Timeout
    } else {
        ScrapeError::Network(format!("reading body: {}", super::fetch::error_chain(&err)))
    }
}

/// Decodes to UTF-8, replacing invalid sequences. The charset comes from a BOM, else the
/// Content-Type header, else a `<meta charset>` near the top of an HTML page, else UTF-8.
pub(crate) fn decode(body: &[u8], content_type_header: Option<&str>, is_html: bool) -> String {
    let from_header = content_type_header
        .and_then(header_charset)
        .and_then(|label| Encoding::for_label(label.as_bytes()))
        // The "replacement" encoding would turn the whole page into U+FFFD; lossy UTF-8 is kinder.
        .filter(|enc| *enc != encoding_rs::REPLACEMENT);
    let declared = from_header
        .or_else(|| {
            if !is_html {
                return None;
            }
            let label = meta_charset(body)?;
            // A meta tag cannot really declare UTF-16 in ASCII bytes; `output_encoding` maps
            // that (and "replacement") to UTF-8, as browsers do.
            Encoding::for_label(label.as_bytes()).map(Encoding::output_encoding)
        })
        .unwrap_or(UTF_8);
    // `decode` sniffs a BOM first, which wins over any declaration (as in browsers).
    let (text, _, _) = declared.decode(body);
    text.into_owned()
}

fn header_charset(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches(['"', '\'']).to_owned())
    })
}

/// Cheap prescan of the first 1024 bytes for `charset=...`; it catches both
/// `<meta charset="x">` and `<meta http-equiv=Content-Type content="text/html; charset=x">`.
fn meta_charset(body: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
    let start = head.find("charset=")? + "charset=".len();
    let label: String = head[start..]
        .trim_start_matches(['"', '\'', ' '])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
        .collect();
    (!label.is_empty()).then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_policy() {
        assert_eq!(
            check_content_type(Some("text/html; charset=utf-8"))
                .ok()
                .flatten()
                .as_deref(),
            Some("text/html")
        );
        assert_eq!(
            check_content_type(Some("Application/XHTML+XML"))
                .ok()
                .flatten()
                .as_deref(),
            Some("application/xhtml+xml")
        );
        assert_eq!(
            check_content_type(Some("text/plain"))
                .ok()
                .flatten()
                .as_deref(),
            Some("text/plain")
        );
        assert!(matches!(check_content_type(None), Ok(None)));
        assert!(matches!(check_content_type(Some("  ")), Ok(None)));
        assert!(
            matches!(check_content_type(Some("image/png")), Err(ScrapeError::NotHtml(ref m)) if m == "image/png")
        );
        assert!(matches!(
            check_content_type(Some("application/pdf")),
            Err(ScrapeError::NotHtml(_))
        ));
    }

    #[test]
    fn sniffing() {
        assert_eq!(
            sniff(b"  \n<!doctype html><p>x").ok().as_deref(),
            Some("text/html")
        );
        assert_eq!(
            sniff(b"\xEF\xBB\xBF<html>").ok().as_deref(),
            Some("text/html")
        );
        assert!(matches!(
            sniff(b"\x89PNG\r\n"),
            Err(ScrapeError::NotHtml(_))
        ));
        assert!(matches!(sniff(b""), Err(ScrapeError::NotHtml(_))));
    }

    #[test]
    fn decoding() {
        // "café" in windows-1252 / latin1
        let latin1 = b"caf\xE9";
        assert_eq!(
            decode(latin1, Some("text/plain; charset=ISO-8859-1"), false),
            "café"
        );
        assert_eq!(
            decode(latin1, Some("text/plain; charset=\"windows-1252\""), false),
            "café"
        );
        let html = b"<html><head><meta charset='iso-8859-1'></head><body>caf\xE9</body></html>";
        assert!(decode(html, Some("text/html"), true).contains("café"));
        let html = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\">caf\xE9";
        assert!(decode(html, None, true).contains("café"));
        // Default UTF-8, invalid bytes replaced rather than failing.
        assert_eq!(decode("café".as_bytes(), None, true), "café");
        assert_eq!(decode(b"ab\xFFc", Some("text/html"), true), "ab\u{FFFD}c");
        // Unknown label falls back to UTF-8; a BOM wins over the header.
        assert_eq!(
            decode("é".as_bytes(), Some("text/html; charset=nonsense"), true),
            "é"
        );
        assert_eq!(
            decode(
                b"\xEF\xBB\xBF\xC3\xA9",
                Some("text/html; charset=latin1"),
                true
            ),
            "é"
        );
        // A meta tag claiming UTF-16 is read as UTF-8.
        assert_eq!(
            decode(b"<meta charset=utf-16>\xC3\xA9", None, true),
            "<meta charset=utf-16>é"
        );
    }
}
