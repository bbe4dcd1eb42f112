//! Test-only: small inline exports shared by the parser and detection tests, and test readers.

use std::cell::Cell;
use std::io::{self, Read};

use super::{Format, Item, Limits, Outcome, ParseError, parse};

/// A Chrome-style Netscape export: toolbar root, two nested folders, TAGS, ADD_DATE in three units,
/// a non-ASCII title, an anchor without HREF, a Firefox `place:` link.
pub const NETSCAPE: &str = r#"<!DOCTYPE NETSCAPE-Bookmark-file-1>
<!-- This is an automatically generated file.
     It will be read and overwritten.
     DO NOT EDIT! -->
<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">
<TITLE>Bookmarks</TITLE>
<H1>Bookmarks</H1>
<DL><p>
    <DT><H3 ADD_DATE="1600000000" LAST_MODIFIED="1600000500" PERSONAL_TOOLBAR_FOLDER="true">Bookmarks bar</H3>
    <DL><p>
        <DT><A HREF="https://www.rust-lang.org/" ADD_DATE="1600000100" ICON="data:image/png;base64,iVBORw0KGgo=">Rust  &amp;
            Friends</A>
        <DT><H3 ADD_DATE="1600000200">Dev</H3>
        <DL><p>
            <DT><A HREF="https://docs.rs/" ADD_DATE="1600000300000" TAGS="docs,Rust">Docs.rs</A>
            <DT><H3>Tokyo  Trip</H3>
            <DL><p>
                <DT><A HREF="https://example.jp/%E6%9D%B1%E4%BA%AC" ADD_DATE="1600000400000000" TAGS="travel, dev">Überblick — 東京 🚀</A>
                <DT><A ADD_DATE="1600000500">Lost link</A>
            </DL><p>
            <DT><A HREF="place:sort=8&amp;maxResults=10">Recent Tags</A>
        </DL><p>
        <DT><A HREF="https://news.ycombinator.com/" ADD_DATE="0"></A>
    </DL><p>
    <DT><H3 ADD_DATE="1600000000" UNFILED_BOOKMARKS_FOLDER="true">Other bookmarks</H3>
    <DL><p>
        <DT><A HREF="https://example.org/other" ADD_DATE="bogus">Other</A>
    </DL><p>
</DL><p>
"#;

/// Pocket's HTML export.
pub const POCKET_HTML: &str = r#"<!DOCTYPE html>
<html>
	<!--So long and thanks for all the fish-->
	<head>
		<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
		<title>Pocket Export</title>
	</head>
	<body>
		<h1>Unread</h1>
		<ul>
			<li><a href="https://example.com/article" time_added="1600000000" tags="reading,longform">An article</a></li>
			<li><a href="https://example.com/plain" time_added="1600000001" tags="">https://example.com/plain</a></li>
		</ul>

		<h1>Read Archive</h1>
		<ul>
			<li><a href="https://example.com/done" time_added="1500000000" tags="archive">Done &lt;read&gt;</a></li>
		</ul>
	</body>
</html>
"#;

/// Pocket's CSV export, with a short row and a row without url.
pub const POCKET_CSV: &str = "title,url,time_added,tags,status
An article,https://example.com/article,1600000000,reading|longform,unread
\"Quoted, with comma\",https://example.com/quoted,1600000001,,archive
Short row,https://example.com/short
Empty url,,1600000002,x,unread
";

/// Raindrop.io's CSV export.
pub const RAINDROP_CSV: &str = "id,title,note,excerpt,url,folder,tags,created,cover,highlights,favorite
1,Rust Book,,The book,https://doc.rust-lang.org/book/,/Reading/Rust/,\"rust, books\",2021-03-15T10:20:30.000Z,,,false
2,Unsorted one,,,https://example.com/x,Unsorted,,2021-03-16T00:00:00Z,,,false
3,Nested tags,,,https://example.com/y,Reading,\"reading, Later\",,,,true
";

/// A CSV from elsewhere: `Link` column, mixed tag separators.
pub const GENERIC_CSV: &str = "Name,Link,Title,Tags
a,https://example.com/1,One,a;b|c
b,https://example.com/2,Two,\"x, y\"
c,https://example.com/3,,
";

/// Pinboard's JSON export, with an element without href and a non-object element.
pub const PINBOARD_JSON: &str = r#"[{"href":"https://pinboard.in/","description":"Pinboard","extended":"Bookmarking","meta":"abc","hash":"def","time":"2011-02-23T21:38:04Z","shared":"yes","toread":"no","tags":"bookmarks  tools"},
{"href":"https://example.com/notags","description":"","extended":"","time":"2012-01-01T00:00:00Z","shared":"no","toread":"yes","tags":""},
{"description":"no href here","tags":"x"},
42
]
"#;

/// A plain URL list with a BOM, comments, blank lines and padding.
pub const URL_LIST: &str = "\u{feff}# my links
https://example.com/one

   https://example.com/two   \r
# comment
not a url at all
";

/// Every fixture with its format; each yields at least three items.
pub const ALL: [(Format, &str); 7] = [
    (Format::Netscape, NETSCAPE),
    (Format::PocketHtml, POCKET_HTML),
    (Format::PocketCsv, POCKET_CSV),
    (Format::RaindropCsv, RAINDROP_CSV),
    (Format::Csv, GENERIC_CSV),
    (Format::PinboardJson, PINBOARD_JSON),
    (Format::UrlList, URL_LIST),
];

/// Generous limits, so only the limit tests hit them.
pub fn limits() -> Limits {
    Limits {
        max_title_chars: 500,
        max_tags: 20,
        max_tag_chars: 64,
        max_url_chars: 2048,
    }
}

/// Parses `reader` and gathers every item.
pub fn collect(
    format: Format,
    reader: impl Read,
    limits: &Limits,
) -> Result<(Outcome, Vec<Item>), ParseError> {
    let mut items = Vec::new();
    let outcome = parse(format, reader, limits, &mut |item| {
        items.push(item);
        Ok(())
    })?;
    Ok((outcome, items))
}

/// The entries among `items`, in order.
pub fn entries(items: &[Item]) -> Vec<&super::Entry> {
    items
        .iter()
        .filter_map(|item| match item {
            Item::Entry(entry) => Some(entry),
            Item::Invalid { .. } => None,
        })
        .collect()
}

/// 1-based line of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> u64 {
    let index = text
        .lines()
        .position(|line| line.contains(needle))
        .expect("needle in fixture");
    index as u64 + 1
}

/// A reader that hands out 1 to 7 bytes per read, to split tokens and characters everywhere.
pub struct Trickle<'a> {
    rest: &'a [u8],
    next: usize,
}

impl<'a> Trickle<'a> {
    /// Trickles `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Trickle {
            rest: bytes,
            next: 0,
        }
    }
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.next = self.next % 7 + 1;
        let n = self.next.min(buf.len()).min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// A reader that hands out its bytes, then fails the way the caller's size cap does.
pub struct Failing<'a> {
    rest: &'a [u8],
}

impl<'a> Failing<'a> {
    /// Reads `bytes`, then fails.
    pub fn new(bytes: &'a [u8]) -> Self {
        Failing { rest: bytes }
    }
}

impl Read for Failing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rest.is_empty() {
            return Err(io::Error::other("body too large"));
        }
        let n = buf.len().min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// A reader that notes whether it was read after `stopped` was set.
pub struct Watched<'a, R> {
    pub inner: R,
    pub stopped: &'a Cell<bool>,
    pub read_after_stop: &'a Cell<bool>,
}

impl<R: Read> Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stopped.get() {
            self.read_after_stop.set(true);
        }
        self.inner.read(buf)
    }
}
