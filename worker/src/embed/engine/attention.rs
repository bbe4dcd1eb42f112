//! Multi-head self-attention over a packed batch, one sequence at a time, straight from the fused
//! QKV matrix.
//!
//! Packing means no padding and therefore no mask: each sequence only ever sees its own rows.
//! Each (sequence, head) pair reads its 32 columns of Q, K and V in place and writes its 32
//! columns of the context, so there are no transposes or `contiguous()` copies, and the many small
//! matmuls (head size 32) avoid the per-call cost of a general gemm.

use std::ops::Range;

use rayon::prelude::*;

use super::vector::{self, vectorized};

/// Query rows processed together: each loaded key/value vector is reused this many times.
const ROWS: usize = 4;
/// Key columns per score block; the key matrix is padded to a multiple of this.
const COLS: usize = 16;
/// Below this many multiply-adds (a few short texts) one thread does all heads: waking the pool
/// would cost more.
const PARALLEL_MIN_FMAS: usize = 1 << 20;

/// Attention for all sequences of a packed batch: `qkv` is `[tokens][3 * hidden]` (biases added,
/// queries pre-scaled by `1 / sqrt(head_dim)`), `ctx` receives `[tokens][hidden]`.
pub(crate) fn attend(
    qkv: &[f32],
    spans: &[Range<usize>],
    heads: usize,
    head_dim: usize,
    ctx: &mut [f32],
) {
    let hidden = heads * head_dim;
    let tokens = spans.last().map_or(0, |s| s.end);
    assert!(
        qkv.len() == tokens * 3 * hidden && ctx.len() == tokens * hidden,
        "attention over {tokens} tokens got {} qkv and {} context values",
        qkv.len(),
        ctx.len()
    );
    let shape = Shape { heads, head_dim };
    let tasks: Vec<(usize, usize)> = (0..spans.len())
        .flat_map(|s| (0..heads).map(move |h| (s, h)))
        .collect();
    let fmas: usize = spans.iter().map(|s| s.len() * s.len()).sum::<usize>() * 2 * hidden;
    let run = |&(s, h): &(usize, usize)| shape.head(qkv, &spans[s], h);
    let outputs: Vec<Vec<f32>> = if fmas < PARALLEL_MIN_FMAS {
        tasks.iter().map(run).collect()
    } else {
        // Small heads (short texts) are grouped so each rayon task still does real work.
        tasks.par_iter().with_min_len(4).map(run).collect()
    };
    for (&(s, h), out) in tasks.iter().zip(&outputs) {
        for (t, o) in spans[s].clone().zip(out.chunks_exact(head_dim)) {
            ctx[t * hidden + h * head_dim..][..head_dim].copy_from_slice(o);
        }
    }
}

#[derive(Clone, Copy)]
struct Shape {
    heads: usize,
    head_dim: usize,
}

impl Shape {
    /// Context of one head of one sequence: `[len, head_dim]`, row-major.
    fn head(self, qkv: &[f32], span: &Range<usize>, head: usize) -> Vec<f32> {
        let hidden = self.heads * self.head_dim;
        let width = 3 * hidden;
        let d = self.head_dim;
        let len = span.len();
        let padded = len.div_ceil(COLS) * COLS;
        let (q_col, k_col, v_col) = (head * d, hidden + head * d, 2 * hidden + head * d);
        let row = |t: usize, col: usize| &qkv[(span.start + t) * width + col..][..d];

        // K^T, [head_dim, padded]: score blocks then read keys contiguously. Padding columns stay
        // zero and are never part of a softmax.
        let mut kt = vec![0f32; d * padded];
        for t in 0..len {
            for (c, k) in row(t, k_col).iter().enumerate() {
                kt[c * padded + t] = *k;
            }
        }

        let mut scores = vec![0f32; len * padded];
        let mut out = vec![0f32; len * d];
        vectorized(
            #[inline(always)]
            || {
                let mut q = vec![0f32; ROWS * d];
                for i0 in (0..len).step_by(ROWS) {
                    let rows = ROWS.min(len - i0);
                    for r in 0..rows {
                        q[r * d..][..d].copy_from_slice(row(i0 + r, q_col));
                    }
                    let block = &mut scores[i0 * padded..(i0 + rows) * padded];
                    if rows == ROWS {
                        score_rows::<ROWS>(&q, &kt, d, padded, block);
                    } else {
                        for r in 0..rows {
                            score_rows::<1>(
                                &q[r * d..(r + 1) * d],
                                &kt,
                                d,
                                padded,
                                &mut block[r * padded..(r + 1) * padded],
                            );
                        }
                    }
                    for r in 0..rows {
                        vector::softmax(&mut block[r * padded..][..len]);
                    }
                }
                for i0 in (0..len).step_by(ROWS) {
                    let rows = ROWS.min(len - i0);
                    let probs = &scores[i0 * padded..(i0 + rows) * padded];
                    let dst = &mut out[i0 * d..(i0 + rows) * d];
                    if rows == ROWS && d == 32 {
                        weighted_values::<ROWS, 32>(probs, padded, len, |t| row(t, v_col), dst);
                    } else {
                        for r in 0..rows {
                            let p = &probs[r * padded..(r + 1) * padded];
                            let o = &mut dst[r * d..(r + 1) * d];
                            for (t, &pt) in p[..len].iter().enumerate() {
                                for (o, v) in o.iter_mut().zip(row(t, v_col)) {
                                    *o = pt.mul_add(*v, *o);
                                }
                            }
                        }
                    }
                }
            },
        );
        out
    }
}

/// `block[r][j] = sum_c q[r][c] * kt[c][j]` for `R` query rows and all `padded` key columns.
#[inline(always)]
fn score_rows<const R: usize>(q: &[f32], kt: &[f32], d: usize, padded: usize, block: &mut [f32]) {
    for j0 in (0..padded).step_by(COLS) {
        let mut acc = [[0f32; COLS]; R];
        for c in 0..d {
            let k = &kt[c * padded + j0..][..COLS];
            for (r, acc) in acc.iter_mut().enumerate() {
                let qv = q[r * d + c];
                for (a, kv) in acc.iter_mut().zip(k) {
                    *a = qv.mul_add(*kv, *a);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            block[r * padded + j0..][..COLS].copy_from_slice(acc);
        }
    }
}

/// `dst[r] = sum_t probs[r][t] * v(t)` for `R` rows of head size `D`.
#[inline(always)]
fn weighted_values<'v, const R: usize, const D: usize>(
    probs: &[f32],
    padded: usize,
    len: usize,
    v: impl Fn(usize) -> &'v [f32],
    dst: &mut [f32],
) {
    let mut acc = [[0f32; D]; R];
    for t in 0..len {
        let v = &v(t)[..D];
        for (r, acc) in acc.iter_mut().enumerate() {
            let p = probs[r * padded + t];
            for (a, x) in acc.iter_mut().zip(v) {
                *a = p.mul_add(*x, *a);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        dst[r * D..(r + 1) * D].copy_from_slice(acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, Result, Tensor};

    /// Reference: plain candle ops on one sequence, padding-free.
    fn reference(qkv: &Tensor, heads: usize, d: usize) -> Result<Tensor> {
        let (len, _) = qkv.dims2()?;
        let hidden = heads * d;
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(1, i * hidden, hidden)?
                .reshape((len, heads, d))?
                .transpose(0, 1)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = q.matmul(&k.t()?)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        probs.matmul(&v)?.transpose(0, 1)?.reshape((len, hidden))
    }

    #[test]
    fn matches_per_sequence_reference() -> Result<()> {
        let dev = Device::Cpu;
        let (heads, d) = (3, 32);
        // Lengths around the 4-row and 16-column blocks, including a single token; the long one
        // takes the parallel path.
        for lens in [vec![1usize, 5, 16, 17, 38], vec![3, 140, 90]] {
            let tokens: usize = lens.iter().sum();
            let qkv = Tensor::randn(0f32, 1.0, (tokens, 3 * heads * d), &dev)?;
            let mut spans = Vec::new();
            let mut start = 0;
            for len in &lens {
                spans.push(start..start + len);
                start += len;
            }
            let mut ctx = vec![f32::NAN; tokens * heads * d];
            attend(&qkv.flatten_all()?.to_vec1()?, &spans, heads, d, &mut ctx);
            let got = Tensor::from_vec(ctx, (tokens, heads * d), &dev)?;
            for span in &spans {
                let want = reference(&qkv.narrow(0, span.start, span.len())?, heads, d)?;
                let diff = (got.narrow(0, span.start, span.len())? - want)?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                assert!(diff < 1e-5, "span {span:?}: max diff {diff}");
            }
        }
        Ok(())
    }

    #[test]
    #[should_panic(expected = "attention over 3 tokens")]
    fn rejects_spans_that_miss_tokens() {
        let qkv = vec![0f32; 4 * 3 * 32];
        let mut ctx = vec![0f32; 4 * 32];
        // One span of 3 rows for a 4-row matrix.
        let spans = std::iter::once(0..3).collect::<Vec<_>>();
        attend(&qkv, &spans, 1, 32, &mut ctx);
    }
}
