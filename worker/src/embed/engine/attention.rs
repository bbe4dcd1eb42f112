//! Multi-head self-attention over a packed batch, one sequence at a time, straight from the fused
//! QKV matrix.
//!
//! Packing means no padding and therefore no mask: each sequence only ever sees its own rows.
//! Each (sequence, head) pair reads its 32 columns of Q, K and V in place and writes its 32
//! columns of the context, so there are no transposes or `contiguous()` copies, and the many small
//! matmuls (head size 32) avoid the per-call cost of a general gemm.

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, bail};
use rayon::prelude::*;

use super::vector::{self, vectorized};

/// Query rows processed together: each loaded key/value vector is reused this many times.
const ROWS: usize = 4;
/// Key columns per score block; the key matrix is padded to a multiple of this.
const COLS: usize = 16;

/// Attention for all sequences of a packed batch: `[tokens, 3 * hidden]` in, `[tokens, hidden]`
/// out. The query weights and bias are pre-scaled by `1 / sqrt(head_dim)` at load time.
pub(crate) struct PackedAttention<'a> {
    pub spans: &'a [Range<usize>],
    pub heads: usize,
    pub head_dim: usize,
    /// Biases of the fused projection, `[3 * hidden]`, added here rather than in a separate pass.
    pub qkv_bias: &'a [f32],
}

impl PackedAttention<'_> {
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Context of one head of one sequence: `[len, head_dim]`, row-major.
    fn head(&self, qkv: &[f32], span: &Range<usize>, head: usize) -> Vec<f32> {
        let hidden = self.hidden();
        let width = 3 * hidden;
        let d = self.head_dim;
        let len = span.len();
        let padded = len.div_ceil(COLS) * COLS;
        let (q_col, k_col, v_col) = (head * d, hidden + head * d, 2 * hidden + head * d);
        let row = |t: usize, col: usize| &qkv[(span.start + t) * width + col..][..d];
        let (q_bias, k_bias, v_bias) = (
            &self.qkv_bias[q_col..q_col + d],
            &self.qkv_bias[k_col..k_col + d],
            &self.qkv_bias[v_col..v_col + d],
        );

        // K^T with bias, [head_dim, padded]: score blocks then read keys contiguously. Padding
        // columns stay zero and are never part of a softmax.
        let mut kt = vec![0f32; d * padded];
        for t in 0..len {
            for (c, (k, b)) in row(t, k_col).iter().zip(k_bias).enumerate() {
                kt[c * padded + t] = k + b;
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
                        for ((dst, x), b) in q[r * d..][..d]
                            .iter_mut()
                            .zip(row(i0 + r, q_col))
                            .zip(q_bias)
                        {
                            *dst = x + b;
                        }
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
                // Probabilities of a row sum to one, so the value bias adds once per output row.
                for o in out.chunks_exact_mut(d) {
                    for (o, b) in o.iter_mut().zip(v_bias) {
                        *o += b;
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

impl CustomOp1 for PackedAttention<'_> {
    fn name(&self) -> &'static str {
        "fuze-packed-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(all) = storage else {
            bail!("packed attention expects f32");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("packed attention expects a contiguous qkv matrix");
        };
        let qkv = &all[start..end];
        let hidden = self.hidden();
        let (tokens, width) = layout.shape().dims2()?;
        if width != 3 * hidden || self.qkv_bias.len() != width {
            bail!("qkv width {width} does not match {} heads", self.heads);
        }
        if self.spans.last().map_or(0, |s| s.end) != tokens {
            bail!("spans do not cover the {tokens} packed tokens");
        }
        let tasks: Vec<(usize, usize)> = (0..self.spans.len())
            .flat_map(|s| (0..self.heads).map(move |h| (s, h)))
            .collect();
        // Small heads (short texts) are grouped so each rayon task still does real work.
        let heads: Vec<Vec<f32>> = tasks
            .par_iter()
            .with_min_len(4)
            .map(|&(s, h)| self.head(qkv, &self.spans[s], h))
            .collect();
        let d = self.head_dim;
        let mut ctx = vec![0f32; tokens * hidden];
        for (&(s, h), out) in tasks.iter().zip(&heads) {
            for (t, o) in self.spans[s].clone().zip(out.chunks_exact(d)) {
                ctx[t * hidden + h * d..][..d].copy_from_slice(o);
            }
        }
        Ok((CpuStorage::F32(ctx), Shape::from((tokens, hidden))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, Tensor};

    /// Reference: plain candle ops on one sequence, padding-free, bias added up front.
    fn reference(qkv: &Tensor, bias: &Tensor, heads: usize, d: usize) -> Result<Tensor> {
        let (len, _) = qkv.dims2()?;
        let x = qkv.broadcast_add(bias)?;
        let hidden = heads * d;
        let split = |i: usize| -> Result<Tensor> {
            x.narrow(1, i * hidden, hidden)?
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
        // Lengths around the 4-row and 16-column blocks, including a single token.
        let lens = [1usize, 5, 16, 17, 38];
        let tokens: usize = lens.iter().sum();
        let qkv = Tensor::randn(0f32, 1.0, (tokens, 3 * heads * d), &dev)?;
        let bias = Tensor::randn(0f32, 1.0, 3 * heads * d, &dev)?;
        let mut spans = Vec::new();
        let mut start = 0;
        for len in lens {
            spans.push(start..start + len);
            start += len;
        }
        let bias_vec = bias.to_vec1::<f32>()?;
        let op = PackedAttention {
            spans: &spans,
            heads,
            head_dim: d,
            qkv_bias: &bias_vec,
        };
        let got = qkv.apply_op1_no_bwd(&op)?;
        for span in &spans {
            let want = reference(&qkv.narrow(0, span.start, span.len())?, &bias, heads, d)?;
            let diff = (got.narrow(0, span.start, span.len())? - want)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-5, "span {span:?}: max diff {diff}");
        }
        Ok(())
    }

    #[test]
    fn rejects_spans_that_miss_tokens() -> Result<()> {
        let qkv = Tensor::zeros((4, 3 * 32), candle_core::DType::F32, &Device::Cpu)?;
        let bias = vec![0f32; 96];
        // One span of 3 rows for a 4-row matrix.
        let spans = std::iter::once(0..3).collect::<Vec<_>>();
        let op = PackedAttention {
            spans: &spans,
            heads: 1,
            head_dim: 32,
            qkv_bias: &bias,
        };
        assert!(qkv.apply_op1_no_bwd(&op).is_err());
        Ok(())
    }
}
