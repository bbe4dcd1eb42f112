//! Hybrid ranking: keyword and semantic result lists fused by a weighted blend of their scores,
//! each min-max normalized over its list, with pages whose title is (nearly) the query placed
//! first.
//!
//! A text rank and a cosine similarity have nothing in common, so each list's scores are mapped
//! to 0..1 over the list (best 1, worst 0) before they are blended; a page missing from a list
//! gets 0 there. Chosen over reciprocal rank fusion on BEIR SciFact, where the blend kept what the
//! stronger (semantic) list knew and RRF let the weaker keyword list pull good pages down
//! (docs/SEARCH.md: the weight was chosen on the train claims, the figures are on the test claims).

use std::collections::HashMap;

use uuid::Uuid;

use super::{PassageRef, keyword::KeywordHit};

/// A title counts as nearly the query when the shorter of the two, normalized, is contained in
/// the longer and has at least this share of its characters.
pub const NEAR_TITLE_SHARE: f32 = 0.8;

/// One fused result and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub id: Uuid,
    /// Blended score, 0..1: higher is better.
    pub score: f32,
    /// Position in the keyword list (1 = best), if the page matched the words.
    pub keyword_rank: Option<u32>,
    /// The keyword list's text rank, if the page matched the words.
    pub keyword_score: Option<f32>,
    /// Cosine similarity to the query, if the page was among the semantic candidates.
    pub similarity: Option<f32>,
    /// The passage that gave `similarity`.
    pub passage: Option<PassageRef>,
    /// How closely the title matches the query (1 = the same words), if it nearly does.
    pub title_match: Option<f32>,
}

/// One semantic candidate: a bookmark, its best passage's cosine similarity and which passage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticHit {
    pub id: Uuid,
    pub similarity: f32,
    pub passage: PassageRef,
}

/// Fuses `keyword` (best first) and `semantic` (best first), `semantic_weight` (0..1) on the
/// semantic side: pages whose title nearly is `query` first (closest first), then the rest by
/// blended score; ties by id.
pub fn fuse(
    query: &str,
    keyword: &[KeywordHit],
    semantic: &[SemanticHit],
    semantic_weight: f32,
) -> Vec<Fused> {
    let semantic_weight = semantic_weight.clamp(0.0, 1.0);
    let keyword_scores = normalized(keyword.iter().map(|hit| hit.rank));
    let semantic_scores = normalized(semantic.iter().map(|hit| hit.similarity));
    let mut by_id: HashMap<Uuid, Fused> = HashMap::new();
    for ((position, hit), share) in (1u32..).zip(keyword).zip(keyword_scores) {
        let fused = entry(&mut by_id, hit.id);
        fused.score += (1.0 - semantic_weight) * share;
        fused.keyword_rank = Some(position);
        fused.keyword_score = Some(hit.rank);
        fused.title_match = hit.title.as_deref().and_then(|t| title_match(query, t));
    }
    for (hit, share) in semantic.iter().zip(semantic_scores) {
        let fused = entry(&mut by_id, hit.id);
        fused.score += semantic_weight * share;
        fused.similarity = Some(hit.similarity);
        fused.passage = Some(hit.passage);
    }
    let mut all: Vec<Fused> = by_id.into_values().collect();
    all.sort_by(|a, b| {
        let closeness = |f: &Fused| f.title_match.unwrap_or(0.0);
        closeness(b)
            .total_cmp(&closeness(a))
            .then(b.score.total_cmp(&a.score))
            .then(a.id.cmp(&b.id))
    });
    all
}

/// Each score mapped to 0..1 over the list: the best 1, the worst 0; all 1 when they are equal.
fn normalized(scores: impl Iterator<Item = f32> + Clone) -> Vec<f32> {
    let (low, high) = scores
        .clone()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s), hi.max(s))
        });
    let span = high - low;
    scores
        .map(|s| if span > 0.0 { (s - low) / span } else { 1.0 })
        .collect()
}

fn entry(by_id: &mut HashMap<Uuid, Fused>, id: Uuid) -> &mut Fused {
    by_id.entry(id).or_insert_with(|| Fused {
        id,
        score: 0.0,
        keyword_rank: None,
        keyword_score: None,
        similarity: None,
        passage: None,
        title_match: None,
    })
}

/// 1 when `title` and `query` have the same words (case and punctuation aside); the share of
/// characters when one contains the other and the share is at least [`NEAR_TITLE_SHARE`].
pub fn title_match(query: &str, title: &str) -> Option<f32> {
    let (query, title) = (normalize(query), normalize(title));
    if query.is_empty() || title.is_empty() {
        return None;
    }
    let (short, long) = if query.len() <= title.len() {
        (&query, &title)
    } else {
        (&title, &query)
    };
    let share = short.len() as f32 / long.len() as f32;
    (long.contains(short.as_str()) && share >= NEAR_TITLE_SHARE).then_some(share)
}

/// Lower-case words separated by single spaces.
fn normalize(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn hit(n: u128, title: &str) -> KeywordHit {
        KeywordHit {
            id: id(n),
            rank: 0.5,
            title: Some(title.to_owned()),
        }
    }

    fn near(n: u128, similarity: f32, index: i16) -> SemanticHit {
        SemanticHit {
            id: id(n),
            similarity,
            passage: PassageRef {
                index,
                start_char: 0,
                end_char: 10,
            },
        }
    }

    #[test]
    fn a_page_in_both_lists_beats_pages_in_one() {
        let keyword = [hit(1, "alpha"), hit(2, "beta")];
        let semantic = [near(3, 0.9, 0), near(2, 0.85, 3), near(4, 0.5, 0)];
        let fused = fuse("query", &keyword, &semantic, 0.7);
        assert_eq!(fused[0].id, id(2));
        assert_eq!(fused[0].keyword_rank, Some(2));
        assert_eq!(fused[0].similarity, Some(0.85));
        assert_eq!(fused[0].passage.map(|p| p.index), Some(3));
        // Both keyword hits rank 0.5, so both get the keyword side's full 0.3; page 2's
        // similarity is (0.85 - 0.5) / (0.9 - 0.5) of the way up the semantic list.
        assert!(
            (fused[0].score - (0.3 + 0.7 * 0.875)).abs() < 1e-6,
            "{fused:?}"
        );
        assert_eq!(fused.len(), 4);
        assert_eq!(
            fused[3].id,
            id(4),
            "last in the semantic list, absent from the other"
        );
    }

    #[test]
    fn the_exact_title_comes_first_whatever_its_fused_score() {
        let keyword = [hit(1, "Other page"), hit(2, "The Rust Book!")];
        let semantic = [near(1, 0.9, 0), near(3, 0.8, 0)];
        let fused = fuse("the rust book", &keyword, &semantic, 0.7);
        assert_eq!(fused[0].id, id(2));
        assert_eq!(fused[0].title_match, Some(1.0));
        assert_eq!(fused[1].id, id(1));
    }

    #[test]
    fn the_weight_decides_which_list_leads() {
        let keyword = [
            KeywordHit {
                rank: 0.9,
                ..hit(1, "one")
            },
            KeywordHit {
                rank: 0.1,
                ..hit(2, "two")
            },
        ];
        let semantic = [near(2, 0.9, 0), near(1, 0.2, 0)];
        assert_eq!(fuse("q", &keyword, &semantic, 0.9)[0].id, id(2));
        assert_eq!(fuse("q", &keyword, &semantic, 0.1)[0].id, id(1));
        // Out-of-range weights are clamped, not extrapolated.
        assert_eq!(fuse("q", &keyword, &semantic, 7.0)[0].id, id(2));
    }

    #[test]
    fn near_titles_need_most_of_the_characters() {
        assert_eq!(title_match("Rust book", "rust-book"), Some(1.0));
        let near = title_match(
            "the rust programming language",
            "The Rust Programming Language 2e",
        )
        .expect("near");
        assert!(near > NEAR_TITLE_SHARE && near < 1.0);
        assert_eq!(title_match("rust", "The Rust Programming Language"), None);
        assert_eq!(title_match("", "anything"), None);
    }
}
