//! Recommendations: a user's bookmarks ranked for a project or a query.
//!
//! Candidates are the user's nearest bookmarks to the seed embedding (found like search, by best
//! passage in the current embedding space), a few times more than asked for; they are then
//! re-ranked by a blend of similarity, quality score and recency, and near-duplicates of an already chosen bookmark (same article saved under two URLs,
//! mirrors) are skipped, so the list is not five copies of one page.

use std::num::NonZeroU32;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use pgvector::Vector;
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::{embedding::EmbeddingSpace, projects, search};

/// How the score blends its parts; the weights sum to 1.
#[derive(Debug, Clone, Copy)]
pub struct Weights {
    pub similarity: f32,
    pub quality: f32,
    pub recency: f32,
    /// Age at which the recency part halves.
    pub recency_half_life_days: f32,
    /// Quality assumed for a bookmark not analysed yet.
    pub unknown_quality: f32,
    /// Cosine similarity from which two bookmarks count as the same content.
    pub near_duplicate: f32,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            similarity: 0.7,
            quality: 0.2,
            recency: 0.1,
            recency_half_life_days: 30.0,
            unknown_quality: 0.5,
            near_duplicate: 0.95,
        }
    }
}

/// A bookmark that may be recommended.
#[derive(Debug, Clone, FromRow)]
pub struct Candidate {
    pub id: Uuid,
    pub distance: f32,
    pub quality_score: Option<f32>,
    pub saved_at: DateTime<Utc>,
    pub embedding: Vector,
}

/// A ranked pick.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pick {
    pub id: Uuid,
    pub score: f32,
    pub similarity: f32,
}

/// The nearest neighbours, found as in [`crate::search`] (half-precision scan, exact re-rank),
/// then what the ranking needs for those few rows only.
fn candidates_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH {}, nearest AS (SELECT id, distance FROM scored ORDER BY distance, id LIMIT $3) \
             SELECT s.id, n.distance::float4 AS distance, s.quality_score, s.saved_at, s.embedding \
             FROM nearest n JOIN saved_content s ON s.id = n.id AND s.user_id = $1 \
             ORDER BY n.distance, s.id",
            search::NEAREST_CTES
        )
    });
    &SQL
}

/// The `limit` bookmarks nearest to `seed`, with what [`rank`] needs, searched in `parts`
/// concurrent scans as [`search::nearest_bookmarks`] does.
pub async fn candidates(
    db: &PgPool,
    space: &EmbeddingSpace,
    user_id: Uuid,
    seed: &[f32],
    limit: u32,
    parts: NonZeroU32,
) -> sqlx::Result<Vec<Candidate>> {
    let seed = Vector::from(seed.to_vec());
    search::in_parts(
        parts,
        limit,
        |range| {
            let query = sqlx::query_as(candidates_sql())
                .bind(user_id)
                .bind(seed.clone());
            search::bind_nearest(query, limit, search::rerank_count(limit), range, space)
                .fetch_all(db)
        },
        |c: &Candidate| (c.distance, c.id),
    )
    .await
}

/// Best first, at most `limit`, no two near-duplicates.
pub fn rank(candidates: &[Candidate], now: DateTime<Utc>, w: &Weights, limit: usize) -> Vec<Pick> {
    let mut scored: Vec<(f32, f32, &Candidate)> = candidates
        .iter()
        .map(|c| {
            let similarity = 1.0 - c.distance;
            let age_days = (now - c.saved_at).num_seconds().max(0) as f32 / 86_400.0;
            let recency = 0.5f32.powf(age_days / w.recency_half_life_days);
            let quality = c.quality_score.unwrap_or(w.unknown_quality).clamp(0.0, 1.0);
            let score = w.similarity * similarity + w.quality * quality + w.recency * recency;
            (score, similarity, c)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.id.cmp(&b.2.id)));
    let mut picked: Vec<(Pick, &[f32])> = Vec::with_capacity(limit);
    for (score, similarity, c) in scored {
        if picked.len() == limit {
            break;
        }
        let v = c.embedding.as_slice();
        if picked
            .iter()
            .any(|(_, chosen)| cosine(chosen, v) >= w.near_duplicate)
        {
            continue;
        }
        picked.push((
            Pick {
                id: c.id,
                score,
                similarity,
            },
            v,
        ));
    }
    picked.into_iter().map(|(p, _)| p).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// The text a project is embedded from: its name, description and open tasks (newest first, at
/// most `max_tasks`), cut at `max_chars`. `None` if the project is not the user's.
pub async fn project_seed_text(
    db: &PgPool,
    user_id: Uuid,
    project_id: Uuid,
    max_tasks: u32,
    max_chars: usize,
) -> sqlx::Result<Option<String>> {
    let mut conn = db.acquire().await?;
    let Some(project) = projects::get_project(&mut *conn, user_id, project_id).await? else {
        return Ok(None);
    };
    let tasks = projects::list_tasks(&mut conn, user_id, project_id, None, max_tasks)
        .await?
        .unwrap_or_default();
    let mut parts = vec![project.name];
    parts.extend(project.description);
    for task in tasks.into_iter().filter(|t| !t.done) {
        parts.push(task.title);
        parts.extend(task.description);
    }
    let text: String = parts.join("\n").chars().take(max_chars).collect();
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(
        n: u128,
        distance: f32,
        quality: Option<f32>,
        age_days: i64,
        v: Vec<f32>,
    ) -> Candidate {
        Candidate {
            id: Uuid::from_u128(n),
            distance,
            quality_score: quality,
            saved_at: now() - chrono::Duration::days(age_days),
            embedding: Vector::from(v),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn similarity_leads_and_quality_and_recency_break_near_ties() {
        let w = Weights::default();
        let cands = vec![
            candidate(1, 0.30, Some(0.2), 300, vec![1.0, 0.0, 0.0]),
            candidate(2, 0.31, Some(0.9), 1, vec![0.0, 1.0, 0.0]),
            candidate(3, 0.80, Some(1.0), 0, vec![0.0, 0.0, 1.0]),
        ];
        let ids: Vec<u128> = rank(&cands, now(), &w, 3)
            .iter()
            .map(|p| p.id.as_u128())
            .collect();
        assert_eq!(ids, vec![2, 1, 3]);
        let top = rank(&cands, now(), &w, 1);
        assert_eq!(top.len(), 1);
        assert!((top[0].similarity - 0.69).abs() < 1e-6);
    }

    #[test]
    fn near_duplicates_of_a_pick_are_skipped() {
        let w = Weights::default();
        let cands = vec![
            candidate(1, 0.10, Some(0.8), 1, vec![1.0, 0.0]),
            candidate(2, 0.11, Some(0.8), 1, vec![0.99, 0.05]),
            candidate(3, 0.40, Some(0.8), 1, vec![0.0, 1.0]),
        ];
        let ids: Vec<u128> = rank(&cands, now(), &w, 3)
            .iter()
            .map(|p| p.id.as_u128())
            .collect();
        assert_eq!(ids, vec![1, 3], "2 is a near-duplicate of 1");
    }

    #[test]
    fn unknown_quality_counts_as_average() {
        let w = Weights::default();
        let cands = vec![
            candidate(1, 0.3, None, 10, vec![1.0, 0.0]),
            candidate(2, 0.3, Some(0.4), 10, vec![0.0, 1.0]),
        ];
        let ids: Vec<u128> = rank(&cands, now(), &w, 2)
            .iter()
            .map(|p| p.id.as_u128())
            .collect();
        assert_eq!(ids, vec![1, 2]);
    }
}
