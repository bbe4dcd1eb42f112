//! Keywords by RAKE (rapid automatic keyword extraction) with the stop words of the page's language.

use std::collections::HashSet;

use rake::{Rake, StopWords};

/// Phrases longer than this are sentences that happen to lack stop words, not keywords.
const MAX_PHRASE_WORDS: usize = 3;

/// Up to `limit` key phrases, best first, lowercased and without duplicates.
/// `language` is an ISO 639-3 code (whatlang's); English stop words are always included.
pub fn keywords(text: &str, language: Option<&str>, limit: usize) -> Vec<String> {
    let rake = Rake::new(stop_words(language));
    let mut seen = HashSet::new();
    rake.run(text)
        .into_iter()
        .map(|k| k.keyword.to_lowercase())
        .filter(|k| {
            let words = k.split_whitespace().count();
            (1..=MAX_PHRASE_WORDS).contains(&words)
                && k.chars().any(char::is_alphabetic)
                && k.chars().count() >= 3
        })
        .filter(|k| seen.insert(k.clone()))
        .take(limit)
        .collect()
}

fn stop_words(language: Option<&str>) -> StopWords {
    let mut words: HashSet<String> = stop_words::get(stop_words::LANGUAGE::English)
        .into_iter()
        .collect();
    if let Some(lang) = language.and_then(nltk_language) {
        words.extend(stop_words::get(lang));
    }
    StopWords::from(words)
}

/// The NLTK stop-word list for a whatlang language code, where there is one.
fn nltk_language(code: &str) -> Option<stop_words::LANGUAGE> {
    use stop_words::LANGUAGE as L;
    Some(match code {
        "deu" => L::German,
        "fra" => L::French,
        "spa" => L::Spanish,
        "ita" => L::Italian,
        "por" => L::Portuguese,
        "nld" => L::Dutch,
        "swe" => L::Swedish,
        "dan" => L::Danish,
        "nob" => L::Norwegian,
        "fin" => L::Finnish,
        "rus" => L::Russian,
        "hun" => L::Hungarian,
        "tur" => L::Turkish,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_repeated_phrases_and_skips_stop_words() {
        let text = "Vector search with pgvector. The pgvector extension adds vector search to \
                    PostgreSQL. Exact vector search is slow on large tables, so vector search \
                    often uses an HNSW index.";
        let found = keywords(text, Some("eng"), 5);
        assert!(found.contains(&"vector search".to_owned()), "{found:?}");
        assert!(found.iter().all(|k| k != "the" && k != "with"), "{found:?}");
        assert!(found.len() <= 5);
        let unique: HashSet<_> = found.iter().collect();
        assert_eq!(unique.len(), found.len(), "no duplicates: {found:?}");
    }

    #[test]
    fn empty_text_has_no_keywords() {
        assert!(keywords("", None, 10).is_empty());
        assert!(keywords("the and of", None, 10).is_empty());
    }
}
