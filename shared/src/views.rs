//! Ready-made JSON views of the read path and their cache keys, in one place because two
//! processes produce them: the api on a cache miss, and the worker's warm job ahead of time.
//! Both must write byte-identical values under identical keys.

use bytes::Bytes;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    analysis,
    bookmarks::{self, Cursor},
};

/// A page of a keyset-paginated list.
#[derive(Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A full page may have a successor: its last item is the next cursor.
    pub fn new(items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> Cursor) -> Self {
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|last| cursor(last).encode()))
            .flatten();
        Self { items, next_cursor }
    }
}

/// Cache key of a page of the user's bookmarks (`CacheType::UserBookmarks`).
pub fn bookmark_page_key(limit: u32, after: Option<Cursor>) -> String {
    format!(
        "page:{limit}:{}",
        after.map(|c| c.encode()).unwrap_or_default()
    )
}

/// A page of the user's bookmarks, newest first, each with its analysis headline.
pub async fn bookmark_page(
    db: &PgPool,
    user_id: Uuid,
    limit: u32,
    after: Option<Cursor>,
) -> anyhow::Result<Bytes> {
    let items = bookmarks::list(db, user_id, after, limit).await?;
    let page = Page::new(items, limit, |b| Cursor {
        saved_at: b.bookmark.saved_at,
        id: b.bookmark.id,
    });
    Ok(Bytes::from(serde_json::to_vec(&page)?))
}

/// Cache key of one bookmark's analysis (`CacheType::Analysis`, under the owner's generation).
pub fn analysis_key(bookmark_id: Uuid) -> String {
    format!("bookmark:{bookmark_id}")
}

/// The JSON of a stored analysis.
pub fn analysis_json(found: &analysis::Analysis) -> anyhow::Result<Bytes> {
    Ok(Bytes::from(serde_json::to_vec(found)?))
}
