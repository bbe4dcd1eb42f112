//! Netscape bookmark HTML and Pocket's HTML export, read with html5ever's tokenizer as the bytes
//! arrive: no DOM is built, so memory stays at one chunk plus the open folder path.

use std::cell::RefCell;
use std::io::{ErrorKind, Read};

use html5ever::TokenizerResult;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

use super::{
    Entry, Item, Limits, Outcome, ParseError, Sink, Stop, Tags, Text, finish_entry, invalid,
    parse_unix,
};

/// Bytes read per chunk.
const CHUNK: usize = 32 * 1024;

/// Folder levels remembered; deeper `<DL>`s are only counted, so a file of nothing but `<DL>` tags
/// cannot grow the stack without bound.
const MAX_DEPTH: usize = 64;

/// Tags that end an anchor left open (exports never put block markup inside a link).
const ENDS_ANCHOR: [&str; 17] = [
    "dt", "dd", "dl", "li", "ul", "ol", "p", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "div",
    "body", "html",
];

/// Streams a bookmark HTML file to `sink`.
pub(super) fn parse(
    reader: impl Read,
    limits: &Limits,
    sink: &mut Sink,
) -> Result<Outcome, ParseError> {
    let tokenizer = Tokenizer::new(
        Collector(RefCell::new(Builder::new(limits))),
        TokenizerOpts::default(),
    );
    let queue = BufferQueue::default();
    let mut input = Utf8Chunks::new(reader);
    while let Some(text) = input.next_chunk()? {
        queue.push_back(StrTendril::from(text));
        // Our sink never asks the tokenizer to pause, so this runs once; looping keeps it correct anyway.
        while !matches!(tokenizer.feed(&queue), TokenizerResult::Done) {}
        if deliver(&tokenizer.sink, sink).is_err() {
            return Ok(Outcome::Stopped);
        }
    }
    tokenizer.end();
    tokenizer.sink.0.borrow_mut().close_anchor();
    Ok(match deliver(&tokenizer.sink, sink) {
        Ok(()) => Outcome::Finished,
        Err(Stop) => Outcome::Stopped,
    })
}

/// Hands the items found so far to `sink`, until it asks to stop.
fn deliver(collector: &Collector<'_>, sink: &mut Sink) -> Result<(), Stop> {
    let ready = std::mem::take(&mut collector.0.borrow_mut().ready);
    for item in ready {
        sink(item)?;
    }
    Ok(())
}

/// The tokenizer's sink; html5ever calls it through `&self`, hence the RefCell.
struct Collector<'a>(RefCell<Builder<'a>>);

impl TokenSink for Collector<'_> {
    type Handle = ();

    fn process_token(&self, token: Token, line: u64) -> TokenSinkResult<()> {
        let mut builder = self.0.borrow_mut();
        match token {
            Token::TagToken(tag) => return builder.tag(&tag, line),
            Token::CharacterTokens(text) => builder.text(&text),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// A folder heading being read.
struct Heading {
    name: Text,
    /// A browser root folder ("Bookmarks bar", "Other Bookmarks"), which gives no tag.
    root: bool,
}

/// A link being read.
struct Anchor {
    href: Option<String>,
    date: Option<String>,
    tags: Option<String>,
    title: Text,
    line: u64,
}

/// Turns tokens into items, tracking the folder path.
struct Builder<'a> {
    limits: &'a Limits,
    /// One per open `<DL>`: the folder's tag, or None for the outer list and root folders.
    folders: Vec<Option<String>>,
    /// Open `<DL>`s beyond MAX_DEPTH.
    too_deep: usize,
    /// The folder whose heading was just read; its `<DL>` comes next.
    next_folder: Option<Option<String>>,
    heading: Option<Heading>,
    anchor: Option<Anchor>,
    /// Items found, handed on after each chunk.
    ready: Vec<Item>,
}

impl<'a> Builder<'a> {
    fn new(limits: &'a Limits) -> Self {
        Builder {
            limits,
            folders: Vec::new(),
            too_deep: 0,
            next_folder: None,
            heading: None,
            anchor: None,
            ready: Vec::new(),
        }
    }

    /// Follows the structure; asks for raw text where HTML has it, so markup there is not misread.
    fn tag(&mut self, tag: &Tag, line: u64) -> TokenSinkResult<()> {
        match (tag.kind, &*tag.name) {
            (TagKind::StartTag, "a") => {
                self.close_anchor();
                self.next_folder = None;
                self.anchor = Some(Anchor {
                    href: attr(tag, "href").map(str::to_owned),
                    date: attr(tag, "add_date")
                        .or_else(|| attr(tag, "time_added"))
                        .map(str::to_owned),
                    tags: attr(tag, "tags").map(str::to_owned),
                    title: Text::new(self.limits.max_title_chars),
                    line,
                });
            }
            (TagKind::EndTag, "a") => self.close_anchor(),
            (TagKind::StartTag, "h3") => {
                self.close_anchor();
                self.heading = Some(Heading {
                    name: Text::new(self.limits.max_tag_chars),
                    root: attr(tag, "personal_toolbar_folder").is_some()
                        || attr(tag, "unfiled_bookmarks_folder").is_some(),
                });
            }
            (TagKind::EndTag, "h3") => self.close_heading(),
            (TagKind::StartTag, "dl") => {
                self.close_anchor();
                self.close_heading();
                let folder = self.next_folder.take().flatten();
                if self.folders.len() < MAX_DEPTH {
                    self.folders.push(folder);
                } else {
                    self.too_deep += 1;
                }
            }
            (TagKind::EndTag, "dl") => {
                self.close_anchor();
                self.next_folder = None;
                if self.too_deep > 0 {
                    self.too_deep -= 1;
                } else {
                    self.folders.pop();
                }
            }
            (TagKind::StartTag, "script") => {
                return TokenSinkResult::RawData(RawKind::ScriptData);
            }
            (TagKind::StartTag, "style" | "xmp" | "iframe" | "noembed" | "noframes") => {
                return TokenSinkResult::RawData(RawKind::Rawtext);
            }
            (TagKind::StartTag, "title" | "textarea") => {
                return TokenSinkResult::RawData(RawKind::Rcdata);
            }
            (_, name) if ENDS_ANCHOR.contains(&name) => self.close_anchor(),
            _ => {}
        }
        TokenSinkResult::Continue
    }

    /// Text goes to the open link's title, else to the open folder heading.
    fn text(&mut self, text: &str) {
        if let Some(anchor) = &mut self.anchor {
            anchor.title.push(text);
        } else if let Some(heading) = &mut self.heading {
            heading.name.push(text);
        }
    }

    /// Ends the folder heading; the folder starts with the next `<DL>`.
    fn close_heading(&mut self) {
        if let Some(heading) = self.heading.take() {
            let name = heading.name.finish();
            self.next_folder = Some(if heading.root { None } else { name });
        }
    }

    /// Ends the open link, if any, and queues its item.
    fn close_anchor(&mut self) {
        let Some(anchor) = self.anchor.take() else {
            return;
        };
        let title = anchor.title.finish();
        let line = Some(anchor.line);
        let href = anchor.href.as_deref().map(str::trim).unwrap_or_default();
        let item = if href.is_empty() {
            invalid(line, title.as_deref().unwrap_or_default(), "missing url")
        } else if starts_with_ignore_case(href, "place:")
            || starts_with_ignore_case(href, "javascript:")
        {
            invalid(line, href, "not a web link")
        } else {
            let mut tags = Tags::new(self.limits);
            for folder in self.folders.iter().flatten() {
                tags.push(folder);
            }
            if let Some(extra) = &anchor.tags {
                tags.push_split(extra, &[',']);
            }
            let entry = Entry {
                url: href.to_owned(),
                title,
                tags: tags.finish(),
                added_at: anchor.date.as_deref().and_then(parse_unix),
                line,
            };
            finish_entry(entry, self.limits, || href.to_owned())
        };
        self.ready.push(item);
    }
}

/// The value of attribute `name` (html5ever lowercases attribute names).
fn attr<'t>(tag: &'t Tag, name: &str) -> Option<&'t str> {
    tag.attrs
        .iter()
        .find(|a| &*a.name.local == name)
        .map(|a| a.value.as_ref())
}

/// Whether `s` starts with the ASCII `prefix`, ignoring case.
fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Reads UTF-8 text in chunks, carrying a character split between two reads over to the next;
/// invalid bytes become U+FFFD.
struct Utf8Chunks<R> {
    reader: R,
    buf: Vec<u8>,
    /// Bytes of an incomplete character kept at the start of `buf`.
    carry: usize,
    done: bool,
}

impl<R: Read> Utf8Chunks<R> {
    fn new(reader: R) -> Self {
        Utf8Chunks {
            reader,
            buf: vec![0; CHUNK],
            carry: 0,
            done: false,
        }
    }

    /// The next piece of text, or None at the end of the input.
    fn next_chunk(&mut self) -> Result<Option<String>, ParseError> {
        while !self.done {
            let n = match self.reader.read(&mut self.buf[self.carry..]) {
                Ok(n) => n,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(ParseError::from_io(&err)),
            };
            if n == 0 {
                self.done = true;
                // A character cut off by the end of the file is invalid.
                return Ok((self.carry > 0).then(|| char::REPLACEMENT_CHARACTER.to_string()));
            }
            let end = self.carry + n;
            let (text, rest) = decode(&self.buf[..end]);
            self.buf.copy_within(end - rest..end, 0);
            self.carry = rest;
            if !text.is_empty() {
                return Ok(Some(text));
            }
        }
        Ok(None)
    }
}

/// Decodes `bytes`, returning the text and how many trailing bytes start an incomplete character.
fn decode(mut bytes: &[u8]) -> (String, usize) {
    let mut text = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                text.push_str(valid);
                return (text, 0);
            }
            Err(err) => {
                let (valid, rest) = bytes.split_at(err.valid_up_to());
                text.push_str(&String::from_utf8_lossy(valid));
                match err.error_len() {
                    None => return (text, rest.len()),
                    Some(bad) => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        bytes = &rest[bad..];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::super::fixtures::{self, Trickle, collect, entries, limits, line_of};
    use super::super::{Format, Limits};
    use super::*;

    fn entry(url: &str, title: Option<&str>, tags: &[&str], secs: Option<i64>, line: u64) -> Item {
        Item::Entry(Entry {
            url: url.to_owned(),
            title: title.map(str::to_owned),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            added_at: secs.and_then(|s| DateTime::from_timestamp(s, 0)),
            line: Some(line),
        })
    }

    fn bad(line: u64, raw: &str, reason: &str) -> Item {
        Item::Invalid {
            line: Some(line),
            raw: raw.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn netscape_expected() -> Vec<Item> {
        let at = |needle| line_of(fixtures::NETSCAPE, needle);
        vec![
            entry(
                "https://www.rust-lang.org/",
                Some("Rust & Friends"),
                &[],
                Some(1_600_000_100),
                at("www.rust-lang.org"),
            ),
            entry(
                "https://docs.rs/",
                Some("Docs.rs"),
                &["Dev", "docs", "Rust"],
                Some(1_600_000_300),
                at("docs.rs"),
            ),
            entry(
                "https://example.jp/%E6%9D%B1%E4%BA%AC",
                Some("Überblick — 東京 🚀"),
                &["Dev", "Tokyo Trip", "travel"],
                Some(1_600_000_400),
                at("example.jp"),
            ),
            bad(at("Lost link"), "Lost link", "missing url"),
            bad(at("place:"), "place:sort=8&maxResults=10", "not a web link"),
            entry(
                "https://news.ycombinator.com/",
                None,
                &[],
                None,
                at("ycombinator"),
            ),
            entry(
                "https://example.org/other",
                Some("Other"),
                &[],
                None,
                at("example.org/other"),
            ),
        ]
    }

    #[test]
    fn netscape_export_parses_to_expected_items() {
        let (outcome, items) =
            collect(Format::Netscape, fixtures::NETSCAPE.as_bytes(), &limits()).expect("parses");
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(items, netscape_expected());
    }

    #[test]
    fn tiny_reads_give_identical_items() {
        let reader = Trickle::new(fixtures::NETSCAPE.as_bytes());
        let (_, items) = collect(Format::Netscape, reader, &limits()).expect("parses");
        assert_eq!(items, netscape_expected());
    }

    #[test]
    fn pocket_html_parses_without_heading_tags() {
        let (_, items) = collect(
            Format::PocketHtml,
            fixtures::POCKET_HTML.as_bytes(),
            &limits(),
        )
        .expect("parses");
        let at = |needle| line_of(fixtures::POCKET_HTML, needle);
        assert_eq!(
            items,
            vec![
                entry(
                    "https://example.com/article",
                    Some("An article"),
                    &["reading", "longform"],
                    Some(1_600_000_000),
                    at("/article"),
                ),
                entry(
                    "https://example.com/plain",
                    Some("https://example.com/plain"),
                    &[],
                    Some(1_600_000_001),
                    at("/plain"),
                ),
                entry(
                    "https://example.com/done",
                    Some("Done <read>"),
                    &["archive"],
                    Some(1_500_000_000),
                    at("/done"),
                ),
            ]
        );
    }

    #[test]
    fn limits_cut_titles_and_tags() {
        let limits = Limits {
            max_title_chars: 5,
            max_tags: 2,
            ..limits()
        };
        let (_, items) =
            collect(Format::Netscape, fixtures::NETSCAPE.as_bytes(), &limits).expect("parses");
        let found = entries(&items);
        assert_eq!(found[0].title.as_deref(), Some("Rust"));
        assert_eq!(found[1].tags, ["Dev", "docs"]);
        assert_eq!(found[2].title.as_deref(), Some("Überb"));
        assert_eq!(found[2].tags, ["Dev", "Tokyo Trip"]);
    }

    #[test]
    fn unclosed_anchors_and_script_links_are_handled() {
        let html = "<DL><DT><A HREF=\" https://a.example/ \">A\n<DT><A HREF=\"JavaScript:alert(1)\">js</A>\
                    <script>var s = '<a href=\"https://nope.example/\">';</script>\
                    <DT><A HREF=\"https://b.example/\">B";
        let (_, items) = collect(Format::Netscape, html.as_bytes(), &limits()).expect("parses");
        assert_eq!(
            items,
            vec![
                entry("https://a.example/", Some("A"), &[], None, 1),
                bad(2, "JavaScript:alert(1)", "not a web link"),
                entry("https://b.example/", Some("B"), &[], None, 2),
            ]
        );
    }

    #[test]
    fn split_and_invalid_utf8_is_decoded_safely() {
        let bytes = "a東🚀".as_bytes();
        // Every split point, including inside the multi-byte characters.
        for cut in 0..=bytes.len() {
            let (head, rest) = decode(&bytes[..cut]);
            let (tail, _) = decode(&bytes[cut - rest..]);
            assert_eq!(head + &tail, "a東🚀", "cut at {cut}");
        }
        assert_eq!(decode(b"a\xFFb\xE6"), ("a\u{FFFD}b".to_owned(), 1));
        let mut chunks = Utf8Chunks::new(&b"ok\xE6\x9D"[..]);
        assert_eq!(chunks.next_chunk().expect("reads").as_deref(), Some("ok"));
        assert_eq!(
            chunks.next_chunk().expect("reads").as_deref(),
            Some("\u{FFFD}")
        );
        assert_eq!(chunks.next_chunk().expect("reads"), None);
    }

    #[test]
    fn folder_depth_is_capped_but_balanced() {
        let mut html = String::new();
        for level in 0..100 {
            html.push_str(&format!("<DT><H3>f{level}</H3><DL><p>\n"));
        }
        html.push_str("<DT><A HREF=\"https://deep.example/\">deep</A>\n");
        html.push_str(&"</DL><p>\n".repeat(99));
        html.push_str("<DT><A HREF=\"https://top.example/\">top</A>\n");
        let limits = Limits {
            max_tags: 1000,
            ..limits()
        };
        let (_, items) = collect(Format::Netscape, html.as_bytes(), &limits).expect("parses");
        let found = entries(&items);
        assert_eq!(found[0].tags.len(), MAX_DEPTH);
        assert_eq!(found[0].tags[MAX_DEPTH - 1], format!("f{}", MAX_DEPTH - 1));
        assert_eq!(found[1].tags, ["f0"]);
    }

    #[test]
    fn large_export_streams_through() {
        let mut html = String::from("<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<DL><p>\n");
        for folder in 0..100 {
            html.push_str(&format!("<DT><H3>Folder {folder}</H3>\n<DL><p>\n"));
            for n in 0..200 {
                html.push_str(&format!(
                    "<DT><A HREF=\"https://example.com/{folder}/{n}\" ADD_DATE=\"1600000000\" \
                     TAGS=\"t{n}\">Bookmark number {n} in folder {folder} with some title text</A>\n"
                ));
            }
            html.push_str("</DL><p>\n");
        }
        html.push_str("</DL><p>\n");
        assert!(html.len() > 2_500_000);
        let mut count = 0;
        let mut last = None;
        let outcome =
            super::super::parse(Format::Netscape, html.as_bytes(), &limits(), &mut |item| {
                count += 1;
                last = Some(item);
                Ok(())
            })
            .expect("parses");
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(count, 20_000);
        let Some(Item::Entry(last)) = last else {
            panic!("last item is not an entry");
        };
        assert_eq!(last.url, "https://example.com/99/199");
        assert_eq!(last.tags, ["Folder 99", "t199"]);
    }
}
