//! Pinboard's JSON export: a top-level array read one element at a time, never whole.
//!
//! Elements are read into just the fields an entry needs; everything else is skipped unbuilt, so a
//! huge or deeply nested element costs no more memory than its kept strings.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, BufReader, Read};

use serde::de::{Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{
    Entry, Item, Limits, Outcome, ParseError, RAW_CHARS, Sink, Tags, clean_text, finish_entry,
    invalid, parse_time, truncate_chars,
};

/// Streams a Pinboard JSON export to `sink`.
pub(super) fn parse(
    reader: impl Read,
    limits: &Limits,
    sink: &mut Sink,
) -> Result<Outcome, ParseError> {
    let track = Track::default();
    let input = Tracked {
        // serde_json reads byte by byte, so it needs a buffer underneath.
        inner: BufReader::new(reader),
        track: &track,
    };
    let mut de = serde_json::Deserializer::from_reader(input);
    let result = (&mut de).deserialize_seq(Elements {
        limits,
        sink,
        track: &track,
    });
    // Stopping surfaces as an error from serde_json; it is not the file's fault.
    if track.stopped.get() {
        return Ok(Outcome::Stopped);
    }
    result.and_then(|()| de.end()).map_err(json_error)?;
    Ok(Outcome::Finished)
}

/// A serde_json error as a ParseError, with its position and, for read failures, the io kind.
fn json_error(err: serde_json::Error) -> ParseError {
    let base = match err.io_error_kind() {
        Some(kind) => ParseError {
            io: Some(kind),
            ..ParseError::new(format!("could not read the file: {err}"))
        },
        None => ParseError::new(format!("invalid JSON: {err}")),
    };
    // serde_json reports line 0 when it has no position; column 0 is the start of a line.
    let placed = err.line() > 0;
    ParseError {
        line: placed.then_some(err.line() as u64),
        column: placed.then_some(err.column() as u64),
        ..base
    }
}

/// Bytes of an element kept for its invalid item: enough for RAW_CHARS characters.
const RAW_BYTES: usize = RAW_CHARS * 4;

/// What the reader saw, shared with the visitor: line count, where the current element starts and
/// its first bytes, and whether the sink stopped.
#[derive(Default)]
struct Track {
    newlines: Cell<u64>,
    /// Set before each element: the next significant byte read is that element's first.
    armed: Cell<bool>,
    start_line: Cell<u64>,
    capturing: Cell<bool>,
    raw: RefCell<Vec<u8>>,
    stopped: Cell<bool>,
}

impl Track {
    /// Prepares for the next element.
    fn arm(&self) {
        self.armed.set(true);
        self.capturing.set(false);
        self.raw.borrow_mut().clear();
    }

    fn see(&self, byte: u8) {
        if self.armed.get() && !matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | b',') {
            self.armed.set(false);
            self.capturing.set(true);
            self.start_line.set(self.newlines.get() + 1);
        }
        if self.capturing.get() {
            let mut raw = self.raw.borrow_mut();
            raw.push(byte);
            self.capturing.set(raw.len() < RAW_BYTES);
        }
        if byte == b'\n' {
            self.newlines.set(self.newlines.get() + 1);
        }
    }

    /// The current element's source text, cut short.
    fn raw_text(&self) -> String {
        let raw = self.raw.borrow();
        let text = String::from_utf8_lossy(&raw);
        let mut text = text.trim_end();
        // serde_json reads one byte past a number to find its end; drop it.
        if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            text = text.trim_end_matches(|c: char| {
                !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            });
        }
        truncate_chars(text, RAW_CHARS).to_owned()
    }
}

/// Passes bytes to serde_json, noting each one (it reads one byte at a time, so positions are exact).
struct Tracked<'a, R> {
    inner: R,
    track: &'a Track,
}

impl<R: Read> Read for Tracked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Once the sink has stopped, read nothing more.
        if self.track.stopped.get() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        for &byte in &buf[..n] {
            self.track.see(byte);
        }
        Ok(n)
    }
}

/// Visits the top-level array, handing on each element as soon as it is read.
struct Elements<'a, 's> {
    limits: &'a Limits,
    sink: &'a mut Sink<'s>,
    track: &'a Track,
}

impl<'de> Visitor<'de> for Elements<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of bookmarks")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.track.arm();
            let Some(element) = seq.next_element::<Element>()? else {
                return Ok(());
            };
            let line = Some(self.track.start_line.get());
            let item = element_item(element, line, self.limits, || self.track.raw_text());
            if (self.sink)(item).is_err() {
                self.track.stopped.set(true);
                return Err(A::Error::custom("stopped"));
            }
        }
    }
}

/// One element as an item.
fn element_item(
    element: Element,
    line: Option<u64>,
    limits: &Limits,
    raw: impl FnOnce() -> String,
) -> Item {
    let Element::Bookmark(pin) = element else {
        return invalid(line, &raw(), "not an object");
    };
    let mut tags = Tags::new(limits);
    for tag in pin.tags.iter().flat_map(|list| list.split_whitespace()) {
        tags.push(tag);
    }
    let entry = Entry {
        url: pin.href.as_deref().unwrap_or_default().trim().to_owned(),
        title: pin
            .description
            .and_then(|title| clean_text(&title, limits.max_title_chars)),
        tags: tags.finish(),
        added_at: pin.time.as_deref().and_then(parse_time),
        line,
    };
    finish_entry(entry, limits, raw)
}

/// An array element: a bookmark object, or anything else (skipped).
enum Element {
    Bookmark(Pin),
    Other,
}

/// The string fields of a Pinboard object that an entry uses.
#[derive(Default)]
struct Pin {
    href: Option<String>,
    description: Option<String>,
    time: Option<String>,
    tags: Option<String>,
}

/// The keys we read; the rest are skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Href,
    Description,
    Time,
    Tags,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bookmark")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
        let mut pin = Pin::default();
        while let Some(field) = map.next_key::<Field>()? {
            let slot = match field {
                Field::Href => &mut pin.href,
                Field::Description => &mut pin.description,
                Field::Time => &mut pin.time,
                Field::Tags => &mut pin.tags,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value::<Loose>()?.0;
        }
        Ok(Element::Bookmark(pin))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Element::Other)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Element, E> {
        Ok(Element::Other)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Element, E> {
        Ok(Element::Other)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Element, E> {
        Ok(Element::Other)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Element, E> {
        Ok(Element::Other)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Element, E> {
        Ok(Element::Other)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Element, E> {
        Ok(Element::Other)
    }
}

/// A string value, or None for any other JSON value (skipped without building it).
struct Loose(Option<String>);

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // IgnoredAny accepts every JSON value; strings are caught first.
        struct LooseVisitor;
        impl<'de> Visitor<'de> for LooseVisitor {
            type Value = Loose;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Loose, E> {
                Ok(Loose(Some(value.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Loose, E> {
                Ok(Loose(Some(value)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Loose(None))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose, A::Error> {
                IgnoredAny.visit_map(map).map(|_| Loose(None))
            }

            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Loose, E> {
                Ok(Loose(None))
            }

            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Loose, E> {
                Ok(Loose(None))
            }

            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Loose, E> {
                Ok(Loose(None))
            }

            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Loose, E> {
                Ok(Loose(None))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Loose, E> {
                Ok(Loose(None))
            }
        }
        deserializer.deserialize_any(LooseVisitor)
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::super::Format;
    use super::super::fixtures::{self, collect, limits};
    use super::*;

    #[test]
    fn pinboard_export_parses_element_by_element() {
        let (outcome, items) = collect(
            Format::PinboardJson,
            fixtures::PINBOARD_JSON.as_bytes(),
            &limits(),
        )
        .expect("parses");
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(
            items,
            vec![
                Item::Entry(Entry {
                    url: "https://pinboard.in/".to_owned(),
                    title: Some("Pinboard".to_owned()),
                    tags: vec!["bookmarks".to_owned(), "tools".to_owned()],
                    added_at: DateTime::from_timestamp(1_298_497_084, 0),
                    line: Some(1),
                }),
                Item::Entry(Entry {
                    url: "https://example.com/notags".to_owned(),
                    title: None,
                    tags: vec![],
                    added_at: DateTime::from_timestamp(1_325_376_000, 0),
                    line: Some(2),
                }),
                Item::Invalid {
                    line: Some(3),
                    raw: r#"{"description":"no href here","tags":"x"}"#.to_owned(),
                    reason: "missing url".to_owned(),
                },
                Item::Invalid {
                    line: Some(4),
                    raw: "42".to_owned(),
                    reason: "not an object".to_owned(),
                },
            ]
        );
    }

    #[test]
    fn odd_elements_are_skipped_without_failing_the_file() {
        let input = r#"[{"href": 7, "tags": ["a"], "extra": {"deep": [[[1, {"x": null}]]]}},
 -1.5e3 ,
 "just text",
 {"href": " https://ok.example/ ", "description": {"nested": true}, "tags": "a b A"}]"#;
        let (_, items) =
            collect(Format::PinboardJson, input.as_bytes(), &limits()).expect("parses");
        let Item::Invalid { raw, reason, .. } = &items[0] else {
            panic!("expected invalid, got {:?}", items[0]);
        };
        assert_eq!(reason, "missing url");
        assert!(raw.starts_with(r#"{"href": 7, "tags": ["a"]"#), "{raw}");
        assert_eq!(
            items[1],
            Item::Invalid {
                line: Some(2),
                raw: "-1.5e3".to_owned(),
                reason: "not an object".to_owned(),
            }
        );
        assert_eq!(
            items[2],
            Item::Invalid {
                line: Some(3),
                raw: "\"just text\"".to_owned(),
                reason: "not an object".to_owned(),
            }
        );
        assert_eq!(
            items[3],
            Item::Entry(Entry {
                url: "https://ok.example/".to_owned(),
                title: None,
                tags: vec!["a".to_owned(), "b".to_owned()],
                added_at: None,
                line: Some(4),
            })
        );
    }

    #[test]
    fn pretty_printed_elements_report_their_first_line() {
        let input = "[\n  {\n    \"href\": \"https://a.example/\"\n  },\n\n  {\"href\": \"https://b.example/\"}\n]";
        let (_, items) =
            collect(Format::PinboardJson, input.as_bytes(), &limits()).expect("parses");
        let lines: Vec<_> = items
            .iter()
            .map(|item| match item {
                Item::Entry(entry) => entry.line,
                Item::Invalid { line, .. } => *line,
            })
            .collect();
        assert_eq!(lines, [Some(2), Some(6)]);
    }

    #[test]
    fn truncated_file_is_a_parse_error_with_position() {
        let cut =
            &fixtures::PINBOARD_JSON[..fixtures::PINBOARD_JSON.find("42").expect("in fixture")];
        let err = collect(Format::PinboardJson, cut.as_bytes(), &limits()).expect_err("truncated");
        assert_eq!((err.line, err.column), (Some(4), Some(0)));
        assert_eq!(err.io, None);
        assert!(err.message.contains("EOF"), "{}", err.message);
    }

    #[test]
    fn trailing_garbage_and_non_arrays_are_refused() {
        let err = collect(Format::PinboardJson, "[] x".as_bytes(), &limits()).expect_err("garbage");
        assert_eq!((err.line, err.column), (Some(1), Some(4)));
        let err = collect(
            Format::PinboardJson,
            r#"{"href":"x"}"#.as_bytes(),
            &limits(),
        )
        .expect_err("not an array");
        assert_eq!(err.line, Some(1));
        assert!(err.message.contains("array"), "{}", err.message);
    }
}
