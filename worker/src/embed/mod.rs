//! Sentence embeddings with candle (all-MiniLM-L6-v2).
//!
//! - [`EmbeddingModel`]: synchronous tokenizer + BERT forward pass + mean pooling; the pass is
//!   Fuze's packed engine (`engine`) or candle's stock `BertModel`, per [`EmbedEngine`].
//! - [`Embedder`]: async, cloneable handle that runs the model on one dedicated OS thread and
//!   coalesces concurrent requests into shared forward passes.
//! - [`EmbedObserver`]: metrics hook called once per forward pass.
//! - [`Splitter`]: a page's text cut into passages of the model's window.

mod engine;
mod handle;
mod model;
mod observer;
mod passages;
mod plan;
mod pooling;

pub use fuze_shared::config::{EmbedEngine, EmbedWeights, EmbedderConfig};
pub use handle::Embedder;
pub use model::{EmbeddingModel, resolve_engine, resolve_weights};
pub use observer::{EmbedObserver, NoopObserver};
pub use passages::{PassageText, Splitter};

/// The engine's kernels, public for `benches/kernels.rs` only.
#[doc(hidden)]
pub mod kernels {
    pub use super::engine::attention::attend;
    pub use super::engine::dense::{Activation, Dense};
}
