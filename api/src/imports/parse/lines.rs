//! A plain list of URLs, one per line; blank lines and `#` comments are skipped.

use std::io::{self, BufRead, BufReader, ErrorKind, Read};

use super::{Entry, Limits, Outcome, ParseError, Sink, finish_entry, invalid};

/// Streams a URL list to `sink`.
pub(super) fn parse(
    reader: impl Read,
    limits: &Limits,
    sink: &mut Sink,
) -> Result<Outcome, ParseError> {
    let mut input = BufReader::with_capacity(64 * 1024, reader);
    // Room for max_url_chars characters of up to 4 bytes, plus padding; longer lines are cut.
    let cap = limits.max_url_chars.saturating_mul(4).saturating_add(256);
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        let cut = read_line(&mut input, &mut buf, cap)
            .map_err(|err| ParseError::from_io(&err).with_line(number + 1))?;
        let Some(cut) = cut else {
            return Ok(Outcome::Finished);
        };
        number += 1;
        let mut bytes = &buf[..];
        if number == 1 {
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        let text = String::from_utf8_lossy(bytes);
        let line = text.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let item = if cut || line.chars().nth(limits.max_url_chars).is_some() {
            invalid(Some(number), line, "line too long")
        } else {
            let entry = Entry {
                url: line.to_owned(),
                title: None,
                tags: Vec::new(),
                added_at: None,
                line: Some(number),
            };
            finish_entry(entry, limits, || line.to_owned())
        };
        if sink(item).is_err() {
            return Ok(Outcome::Stopped);
        }
    }
}

/// Reads one line into `buf`, keeping at most `cap` bytes and skipping the rest.
/// Returns None at the end of the input, else whether the line was cut.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>, cap: usize) -> io::Result<Option<bool>> {
    let mut cut = false;
    let mut started = false;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Ok(started.then_some(cut));
        }
        started = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let part = &available[..newline.unwrap_or(available.len())];
        let room = cap.saturating_sub(buf.len());
        cut |= part.len() > room;
        buf.extend_from_slice(&part[..part.len().min(room)]);
        let used = newline.map_or(available.len(), |i| i + 1);
        input.consume(used);
        if newline.is_some() {
            return Ok(Some(cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{self, collect, entries, limits};
    use super::super::{Format, Item, Limits};
    use super::*;

    #[test]
    fn url_list_skips_blanks_comments_and_bom() {
        let (outcome, items) =
            collect(Format::UrlList, fixtures::URL_LIST.as_bytes(), &limits()).expect("parses");
        assert_eq!(outcome, Outcome::Finished);
        let found: Vec<_> = entries(&items)
            .iter()
            .map(|entry| (entry.url.as_str(), entry.line))
            .collect();
        assert_eq!(
            found,
            [
                ("https://example.com/one", Some(2)),
                ("https://example.com/two", Some(4)),
                ("not a url at all", Some(6)),
            ]
        );
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn over_long_lines_are_invalid_and_skipped_whole() {
        let limits = Limits {
            max_url_chars: 30,
            ..limits()
        };
        let long = format!("https://example.com/{}", "a".repeat(1000));
        let medium = format!("https://example.com/{}", "b".repeat(20));
        let input = format!("{long}\n{medium}\nhttps://example.com/ok");
        let (_, items) = collect(Format::UrlList, input.as_bytes(), &limits).expect("parses");
        let reasons: Vec<_> = items
            .iter()
            .map(|item| match item {
                Item::Entry(entry) => format!("entry {}", entry.url),
                Item::Invalid { line, reason, raw } => {
                    assert!(raw.chars().count() <= 200);
                    format!("{line:?} {reason}")
                }
            })
            .collect();
        assert_eq!(
            reasons,
            [
                "Some(1) line too long",
                "Some(2) line too long",
                "entry https://example.com/ok",
            ]
        );
    }

    #[test]
    fn read_line_caps_what_it_keeps() {
        let mut input = &b"abcdefgh\nxy"[..];
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut input, &mut buf, 3).expect("reads"),
            Some(true)
        );
        assert_eq!(buf, b"abc");
        buf.clear();
        assert_eq!(
            read_line(&mut input, &mut buf, 3).expect("reads"),
            Some(false)
        );
        assert_eq!(buf, b"xy");
        buf.clear();
        assert_eq!(read_line(&mut input, &mut buf, 3).expect("reads"), None);
    }
}
