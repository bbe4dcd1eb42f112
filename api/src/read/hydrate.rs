//! Ranked bookmark ids to the bookmarks themselves, in rank order.

use fuze_shared::bookmarks::{self, Bookmark};
use sqlx::PgPool;
use uuid::Uuid;

/// Loads the user's bookmarks for `ranked` (id and whatever the ranking says of it), keeping the
/// order; rows deleted since the ranking are skipped.
pub async fn hydrate<T>(
    db: &PgPool,
    user: Uuid,
    ranked: Vec<(Uuid, T)>,
) -> sqlx::Result<Vec<(Bookmark, T)>> {
    let ids: Vec<Uuid> = ranked.iter().map(|(id, _)| *id).collect();
    // `by_ids` keeps the order of `ids` and skips missing rows.
    let mut found = bookmarks::by_ids(db, user, &ids)
        .await?
        .into_iter()
        .peekable();
    let mut out = Vec::with_capacity(ranked.len());
    for (id, detail) in ranked {
        if let Some(bookmark) = found.next_if(|b| b.id == id) {
            out.push((bookmark, detail));
        }
    }
    Ok(out)
}
