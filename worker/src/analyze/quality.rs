//! A 0..1 quality score from what the page offers a reader: enough text, a title and a summary,
//! varied vocabulary (not boilerplate repeated), and a detectable language.
//!
//! It is a heuristic, documented so that its ranking effect can be reasoned about:
//! `0.45 * length + 0.2 * variety + 0.15 * title + 0.1 * description + 0.1 * language`.

/// Word count from which a page counts as substantial (about a 3-minute read).
const FULL_LENGTH_WORDS: f32 = 700.0;

pub struct QualityInputs<'a> {
    pub text: &'a str,
    pub word_count: usize,
    pub has_title: bool,
    pub has_description: bool,
    pub has_language: bool,
}

pub fn quality_score(i: &QualityInputs<'_>) -> f32 {
    // Square root: the first few hundred words matter most.
    let length = (i.word_count as f32 / FULL_LENGTH_WORDS).min(1.0).sqrt();
    let score = 0.45 * length
        + 0.2 * variety(i.text)
        + 0.15 * f32::from(u8::from(i.has_title))
        + 0.1 * f32::from(u8::from(i.has_description))
        + 0.1 * f32::from(u8::from(i.has_language));
    score.clamp(0.0, 1.0)
}

/// Distinct words over total words in the first 1,000 words, scaled so that ordinary prose
/// (about half distinct at that length) scores near 1 and repeated boilerplate near 0.
fn variety(text: &str) -> f32 {
    let words: Vec<String> = text
        .split_whitespace()
        .take(1_000)
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() {
        return 0.0;
    }
    let distinct = words.iter().collect::<std::collections::HashSet<_>>().len();
    (distinct as f32 / words.len() as f32 * 2.0).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(text: &str) -> QualityInputs<'_> {
        QualityInputs {
            text,
            word_count: text.split_whitespace().count(),
            has_title: true,
            has_description: true,
            has_language: true,
        }
    }

    #[test]
    fn substantial_varied_pages_beat_thin_or_repetitive_ones() {
        let prose: String = (0..800).map(|i| format!("word{} ", i % 400)).collect();
        let thin = "a short note";
        let spam = "buy now ".repeat(400);
        let good = quality_score(&inputs(&prose));
        assert!(good > 0.9, "{good}");
        assert!(quality_score(&inputs(thin)) < good);
        assert!(quality_score(&inputs(&spam)) < good);
        let bare = QualityInputs {
            has_title: false,
            has_description: false,
            has_language: false,
            ..inputs(&prose)
        };
        assert!((good - quality_score(&bare) - 0.35).abs() < 1e-5);
    }

    #[test]
    fn empty_page_scores_only_its_metadata() {
        let empty = QualityInputs {
            text: "",
            word_count: 0,
            has_title: false,
            has_description: false,
            has_language: false,
        };
        assert_eq!(quality_score(&empty), 0.0);
    }
}
