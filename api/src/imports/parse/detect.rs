//! Guessing an export's format from its first bytes.

use ::csv::{ByteRecord, ReaderBuilder};

use super::Format;
use super::csv::Columns;

/// Detects the format from the file's first bytes (up to 8 KiB are enough).
pub fn detect(head: &[u8]) -> Format {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let head = &head[start..];
    match head.first() {
        Some(b'[' | b'{') => Format::PinboardJson,
        Some(b'<') if contains_ignore_case(head, b"netscape-bookmark-file") => Format::Netscape,
        Some(b'<') if contains_ignore_case(head, b"<dl") => Format::Netscape,
        Some(b'<') => Format::PocketHtml,
        _ => csv_format(first_line(head)).unwrap_or(Format::UrlList),
    }
}

/// The CSV flavour, if `line` is a CSV header with a url column.
fn csv_format(line: &[u8]) -> Option<Format> {
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line);
    let mut header = ByteRecord::new();
    if !reader.read_byte_record(&mut header).ok()? {
        return None;
    }
    let columns = Columns::from_header(&header);
    columns.url()?;
    Some(if columns.time_added.is_some() {
        Format::PocketCsv
    } else if columns.folder.is_some() || columns.created.is_some() || columns.excerpt.is_some() {
        Format::RaindropCsv
    } else {
        Format::Csv
    })
}

/// Everything before the first newline (all of `bytes` if there is none).
fn first_line(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == b'\n').next().unwrap_or(bytes)
}

/// Whether `needle` (lowercase ASCII) occurs in `haystack`, ignoring ASCII case.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn each_fixture_is_detected() {
        for (format, input) in fixtures::ALL {
            assert_eq!(detect(input.as_bytes()), format, "{format:?}");
            let with_bom = format!("\u{feff}{input}");
            assert_eq!(detect(with_bom.as_bytes()), format, "{format:?} with BOM");
        }
    }

    #[test]
    fn only_the_head_is_needed() {
        for (format, input) in fixtures::ALL {
            let head = &input.as_bytes()[..input.len().min(60)];
            assert_eq!(detect(head), format, "{format:?}");
        }
    }

    #[test]
    fn edge_cases() {
        assert_eq!(detect(b"  \n\t{\"a\":1}"), Format::PinboardJson);
        assert_eq!(detect(b"<html><body><dl><dt>"), Format::Netscape);
        assert_eq!(detect(b"<!DOCTYPE html><ul><li>"), Format::PocketHtml);
        assert_eq!(detect(b"\"HREF\",title\n"), Format::Csv);
        assert_eq!(detect(b"https://a.example/,x\n"), Format::UrlList);
        assert_eq!(detect(b""), Format::UrlList);
    }
}
