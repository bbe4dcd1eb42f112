//! Receives an import file as a stream and stages it, with memory bounded by a few chunks and a
//! few batches whatever the file's size:
//!
//! ```text
//! request body --chunks--> parser thread (blocking, streaming) --batches of items--> staging
//! ```
//!
//! The body is pumped into a bounded channel that the parser reads as a `std::io::Read`; the
//! parser hands items back in batches; each batch is written (and merged into the user's
//! bookmarks) inside the upload's one transaction, committed only when the whole file was read.
//! Anything that goes wrong (too large, malformed, a dropped connection, a killed process)
//! rolls the whole import back.

use std::io::{self, Read};

use actix_web::web;
use bytes::{Buf, Bytes};
use chrono::{Datelike, Utc};
use futures::StreamExt;
use fuze_shared::{
    config::ImportConfig,
    domain::BookmarkUrl,
    imports::{
        ImportState,
        stage::{self, NewImport, StagedItem, Target},
    },
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::parse::{self, Entry, Format, Item, Limits, Outcome, ParseError, Stop};
use crate::state::AppState;

/// What the user asked for besides the file.
#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: detected from the file's first bytes.
    pub format: Option<Format>,
    pub crawl: bool,
    /// Added to every item (already cleaned).
    pub tags: Vec<String>,
}

/// Why an upload was refused; nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the import file is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the file has more than {limit} entries")]
    TooManyEntries { limit: u32 },
    #[error("the file is not a valid {format} export: {error}")]
    Malformed {
        format: &'static str,
        error: ParseError,
    },
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A staged import.
#[derive(Debug, Clone)]
pub struct Staged {
    pub id: Uuid,
    pub state: ImportState,
    pub format: Format,
}

/// Chunks the body pump may run ahead of the parser.
const CHUNKS_AHEAD: usize = 8;
/// Batches the parser may run ahead of the database.
const BATCHES_AHEAD: usize = 2;
/// Bytes the format is detected from.
const HEAD_BYTES: usize = 8 * 1024;

/// Streams the body through the parser into the database; commits only a whole file.
pub async fn receive(
    state: &AppState,
    user_id: Uuid,
    body: web::Payload,
    options: Options,
) -> Result<Staged, UploadError> {
    let config = state.config.imports.clone();
    let (chunks_tx, chunks_rx) = mpsc::channel(CHUNKS_AHEAD);
    let (items_tx, items_rx) = mpsc::channel(BATCHES_AHEAD);
    let limits = Limits {
        max_title_chars: state.config.api.max_title_chars,
        max_tags: config.max_tags,
        max_tag_chars: config.max_tag_chars,
        max_url_chars: state.config.api.max_url_len,
    };
    let batch = config.stage_batch;
    let parser = tokio::task::spawn_blocking(move || {
        parse_stream(chunks_rx, items_tx, options.format, &limits, batch)
    });
    let pump = pump(body, chunks_tx, config.max_bytes);
    let import = NewImport {
        id: Uuid::new_v4(),
        user_id,
        format: "",
        crawl: options.crawl,
        tags: options.tags,
    };
    let write = write(state, import, items_rx, &config);
    let (pumped, written) = tokio::join!(pump, write);
    let parsed = parser
        .await
        .map_err(|e| UploadError::Interrupted(format!("parser stopped: {e}")))?;
    // The cause nearest the client wins: a body too large (or cut off) explains a parse error.
    let bytes = pumped?;
    let format = parsed.map_err(|(format, error)| UploadError::Malformed {
        format: format.as_str(),
        error,
    })?;
    let (mut tx, import_id, entries, totals) = written?;
    if entries == 0 {
        let error = ParseError {
            line: None,
            column: None,
            byte: None,
            message: "the file holds no bookmarks".to_owned(),
            io: None,
        };
        return Err(UploadError::Malformed {
            format: format.as_str(),
            error,
        });
    }
    let state_now = stage::finish(&mut tx, import_id, entries, bytes).await?;
    tx.commit().await?;
    let staged = &state.metrics.imports.items_staged;
    staged.with_label_values(&["saved"]).inc_by(totals.saved);
    staged
        .with_label_values(&["duplicate"])
        .inc_by(totals.duplicate);
    staged.with_label_values(&["failed"]).inc_by(totals.failed);
    Ok(Staged {
        id: import_id,
        state: state_now,
        format,
    })
}

/// Feeds the body to the parser's channel; returns the bytes read. Over the limit, the parser
/// is told so (its read fails) and the upload ends.
async fn pump(
    mut body: web::Payload,
    chunks: mpsc::Sender<io::Result<Bytes>>,
    limit: usize,
) -> Result<u64, UploadError> {
    let mut total: usize = 0;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                let _ = chunks
                    .send(Err(io::Error::other("upload interrupted")))
                    .await;
                return Err(UploadError::Interrupted(e.to_string()));
            }
        };
        total = total.saturating_add(chunk.len());
        if total > limit {
            let _ = chunks.send(Err(io::Error::other("too large"))).await;
            return Err(UploadError::TooLarge { limit });
        }
        if chunks.send(Ok(chunk)).await.is_err() {
            // The parser stopped early (a malformed file, or too many entries): its answer wins.
            break;
        }
    }
    Ok(total as u64)
}

/// What the parser thread sends: the format first, then items in batches.
enum Parsed {
    Format(Format),
    Items(Vec<Item>),
}

/// The parser thread: detects the format, then streams items back in batches.
fn parse_stream(
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    items: mpsc::Sender<Parsed>,
    format: Option<Format>,
    limits: &Limits,
    batch: usize,
) -> Result<Format, (Format, ParseError)> {
    let mut reader = ChannelReader {
        chunks,
        current: Bytes::new(),
    };
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let read = (&mut reader).take(HEAD_BYTES as u64).read_to_end(&mut head);
    let format = format.unwrap_or_else(|| parse::detect(&head));
    if let Err(e) = read {
        let error = ParseError {
            line: None,
            column: None,
            byte: None,
            message: e.to_string(),
            io: Some(e.kind()),
        };
        return Err((format, error));
    }
    if items.blocking_send(Parsed::Format(format)).is_err() {
        return Ok(format);
    }
    let mut pending = Vec::with_capacity(batch);
    let mut sink = |item: Item| {
        pending.push(item);
        if pending.len() >= batch {
            let full = std::mem::replace(&mut pending, Vec::with_capacity(batch));
            items.blocking_send(Parsed::Items(full)).map_err(|_| Stop)?;
        }
        Ok(())
    };
    let outcome = parse::parse(
        format,
        Read::chain(io::Cursor::new(head), reader),
        limits,
        &mut sink,
    )
    .map_err(|e| (format, e))?;
    if outcome == Outcome::Finished && !pending.is_empty() {
        let _ = items.blocking_send(Parsed::Items(pending));
    }
    Ok(format)
}

/// The request body as a blocking reader for the parser thread.
struct ChannelReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

type Written = (
    sqlx::Transaction<'static, sqlx::Postgres>,
    Uuid,
    u32,
    stage::BatchCounts,
);

/// Opens the upload's transaction and writes the batches as they come.
async fn write(
    state: &AppState,
    mut import: NewImport,
    mut items: mpsc::Receiver<Parsed>,
    config: &ImportConfig,
) -> Result<Written, UploadError> {
    let Some(Parsed::Format(format)) = items.recv().await else {
        return Err(UploadError::Interrupted("no data".to_owned()));
    };
    import.format = format.as_str();
    let mut tx = state.metrics.db.begin(&state.db).await?;
    stage::begin(&mut tx, &import).await?;
    let mut seq: u32 = 0;
    let mut totals = stage::BatchCounts::default();
    while let Some(Parsed::Items(batch)) = items.recv().await {
        let mut staged = Vec::with_capacity(batch.len());
        for item in batch {
            if seq >= config.max_entries {
                return Err(UploadError::TooManyEntries {
                    limit: config.max_entries,
                });
            }
            staged.push(check(
                item,
                i32::try_from(seq).unwrap_or(i32::MAX),
                &import.tags,
                state,
            ));
            seq += 1;
        }
        let written = stage::write_batch(&mut tx, &import, &staged);
        let counts = state.metrics.db.time("import_stage", written).await?;
        totals.saved += counts.saved;
        totals.duplicate += counts.duplicate;
        totals.failed += counts.failed;
    }
    Ok((tx, import.id, seq, totals))
}

/// Turns a parsed item into a staged one: the URL checked and normalized as a save's would be,
/// the import's own tags added, text made storable.
fn check(item: Item, seq: i32, import_tags: &[String], state: &AppState) -> StagedItem {
    let max_url = state.config.api.max_url_len;
    let (entry, invalid) = match item {
        Item::Entry(entry) => (entry, None),
        Item::Invalid { line, raw, reason } => (
            Entry {
                url: raw,
                title: None,
                tags: Vec::new(),
                added_at: None,
                line,
            },
            Some(("invalid_entry", reason)),
        ),
    };
    let line = entry.line.and_then(|l| i32::try_from(l).ok());
    let mut tags: Vec<String> = entry.tags.iter().map(|t| storable(t)).collect();
    for tag in import_tags {
        if tags.len() < state.config.imports.max_tags && !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    let title = entry.title.as_deref().map(storable);
    let now = Utc::now();
    // A date in the future is a clock error in the exporting app; before 1970 a placeholder.
    let added_at = entry
        .added_at
        .filter(|at| at.year() >= 1970)
        .map(|at| at.min(now));
    let (url, target) = match invalid {
        Some((code, message)) => (
            shortened(&storable(&entry.url), max_url),
            Target::Invalid { code, message },
        ),
        None => match BookmarkUrl::parse(&entry.url, max_url) {
            Ok(url) => (
                url.as_str().to_owned(),
                Target::Bookmark {
                    url_hash: url.hash().to_vec(),
                },
            ),
            Err(e) => (
                shortened(&storable(&entry.url), max_url),
                Target::Invalid {
                    code: e.code(),
                    message: e.to_string(),
                },
            ),
        },
    };
    StagedItem {
        seq,
        line,
        url,
        title,
        tags,
        added_at,
        target,
    }
}

/// PostgreSQL text cannot hold NUL.
fn storable(text: &str) -> String {
    text.replace('\0', "")
}

/// At most `max` characters of a refused entry are kept to show the user.
fn shortened(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
