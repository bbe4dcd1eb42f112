//! Pure batching helpers: length ordering, cutting batches, restoring input order.

use std::ops::Range;

/// Input indices ordered by ascending length. Stable, so equal lengths keep input order.
/// Neighbours then have similar lengths and padding each batch to its longest wastes little.
pub(crate) fn order_by_length(lengths: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    order
}

/// Cuts ascending `sorted_lengths` into consecutive batches of at most `max_texts` texts whose
/// padded size (texts x longest) stays within `token_budget`. A text over budget on its own still
/// gets its own batch rather than being dropped.
pub(crate) fn cut_batches(
    sorted_lengths: &[usize],
    max_texts: usize,
    token_budget: usize,
) -> Vec<Range<usize>> {
    let max_texts = max_texts.max(1);
    let mut batches = Vec::new();
    let mut start = 0;
    for (i, &len) in sorted_lengths.iter().enumerate() {
        let count = i - start + 1;
        // Ascending order: the text being added is the longest, so it sets the padded width.
        if i > start && (count > max_texts || count * len > token_budget) {
            batches.push(start..i);
            start = i;
        }
    }
    if start < sorted_lengths.len() {
        batches.push(start..sorted_lengths.len());
    }
    batches
}

/// Cuts `lengths` into consecutive batches of at most `max_texts` texts and `token_budget` real
/// tokens, for packed passes where a batch costs its real tokens, not texts x longest. A text over
/// budget on its own still gets its own batch.
pub(crate) fn cut_packed_batches(
    lengths: &[usize],
    max_texts: usize,
    token_budget: usize,
) -> Vec<Range<usize>> {
    let max_texts = max_texts.max(1);
    let mut batches = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, &len) in lengths.iter().enumerate() {
        if i > start && (i - start + 1 > max_texts || tokens + len > token_budget) {
            batches.push(start..i);
            (start, tokens) = (i, 0);
        }
        tokens += len;
    }
    if start < lengths.len() {
        batches.push(start..lengths.len());
    }
    batches
}

/// Puts `sorted` (item `k` belongs to input `order[k]`) back into input order.
pub(crate) fn restore_order<T>(order: &[usize], sorted: Vec<T>) -> Vec<T> {
    let mut pairs: Vec<(usize, T)> = order.iter().copied().zip(sorted).collect();
    pairs.sort_unstable_by_key(|&(i, _)| i);
    pairs.into_iter().map(|(_, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_length_stably() {
        assert_eq!(order_by_length(&[5, 2, 9, 2, 1]), vec![4, 1, 3, 0, 2]);
        assert!(order_by_length(&[]).is_empty());
    }

    #[test]
    fn cuts_by_text_count() {
        let lengths = [3; 7];
        assert_eq!(cut_batches(&lengths, 3, 10_000), vec![0..3, 3..6, 6..7]);
    }

    #[test]
    fn cuts_by_padded_token_budget() {
        // 4 texts of 10 = 40 fit a budget of 45; adding a 12 would pad to 5 x 12 = 60.
        let lengths = [10, 10, 10, 10, 12, 12, 12, 40];
        assert_eq!(cut_batches(&lengths, 32, 45), vec![0..4, 4..7, 7..8]);
    }

    #[test]
    fn budget_counts_padding_to_longest() {
        // 2 + 2 + 30 real tokens is 34 but padded it is 3 x 30 = 90 > 64.
        assert_eq!(cut_batches(&[2, 2, 30], 32, 64), vec![0..2, 2..3]);
    }

    #[test]
    fn oversized_text_gets_its_own_batch() {
        assert_eq!(cut_batches(&[5, 300, 300], 32, 256), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn zero_limits_still_make_progress() {
        assert_eq!(cut_batches(&[1, 1], 0, 0), vec![0..1, 1..2]);
        assert!(cut_batches(&[], 4, 100).is_empty());
    }

    #[test]
    fn every_index_lands_in_exactly_one_batch() {
        let lengths: Vec<usize> = (0..100).map(|i| (i * 37) % 256 + 2).collect();
        let order = order_by_length(&lengths);
        let sorted: Vec<usize> = order.iter().map(|&i| lengths[i]).collect();
        let batches = cut_batches(&sorted, 8, 1_000);
        let mut next = 0;
        for b in &batches {
            assert_eq!(b.start, next);
            assert!(b.len() <= 8);
            let widest = sorted[b.clone()].iter().copied().max().unwrap_or(0);
            assert!(b.len() == 1 || b.len() * widest <= 1_000);
            next = b.end;
        }
        assert_eq!(next, lengths.len());
    }

    #[test]
    fn packed_budget_counts_real_tokens_only() {
        // Padded, 2 + 2 + 30 would count as 3 x 30 = 90 > 64; packed it is 34.
        assert_eq!(cut_packed_batches(&[2, 2, 30], 32, 64), vec![0..3]);
        // 30 + 30 + 5 = 65 > 64 cuts before the 5; 5 + 40 fits.
        assert_eq!(
            cut_packed_batches(&[30, 30, 5, 40], 32, 64),
            vec![0..2, 2..4]
        );
        assert_eq!(cut_packed_batches(&[1; 5], 2, 100), vec![0..2, 2..4, 4..5]);
        assert_eq!(cut_packed_batches(&[300, 1], 8, 256), vec![0..1, 1..2]);
        assert!(cut_packed_batches(&[], 4, 100).is_empty());
        assert_eq!(cut_packed_batches(&[1, 1], 0, 0), vec![0..1, 1..2]);
    }

    #[test]
    fn restores_input_order() {
        let lengths = [30, 10, 20, 10];
        let order = order_by_length(&lengths);
        let sorted: Vec<String> = order.iter().map(|&i| format!("text{i}")).collect();
        assert_eq!(
            restore_order(&order, sorted),
            vec!["text0", "text1", "text2", "text3"]
        );
    }
}
