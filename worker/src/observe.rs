//! Prometheus metrics for the embedder thread.

use fuze_shared::metrics::Metrics;

use crate::embed::EmbedObserver;

pub struct PromEmbedObserver {
    metrics: Metrics,
}

impl PromEmbedObserver {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl EmbedObserver for PromEmbedObserver {
    fn batch(&self, texts: usize, tokens: usize, seconds: f64, truncated: usize) {
        let m = &self.metrics;
        m.embed_texts.inc_by(texts as u64);
        m.embed_tokens.inc_by(tokens as u64);
        m.embed_truncated.inc_by(truncated as u64);
        m.embed_batch_size.observe(texts as f64);
        m.embed_batch_tokens.observe(tokens as f64);
        m.embed_duration.observe(seconds);
    }
}
