//! One BERT encoder layer over a packed `[tokens][hidden]` matrix.

use std::ops::Range;

use anyhow::Result;
use candle_nn::VarBuilder;
use fuze_shared::config::EmbedWeights;

use super::attention::attend;
use super::dense::{Activation, Dense};
use super::ops::add_norm;
use super::vector::NormParams;

/// Weights laid out for the packed forward pass; see [`EncoderLayer::load`].
pub(crate) struct EncoderLayer {
    /// Query, key and value projections as one layer of `3 * hidden` outputs.
    qkv: Dense,
    attn_out: Dense,
    attn_norm: NormParams,
    up: Dense,
    down: Dense,
    out_norm: NormParams,
    heads: usize,
    head_dim: usize,
}

/// The activations of a pass, reused by every layer and, kept by the caller, by later passes:
/// a 2,048-token pass needs 28 MB, which allocated anew would page-fault in again every pass.
/// They only grow, to the largest pass seen.
#[derive(Default)]
pub(crate) struct Buffers {
    tokens: usize,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    attended: Vec<f32>,
    up: Vec<f32>,
    /// A dense layer's inputs rounded to bf16 pairs (bf16 weights only; sized by the layer).
    staged: Vec<u32>,
}

impl Buffers {
    /// Makes room for a pass of `tokens` tokens through `layer` (every layer has its shape).
    pub fn fit(&mut self, tokens: usize, layer: &EncoderLayer) {
        let hidden = layer.heads * layer.head_dim;
        let grow = |v: &mut Vec<f32>, len: usize| {
            if v.len() < len {
                v.resize(len, 0.0);
            }
        };
        grow(&mut self.qkv, tokens * layer.qkv.outputs());
        grow(&mut self.ctx, tokens * hidden);
        grow(&mut self.attended, tokens * hidden);
        grow(&mut self.up, tokens * layer.up.outputs());
        self.tokens = tokens;
    }
}

/// `(weight [out][in], bias [out])` of the Linear layer under `vb`, as flat vectors.
fn linear(vb: &VarBuilder, out_dim: usize, in_dim: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    Ok((
        vb.get((out_dim, in_dim), "weight")?
            .flatten_all()?
            .to_vec1()?,
        vb.get(out_dim, "bias")?.to_vec1()?,
    ))
}

fn norm(vb: VarBuilder, hidden: usize, eps: f64) -> Result<NormParams> {
    Ok(NormParams {
        gamma: vb.get(hidden, "weight")?.to_vec1()?,
        beta: vb.get(hidden, "bias")?.to_vec1()?,
        eps: eps as f32,
    })
}

impl EncoderLayer {
    /// Loads `encoder.layer.N` in the Hugging Face BERT naming.
    ///
    /// Two things happen once here instead of on every pass: Q, K and V become one dense layer
    /// (one pass over the input instead of three), and the query side is pre-multiplied by
    /// `1 / sqrt(head_dim)` so attention needs no scaling.
    pub fn load(
        vb: VarBuilder,
        hidden: usize,
        intermediate: usize,
        heads: usize,
        eps: f64,
        weights: EmbedWeights,
    ) -> Result<Self> {
        let head_dim = hidden / heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let attn = vb.pp("attention");
        let own = attn.pp("self");
        let (mut qkv_w, mut qkv_b) = (Vec::new(), Vec::new());
        for (name, factor) in [("query", scale), ("key", 1.0), ("value", 1.0)] {
            let (w, b) = linear(&own.pp(name), hidden, hidden)?;
            qkv_w.extend(w.iter().map(|v| v * factor));
            qkv_b.extend(b.iter().map(|v| v * factor));
        }
        let out = attn.pp("output");
        let dense = |(w, b): (Vec<f32>, Vec<f32>), outputs, inputs| {
            Dense::new(&w, &b, outputs, inputs, weights)
        };
        Ok(Self {
            qkv: dense((qkv_w, qkv_b), 3 * hidden, hidden)?,
            attn_out: dense(linear(&out.pp("dense"), hidden, hidden)?, hidden, hidden)?,
            attn_norm: norm(out.pp("LayerNorm"), hidden, eps)?,
            up: dense(
                linear(&vb.pp("intermediate").pp("dense"), intermediate, hidden)?,
                intermediate,
                hidden,
            )?,
            down: dense(
                linear(&vb.pp("output").pp("dense"), hidden, intermediate)?,
                hidden,
                intermediate,
            )?,
            out_norm: norm(vb.pp("output").pp("LayerNorm"), hidden, eps)?,
            heads,
            head_dim,
        })
    }

    /// `x`: `[tokens][hidden]` of the texts in `spans`, replaced by the layer's output.
    /// `buf` must have been fitted to this pass ([`Buffers::fit`]).
    pub fn forward(&self, x: &mut [f32], spans: &[Range<usize>], buf: &mut Buffers) {
        let tokens = buf.tokens;
        let hidden = self.heads * self.head_dim;
        let qkv = &mut buf.qkv[..tokens * self.qkv.outputs()];
        let ctx = &mut buf.ctx[..tokens * hidden];
        let attended = &mut buf.attended[..tokens * hidden];
        let up = &mut buf.up[..tokens * self.up.outputs()];
        let staged = &mut buf.staged;
        self.qkv
            .forward_staged(x, staged, qkv, Activation::Identity);
        attend(qkv, spans, self.heads, self.head_dim, ctx);
        self.attn_out
            .forward_staged(ctx, staged, attended, Activation::Identity);
        add_norm(attended, x, &self.attn_norm);
        self.up
            .forward_staged(attended, staged, up, Activation::Gelu);
        self.down
            .forward_staged(up, staged, x, Activation::Identity);
        add_norm(x, attended, &self.out_norm);
    }
}
