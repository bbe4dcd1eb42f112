//! Per-user keyword search over the stored, indexed text representation of each bookmark
//! (`saved_content.search_doc`, migration `20261206000003_keyword_index.sql`).
//!
//! Pages are indexed with their own language's configuration, so the query is parsed with every
//! configuration a page can have and the results OR-ed: a page matches when it has every word
//! under its own stemming. When no page has every word, the best pages with any of them answer
//! instead, so a long natural-language query still finds something.

use std::sync::LazyLock;

use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::language;

/// One keyword match.
#[derive(Debug, Clone, FromRow)]
pub struct KeywordHit {
    pub id: Uuid,
    /// Text rank: higher is better; title and URL words count above body words.
    pub rank: f32,
    /// The bookmark's title (the user's, else the scraped one), for exact-title matching.
    pub title: Option<String>,
}

/// The `limit` best keyword matches of `user_id` for `query`, best first. Every word must match
/// when any page has them all; otherwise any word may.
pub async fn keyword_ranked(
    db: &PgPool,
    user_id: Uuid,
    query: &str,
    limit: u32,
) -> sqlx::Result<Vec<KeywordHit>> {
    let all = ranked(db, user_id, query, limit).await?;
    if !all.is_empty() {
        return Ok(all);
    }
    match any_word_query(query) {
        Some(any) => ranked(db, user_id, &any, limit).await,
        None => Ok(all),
    }
}

async fn ranked(
    db: &PgPool,
    user_id: Uuid,
    query: &str,
    limit: u32,
) -> sqlx::Result<Vec<KeywordHit>> {
    sqlx::query_as(keyword_sql())
        .bind(user_id)
        .bind(query)
        .bind(i64::from(limit))
        .fetch_all(db)
        .await
}

/// Most words of an any-word query: a recommendation's seed can be a few thousand characters.
const ANY_WORDS_MAX: usize = 32;

/// The query's first [`ANY_WORDS_MAX`] words joined by `or`, in web search syntax; `None` for
/// fewer than two words.
fn any_word_query(query: &str) -> Option<String> {
    let words: Vec<&str> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !w.eq_ignore_ascii_case("or"))
        .take(ANY_WORDS_MAX)
        .collect();
    (words.len() > 1).then(|| words.join(" or "))
}

/// `$1` user, `$2` query (web search syntax), `$3` limit. The query is parsed once (an
/// InitPlan), so the GIN index `(user_id, search_doc)` can answer the match; rank normalization 1
/// divides by the log of the page's length, so long pages do not win by length alone.
pub fn keyword_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let parsed: Vec<String> = language::all_configs()
            .map(|config| format!("websearch_to_tsquery('{config}', $2)"))
            .collect();
        format!(
            "WITH q AS MATERIALIZED (SELECT {} AS query) \
             SELECT id, ts_rank(search_doc, (SELECT query FROM q), 1)::float4 AS rank, \
                    COALESCE(title, scraped_title) AS title \
             FROM saved_content \
             WHERE user_id = $1 AND search_doc @@ (SELECT query FROM q) \
             ORDER BY rank DESC, id LIMIT $3",
            parsed.join(" || ")
        )
    });
    &SQL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_word_query_joins_words_with_or() {
        assert_eq!(
            any_word_query("rust async-runtime").as_deref(),
            Some("rust or async or runtime")
        );
        assert_eq!(any_word_query("one"), None);
        assert_eq!(
            any_word_query("this or that").as_deref(),
            Some("this or that")
        );
    }

    #[test]
    fn the_query_is_parsed_with_every_configuration() {
        let sql = keyword_sql();
        for config in language::all_configs() {
            assert!(sql.contains(&format!("websearch_to_tsquery('{config}', $2)")));
        }
    }
}
