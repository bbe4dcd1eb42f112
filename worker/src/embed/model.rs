//! The synchronous model: tokenizer + BERT forward pass + pooling, batched by token length.

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, ensure};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::engine::FuzeBert;
pub use super::engine::dense::resolve as resolve_weights;

/// The engine `Auto` stands for on this CPU: Fuze's where its tiled kernels run (AVX-512),
/// candle's `BertModel` elsewhere.
pub fn resolve_engine(engine: EmbedEngine) -> EmbedEngine {
    match engine {
        EmbedEngine::Auto if super::engine::dense::tiled_kernels_available() => EmbedEngine::Fuze,
        EmbedEngine::Auto => EmbedEngine::Stock,
        other => other,
    }
}
use super::observer::{EmbedObserver, NoopObserver};
use super::passages::Splitter;
use super::plan::{cut_batches, cut_packed_batches, order_by_length, restore_order};
use super::pooling::mean_pool_normalize;
use super::{EmbedEngine, EmbedderConfig};

/// The forward pass in use, chosen by [`EmbedderConfig::engine`].
enum Encoder {
    /// Packed batches (no padding); the default.
    Fuze(FuzeBert),
    /// candle-transformers' model on padded batches.
    Stock(BertModel),
}

/// Synchronous model: weights and tokenizer are loaded once; `embed` may be called repeatedly.
pub struct EmbeddingModel {
    encoder: Encoder,
    tokenizer: Tokenizer,
    device: Device,
    cfg: EmbedderConfig,
    model_id: String,
    dimensions: usize,
    pad_id: u32,
}

/// One tokenized input, truncated to `max_tokens` word pieces including specials.
struct Encoded {
    ids: Vec<u32>,
    truncated: bool,
}

impl EmbeddingModel {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `cfg.model_dir`.
    pub fn load(cfg: &EmbedderConfig) -> Result<Self> {
        let dir = &cfg.model_dir;
        ensure!(
            dir.is_dir(),
            "embedding model directory {} does not exist",
            dir.display()
        );
        let config_path = dir.join("config.json");
        let config: Config = serde_json::from_str(
            &fs::read_to_string(&config_path)
                .with_context(|| format!("reading {}", config_path.display()))?,
        )
        .with_context(|| format!("parsing {}", config_path.display()))?;
        // Positions past the table, or fewer than [CLS] + [SEP] + 1, cannot be embedded.
        ensure!(
            (3..=config.max_position_embeddings).contains(&cfg.max_tokens),
            "max_tokens must be in 3..={}, got {}",
            config.max_position_embeddings,
            cfg.max_tokens
        );
        ensure!(cfg.max_batch_texts > 0, "max_batch_texts must be positive");
        ensure!(cfg.max_text_chars > 0, "max_text_chars must be positive");

        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"), cfg.max_tokens)?;

        let device = Device::Cpu;
        let weights_path = dir.join("model.safetensors");
        ensure!(weights_path.is_file(), "missing {}", weights_path.display());
        // SAFETY: the file is memory-mapped read-only; it must not be truncated or rewritten while
        // mapped. Fuze never writes it, and scripts/setup.sh replaces the folder only when the
        // checksum is wrong, which no running worker could have loaded. Mapping avoids holding a
        // second copy of the weights in memory while the tensors are built.
        #[allow(unsafe_code)]
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&weights_path], DType::F32, &device)? };
        let engine = resolve_engine(cfg.engine);
        let encoder = match engine {
            EmbedEngine::Fuze | EmbedEngine::Auto => {
                FuzeBert::load(vb, &config, cfg.weights).map(Encoder::Fuze)
            }
            EmbedEngine::Stock => BertModel::load(vb, &config)
                .map(Encoder::Stock)
                .map_err(anyhow::Error::from),
        }
        .with_context(|| format!("loading BERT weights from {}", weights_path.display()))?;

        let model_id = cfg.model_id();
        tracing::info!(
            model_id,
            dimensions = config.hidden_size,
            max_tokens = cfg.max_tokens,
            engine = engine.name(),
            weights = resolve_weights(cfg.weights).name(),
            "embedding model loaded"
        );
        Ok(Self {
            encoder,
            tokenizer,
            device,
            cfg: cfg.clone(),
            model_id,
            dimensions: config.hidden_size,
            pad_id: u32::try_from(config.pad_token_id).context("pad_token_id out of range")?,
        })
    }

    /// Length of the output vectors (384 for MiniLM-L6).
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Stable id for cache keys: the model directory's name, e.g. `all-MiniLM-L6-v2`.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The settings this model was loaded with.
    pub fn config(&self) -> &EmbedderConfig {
        &self.cfg
    }

    /// A passage splitter with this model's tokenizer and window.
    pub fn splitter(&self) -> Result<Splitter> {
        Splitter::new(self.tokenizer.clone(), &self.cfg)
    }

    /// Embeds texts in one or more forward passes, returning L2-normalized vectors in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_observed(texts, &NoopObserver)
    }

    /// Like [`embed`](Self::embed), reporting every forward pass to `observer`.
    pub fn embed_observed(
        &self,
        texts: &[&str],
        observer: &dyn EmbedObserver,
    ) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encoded = self.encode(texts)?;
        let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
        // Sorting by length keeps each batch's padding (wasted compute) small.
        let order = order_by_length(&lengths);
        let sorted_lengths: Vec<usize> = order.iter().map(|&i| lengths[i]).collect();

        let (max_texts, budget) = (self.cfg.max_batch_texts, self.cfg.batch_token_budget);
        let batches = match self.encoder {
            // Packed passes cost their real tokens; padded ones texts x longest.
            Encoder::Fuze(_) => cut_packed_batches(&sorted_lengths, max_texts, budget),
            Encoder::Stock(_) => cut_batches(&sorted_lengths, max_texts, budget),
        };
        let mut sorted_vectors = Vec::with_capacity(texts.len());
        for range in batches {
            let batch: Vec<&Encoded> = order[range].iter().map(|&i| &encoded[i]).collect();
            let started = Instant::now();
            let vectors = self.forward(&batch)?;
            observer.batch(
                batch.len(),
                batch.iter().map(|e| e.ids.len()).sum(),
                started.elapsed().as_secs_f64(),
                batch.iter().filter(|e| e.truncated).count(),
            );
            sorted_vectors.extend(vectors);
        }
        Ok(restore_order(&order, sorted_vectors))
    }

    /// Token count after truncation (including specials), and whether truncation happened.
    pub fn count_tokens(&self, text: &str) -> Result<(usize, bool)> {
        let encoded = self.encode(&[text])?;
        let first = encoded
            .first()
            .ok_or_else(|| anyhow!("tokenizer returned no encoding"))?;
        Ok((first.ids.len(), first.truncated))
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        let cut: Vec<(&str, bool)> = texts
            .iter()
            .map(|t| cut_chars(t, self.cfg.max_text_chars))
            .collect();
        // `_fast` skips offset tracking, which we never read.
        let encodings = self
            .tokenizer
            .encode_batch_fast(cut.iter().map(|&(t, _)| t).collect::<Vec<_>>(), true)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        ensure!(
            encodings.len() == texts.len(),
            "tokenizer returned {} encodings for {} texts",
            encodings.len(),
            texts.len()
        );
        Ok(encodings
            .into_iter()
            .zip(cut)
            .map(|(enc, (_, was_cut))| Encoded {
                // The tokenizer keeps the cut-off tail as overflowing encodings.
                truncated: was_cut || !enc.get_overflowing().is_empty(),
                ids: enc.get_ids().to_vec(),
            })
            .collect())
    }

    /// One forward pass over a batch.
    fn forward(&self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>> {
        match &self.encoder {
            Encoder::Fuze(fuze) => {
                let ids: Vec<&[u32]> = batch.iter().map(|e| e.ids.as_slice()).collect();
                fuze.embed(&ids)
            }
            Encoder::Stock(bert) => self.forward_padded(bert, batch),
        }
    }

    /// The stock pass: the batch padded to its longest text, with an attention mask.
    fn forward_padded(&self, bert: &BertModel, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>> {
        let width = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * width);
        let mut mask = Vec::with_capacity(batch.len() * width);
        for e in batch {
            ids.extend_from_slice(&e.ids);
            ids.resize(ids.len() + width - e.ids.len(), self.pad_id);
            mask.resize(mask.len() + e.ids.len(), 1f32);
            mask.resize(mask.len() + width - e.ids.len(), 0f32);
        }
        let shape = (batch.len(), width);
        let input_ids = Tensor::from_vec(ids, shape, &self.device)?;
        // Single-sentence inputs: every token has segment 0.
        let type_ids = input_ids.zeros_like()?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = bert.forward(&input_ids, &type_ids, Some(&mask))?;
        Ok(mean_pool_normalize(&hidden, &mask)?.to_vec2::<f32>()?)
    }
}

/// The shipped tokenizer.json truncates at 128 and pads to a fixed 128; sentence-transformers
/// truncates at `max_tokens` and we pad per batch ourselves, so both settings are replaced.
fn load_tokenizer(path: &Path, max_tokens: usize) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_file(path)
        .map_err(|e| anyhow!("loading tokenizer {}: {e}", path.display()))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_tokens,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| anyhow!("setting tokenizer truncation: {e}"))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// First `max_chars` chars of `text` (on a char boundary), and whether anything was cut.
fn cut_chars(text: &str, max_chars: usize) -> (&str, bool) {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => (&text[..end], true),
        None => (text, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(cut_chars("héllo", 2), ("hé", true));
        assert_eq!(cut_chars("héllo", 5), ("héllo", false));
        assert_eq!(cut_chars("", 3), ("", false));
    }

    #[test]
    fn model_id_is_the_directory_name() {
        let cfg = EmbedderConfig {
            model_dir: "models/all-MiniLM-L6-v2/".into(),
            ..EmbedderConfig::default()
        };
        assert_eq!(cfg.model_id(), "all-MiniLM-L6-v2");
    }
}
