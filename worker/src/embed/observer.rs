//! Metrics hook; the worker plugs Prometheus in here.

/// Called from the embedding thread, so implementations must be cheap and must not block.
pub trait EmbedObserver: Send + Sync {
    /// One forward pass: texts in it, real (unpadded) tokens, wall time of tensor building +
    /// forward + pooling, and how many of its texts were truncated.
    fn batch(&self, texts: usize, tokens: usize, seconds: f64, truncated: usize);

    /// The [`Embedder`](super::Embedder) thread drained `requests` queued requests holding `texts`
    /// texts into one embed call (shows how much concurrent jobs share forward passes).
    fn drained(&self, requests: usize, texts: usize) {
        let _ = (requests, texts);
    }
}

/// Observer that records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl EmbedObserver for NoopObserver {
    fn batch(&self, _texts: usize, _tokens: usize, _seconds: f64, _truncated: usize) {}
}
