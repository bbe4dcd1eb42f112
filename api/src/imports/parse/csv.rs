//! CSV exports (Pocket, Raindrop, or anything with a url column), read record by record.

use std::io::Read;

use ::csv::{ByteRecord, ErrorKind, Position, Reader, ReaderBuilder};

use super::{
    Entry, Format, Item, Limits, Outcome, ParseError, RAW_CHARS, Sink, Tags, clean_text,
    finish_entry, invalid, parse_time, truncate_chars,
};

/// Where the known columns are in a header row.
#[derive(Debug, Default)]
pub(super) struct Columns {
    url: Option<usize>,
    href: Option<usize>,
    link: Option<usize>,
    title: Option<usize>,
    tags: Option<usize>,
    pub(super) time_added: Option<usize>,
    pub(super) created: Option<usize>,
    pub(super) folder: Option<usize>,
    pub(super) excerpt: Option<usize>,
}

impl Columns {
    /// Finds the known columns by name, ignoring case and surrounding space; the first of a name wins.
    pub(super) fn from_header(header: &ByteRecord) -> Self {
        let mut columns = Columns::default();
        for (index, field) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(field);
            // The BOM survives decoding as U+FEFF, which `trim` does not remove.
            let name = name
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let slot = match name.as_str() {
                "url" => &mut columns.url,
                "href" => &mut columns.href,
                "link" => &mut columns.link,
                "title" => &mut columns.title,
                "tags" => &mut columns.tags,
                "time_added" => &mut columns.time_added,
                "created" => &mut columns.created,
                "folder" => &mut columns.folder,
                "excerpt" => &mut columns.excerpt,
                _ => continue,
            };
            slot.get_or_insert(index);
        }
        columns
    }

    /// The url column: `url`, else `href`, else `link`.
    pub(super) fn url(&self) -> Option<usize> {
        self.url.or(self.href).or(self.link)
    }
}

/// Streams a CSV export to `sink`.
pub(super) fn parse(
    format: Format,
    reader: impl Read,
    limits: &Limits,
    sink: &mut Sink,
) -> Result<Outcome, ParseError> {
    // Flexible, so a short row becomes one invalid item instead of failing the file.
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut record = ByteRecord::new();
    if !read(&mut reader, &mut record)? {
        return Err(ParseError::new("the CSV file is empty: no header row").with_line(1));
    }
    let columns = Columns::from_header(&record);
    let Some(url) = columns.url() else {
        let line = record.position().map_or(1, Position::line);
        return Err(ParseError::new("no url column in the CSV header").with_line(line));
    };
    let row = Row {
        columns: &columns,
        url,
        width: record.len(),
        separators: match format {
            Format::PocketCsv => &['|'],
            Format::RaindropCsv => &[','],
            _ => &[',', '|', ';'],
        },
        limits,
    };
    while read(&mut reader, &mut record)? {
        if sink(row.item(&record)).is_err() {
            return Ok(Outcome::Stopped);
        }
    }
    Ok(Outcome::Finished)
}

/// Reads the next record; false at the end of the file.
fn read<R: Read>(reader: &mut Reader<R>, record: &mut ByteRecord) -> Result<bool, ParseError> {
    reader.read_byte_record(record).map_err(|err| {
        let position = err.position().unwrap_or(reader.position()).clone();
        let error = match err.kind() {
            ErrorKind::Io(io) => ParseError::from_io(io),
            _ => ParseError::new(format!("malformed CSV: {err}")),
        };
        ParseError {
            line: Some(position.line()),
            byte: Some(position.byte()),
            ..error
        }
    })
}

/// How to turn a data row into an item.
struct Row<'a> {
    columns: &'a Columns,
    url: usize,
    width: usize,
    separators: &'static [char],
    limits: &'a Limits,
}

impl Row<'_> {
    fn item(&self, record: &ByteRecord) -> Item {
        let line = record.position().map(Position::line);
        if record.len() != self.width {
            let reason = format!("expected {} fields, found {}", self.width, record.len());
            return invalid(line, &raw_row(record), reason);
        }
        let field = |column: Option<usize>| {
            column
                .and_then(|i| record.get(i))
                .map(String::from_utf8_lossy)
        };
        let mut tags = Tags::new(self.limits);
        if let Some(folder) = field(self.columns.folder) {
            // Raindrop writes nested folders as a path: one tag per level.
            tags.push_split(&folder, &['/']);
        }
        if let Some(list) = field(self.columns.tags) {
            tags.push_split(&list, self.separators);
        }
        let entry = Entry {
            url: field(Some(self.url)).unwrap_or_default().trim().to_owned(),
            title: field(self.columns.title)
                .and_then(|title| clean_text(&title, self.limits.max_title_chars)),
            tags: tags.finish(),
            added_at: field(self.columns.time_added.or(self.columns.created))
                .and_then(|date| parse_time(&date)),
            line,
        };
        finish_entry(entry, self.limits, || raw_row(record))
    }
}

/// The row as text, for an invalid item: fields joined with commas, cut short.
fn raw_row(record: &ByteRecord) -> String {
    let mut raw = String::new();
    for (index, field) in record.iter().enumerate() {
        if index > 0 {
            raw.push(',');
        }
        // RAW_CHARS characters fit in 4 bytes each, so a longer field need not be decoded whole.
        let field = &field[..field.len().min(RAW_CHARS * 4)];
        raw.push_str(&String::from_utf8_lossy(field));
        if raw.len() >= RAW_CHARS * 4 {
            break;
        }
    }
    truncate_chars(&raw, RAW_CHARS).to_owned()
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::super::fixtures::{self, collect, entries, limits};
    use super::*;

    fn at(secs: i64) -> Option<chrono::DateTime<chrono::Utc>> {
        DateTime::from_timestamp(secs, 0)
    }

    #[test]
    fn pocket_csv_splits_tags_on_bars_and_reports_bad_rows() {
        let (outcome, items) = collect(
            Format::PocketCsv,
            fixtures::POCKET_CSV.as_bytes(),
            &limits(),
        )
        .expect("parses");
        assert_eq!(outcome, Outcome::Finished);
        assert_eq!(
            items,
            vec![
                Item::Entry(Entry {
                    url: "https://example.com/article".to_owned(),
                    title: Some("An article".to_owned()),
                    tags: vec!["reading".to_owned(), "longform".to_owned()],
                    added_at: at(1_600_000_000),
                    line: Some(2),
                }),
                Item::Entry(Entry {
                    url: "https://example.com/quoted".to_owned(),
                    title: Some("Quoted, with comma".to_owned()),
                    tags: vec![],
                    added_at: at(1_600_000_001),
                    line: Some(3),
                }),
                Item::Invalid {
                    line: Some(4),
                    raw: "Short row,https://example.com/short".to_owned(),
                    reason: "expected 5 fields, found 2".to_owned(),
                },
                Item::Invalid {
                    line: Some(5),
                    raw: "Empty url,,1600000002,x,unread".to_owned(),
                    reason: "missing url".to_owned(),
                },
            ]
        );
    }

    #[test]
    fn raindrop_csv_turns_folder_path_into_tags() {
        let (_, items) = collect(
            Format::RaindropCsv,
            fixtures::RAINDROP_CSV.as_bytes(),
            &limits(),
        )
        .expect("parses");
        let found = entries(&items);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].url, "https://doc.rust-lang.org/book/");
        assert_eq!(found[0].title.as_deref(), Some("Rust Book"));
        assert_eq!(found[0].tags, ["Reading", "Rust", "books"]);
        assert_eq!(found[0].added_at, at(1_615_803_630));
        assert_eq!(found[1].tags, ["Unsorted"]);
        assert_eq!(found[1].added_at, at(1_615_852_800));
        assert_eq!(found[2].tags, ["Reading", "Later"]);
        assert_eq!(found[2].added_at, None);
        assert_eq!(found[2].line, Some(4));
    }

    #[test]
    fn generic_csv_accepts_any_tag_separator() {
        let (_, items) =
            collect(Format::Csv, fixtures::GENERIC_CSV.as_bytes(), &limits()).expect("parses");
        let found = entries(&items);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].url, "https://example.com/1");
        assert_eq!(found[0].tags, ["a", "b", "c"]);
        assert_eq!(found[1].tags, ["x", "y"]);
        assert_eq!(found[2].title, None);
        assert!(found[2].tags.is_empty());
    }

    #[test]
    fn header_without_url_column_is_refused() {
        let err = collect(Format::Csv, "title,tags\nA,b\n".as_bytes(), &limits())
            .expect_err("no url column");
        assert_eq!(err.message, "no url column in the CSV header");
        assert_eq!(err.line, Some(1));
        let err = collect(Format::Csv, "".as_bytes(), &limits()).expect_err("empty");
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn bom_and_invalid_utf8_are_tolerated() {
        let input = b"\xEF\xBB\xBFURL,Title\nhttps://example.com/,caf\xE9\n";
        let (_, items) = collect(Format::Csv, &input[..], &limits()).expect("parses");
        let found = entries(&items);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].title.as_deref(), Some("caf\u{FFFD}"));
    }
}
