//! A page's text cut into passages the model sees whole: windows of the model's input length
//! with some overlap, cut where a word starts, at most a configured number per page.
//!
//! The first passage is the text the model saw before passages existed (title, description and
//! the start of the body, truncated at the window), so a short page still has exactly one vector.

use std::ops::Range;

use anyhow::{Result, anyhow};
use fuze_shared::config::EmbedderConfig;
use tokenizers::Tokenizer;

/// Generous chars per word piece: how much text is tokenized to fill `max_passages` windows.
const CHARS_PER_TOKEN_BOUND: usize = 10;

/// One passage: its place in the page's text (in chars) and the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassageText {
    pub chars: Range<usize>,
    pub text: String,
}

/// Cuts texts into passages with the model's own tokenizer, so a passage is one window.
pub struct Splitter {
    /// The model's tokenizer without truncation.
    tokenizer: Tokenizer,
    /// Word pieces per passage, without `[CLS]` and `[SEP]`.
    window: usize,
    overlap: usize,
    max_passages: usize,
}

impl Splitter {
    pub fn new(mut tokenizer: Tokenizer, cfg: &EmbedderConfig) -> Result<Self> {
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow!("removing tokenizer truncation: {e}"))?;
        let window = cfg.max_tokens.saturating_sub(2).max(1);
        Ok(Self {
            tokenizer,
            window,
            // An overlap as long as the window would never move forward.
            overlap: cfg.passage_overlap.min(window - 1),
            max_passages: cfg.max_passages.max(1),
        })
    }

    /// The passages of `text`, in order; empty for a text without word pieces.
    pub fn split(&self, text: &str) -> Result<Vec<PassageText>> {
        let budget = self.window * self.max_passages * CHARS_PER_TOKEN_BOUND;
        let text = match text.char_indices().nth(budget) {
            Some((end, _)) => &text[..end],
            None => text,
        };
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        let offsets = encoding.get_offsets();
        let word_ids = encoding.get_word_ids();
        let starts_word = |i: usize| i == 0 || word_ids[i] != word_ids[i - 1];
        let windows = windows(
            offsets.len(),
            self.window,
            self.overlap,
            self.max_passages,
            starts_word,
        );
        Ok(windows
            .into_iter()
            .map(|tokens| {
                let bytes = offsets[tokens.start].0..offsets[tokens.end - 1].1;
                let chars_before = text[..bytes.start].chars().count();
                let passage = &text[bytes];
                PassageText {
                    chars: chars_before..chars_before + passage.chars().count(),
                    text: passage.to_owned(),
                }
            })
            .collect())
    }
}

/// Token ranges of at most `window` tokens out of `len`, each starting `window - overlap` after
/// the previous one, moved forward to the next token that `starts_word` (a cut inside a word
/// would embed a word fragment); at most `cap` of them. The last one ends at `len` unless `cap`
/// stopped first.
pub fn windows(
    len: usize,
    window: usize,
    overlap: usize,
    cap: usize,
    starts_word: impl Fn(usize) -> bool,
) -> Vec<Range<usize>> {
    let stride = window.saturating_sub(overlap).max(1);
    let mut found = Vec::new();
    let mut start = 0;
    while start < len && found.len() < cap {
        let end = (start + window).min(len);
        found.push(start..end);
        if end == len {
            break;
        }
        start += stride;
        while start < end && !starts_word(start) {
            start += 1;
        }
        if start == end {
            // One word longer than the overlap: go on from where this window stopped.
            start = end;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_token_starts_a_word(_: usize) -> bool {
        true
    }

    #[test]
    fn a_short_text_is_one_passage() {
        assert_eq!(
            windows(10, 254, 32, 16, every_token_starts_a_word),
            vec![0..10]
        );
        assert!(windows(0, 254, 32, 16, every_token_starts_a_word).is_empty());
    }

    #[test]
    fn windows_overlap_and_cover_the_text_up_to_the_cap() {
        let w = windows(500, 200, 50, 16, every_token_starts_a_word);
        assert_eq!(w, vec![0..200, 150..350, 300..500]);
        let capped = windows(5_000, 200, 50, 4, every_token_starts_a_word);
        assert_eq!(capped.len(), 4);
        assert_eq!(capped[3], 450..650);
    }

    #[test]
    fn a_window_starts_where_a_word_does() {
        // Tokens 150 and 151 continue the word of token 149.
        let w = windows(400, 200, 50, 16, |i| i != 150 && i != 151);
        assert_eq!(w, vec![0..200, 152..352, 302..400]);
    }

    #[test]
    fn a_word_longer_than_the_overlap_does_not_stall_the_cut() {
        let w = windows(30, 10, 5, 16, |i| i % 20 == 0);
        assert_eq!(w.first(), Some(&(0..10)));
        assert_eq!(w.last().map(|r| r.end), Some(30));
        assert!(w.windows(2).all(|p| p[1].start > p[0].start));
    }
}
