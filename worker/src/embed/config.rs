//! Embedder settings (the worker maps its env config onto this).

use std::path::PathBuf;

/// Settings for the embedder (mapped from env config by the worker).
#[derive(Debug, Clone)]
pub struct EmbedderConfig {
    /// Directory holding `config.json`, `model.safetensors` and `tokenizer.json`.
    pub model_dir: PathBuf,
    /// Truncation in word pieces, including `[CLS]` and `[SEP]`.
    pub max_tokens: usize,
    /// Most texts in one forward pass.
    pub max_batch_texts: usize,
    /// Most padded tokens (texts x longest text) in one forward pass.
    pub batch_token_budget: usize,
    /// Inputs are cut to this many chars before tokenizing, so huge pages cannot stall the tokenizer.
    pub max_text_chars: usize,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            model_dir: PathBuf::from("models/all-MiniLM-L6-v2"),
            max_tokens: 256,
            max_batch_texts: 32,
            batch_token_budget: 2_048,
            max_text_chars: 20_000,
        }
    }
}
