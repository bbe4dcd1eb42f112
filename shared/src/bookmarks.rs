//! Bookmark storage (`saved_content`). Every user-facing query is scoped by `user_id`.

use chrono::{DateTime, Utc};
use pgvector::Vector;
use serde::Serialize;
use sqlx::{FromRow, PgExecutor, PgPool};
use uuid::Uuid;

use crate::{embedding::EmbeddingSpace, keyset};

/// A bookmark as lists show it (no page text: pages stay small and cacheable).
#[derive(Debug, Clone, PartialEq, Serialize, FromRow, utoipa::ToSchema)]
pub struct Bookmark {
    pub id: Uuid,
    pub url: String,
    pub title: Option<String>,
    pub notes: Option<String>,
    pub description: Option<String>,
    pub canonical_url: Option<String>,
    /// `pending`, `scraped`, `ready`, `failed`, or `not_crawled` (imported without fetching).
    pub status: String,
    pub error: Option<String>,
    pub has_embedding: bool,
    pub saved_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A bookmark in a list page, with the headline of its analysis (empty until it is analysed).
#[derive(Debug, Clone, PartialEq, Serialize, FromRow, utoipa::ToSchema)]
pub struct ListedBookmark {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub bookmark: Bookmark,
    pub tags: Vec<String>,
    pub reading_time_s: Option<i32>,
    pub quality_score: Option<f32>,
}

/// One bookmark with its extracted text and, on request, its embedding.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BookmarkDetail {
    #[serde(flatten)]
    pub bookmark: Bookmark,
    pub text: Option<String>,
    pub embedding_model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

// The user's own title wins over the scraped one.
// Unqualified names that only `saved_content` has, so the list can join its analysis.
const COLUMNS: &str = "id, url, COALESCE(title, scraped_title) AS title, notes, description, canonical_url, \
     status, error, embedding IS NOT NULL AS has_embedding, saved_at, updated_at";

/// The user's saved URL hashes, sorted (read from the `(user_id, url_hash)` unique index).
pub async fn url_hashes(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query_scalar("SELECT url_hash FROM saved_content WHERE user_id = $1 ORDER BY url_hash")
        .bind(user_id)
        .fetch_all(db)
        .await
}

/// The user's bookmark of a normalized URL, if saved.
pub async fn find_by_hash(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    url_hash: &[u8],
) -> sqlx::Result<Option<Bookmark>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM saved_content WHERE user_id = $1 AND url_hash = $2"
    ))
    .bind(user_id)
    .bind(url_hash)
    .fetch_optional(db)
    .await
}

/// Inserts the bookmark unless this user already saved the same normalized URL.
/// Returns the bookmark and whether it was created now.
pub async fn insert_or_get(
    db: &mut sqlx::PgConnection,
    user_id: Uuid,
    url: &str,
    url_hash: &[u8],
    title: Option<&str>,
    notes: Option<&str>,
) -> sqlx::Result<(Bookmark, bool)> {
    let inserted: Option<Bookmark> = sqlx::query_as(&format!(
        "INSERT INTO saved_content (id, user_id, url, url_hash, title, notes) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (user_id, url_hash) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(user_id)
    .bind(url)
    .bind(url_hash)
    .bind(title)
    .bind(notes)
    .fetch_optional(&mut *db)
    .await?;
    if let Some(bookmark) = inserted {
        return Ok((bookmark, true));
    }
    let existing = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM saved_content WHERE user_id = $1 AND url_hash = $2"
    ))
    .bind(user_id)
    .bind(url_hash)
    .fetch_one(&mut *db)
    .await?;
    Ok((existing, false))
}

pub async fn get(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
    with_embedding: bool,
) -> sqlx::Result<Option<BookmarkDetail>> {
    let row: Option<BookmarkDetailRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, text, embedding_model, CASE WHEN $3 THEN embedding END AS embedding \
         FROM saved_content WHERE user_id = $1 AND id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .bind(with_embedding)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| BookmarkDetail {
        bookmark: r.bookmark,
        text: r.text,
        embedding_model: r.embedding_model,
        embedding: r.embedding.map(Vec::from),
    }))
}

#[derive(FromRow)]
struct BookmarkDetailRow {
    #[sqlx(flatten)]
    bookmark: Bookmark,
    text: Option<String>,
    embedding_model: Option<String>,
    embedding: Option<Vector>,
}

/// Keyset pagination position: the last item of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub saved_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        keyset::encode(self.saved_at, &self.id.to_string())
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (saved_at, id) = keyset::decode(s)?;
        Some(Self {
            saved_at,
            id: id.parse().ok()?,
        })
    }
}

/// Newest first; one indexed range scan whatever the page.
pub async fn list(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    after: Option<Cursor>,
    limit: u32,
) -> sqlx::Result<Vec<ListedBookmark>> {
    // One query per page whatever its size: the analysis comes by a join, not a query per row.
    sqlx::query_as(&format!(
        "SELECT {COLUMNS}, s.tags || ARRAY(SELECT t FROM unnest(COALESCE(a.tags, '{{}}')) AS t WHERE t <> ALL (s.tags)) AS tags, a.reading_time_s, \
                a.quality_score AS quality_score \
         FROM saved_content s LEFT JOIN content_analysis a ON a.content_id = s.id \
         WHERE s.user_id = $1 \
         AND ($2::timestamptz IS NULL OR (s.saved_at, s.id) < ($2, $3)) \
         ORDER BY s.saved_at DESC, s.id DESC LIMIT $4"
    ))
    .bind(user_id)
    .bind(after.map(|c| c.saved_at))
    .bind(after.map(|c| c.id))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
}

/// These bookmarks of the user, in the order of `ids` (missing ones left out): one query.
pub async fn by_ids(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Bookmark>> {
    let rows: Vec<Bookmark> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM saved_content WHERE user_id = $1 AND id = ANY($2)"
    ))
    .bind(user_id)
    .bind(ids)
    .fetch_all(db)
    .await?;
    let mut by_id: std::collections::HashMap<Uuid, Bookmark> =
        rows.into_iter().map(|b| (b.id, b)).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// A PATCH: `Some(None)` clears a field, `None` leaves it.
#[derive(Debug, Default)]
pub struct Changes {
    pub title: Option<Option<String>>,
    pub notes: Option<Option<String>>,
    /// A new address (normalized) and its hash: the page is then fetched anew.
    pub url: Option<(String, [u8; 32])>,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The user already has a bookmark of the new URL.
    #[error("you already saved this URL")]
    UrlTaken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub async fn update(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
    changes: &Changes,
) -> Result<Option<Bookmark>, UpdateError> {
    // A new URL forgets the old page's validators: they name another page's versions.
    let (url, hash) = changes.url.clone().unzip();
    let updated = sqlx::query_as(&format!(
        "UPDATE saved_content SET \
           title = CASE WHEN $3 THEN $4 ELSE title END, \
           notes = CASE WHEN $5 THEN $6 ELSE notes END, \
           url = COALESCE($7, url), url_hash = COALESCE($8, url_hash), \
           fetch_etag = CASE WHEN $7 IS NULL THEN fetch_etag END, \
           fetch_last_modified = CASE WHEN $7 IS NULL THEN fetch_last_modified END, \
           updated_at = now() \
         WHERE user_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(id)
    .bind(changes.title.is_some())
    .bind(changes.title.clone().flatten())
    .bind(changes.notes.is_some())
    .bind(changes.notes.clone().flatten())
    .bind(url)
    .bind(hash.map(|h| h.to_vec()))
    .fetch_optional(db)
    .await;
    match updated {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(UpdateError::UrlTaken),
        other => Ok(other?),
    }
}

pub async fn delete(db: impl PgExecutor<'_>, user_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM saved_content WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// What the scraper needs of a bookmark.
pub async fn url_of(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT url FROM saved_content WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The fields extracted from the page.
#[derive(Debug, Clone)]
pub struct Scraped<'a> {
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
    pub canonical_url: Option<&'a str>,
    pub text: &'a str,
    /// The response's `ETag` and `Last-Modified` (none for a page from the scrape cache).
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

pub async fn store_scraped(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
    page: &Scraped<'_>,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE saved_content SET scraped_title = $3, description = $4, canonical_url = $5, text = $6, \
         fetch_etag = $7, fetch_last_modified = $8, \
         status = 'scraped', error = NULL, updated_at = now() WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .bind(page.title)
    .bind(page.description)
    .bind(page.canonical_url)
    .bind(page.text)
    .bind(page.etag)
    .bind(page.last_modified)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The `ETag` and `Last-Modified` of the page's last successful fetch; `None` if it is gone.
pub async fn fetch_validators(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<(Option<String>, Option<String>)>> {
    sqlx::query_as(
        "SELECT fetch_etag, fetch_last_modified FROM saved_content WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// What a refresh found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The bookmark is gone.
    Gone,
    /// What is embedded (title, description, text) is as stored: only the validators changed.
    Unchanged,
    /// Stored, and marked `scraped` until it is embedded again.
    Changed,
}

/// Stores a page fetched again: the whole of it when what is embedded changed, else only its
/// validators (the stored vectors stay right).
pub async fn store_refreshed(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
    page: &Scraped<'_>,
) -> sqlx::Result<Refreshed> {
    let changed: Option<(bool,)> = sqlx::query_as(
        "WITH before AS (SELECT id, (scraped_title IS DISTINCT FROM $3 OR description IS DISTINCT FROM $4 \
             OR text IS DISTINCT FROM $6) AS changed FROM saved_content WHERE user_id = $1 AND id = $2 FOR UPDATE) \
         UPDATE saved_content s SET fetch_etag = $7, fetch_last_modified = $8, \
           scraped_title = CASE WHEN b.changed THEN $3 ELSE s.scraped_title END, \
           description = CASE WHEN b.changed THEN $4 ELSE s.description END, \
           canonical_url = CASE WHEN b.changed THEN $5 ELSE s.canonical_url END, \
           text = CASE WHEN b.changed THEN $6 ELSE s.text END, \
           status = CASE WHEN b.changed THEN 'scraped' ELSE s.status END, \
           error = CASE WHEN b.changed THEN NULL ELSE s.error END, \
           updated_at = CASE WHEN b.changed THEN now() ELSE s.updated_at END \
         FROM before b WHERE s.id = b.id RETURNING b.changed",
    )
    .bind(user_id)
    .bind(id)
    .bind(page.title)
    .bind(page.description)
    .bind(page.canonical_url)
    .bind(page.text)
    .bind(page.etag)
    .bind(page.last_modified)
    .fetch_optional(db)
    .await?;
    Ok(match changed {
        None => Refreshed::Gone,
        Some((true,)) => Refreshed::Changed,
        Some((false,)) => Refreshed::Unchanged,
    })
}

/// The text to embed: title, description and main text.
pub async fn text_to_embed(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<String>> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT COALESCE(title, scraped_title), description, text FROM saved_content \
         WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(title, description, text)| {
        [title, description, text]
            .into_iter()
            .flatten()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }))
}

/// One embedded passage of a page: where it is in the embedded text (chars) and its vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub start_char: i32,
    pub end_char: i32,
    pub vector: Vec<f32>,
}

/// Stores the page's passages (in page order; the first is also the bookmark's document vector)
/// in `space` and marks the bookmark ready. Returns the seconds since it was saved (the save ->
/// ready latency), or `None` when the bookmark is gone.
pub async fn store_embedding(
    db: &PgPool,
    space: &EmbeddingSpace,
    user_id: Uuid,
    id: Uuid,
    passages: &[Passage],
) -> sqlx::Result<Option<f64>> {
    store_passages(db, space, user_id, id, passages, true).await
}

/// Replaces the bookmark's vectors with `passages` of `space` (the reindex job), leaving its
/// status as it is. Returns whether the bookmark still exists.
pub async fn replace_embedding(
    db: &PgPool,
    space: &EmbeddingSpace,
    user_id: Uuid,
    id: Uuid,
    passages: &[Passage],
) -> sqlx::Result<bool> {
    Ok(store_passages(db, space, user_id, id, passages, false)
        .await?
        .is_some())
}

async fn store_passages(
    db: &PgPool,
    space: &EmbeddingSpace,
    user_id: Uuid,
    id: Uuid,
    passages: &[Passage],
    mark_ready: bool,
) -> sqlx::Result<Option<f64>> {
    let Some(first) = passages.first() else {
        return Err(sqlx::Error::InvalidArgument("no passages to store".into()));
    };
    let mut tx = db.begin().await?;
    // The row lock taken here orders concurrent writers of one bookmark's passages: the second
    // waits, then deletes what the first inserted.
    let since_save: Option<f64> = sqlx::query_scalar(
        "UPDATE saved_content SET embedding = $3, embedding_model = $4, \
           status = CASE WHEN $5 THEN 'ready' ELSE status END, \
           error = CASE WHEN $5 THEN NULL ELSE error END, \
           updated_at = CASE WHEN $5 THEN now() ELSE updated_at END \
         WHERE user_id = $1 AND id = $2 \
         RETURNING EXTRACT(EPOCH FROM clock_timestamp() - saved_at)::float8",
    )
    .bind(user_id)
    .bind(id)
    .bind(Vector::from(first.vector.clone()))
    .bind(&space.name)
    .bind(mark_ready)
    .fetch_optional(&mut *tx)
    .await?;
    if since_save.is_none() {
        return Ok(None);
    }
    sqlx::query("DELETE FROM bookmark_passages WHERE bookmark_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let ordinals: Vec<i16> = (0..passages.len())
        .map(|i| i16::try_from(i).unwrap_or(i16::MAX))
        .collect();
    let starts: Vec<i32> = passages.iter().map(|p| p.start_char).collect();
    let ends: Vec<i32> = passages.iter().map(|p| p.end_char).collect();
    let vectors: Vec<Vector> = passages
        .iter()
        .map(|p| Vector::from(p.vector.clone()))
        .collect();
    sqlx::query(
        "INSERT INTO bookmark_passages \
           (bookmark_id, ordinal, user_id, space_id, start_char, end_char, embedding) \
         SELECT $1, o, $2, $3, s, e, v \
         FROM unnest($4::int2[], $5::int4[], $6::int4[], $7::vector[]) AS p(o, s, e, v)",
    )
    .bind(id)
    .bind(user_id)
    .bind(space.id)
    .bind(&ordinals)
    .bind(&starts)
    .bind(&ends)
    .bind(&vectors)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(since_save)
}

pub async fn mark_failed(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE saved_content SET status = 'failed', error = $3, updated_at = now() \
         WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .bind(error)
    .execute(db)
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            saved_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("valid"),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(""), None);
    }
}
