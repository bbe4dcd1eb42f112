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

/// The activations of one pass, reused by every layer.
pub(crate) struct Buffers {
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    attended: Vec<f32>,
    up: Vec<f32>,
}

impl Buffers {
    pub fn new(tokens: usize, layer: &EncoderLayer) -> Self {
        let hidden = layer.heads * layer.head_dim;
        Self {
            qkv: vec![0.0; tokens * layer.qkv.outputs()],
            ctx: vec![0.0; tokens * hidden],
            attended: vec![0.0; tokens * hidden],
            up: vec![0.0; tokens * layer.up.outputs()],
        }
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
    pub fn forward(&self, x: &mut [f32], spans: &[Range<usize>], buf: &mut Buffers) {
        self.qkv.forward(x, &mut buf.qkv, Activation::Identity);
        attend(&buf.qkv, spans, self.heads, self.head_dim, &mut buf.ctx);
        self.attn_out
            .forward(&buf.ctx, &mut buf.attended, Activation::Identity);
        add_norm(&mut buf.attended, x, &self.attn_norm);
        self.up
            .forward(&buf.attended, &mut buf.up, Activation::Gelu);
        self.down.forward(&buf.up, x, Activation::Identity);
        add_norm(x, &buf.attended, &self.out_norm);
    }
}
