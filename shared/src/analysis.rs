//! Content analyses (`content_analysis`): written by the worker's analyze stage, read by the api.
//! Every read is scoped by the owner of the analysed bookmark.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use crate::search::language;

/// What the analyze stage computed for one bookmark.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAnalysis {
    pub keywords: Vec<String>,
    pub tags: Vec<String>,
    pub word_count: i32,
    pub reading_time_s: i32,
    pub language: Option<String>,
    pub quality_score: f32,
}

/// An analysis as `GET /bookmarks/{id}/analysis` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow, utoipa::ToSchema)]
pub struct Analysis {
    pub bookmark_id: Uuid,
    pub keywords: Vec<String>,
    pub tags: Vec<String>,
    pub word_count: i32,
    pub reading_time_s: i32,
    pub language: Option<String>,
    pub quality_score: Option<f32>,
    pub analyzed_at: DateTime<Utc>,
}

/// The inputs of an analysis: the bookmark's title, description, text and embedding.
#[derive(Debug, Clone, FromRow)]
pub struct Source {
    pub title: Option<String>,
    pub description: Option<String>,
    pub text: Option<String>,
    pub embedding: Option<pgvector::Vector>,
}

pub async fn source(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    bookmark_id: Uuid,
) -> sqlx::Result<Option<Source>> {
    sqlx::query_as(
        "SELECT COALESCE(title, scraped_title) AS title, description, text, embedding \
         FROM saved_content WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(bookmark_id)
    .fetch_optional(db)
    .await
}

/// What [`store`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The bookmark's first analysis.
    New,
    /// An earlier analysis was replaced (a cached copy of it is now stale).
    Replaced,
    /// The bookmark is gone (deleted meanwhile, or not this user's): nothing was stored.
    Gone,
}

/// Stores (or replaces) the analysis and copies its quality score and the text search
/// configuration of its language onto the bookmark, in one statement.
pub async fn store(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    bookmark_id: Uuid,
    a: &NewAnalysis,
) -> sqlx::Result<Stored> {
    // `xmax = 0` holds for a freshly inserted row version, not for one an upsert updated.
    let stored: Option<(bool,)> = sqlx::query_as(
        "WITH owned AS ( \
             UPDATE saved_content SET quality_score = $8, text_search_config = $9::regconfig, \
                 updated_at = now() \
             WHERE user_id = $1 AND id = $2 RETURNING id) \
         INSERT INTO content_analysis \
             (content_id, keywords, tags, word_count, reading_time_s, language, quality_score) \
         SELECT id, $3, $4, $5, $6, $7, $8 FROM owned \
         ON CONFLICT (content_id) DO UPDATE SET keywords = EXCLUDED.keywords, tags = EXCLUDED.tags, \
             word_count = EXCLUDED.word_count, reading_time_s = EXCLUDED.reading_time_s, \
             language = EXCLUDED.language, quality_score = EXCLUDED.quality_score, created_at = now() \
         RETURNING xmax = 0",
    )
    .bind(user_id)
    .bind(bookmark_id)
    .bind(&a.keywords)
    .bind(&a.tags)
    .bind(a.word_count)
    .bind(a.reading_time_s)
    .bind(&a.language)
    .bind(a.quality_score)
    .bind(language::config_for(a.language.as_deref()))
    .fetch_optional(db)
    .await?;
    Ok(match stored {
        None => Stored::Gone,
        Some((true,)) => Stored::New,
        Some((false,)) => Stored::Replaced,
    })
}

/// The analysis of one of the user's bookmarks: `None` when the bookmark is not the user's,
/// `Some(None)` when it is but has not been analysed yet.
pub async fn find(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    bookmark_id: Uuid,
) -> sqlx::Result<Option<Option<Analysis>>> {
    let found: Option<OptionalAnalysis> = sqlx::query_as(
        "SELECT s.id AS bookmark_id, a.content_id, a.keywords, a.tags, a.word_count, \
                a.reading_time_s, a.language, a.quality_score, a.created_at AS analyzed_at \
         FROM saved_content s LEFT JOIN content_analysis a ON a.content_id = s.id \
         WHERE s.user_id = $1 AND s.id = $2",
    )
    .bind(user_id)
    .bind(bookmark_id)
    .fetch_optional(db)
    .await?;
    Ok(found.map(OptionalAnalysis::into_analysis))
}

/// A bookmark row left-joined with its analysis (all analysis columns null when there is none).
#[derive(FromRow)]
struct OptionalAnalysis {
    bookmark_id: Uuid,
    content_id: Option<Uuid>,
    keywords: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    word_count: Option<i32>,
    reading_time_s: Option<i32>,
    language: Option<String>,
    quality_score: Option<f32>,
    analyzed_at: Option<DateTime<Utc>>,
}

impl OptionalAnalysis {
    fn into_analysis(self) -> Option<Analysis> {
        self.content_id?;
        Some(Analysis {
            bookmark_id: self.bookmark_id,
            keywords: self.keywords.unwrap_or_default(),
            tags: self.tags.unwrap_or_default(),
            word_count: self.word_count.unwrap_or_default(),
            reading_time_s: self.reading_time_s.unwrap_or_default(),
            language: self.language,
            quality_score: self.quality_score,
            analyzed_at: self.analyzed_at?,
        })
    }
}

/// The analyses of the user's `limit` newest bookmarks (those that have one), in one query.
pub async fn newest_for_user(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    limit: u32,
) -> sqlx::Result<Vec<Analysis>> {
    sqlx::query_as(
        "SELECT a.content_id AS bookmark_id, a.keywords, a.tags, a.word_count, a.reading_time_s, \
                a.language, a.quality_score, a.created_at AS analyzed_at \
         FROM (SELECT id FROM saved_content WHERE user_id = $1 \
               ORDER BY saved_at DESC, id DESC LIMIT $2) s \
         JOIN content_analysis a ON a.content_id = s.id",
    )
    .bind(user_id)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
}
