//! A batch laid out without padding: every token of every text, one after another.

use std::ops::Range;

/// Token ids and positions of a batch in one flat list; `spans[i]` are the rows of text `i`.
///
/// Dense layers then run on a `[tokens, hidden]` matrix that has no padded rows, so a batch costs
/// what its real tokens cost however unequal the text lengths are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packed {
    pub ids: Vec<u32>,
    pub positions: Vec<u32>,
    pub spans: Vec<Range<usize>>,
}

impl Packed {
    pub fn new(texts: &[&[u32]]) -> Self {
        let tokens = texts.iter().map(|t| t.len()).sum();
        let mut packed = Self {
            ids: Vec::with_capacity(tokens),
            positions: Vec::with_capacity(tokens),
            spans: Vec::with_capacity(texts.len()),
        };
        for text in texts {
            let start = packed.ids.len();
            packed.ids.extend_from_slice(text);
            // Positions restart at 0 for every text, as if each were embedded alone.
            packed.positions.extend(0..text.len() as u32);
            packed.spans.push(start..packed.ids.len());
        }
        packed
    }

    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_without_padding_and_restarts_positions() {
        let packed = Packed::new(&[&[101, 7, 102], &[101, 102], &[101, 5, 6, 9, 102]]);
        assert_eq!(packed.ids, vec![101, 7, 102, 101, 102, 101, 5, 6, 9, 102]);
        assert_eq!(packed.positions, vec![0, 1, 2, 0, 1, 0, 1, 2, 3, 4]);
        assert_eq!(packed.spans, vec![0..3, 3..5, 5..10]);
        assert_eq!(packed.tokens(), 10);
        assert!(Packed::new(&[]).spans.is_empty());
    }
}
