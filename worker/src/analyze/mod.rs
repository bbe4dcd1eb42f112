//! Content analysis of a scraped page: word count, reading time, language, keywords, a quality
//! score, and tags chosen by embedding similarity to a fixed vocabulary.
//!
//! Everything here is pure and synchronous; the analyze job stage feeds it and stores the result.

mod keywords;
pub mod quality;
mod tags;

pub use keywords::keywords;
pub use quality::quality_score;
pub use tags::{TAG_VOCABULARY, TagIndex};

/// Silent-reading speed used for reading time (words per minute; adult non-fiction average).
const WORDS_PER_MINUTE: usize = 238;

/// The text measures of one page.
#[derive(Debug, Clone, PartialEq)]
pub struct TextMeasures {
    pub word_count: usize,
    pub reading_time_s: usize,
    /// ISO 639-3 code when the language is detected reliably.
    pub language: Option<&'static str>,
}

pub fn measure(text: &str) -> TextMeasures {
    let word_count = text.split_whitespace().count();
    TextMeasures {
        word_count,
        reading_time_s: (word_count * 60).div_ceil(WORDS_PER_MINUTE),
        language: detect_language(text),
    }
}

/// whatlang's guess, kept only when it says it is reliable (short or mixed texts often are not).
fn detect_language(text: &str) -> Option<&'static str> {
    // The first few thousand characters decide as well as the whole page, at a fraction of the cost.
    let sample: String = text.chars().take(4_000).collect();
    whatlang::detect(&sample)
        .filter(whatlang::Info::is_reliable)
        .map(|info| info.lang().code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_and_rounds_reading_time_up() {
        let m = measure("one two  three\nfour");
        assert_eq!(m.word_count, 4);
        assert_eq!(
            m.reading_time_s, 2,
            "4 words at 238 wpm is 1.01 s, rounded up"
        );
        let long = "word ".repeat(238 * 3);
        assert_eq!(measure(&long).reading_time_s, 180);
        assert_eq!(measure("").word_count, 0);
        assert_eq!(measure("").reading_time_s, 0);
    }

    #[test]
    fn detects_clear_languages_only() {
        let english = "The database keeps every bookmark that a user saves, and the worker \
                       process reads the page, extracts the main text and stores it for search.";
        assert_eq!(measure(english).language, Some("eng"));
        let german = "Die Datenbank speichert jedes Lesezeichen, das ein Benutzer anlegt, und der \
                      Hintergrundprozess liest die Seite und speichert den Haupttext für die Suche.";
        assert_eq!(measure(german).language, Some("deu"));
        assert_eq!(measure("ok").language, None, "too short to be reliable");
    }
}
