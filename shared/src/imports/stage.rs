//! The upload's writes, all in its one transaction: the session, the items in batches (each
//! merged into the user's bookmarks as it is written), then the totals. A failed or abandoned
//! upload rolls back whole: no half-visible import.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use super::ImportState;

/// The session being uploaded.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub id: Uuid,
    pub user_id: Uuid,
    pub format: &'static str,
    pub crawl: bool,
    /// Added to every item.
    pub tags: Vec<String>,
}

/// Writes the session row; its totals are written by [`finish`].
pub async fn begin(db: &mut PgConnection, import: &NewImport) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO imports (id, user_id, format, crawl, tags, entries, bytes) \
         VALUES ($1, $2, $3, $4, $5, 0, 0)",
    )
    .bind(import.id)
    .bind(import.user_id)
    .bind(import.format)
    .bind(import.crawl)
    .bind(&import.tags)
    .execute(db)
    .await
    .map(drop)
}

/// One entry of the file, checked by the caller.
#[derive(Debug, Clone)]
pub struct StagedItem {
    /// Position in the file, from 0.
    pub seq: i32,
    pub line: Option<i32>,
    /// The normalized URL when valid, else the entry's text as read.
    pub url: String,
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub added_at: Option<DateTime<Utc>>,
    pub target: Target,
}

/// What an entry becomes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A bookmark of this normalized URL hash (new, or merged into the user's own).
    Bookmark { url_hash: Vec<u8> },
    /// A failed item: the entry is not a link Fuze can save.
    Invalid { code: &'static str, message: String },
}

/// How a batch's items ended up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchCounts {
    pub saved: u64,
    pub duplicate: u64,
    pub failed: u64,
}

/// Writes a batch of items and merges each valid one into the user's bookmarks: a new URL
/// becomes a bookmark with the entry's title, tags and date; a URL the user already has keeps
/// its earlier saved date and its own title, and gains the entry's tags (`duplicate`).
pub async fn write_batch(
    db: &mut PgConnection,
    import: &NewImport,
    items: &[StagedItem],
) -> sqlx::Result<BatchCounts> {
    let bookmarks = merge_bookmarks(db, import, items).await?;
    let mut counts = BatchCounts::default();
    let mut first_seen: HashMap<&[u8], usize> = HashMap::new();
    let mut rows = ItemRows::default();
    for (index, item) in items.iter().enumerate() {
        let (state, bookmark_id, error_code, error) = match &item.target {
            Target::Invalid { code, message } => {
                counts.failed += 1;
                ("failed", None, Some(*code), Some(message.clone()))
            }
            Target::Bookmark { url_hash } => {
                let first = *first_seen.entry(url_hash).or_insert(index);
                let (id, inserted) = bookmarks.get(url_hash.as_slice()).copied().unzip();
                if first == index && inserted == Some(true) {
                    counts.saved += 1;
                    ("saved", id, None, None)
                } else {
                    counts.duplicate += 1;
                    ("duplicate", id, None, None)
                }
            }
        };
        rows.push(item, state, bookmark_id, error_code, error);
    }
    rows.insert(db, import.id).await?;
    Ok(counts)
}

/// Upserts the batch's distinct URLs; returns each hash's bookmark id and whether it is new.
async fn merge_bookmarks(
    db: &mut PgConnection,
    import: &NewImport,
    items: &[StagedItem],
) -> sqlx::Result<HashMap<Vec<u8>, (Uuid, bool)>> {
    // One row per URL: a statement may not update the same row twice.
    let mut merged: Vec<MergedUrl<'_>> = Vec::new();
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    for item in items {
        let Target::Bookmark { url_hash } = &item.target else {
            continue;
        };
        match index.get(url_hash.as_slice()) {
            Some(&at) => {
                let (_, _, tags, added_at) = &mut merged[at];
                for tag in &item.tags {
                    if !tags.contains(tag) {
                        tags.push(tag.clone());
                    }
                }
                *added_at = earliest(*added_at, item.added_at);
            }
            None => {
                index.insert(url_hash, merged.len());
                merged.push((url_hash, item, item.tags.clone(), item.added_at));
            }
        }
    }
    if merged.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = merged.iter().map(|_| Uuid::new_v4()).collect();
    let urls: Vec<&str> = merged.iter().map(|m| m.1.url.as_str()).collect();
    let hashes: Vec<&[u8]> = merged.iter().map(|m| m.0).collect();
    let titles: Vec<Option<&str>> = merged.iter().map(|m| m.1.title.as_deref()).collect();
    let tags: Vec<Json<&Vec<String>>> = merged.iter().map(|m| Json(&m.2)).collect();
    let dates: Vec<Option<DateTime<Utc>>> = merged.iter().map(|m| m.3).collect();
    let status = if import.crawl {
        "pending"
    } else {
        "not_crawled"
    };
    let rows: Vec<(Uuid, Vec<u8>, bool)> = sqlx::query_as(
        "INSERT INTO saved_content (id, user_id, url, url_hash, title, tags, saved_at, status) \
         SELECT x.id, $1, x.url, x.hash, x.title, \
                ARRAY(SELECT jsonb_array_elements_text(x.tags)), COALESCE(x.added_at, now()), $2 \
         FROM UNNEST($3::uuid[], $4::text[], $5::bytea[], $6::text[], $7::jsonb[], $8::timestamptz[]) \
              AS x(id, url, hash, title, tags, added_at) \
         ON CONFLICT (user_id, url_hash) DO UPDATE SET \
           tags = saved_content.tags \
                  || ARRAY(SELECT t FROM unnest(EXCLUDED.tags) AS t WHERE t <> ALL (saved_content.tags)), \
           saved_at = LEAST(saved_content.saved_at, EXCLUDED.saved_at), \
           title = COALESCE(saved_content.title, EXCLUDED.title), \
           updated_at = now() \
         RETURNING id, url_hash, (xmax = 0) AS inserted",
    )
    .bind(import.user_id)
    .bind(status)
    .bind(&ids)
    .bind(&urls)
    .bind(&hashes)
    .bind(&titles)
    .bind(&tags)
    .bind(&dates)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, hash, inserted)| (hash, (id, inserted)))
        .collect())
}

/// A URL of the batch: its hash, its first entry, the tags of all its entries, its earliest date.
type MergedUrl<'a> = (&'a [u8], &'a StagedItem, Vec<String>, Option<DateTime<Utc>>);

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The batch's item rows, column by column (one `UNNEST` insert).
#[derive(Default)]
struct ItemRows<'a> {
    seq: Vec<i32>,
    url: Vec<&'a str>,
    title: Vec<Option<&'a str>>,
    tags: Vec<Json<&'a Vec<String>>>,
    added_at: Vec<Option<DateTime<Utc>>>,
    line: Vec<Option<i32>>,
    state: Vec<&'static str>,
    bookmark_id: Vec<Option<Uuid>>,
    error_code: Vec<Option<&'static str>>,
    error: Vec<Option<String>>,
}

impl<'a> ItemRows<'a> {
    fn push(
        &mut self,
        item: &'a StagedItem,
        state: &'static str,
        bookmark_id: Option<Uuid>,
        error_code: Option<&'static str>,
        error: Option<String>,
    ) {
        self.seq.push(item.seq);
        self.url.push(&item.url);
        self.title.push(item.title.as_deref());
        self.tags.push(Json(&item.tags));
        self.added_at.push(item.added_at);
        self.line.push(item.line);
        self.state.push(state);
        self.bookmark_id.push(bookmark_id);
        self.error_code.push(error_code);
        self.error.push(error);
    }

    async fn insert(self, db: &mut PgConnection, import_id: Uuid) -> sqlx::Result<()> {
        if self.seq.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO import_items (import_id, seq, url, title, tags, added_at, line, state, \
               bookmark_id, error_code, error) \
             SELECT $1, x.seq, x.url, x.title, ARRAY(SELECT jsonb_array_elements_text(x.tags)), \
                    x.added_at, x.line, x.state, x.bookmark_id, x.error_code, x.error \
             FROM UNNEST($2::int[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[], \
                         $7::int[], $8::text[], $9::uuid[], $10::text[], $11::text[]) \
                  AS x(seq, url, title, tags, added_at, line, state, bookmark_id, error_code, error)",
        )
        .bind(import_id)
        .bind(&self.seq)
        .bind(&self.url)
        .bind(&self.title)
        .bind(&self.tags)
        .bind(&self.added_at)
        .bind(&self.line)
        .bind(&self.state)
        .bind(&self.bookmark_id)
        .bind(&self.error_code)
        .bind(&self.error)
        .execute(db)
        .await
        .map(drop)
    }
}

/// Writes the session's totals and its first state: `running` while it has crawls to make,
/// else `completed`.
pub async fn finish(
    db: &mut PgConnection,
    import_id: Uuid,
    entries: u32,
    bytes: u64,
) -> sqlx::Result<ImportState> {
    sqlx::query_scalar(
        "UPDATE imports SET entries = $2, bytes = $3, updated_at = now(), \
           state = CASE WHEN crawl AND EXISTS (SELECT 1 FROM import_items \
                    WHERE import_id = $1 AND state = 'saved' AND job_id IS NULL) \
                   THEN 'running' ELSE 'completed' END, \
           finished_at = CASE WHEN crawl AND EXISTS (SELECT 1 FROM import_items \
                    WHERE import_id = $1 AND state = 'saved' AND job_id IS NULL) \
                   THEN NULL ELSE now() END \
         WHERE id = $1 RETURNING state",
    )
    .bind(import_id)
    .bind(i32::try_from(entries).unwrap_or(i32::MAX))
    .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
    .fetch_one(db)
    .await
}
