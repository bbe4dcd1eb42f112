//! One BERT encoder layer over a packed `[tokens, hidden]` matrix.

use std::ops::Range;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::PackedAttention;
use super::ops;
use super::vector::NormParams;

/// Weights laid out for the packed forward pass; see [`EncoderLayer::load`].
pub(crate) struct EncoderLayer {
    /// Query, key and value projections side by side: `[hidden, 3 * hidden]`.
    qkv: Tensor,
    qkv_bias: Vec<f32>,
    attn_out: Tensor,
    attn_norm: NormParams,
    up: Tensor,
    up_bias: Vec<f32>,
    down: Tensor,
    out_norm: NormParams,
    heads: usize,
    head_dim: usize,
}

/// A dense layer's weight as `[in, out]`, ready to be the right operand of `x.matmul`.
fn dense(vb: &VarBuilder, out_dim: usize, in_dim: usize) -> Result<Tensor> {
    vb.get((out_dim, in_dim), "weight")?.t()?.contiguous()
}

fn norm(vb: VarBuilder, bias: Tensor, hidden: usize, eps: f64) -> Result<NormParams> {
    Ok(NormParams {
        bias: bias.to_vec1()?,
        gamma: vb.get(hidden, "weight")?.to_vec1()?,
        beta: vb.get(hidden, "bias")?.to_vec1()?,
        eps: eps as f32,
    })
}

impl EncoderLayer {
    /// Loads `encoder.layer.N` in the Hugging Face BERT naming.
    ///
    /// Three things happen once here instead of on every pass: Q, K and V are concatenated into
    /// one matmul (one wide gemm beats three narrow ones), the weights are stored `[in, out]`,
    /// and the query side is pre-multiplied by `1 / sqrt(head_dim)` so attention needs no scaling.
    pub fn load(
        vb: VarBuilder,
        hidden: usize,
        intermediate: usize,
        heads: usize,
        eps: f64,
    ) -> Result<Self> {
        let head_dim = hidden / heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let attn = vb.pp("attention");
        let own = attn.pp("self");
        let (q, k, v) = (own.pp("query"), own.pp("key"), own.pp("value"));
        let qkv = Tensor::cat(
            &[
                (dense(&q, hidden, hidden)? * scale)?,
                dense(&k, hidden, hidden)?,
                dense(&v, hidden, hidden)?,
            ],
            1,
        )?;
        let qkv_bias = Tensor::cat(
            &[
                (q.get(hidden, "bias")? * scale)?,
                k.get(hidden, "bias")?,
                v.get(hidden, "bias")?,
            ],
            0,
        )?
        .to_vec1()?;
        let out = attn.pp("output");
        let attn_out = dense(&out.pp("dense"), hidden, hidden)?;
        let attn_norm = norm(
            out.pp("LayerNorm"),
            out.pp("dense").get(hidden, "bias")?,
            hidden,
            eps,
        )?;
        let up_vb = vb.pp("intermediate").pp("dense");
        let down_vb = vb.pp("output");
        Ok(Self {
            qkv,
            qkv_bias,
            attn_out,
            attn_norm,
            up: dense(&up_vb, intermediate, hidden)?,
            up_bias: up_vb.get(intermediate, "bias")?.to_vec1()?,
            down: dense(&down_vb.pp("dense"), hidden, intermediate)?,
            out_norm: norm(
                down_vb.pp("LayerNorm"),
                down_vb.pp("dense").get(hidden, "bias")?,
                hidden,
                eps,
            )?,
            heads,
            head_dim,
        })
    }

    /// `x`: `[tokens, hidden]` of the texts in `spans`; returns the layer's output, same shape.
    pub fn forward(&self, x: &Tensor, spans: &[Range<usize>]) -> Result<Tensor> {
        let qkv = x.matmul(&self.qkv)?;
        let ctx = qkv.apply_op1_no_bwd(&PackedAttention {
            spans,
            heads: self.heads,
            head_dim: self.head_dim,
            qkv_bias: &self.qkv_bias,
        })?;
        drop(qkv);
        let attended = ctx.matmul(&self.attn_out)?;
        ops::add_norm(&attended, x, &self.attn_norm)?;
        let up = attended.matmul(&self.up)?;
        ops::bias_gelu(&up, &self.up_bias)?;
        let out = up.matmul(&self.down)?;
        ops::add_norm(&out, &attended, &self.out_norm)?;
        Ok(out)
    }
}
