//! The Fuze BERT encoder: the same model as candle's `BertModel`, computed on packed batches.
//!
//! - [`pack`]: a batch's tokens back to back, no padding.
//! - [`dense`]: the dense layers' kernel, on weights packed at load time (by default bf16 where
//!   the CPU has AVX512-BF16, else f16).
//! - [`bf16`]: bfloat16 operands and the AVX512-BF16 inner loop, for `FUZE_EMBED_WEIGHTS=bf16`.
//! - [`layer`]: one encoder layer; fused QKV projection, dense layers on the packed matrix.
//! - [`attention`]: per-sequence attention read straight from the fused QKV matrix.
//! - [`ops`]: residual + LayerNorm over the rows.
//! - [`vector`]: the row kernels (exp, erf-GELU, softmax, LayerNorm), SIMD-dispatched at run time.
//!
//! candle only reads the checkpoint; the pass runs on plain buffers.

pub(super) mod attention;
mod bf16;
pub(super) mod dense;
mod layer;
mod ops;
mod pack;
mod vector;

use std::sync::Mutex;

use anyhow::{Result, bail, ensure};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};
use fuze_shared::config::EmbedWeights;

use layer::{Buffers, EncoderLayer};
use pack::Packed;
use vector::NormParams;

/// The encoder with its weights; [`FuzeBert::embed`] returns pooled sentence vectors.
pub(crate) struct FuzeBert {
    /// `[vocab][hidden]`.
    word: Vec<f32>,
    /// `[positions][hidden]`, with the token-type-0 row added: the only segment Fuze uses.
    position: Vec<f32>,
    embed_norm: NormParams,
    layers: Vec<EncoderLayer>,
    hidden: usize,
    /// Activation buffers kept between passes; a second concurrent pass allocates its own.
    buffers: Mutex<Buffers>,
}

impl FuzeBert {
    /// Loads the weights of a Hugging Face BERT checkpoint (optionally under a `bert.` prefix),
    /// storing the dense layers' weights as `weights` says.
    pub fn load(vb: VarBuilder, config: &Config, weights: EmbedWeights) -> Result<Self> {
        ensure!(
            config.hidden_act == HiddenAct::Gelu,
            "the Fuze engine implements the exact (erf) GELU only, not {:?}",
            config.hidden_act
        );
        ensure!(
            config.position_embedding_type == PositionEmbeddingType::Absolute,
            "the Fuze engine implements absolute position embeddings only"
        );
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        ensure!(
            heads > 0 && hidden.is_multiple_of(heads),
            "hidden size {hidden} is not a multiple of {heads} heads"
        );
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let emb = vb.pp("embeddings");
        let token_type = emb
            .pp("token_type_embeddings")
            .get((config.type_vocab_size, hidden), "weight")?
            .get(0)?
            .to_vec1::<f32>()?;
        let mut position = emb
            .pp("position_embeddings")
            .get((config.max_position_embeddings, hidden), "weight")?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for row in position.chunks_exact_mut(hidden) {
            for (p, t) in row.iter_mut().zip(&token_type) {
                *p += t;
            }
        }
        let norm = emb.pp("LayerNorm");
        let embed_norm = NormParams {
            gamma: norm.get(hidden, "weight")?.to_vec1()?,
            beta: norm.get(hidden, "bias")?.to_vec1()?,
            eps: config.layer_norm_eps as f32,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                EncoderLayer::load(
                    vb.pp(format!("encoder.layer.{i}")),
                    hidden,
                    config.intermediate_size,
                    heads,
                    config.layer_norm_eps,
                    weights,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word: emb
                .pp("word_embeddings")
                .get((config.vocab_size, hidden), "weight")?
                .flatten_all()?
                .to_vec1()?,
            position,
            embed_norm,
            layers,
            hidden,
            buffers: Mutex::default(),
        })
    }

    /// Last hidden states of a packed batch: `[tokens][hidden]`.
    fn hidden_states(&self, packed: &Packed) -> Result<Vec<f32>> {
        let h = self.hidden;
        let tokens = packed.tokens();
        let (mut x, mut pos) = (vec![0f32; tokens * h], vec![0f32; tokens * h]);
        for (t, (&id, &p)) in packed.ids.iter().zip(&packed.positions).enumerate() {
            let (id, p) = (id as usize, p as usize);
            let (Some(word), Some(position)) = (
                self.word.get(id * h..(id + 1) * h),
                self.position.get(p * h..(p + 1) * h),
            ) else {
                bail!("token id {id} or position {p} is outside the model's tables");
            };
            x[t * h..(t + 1) * h].copy_from_slice(word);
            pos[t * h..(t + 1) * h].copy_from_slice(position);
        }
        ops::add_norm(&mut x, &pos, &self.embed_norm);
        if let Some(first) = self.layers.first() {
            let mut own = Buffers::default();
            let mut kept = self.buffers.try_lock();
            let buffers = match kept.as_deref_mut() {
                Ok(kept) => kept,
                Err(_) => &mut own,
            };
            buffers.fit(tokens, first);
            for layer in &self.layers {
                layer.forward(&mut x, &packed.spans, buffers);
            }
        }
        Ok(x)
    }

    /// Mean-pooled, L2-normalized vectors of `texts` (token ids with specials), in input order.
    /// All texts go through one pass; the caller bounds the batch.
    pub fn embed(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if texts.iter().any(|t| t.is_empty()) {
            bail!("cannot embed a text with no tokens");
        }
        let packed = Packed::new(texts);
        let hidden = self.hidden_states(&packed)?;
        let dim = self.hidden;
        Ok(packed
            .spans
            .iter()
            .map(|span| mean_normalized(&hidden[span.start * dim..span.end * dim], dim))
            .collect())
    }
}

/// Mean of the `dim`-wide rows of `rows`, scaled to unit length (as sentence-transformers does).
fn mean_normalized(rows: &[f32], dim: usize) -> Vec<f32> {
    let mut mean = vec![0f32; dim];
    for row in rows.chunks_exact(dim) {
        for (m, x) in mean.iter_mut().zip(row) {
            *m += x;
        }
    }
    let count = (rows.len() / dim).max(1) as f32;
    for m in &mut mean {
        *m /= count;
    }
    // Same epsilon as torch.nn.functional.normalize.
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    for m in &mut mean {
        *m /= norm;
    }
    mean
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{D, DType, Device, Tensor};
    use candle_transformers::models::bert::BertModel;

    use super::*;

    /// A small BERT with random weights: 2 layers, 2 heads of 32 (the head size the fast paths
    /// are written for), so the test needs no model files.
    fn random_bert() -> Result<(Config, VarBuilder<'static>)> {
        let dev = Device::Cpu;
        let config = Config {
            vocab_size: 60,
            hidden_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 128,
            max_position_embeddings: 300,
            layer_norm_eps: 1e-12,
            ..Config::default()
        };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let mut shapes: Vec<(String, Vec<usize>)> = vec![
            ("embeddings.word_embeddings.weight".into(), vec![60, h]),
            ("embeddings.position_embeddings.weight".into(), vec![300, h]),
            ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ];
        let norm = |p: &str| {
            [
                (format!("{p}.LayerNorm.weight"), vec![h]),
                (format!("{p}.LayerNorm.bias"), vec![h]),
            ]
        };
        shapes.extend(norm("embeddings"));
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            for (name, out, inp) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", i, h),
                ("output.dense", h, i),
            ] {
                shapes.push((format!("{p}.{name}.weight"), vec![out, inp]));
                shapes.push((format!("{p}.{name}.bias"), vec![out]));
            }
            shapes.extend(norm(&format!("{p}.attention.output")));
            shapes.extend(norm(&format!("{p}.output")));
        }
        let mut tensors = HashMap::new();
        for (name, shape) in shapes {
            // LayerNorm scales near 1, everything else small, as in a trained model.
            let mean = if name.ends_with("LayerNorm.weight") {
                1.0
            } else {
                0.0
            };
            let t = Tensor::randn(mean, 0.2f32, shape, &dev)?;
            tensors.insert(name, t);
        }
        Ok((config, VarBuilder::from_tensors(tensors, DType::F32, &dev)))
    }

    /// The stock path: padded batch, attention mask, masked mean, L2 norm.
    fn padded_reference(bert: &BertModel, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let dev = Device::Cpu;
        let width = texts.iter().map(|t| t.len()).max().unwrap_or(0);
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for t in texts {
            ids.extend_from_slice(t);
            ids.resize(ids.len() + width - t.len(), 0);
            mask.extend((0..width).map(|k| if k < t.len() { 1f32 } else { 0.0 }));
        }
        let ids = Tensor::from_vec(ids, (texts.len(), width), &dev)?;
        let mask = Tensor::from_vec(mask, (texts.len(), width), &dev)?;
        let hidden = bert.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let summed = hidden.broadcast_mul(&mask.unsqueeze(D::Minus1)?)?.sum(1)?;
        let mean = summed.broadcast_div(&mask.sum_keepdim(1)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(mean.broadcast_div(&norm)?.to_vec2()?)
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    }

    #[test]
    fn packed_pass_equals_padded_pass_on_mixed_lengths() -> Result<()> {
        let (config, vb) = random_bert()?;
        let stock = BertModel::load(vb.clone(), &config)?;
        // Lengths from 1 to 256 in one batch: most rows of the padded pass are padding.
        let texts: Vec<Vec<u32>> = [7usize, 1, 256, 33, 4, 16, 17, 90]
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|k| ((k * 7 + i * 13) % 60) as u32).collect())
            .collect();
        let refs: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
        let want = padded_reference(&stock, &refs)?;
        for weights in [EmbedWeights::F32, EmbedWeights::F16, EmbedWeights::Bf16] {
            let fuze = FuzeBert::load(vb.clone(), &config, weights)?;
            let got = fuze.embed(&refs)?;
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                // f32 weights compute the same numbers; f16 and bf16 round the operands.
                let (diff, bound) = match weights {
                    EmbedWeights::F32 => (f64::from(max_abs_diff(g, w)), 1e-5),
                    _ => {
                        let dot: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum();
                        (1.0 - f64::from(dot), 1e-4)
                    }
                };
                assert!(
                    diff < bound,
                    "{weights:?} text {i} ({} tokens): {diff:e}",
                    refs[i].len()
                );
            }
            // Packing is per text and the kernels never mix rows: a text's vector is the same
            // bits alone as in any batch.
            for i in [1, 3, 2] {
                assert_eq!(fuze.embed(&[refs[i]])?[0], got[i], "{weights:?} text {i}");
            }
        }
        Ok(())
    }

    #[test]
    fn refuses_empty_texts_and_other_activations() -> Result<()> {
        let (config, vb) = random_bert()?;
        let fuze = FuzeBert::load(vb.clone(), &config, EmbedWeights::default())?;
        assert!(fuze.embed(&[]).map(|v| v.is_empty())?);
        let with_empty: [&[u32]; 2] = [&[1, 2], &[]];
        assert!(fuze.embed(&with_empty).is_err());
        let relu = Config {
            hidden_act: HiddenAct::Relu,
            ..config
        };
        assert!(FuzeBert::load(vb, &relu, EmbedWeights::default()).is_err());
        Ok(())
    }

    #[test]
    fn pooling_averages_rows_then_normalizes() {
        let v = mean_normalized(&[3.0, 0.0, 3.0, 8.0], 2);
        assert!(
            (v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6,
            "{v:?}"
        );
    }
}
