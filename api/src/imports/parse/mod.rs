//! Streaming readers for bookmark export files, used by the bulk import.
//!
//! Every format hands its items to a sink one at a time, in file order, so a large export is
//! never held in memory whole. URLs are passed on raw: the caller validates them.

mod csv;
mod detect;
#[cfg(test)]
mod fixtures;
mod html;
mod json;
mod lines;

use std::io::{self, Read};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

pub use detect::detect;

/// An export format. `as_str` / `from_name` use: "netscape", "pocket_html", "pocket_csv", "raindrop_csv", "csv", "pinboard_json", "url_list".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Netscape bookmark HTML (Chrome, Firefox, Safari, Edge exports).
    Netscape,
    /// Pocket's HTML export.
    PocketHtml,
    /// Pocket's CSV export (tags separated by `|`).
    PocketCsv,
    /// Raindrop.io's CSV export (folder path, comma-separated tags).
    RaindropCsv,
    /// Any CSV with a url column.
    Csv,
    /// Pinboard's JSON export.
    PinboardJson,
    /// Plain list of URLs, one per line.
    UrlList,
}

impl Format {
    /// Every format, in a stable order.
    pub const ALL: [Format; 7] = [
        Format::Netscape,
        Format::PocketHtml,
        Format::PocketCsv,
        Format::RaindropCsv,
        Format::Csv,
        Format::PinboardJson,
        Format::UrlList,
    ];

    /// The format's name as used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Netscape => "netscape",
            Format::PocketHtml => "pocket_html",
            Format::PocketCsv => "pocket_csv",
            Format::RaindropCsv => "raindrop_csv",
            Format::Csv => "csv",
            Format::PinboardJson => "pinboard_json",
            Format::UrlList => "url_list",
        }
    }

    /// The format with this API name, if any.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// Caps applied while parsing (the caller's configuration).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Titles are cut to this many characters.
    pub max_title_chars: usize,
    /// Tags beyond this many per entry are dropped.
    pub max_tags: usize,
    /// Each tag is cut to this many characters.
    pub max_tag_chars: usize,
    /// Longer URLs make the entry invalid.
    pub max_url_chars: usize,
}

/// One bookmark read from the file; the URL is raw (validated later by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The URL as written in the file, trimmed.
    pub url: String,
    /// Title, whitespace collapsed and capped.
    pub title: Option<String>,
    /// Cleaned, deduplicated, capped tags (folder names first where the format has folders).
    pub tags: Vec<String>,
    /// When the bookmark was created, if the file says.
    pub added_at: Option<DateTime<Utc>>,
    /// 1-based line in the file where the entry starts, when known.
    pub line: Option<u64>,
}

/// What the parser hands on: an entry, or one that could not be read (recorded as a failed item, the import goes on).
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A bookmark.
    Entry(Entry),
    /// A record that is not a usable bookmark.
    Invalid {
        /// 1-based line of the record, when known.
        line: Option<u64>,
        /// The record's text, cut to a short prefix.
        raw: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// The file as a whole cannot be read as `format` (the import is refused with 422 and writes nothing).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// 1-based line of the problem, when known.
    pub line: Option<u64>,
    /// 1-based column of the problem, when known.
    pub column: Option<u64>,
    /// Byte offset of the problem, when known.
    pub byte: Option<u64>,
    /// What went wrong.
    pub message: String,
    /// Set when the cause was an I/O error from the reader (its text is in `message`).
    pub io: Option<io::ErrorKind>,
}

impl ParseError {
    /// An error with a message and no position.
    fn new(message: impl Into<String>) -> Self {
        ParseError {
            line: None,
            column: None,
            byte: None,
            message: message.into(),
            io: None,
        }
    }

    /// The reader failed; its kind is kept so the caller can tell its own errors apart.
    fn from_io(err: &io::Error) -> Self {
        ParseError {
            io: Some(err.kind()),
            ..ParseError::new(format!("could not read the file: {err}"))
        }
    }

    /// The same error, placed at `line`.
    fn with_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }
}

/// The sink asked to stop (the caller's reason travels on its own side).
#[derive(Debug)]
pub struct Stop;

/// How a parse that did not fail ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The whole file was read.
    Finished,
    /// The sink returned `Stop`; nothing more was read.
    Stopped,
}

/// Where parsers hand their items.
type Sink<'a> = dyn FnMut(Item) -> Result<(), Stop> + 'a;

/// Streams `reader` as `format`, handing each item to `sink` in file order.
pub fn parse(
    format: Format,
    reader: impl Read,
    limits: &Limits,
    sink: &mut dyn FnMut(Item) -> Result<(), Stop>,
) -> Result<Outcome, ParseError> {
    match format {
        Format::Netscape | Format::PocketHtml => html::parse(reader, limits, sink),
        Format::PocketCsv | Format::RaindropCsv | Format::Csv => {
            csv::parse(format, reader, limits, sink)
        }
        Format::PinboardJson => json::parse(reader, limits, sink),
        Format::UrlList => lines::parse(reader, limits, sink),
    }
}

/// Invalid items keep at most this many characters of the record.
const RAW_CHARS: usize = 200;

/// The first `max` characters of `s`.
fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// An invalid item, with the record text cut short.
fn invalid(line: Option<u64>, raw: &str, reason: impl Into<String>) -> Item {
    Item::Invalid {
        line,
        raw: truncate_chars(raw, RAW_CHARS).to_owned(),
        reason: reason.into(),
    }
}

/// Checks the URL rules shared by all formats; `raw` is only built when the entry is refused.
fn finish_entry(entry: Entry, limits: &Limits, raw: impl FnOnce() -> String) -> Item {
    let reason = if entry.url.is_empty() {
        "missing url"
    } else if entry.url.chars().nth(limits.max_url_chars).is_some() {
        "url too long"
    } else {
        return Item::Entry(entry);
    };
    invalid(entry.line, &raw(), reason)
}

/// Collects text with whitespace runs collapsed to one space, trimmed, capped at `cap` characters.
///
/// Built up piece by piece so HTML text arriving in many tokens never grows past the cap.
struct Text {
    buf: String,
    chars: usize,
    cap: usize,
    gap: bool,
    full: bool,
}

impl Text {
    /// An empty collector keeping at most `cap` characters.
    fn new(cap: usize) -> Self {
        Text {
            buf: String::new(),
            chars: 0,
            cap,
            gap: false,
            full: false,
        }
    }

    /// Appends `s`.
    fn push(&mut self, s: &str) {
        if self.full {
            return;
        }
        for c in s.chars() {
            if c.is_whitespace() {
                // A leading gap is dropped, which trims the start.
                self.gap = self.chars > 0;
                continue;
            }
            // Postgres text cannot hold NUL, and other control characters are noise in a title.
            if c.is_control() {
                continue;
            }
            let needed = if self.gap { 2 } else { 1 };
            if self.chars + needed > self.cap {
                self.full = true;
                return;
            }
            if self.gap {
                self.buf.push(' ');
                self.gap = false;
            }
            self.buf.push(c);
            self.chars += needed;
        }
    }

    /// The collected text, or None if there was none.
    fn finish(self) -> Option<String> {
        (!self.buf.is_empty()).then_some(self.buf)
    }
}

/// `s` with whitespace collapsed and trimmed, capped at `cap` characters; None if empty.
fn clean_text(s: &str, cap: usize) -> Option<String> {
    let mut text = Text::new(cap);
    text.push(s);
    text.finish()
}

/// An entry's tags: cleaned, deduplicated case-insensitively (first spelling wins), capped.
struct Tags<'a> {
    limits: &'a Limits,
    list: Vec<String>,
    folded: Vec<String>,
}

impl<'a> Tags<'a> {
    /// No tags yet.
    fn new(limits: &'a Limits) -> Self {
        Tags {
            limits,
            list: Vec::new(),
            folded: Vec::new(),
        }
    }

    /// Adds one tag, unless it is empty, a duplicate, or over the cap.
    fn push(&mut self, raw: &str) {
        if self.list.len() >= self.limits.max_tags {
            return;
        }
        let Some(tag) = clean_text(raw, self.limits.max_tag_chars) else {
            return;
        };
        let folded = tag.to_lowercase();
        if !self.folded.contains(&folded) {
            self.folded.push(folded);
            self.list.push(tag);
        }
    }

    /// Adds each part of `raw` split on any of `separators`.
    fn push_split(&mut self, raw: &str, separators: &[char]) {
        for part in raw.split(separators) {
            self.push(part);
        }
    }

    /// The tags in the order they were added.
    fn finish(self) -> Vec<String> {
        self.list
    }
}

/// Unix time in seconds; larger values are read as milliseconds or microseconds. 0 or junk is None.
fn parse_unix(s: &str) -> Option<DateTime<Utc>> {
    let n: i64 = s.trim().parse().ok()?;
    if n <= 0 {
        None
    } else if n > 100_000_000_000_000 {
        DateTime::from_timestamp_micros(n)
    } else if n > 100_000_000_000 {
        DateTime::from_timestamp_millis(n)
    } else {
        DateTime::from_timestamp(n, 0)
    }
}

/// A date in any form the exports use: Unix time, RFC 3339, or ISO 8601 without offset (read as UTC).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return parse_unix(s);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.to_utc());
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %z") {
        return Some(t.to_utc());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::fixtures::{self, collect, limits};
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for format in Format::ALL {
            assert_eq!(Format::from_name(format.as_str()), Some(format));
        }
        assert_eq!(
            Format::from_name("pinboard_json"),
            Some(Format::PinboardJson)
        );
        assert_eq!(Format::from_name("Netscape"), None);
    }

    #[test]
    fn text_collapses_trims_and_caps() {
        assert_eq!(clean_text("  a \n\t b  ", 10).as_deref(), Some("a b"));
        assert_eq!(clean_text(" \n ", 10), None);
        assert_eq!(clean_text("abc def", 5).as_deref(), Some("abc d"));
        // The gap is not kept when the next character does not fit.
        assert_eq!(clean_text("abc def", 4).as_deref(), Some("abc"));
        assert_eq!(clean_text("東京 🚀 x", 4).as_deref(), Some("東京 🚀"));
        assert_eq!(clean_text("a\0b", 10).as_deref(), Some("ab"));
    }

    #[test]
    fn tags_are_cleaned_deduplicated_and_capped() {
        let limits = Limits {
            max_tags: 3,
            max_tag_chars: 5,
            ..limits()
        };
        let mut tags = Tags::new(&limits);
        tags.push_split(" Rust ,rust, ,web  dev,RUST,toolong-tag,extra", &[',']);
        assert_eq!(tags.finish(), ["Rust", "web d", "toolo"]);
    }

    #[test]
    fn unix_times_pick_their_unit() {
        let at = |secs| DateTime::from_timestamp(secs, 0);
        assert_eq!(parse_unix("1600000000"), at(1_600_000_000));
        assert_eq!(
            parse_unix("1600000000123"),
            DateTime::from_timestamp_millis(1_600_000_000_123)
        );
        assert_eq!(
            parse_unix("1600000000123456"),
            DateTime::from_timestamp_micros(1_600_000_000_123_456)
        );
        assert_eq!(parse_unix("0"), None);
        assert_eq!(parse_unix("-5"), None);
        assert_eq!(parse_unix("soon"), None);
    }

    #[test]
    fn iso_times_parse_with_and_without_offset() {
        let at = |secs| DateTime::from_timestamp(secs, 0);
        assert_eq!(parse_time("2021-03-15T10:20:30.000Z"), at(1_615_803_630));
        assert_eq!(parse_time("2021-03-15T11:20:30+01:00"), at(1_615_803_630));
        assert_eq!(parse_time("2021-03-15 10:20:30"), at(1_615_803_630));
        assert_eq!(parse_time("2021-03-15"), at(1_615_766_400));
        assert_eq!(parse_time("1615803630"), at(1_615_803_630));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn url_too_long_is_invalid_in_every_format() {
        let limits = Limits {
            max_url_chars: 20,
            ..limits()
        };
        let long = "https://example.com/a-path-that-is-too-long";
        let inputs = [
            (
                Format::Netscape,
                format!(r#"<DL><DT><A HREF="{long}">x</A></DL>"#),
                1,
            ),
            (
                Format::PocketHtml,
                format!(r#"<ul><li><a href="{long}">x</a>"#),
                1,
            ),
            (Format::Csv, format!("url,title\n{long},x\n"), 2),
            (Format::PinboardJson, format!(r#"[{{"href":"{long}"}}]"#), 1),
            (Format::UrlList, format!("# list\n\n{long}\n"), 3),
        ];
        for (format, input, expected_line) in inputs {
            let (_, items) = collect(format, input.as_bytes(), &limits).expect("parses");
            assert_eq!(items.len(), 1, "{format:?}");
            let Item::Invalid { reason, line, .. } = &items[0] else {
                panic!("{format:?}: expected invalid, got {:?}", items[0]);
            };
            let expected = if format == Format::UrlList {
                "line too long"
            } else {
                "url too long"
            };
            assert_eq!(reason, expected, "{format:?}");
            assert_eq!(*line, Some(expected_line), "{format:?}");
        }
    }

    #[test]
    fn sink_stop_ends_every_format_after_two_items() {
        for (format, input) in fixtures::ALL {
            let stopped = Cell::new(false);
            let read_after_stop = Cell::new(false);
            let reader = fixtures::Watched {
                inner: fixtures::Trickle::new(input.as_bytes()),
                stopped: &stopped,
                read_after_stop: &read_after_stop,
            };
            let mut seen = 0;
            let outcome = parse(format, reader, &limits(), &mut |_| {
                seen += 1;
                if seen < 2 {
                    return Ok(());
                }
                stopped.set(true);
                Err(Stop)
            })
            .expect("parses");
            assert_eq!(outcome, Outcome::Stopped, "{format:?}");
            assert_eq!(seen, 2, "{format:?}");
            assert!(!read_after_stop.get(), "{format:?} read on after the stop");
        }
    }

    #[test]
    fn reader_errors_keep_their_kind_and_text() {
        for (format, input) in fixtures::ALL {
            let reader = fixtures::Failing::new(&input.as_bytes()[..input.len() / 2]);
            let err = collect(format, reader, &limits()).expect_err("the read fails");
            assert_eq!(err.io, Some(io::ErrorKind::Other), "{format:?}");
            assert!(
                err.message.contains("body too large"),
                "{format:?}: {}",
                err.message
            );
        }
    }
}
