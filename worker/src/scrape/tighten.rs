//! A second opinion on a page's main text. Readability (dom_smoothie) keeps whole sibling blocks
//! around an article: share bars, teasers of other articles, tag lists. trafilatura's rules
//! (rs-trafilatura) cut tighter, but sometimes cut the article too. So both run, and
//! trafilatura's text is kept only where the two agree on the article: it is shorter, at least
//! [`MIN_LENGTH_SHARE`] of Readability's length, and nearly all of it
//! ([`MIN_CONTAINED`] of its 4-word shingles) is in Readability's text. Otherwise Readability's
//! stands. Measured on two public sets with gold text in docs/SEARCH.md.

use std::collections::HashMap;

use super::extract::normalize_text;

/// Shingle length: four words in a row, as the extraction benchmark counts them.
const SHINGLE: usize = 4;
/// trafilatura's text must hold at least this share of Readability's words: much shorter means
/// it dropped part of the article.
pub const MIN_LENGTH_SHARE: f64 = 0.5;
/// And at least this share of its shingles must be in Readability's text.
pub const MIN_CONTAINED: f64 = 0.9;

/// The tighter of `readable` (Readability's text of `html`) and trafilatura's, as above.
pub fn tighter(html: &str, readable: String) -> String {
    let Ok(found) = rs_trafilatura::extract(html) else {
        return readable;
    };
    let candidate = normalize_text(&found.content_text);
    if agrees(&readable, &candidate) {
        candidate
    } else {
        readable
    }
}

/// Whether `tight` is a shorter version of `loose` that keeps the same article.
fn agrees(loose: &str, tight: &str) -> bool {
    let (loose_words, tight_words) = (words(loose), words(tight));
    if tight_words.is_empty() || tight_words.len() >= loose_words.len() {
        return false;
    }
    if (tight_words.len() as f64) < MIN_LENGTH_SHARE * loose_words.len() as f64 {
        return false;
    }
    let mut available = shingles(&loose_words);
    let tight_shingles = tight_words.windows(SHINGLE).count().max(1);
    let mut contained = 0usize;
    for shingle in windows_or_all(&tight_words) {
        if let Some(left) = available.get_mut(shingle).filter(|n| **n > 0) {
            *left -= 1;
            contained += 1;
        }
    }
    contained as f64 >= MIN_CONTAINED * tight_shingles as f64
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Each run of [`SHINGLE`] words, or the whole text when it is shorter.
fn windows_or_all(words: &[String]) -> impl Iterator<Item = &[String]> {
    let size = SHINGLE.min(words.len()).max(1);
    words.windows(size)
}

fn shingles(words: &[String]) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for shingle in windows_or_all(words) {
        *counts.entry(shingle).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str = "The council approved the new cycle lanes on Tuesday after a long debate. \
         Work starts in spring and should take three months, the mayor said. \
         Shops along the street asked for deliveries to keep a loading bay.";

    #[test]
    fn a_tighter_text_inside_the_loose_one_is_kept() {
        let loose = format!("Share on Facebook Share on X\n{ARTICLE}\nRead next: ten best parks");
        assert!(agrees(&loose, ARTICLE));
    }

    #[test]
    fn a_text_that_is_not_inside_the_loose_one_is_refused() {
        let loose = format!("{ARTICLE}\nSubscribe to our newsletter for more");
        let other = "The council approved the new cycle lanes on Tuesday. Parking fees rise \
                     next year and residents can apply for permits online from March onwards.";
        assert!(!agrees(&loose, other));
    }

    #[test]
    fn a_much_shorter_text_lost_part_of_the_article_and_is_refused() {
        let loose = format!("{ARTICLE} {ARTICLE} {ARTICLE}");
        let first_sentence =
            "The council approved the new cycle lanes on Tuesday after a long debate.";
        assert!(!agrees(&loose, first_sentence));
    }

    #[test]
    fn a_longer_or_empty_text_is_refused() {
        assert!(!agrees(ARTICLE, &format!("{ARTICLE} More words here.")));
        assert!(!agrees(ARTICLE, ""));
        assert!(!agrees("", ""));
    }

    #[test]
    fn trafilatura_cuts_the_share_bar_and_the_teasers_of_a_page() {
        let paragraphs: String = (0..6)
            .map(|i| format!("<p>Paragraph {i}. {ARTICLE}</p>"))
            .collect();
        let html = format!(
            "<html><head><title>Cycle lanes</title></head><body>\
             <article><h1>Cycle lanes approved</h1>{paragraphs}</article>\
             <div class=\"related\"><h2>Read next</h2><ul>\
             <li><a href=\"/a\">Ten best parks in the city for a sunny afternoon</a></li>\
             <li><a href=\"/b\">Where to eat near the station after a late train</a></li>\
             </ul></div></body></html>"
        );
        let readable = format!("{paragraphs}\nRead next\nTen best parks in the city");
        let readable = normalize_text(&readable.replace("<p>", "").replace("</p>", "\n"));
        let kept = tighter(&html, readable);
        assert!(
            kept.contains("Paragraph 0.") && kept.contains("Paragraph 5."),
            "{kept}"
        );
        assert!(!kept.contains("Ten best parks"), "{kept}");
    }
}
