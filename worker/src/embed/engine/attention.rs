//! Multi-head self-attention over a packed batch, one sequence at a time, straight from the fused
//! QKV matrix.
//!
//! Packing means no padding and therefore no mask: each sequence only ever sees its own rows.
//! Each (sequence, head) pair reads its columns of Q, K and V in place and writes its columns of
//! the context rows directly, so there are no transposes of Q or V, no copies of the result, and the
//! many small products (head size 32) avoid the per-call cost of a general gemm. With AVX-512 and
//! head size 32 the two products run on register tiles of 8 query rows × 32 columns and the softmax
//! on whole registers (`vector::avx512`); elsewhere a plain-Rust kernel that the compiler
//! vectorizes.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::vector;

/// Query rows per register tile: 8 rows × 2 AVX-512 registers = 16 accumulators, leaving registers
/// for the broadcasts (12 rows spilled accumulators to the stack).
const TILE_ROWS: usize = 8;
/// Keys per score tile (two AVX-512 registers); the key matrix is padded to a multiple of this.
const TILE_KEYS: usize = 32;
/// The head size the AVX-512 kernel is written for (MiniLM's): one head row is two registers.
const TILE_HEAD_DIM: usize = 32;
/// Below this many multiply-adds (a few short texts) one thread does all heads: waking the pool
/// would cost more.
const PARALLEL_MIN_FMAS: usize = 1 << 20;

/// Attention for all sequences of a packed batch: `qkv` is `[tokens][3 * hidden]` (biases added,
/// queries pre-scaled by `1 / sqrt(head_dim)`), `ctx` receives `[tokens][hidden]`.
pub fn attend(qkv: &[f32], spans: &[Range<usize>], heads: usize, head_dim: usize, ctx: &mut [f32]) {
    let hidden = heads * head_dim;
    let tokens = spans.last().map_or(0, |s| s.end);
    assert!(
        qkv.len() == tokens * 3 * hidden && ctx.len() == tokens * hidden,
        "attention over {tokens} tokens got {} qkv and {} context values",
        qkv.len(),
        ctx.len()
    );
    let shape = Shape { heads, head_dim };
    // One task per (sequence, head), holding that head's columns of the sequence's context rows.
    let mut tasks: Vec<Head<'_>> = spans
        .iter()
        .flat_map(|span| {
            (0..heads).map(move |head| Head {
                span: span.clone(),
                head,
                out: Vec::with_capacity(span.len()),
            })
        })
        .collect();
    let mut rows = ctx.chunks_exact_mut(hidden);
    for (s, span) in spans.iter().enumerate() {
        for row in rows.by_ref().take(span.len()) {
            for (h, part) in row.chunks_exact_mut(head_dim).enumerate() {
                tasks[s * heads + h].out.push(part);
            }
        }
    }
    let fmas: usize = spans.iter().map(|s| s.len() * s.len()).sum::<usize>() * 2 * hidden;
    if fmas < PARALLEL_MIN_FMAS {
        tasks.into_iter().for_each(|t| t.run(qkv, shape));
    } else {
        // Small heads (short texts) are grouped so each rayon task still does real work.
        tasks
            .into_par_iter()
            .with_min_len(4)
            .for_each(|t| t.run(qkv, shape));
    }
}

#[derive(Clone, Copy)]
struct Shape {
    heads: usize,
    head_dim: usize,
}

/// One head of one sequence and the context columns it writes, one slice per row.
struct Head<'a> {
    span: Range<usize>,
    head: usize,
    out: Vec<&'a mut [f32]>,
}

/// A worker thread's key and score buffers, kept between heads: every head would otherwise
/// allocate and zero up to 256 kB of scores.
#[derive(Default)]
struct Scratch {
    keys: Vec<f32>,
    scores: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// What one head's kernels read: its columns of Q, K and V and the sequence's length.
#[derive(Clone, Copy)]
struct Operands<'a> {
    qkv: &'a [f32],
    start: usize,
    len: usize,
    width: usize,
    d: usize,
    q_col: usize,
    k_col: usize,
    v_col: usize,
}

impl<'a> Operands<'a> {
    #[inline(always)]
    fn row(&self, t: usize, col: usize) -> &'a [f32] {
        &self.qkv[(self.start + t) * self.width + col..][..self.d]
    }
}

impl Head<'_> {
    fn run(mut self, qkv: &[f32], shape: Shape) {
        let hidden = shape.heads * shape.head_dim;
        let d = shape.head_dim;
        let ops = Operands {
            qkv,
            start: self.span.start,
            len: self.span.len(),
            width: 3 * hidden,
            d,
            q_col: self.head * d,
            k_col: hidden + self.head * d,
            v_col: 2 * hidden + self.head * d,
        };
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            #[cfg(target_arch = "x86_64")]
            if d == TILE_HEAD_DIM
                && let Some(simd) = pulp::x86::V4::try_new()
            {
                let job = Job {
                    isa: simd,
                    ops,
                    out: &mut self.out,
                    scratch,
                };
                return pulp::Simd::vectorize(simd, job);
            }
            pulp::Arch::new().dispatch(Job {
                isa: (),
                ops,
                out: &mut self.out,
                scratch,
            });
        });
    }
}

/// One head's work for a kernel; `isa` is the instruction-set token of the kernel that runs it.
struct Job<'a, 'o, Isa> {
    isa: Isa,
    ops: Operands<'a>,
    out: &'a mut [&'o mut [f32]],
    scratch: &'a mut Scratch,
}

/// `K^T` as `[d][padded]`, so score tiles read keys contiguously; padding columns are zero and
/// never part of a softmax.
#[inline(always)]
fn transpose_keys(ops: &Operands<'_>, padded: usize, keys: &mut Vec<f32>) {
    keys.clear();
    keys.resize(ops.d * padded, 0.0);
    for t in 0..ops.len {
        for (c, k) in ops.row(t, ops.k_col).iter().enumerate() {
            keys[c * padded + t] = *k;
        }
    }
}

/// The score matrix `[len][padded]` (every entry is written), then softmax over each row's keys.
#[inline(always)]
fn scores_then_softmax(
    ops: &Operands<'_>,
    scratch: &mut Scratch,
    tile: impl Fn(&[&[f32]; TILE_ROWS], &[f32], usize, &mut [f32]),
    softmax: impl Fn(&mut [f32]),
) -> usize {
    let padded = ops.len.next_multiple_of(TILE_KEYS);
    transpose_keys(ops, padded, &mut scratch.keys);
    scratch.scores.resize(ops.len * padded, 0.0);
    for first in (0..ops.len).step_by(TILE_ROWS) {
        let rows = TILE_ROWS.min(ops.len - first);
        // Past the end the last row is repeated; its results land in no output row.
        let q: [&[f32]; TILE_ROWS] =
            std::array::from_fn(|r| ops.row((first + r).min(ops.len - 1), ops.q_col));
        let block = &mut scratch.scores[first * padded..(first + rows) * padded];
        tile(&q, &scratch.keys, padded, block);
        for row in block.chunks_exact_mut(padded) {
            softmax(&mut row[..ops.len]);
        }
    }
    padded
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use pulp::f32x16;
    use pulp::x86::V4;

    use super::*;

    impl pulp::WithSimd for Job<'_, '_, V4> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Job {
                isa: simd,
                ops,
                out,
                scratch,
            } = self;
            let padded = scores_then_softmax(
                &ops,
                scratch,
                #[inline(always)]
                |q, keys, padded, block| score_tile(simd, q, keys, padded, block),
                #[inline(always)]
                |row| vector::avx512::softmax(simd, row),
            );
            for (first, out) in (0..ops.len)
                .step_by(TILE_ROWS)
                .zip(out.chunks_mut(TILE_ROWS))
            {
                let probs: [&[f32]; TILE_ROWS] = std::array::from_fn(|r| {
                    let row = (first + r).min(ops.len - 1);
                    &scratch.scores[row * padded..row * padded + ops.len]
                });
                value_tile(simd, &probs, &ops, out);
            }
        }
    }

    /// Two registers: a head's row of V, or one dimension of a tile's keys (`TILE_KEYS` is the
    /// head size too).
    #[inline(always)]
    fn load(x: &[f32]) -> [f32x16; 2] {
        let x: &[f32; TILE_HEAD_DIM] = x[..TILE_HEAD_DIM]
            .try_into()
            .unwrap_or(&[0.0; TILE_HEAD_DIM]);
        pulp::cast(*x)
    }

    /// `block[r][j] = q[r] · K[j]` for the tile's rows (as many as `block` holds) and all keys.
    #[inline(always)]
    fn score_tile(
        simd: V4,
        q: &[&[f32]; TILE_ROWS],
        keys: &[f32],
        padded: usize,
        block: &mut [f32],
    ) {
        let q: [&[f32]; TILE_ROWS] = std::array::from_fn(|r| &q[r][..TILE_HEAD_DIM]);
        let zero = simd.splat_f32x16(0.0);
        for j in (0..padded).step_by(TILE_KEYS) {
            let mut acc = [[zero; 2]; TILE_ROWS];
            for (c, dim) in keys.chunks_exact(padded).take(TILE_HEAD_DIM).enumerate() {
                let k = load(&dim[j..]);
                for (acc, q) in acc.iter_mut().zip(&q) {
                    let a = simd.splat_f32x16(q[c]);
                    for (acc, k) in acc.iter_mut().zip(&k) {
                        *acc = simd.mul_add_f32x16(a, *k, *acc);
                    }
                }
            }
            for (acc, row) in acc.iter().zip(block.chunks_exact_mut(padded)) {
                store(&mut row[j..j + TILE_KEYS], *acc);
            }
        }
    }

    /// `out[r] = Σ_t probs[r][t] · V[t]` for the tile's rows (as many as `out` holds).
    #[inline(always)]
    fn value_tile(
        simd: V4,
        probs: &[&[f32]; TILE_ROWS],
        ops: &Operands<'_>,
        out: &mut [&mut [f32]],
    ) {
        let zero = simd.splat_f32x16(0.0);
        let mut acc = [[zero; 2]; TILE_ROWS];
        for t in 0..ops.len {
            let v = load(ops.row(t, ops.v_col));
            for (acc, p) in acc.iter_mut().zip(probs) {
                let a = simd.splat_f32x16(p[t]);
                acc[0] = simd.mul_add_f32x16(a, v[0], acc[0]);
                acc[1] = simd.mul_add_f32x16(a, v[1], acc[1]);
            }
        }
        for (acc, dst) in acc.iter().zip(out) {
            store(dst, *acc);
        }
    }

    /// Two registers into `dst` (32 values): as two vector stores, where `copy_from_slice` of
    /// a slice calls `memmove` once per tile row.
    #[inline(always)]
    fn store(dst: &mut [f32], x: [f32x16; 2]) {
        let dst: &mut [f32; 32] = dst.try_into().expect("a tile row is 32 values");
        *dst = pulp::cast(x);
    }
}

/// The same products in plain Rust for any head size, compiled for the best instruction set
/// pulp finds.
mod portable {
    use super::*;

    impl pulp::WithSimd for Job<'_, '_, ()> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Job {
                ops, out, scratch, ..
            } = self;
            let padded = scores_then_softmax(
                &ops,
                scratch,
                #[inline(always)]
                |q, keys, padded, block| {
                    for (q, row) in q.iter().zip(block.chunks_exact_mut(padded)) {
                        row.fill(0.0);
                        for (c, qc) in q.iter().enumerate() {
                            let k = &keys[c * padded..(c + 1) * padded];
                            for (s, k) in row.iter_mut().zip(k) {
                                *s = qc.mul_add(*k, *s);
                            }
                        }
                    }
                },
                vector::softmax,
            );
            for (t_row, dst) in out.iter_mut().enumerate() {
                let probs = &scratch.scores[t_row * padded..t_row * padded + ops.len];
                dst.fill(0.0);
                for (t, p) in probs.iter().enumerate() {
                    for (o, v) in dst.iter_mut().zip(ops.row(t, ops.v_col)) {
                        *o = p.mul_add(*v, *o);
                    }
                }
            }
        }
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
        // Head size 32 takes the AVX-512 tiles where the CPU has them, 24 the portable kernel.
        // Lengths around the 8-row and 32-key tiles, including a single token; the long ones take
        // the parallel path.
        for d in [32, 24] {
            let heads = 3;
            for lens in [vec![1usize, 5, 8, 9, 12, 13, 33, 38], vec![3, 140, 90]] {
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
                    assert!(diff < 1e-5, "head size {d}, span {span:?}: max diff {diff}");
                }
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
