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
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// Newest first.
    pub items: Vec<T>,
    /// Pass as `cursor` for the following page; `null` on the last page.
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

/// Cache key of the set of the user's saved URLs (`CacheType::UserBookmarks`): the duplicate check
/// of a save reads it instead of the table.
pub const URL_SET_KEY: &str = "url-hashes";

/// Length of a URL hash (sha256).
const URL_HASH_LEN: usize = 32;

/// The user's saved URL hashes as one sorted, concatenated byte string (compact, and searchable
/// by bisection without decoding).
pub async fn url_set(db: &PgPool, user_id: Uuid) -> anyhow::Result<Bytes> {
    let hashes = bookmarks::url_hashes(db, user_id).await?;
    let mut out = Vec::with_capacity(hashes.len() * URL_HASH_LEN);
    for hash in hashes {
        anyhow::ensure!(
            hash.len() == URL_HASH_LEN,
            "url_hash of {} bytes",
            hash.len()
        );
        out.extend_from_slice(&hash);
    }
    Ok(Bytes::from(out))
}

/// Whether a set built by [`url_set`] holds `hash`.
pub fn url_set_contains(set: &[u8], hash: &[u8]) -> bool {
    if !set.len().is_multiple_of(URL_HASH_LEN) {
        return false;
    }
    let hashes: Vec<&[u8]> = set.chunks_exact(URL_HASH_LEN).collect();
    hashes.binary_search(&hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_set_lookup_bisects_sorted_hashes() {
        let mut hashes: Vec<[u8; 32]> = (0u8..50).map(|i| [i.wrapping_mul(37); 32]).collect();
        hashes.sort();
        let set: Vec<u8> = hashes.iter().flatten().copied().collect();
        for h in &hashes {
            assert!(url_set_contains(&set, h));
        }
        assert!(!url_set_contains(&set, &[1u8; 32]));
        assert!(!url_set_contains(&set, &[0u8; 31]), "wrong length");
        assert!(!url_set_contains(&set[..40], &hashes[0]), "corrupt set");
        assert!(!url_set_contains(&[], &hashes[0]));
    }
}
