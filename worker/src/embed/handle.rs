//! Async handle: one OS thread owns the model and serves requests queued over a channel.
//!
//! Inference is CPU-bound and would starve the tokio runtime, so it never runs there. While the
//! thread is busy, new requests queue up; it then takes all of them at once so concurrent jobs
//! share forward passes instead of each paying for its own.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};
use std::thread;

use anyhow::{Result, anyhow, ensure};
use tokio::sync::oneshot;

use super::model::EmbeddingModel;
use super::observer::{EmbedObserver, NoopObserver};

/// One drained call takes at most this many texts (a fraction of a second of short texts), so
/// the first request in a long queue is answered without waiting for the whole queue.
const DRAIN_TEXTS: usize = 256;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>>>;

struct Request {
    texts: Vec<String>,
    reply: Reply,
}

struct Inner {
    queue: mpsc::Sender<Request>,
    model_id: String,
    dimensions: usize,
}

/// Cloneable async handle to the embedding thread. The thread exits when the last clone is dropped.
#[derive(Clone)]
pub struct Embedder {
    inner: Arc<Inner>,
}

impl Embedder {
    /// Spawns the embedding thread with no metrics.
    pub fn start(model: EmbeddingModel) -> Self {
        Self::start_with_observer(model, Arc::new(NoopObserver))
    }

    /// Spawns the embedding thread, reporting forward passes and drains to `observer`.
    pub fn start_with_observer(model: EmbeddingModel, observer: Arc<dyn EmbedObserver>) -> Self {
        let model_id = model.model_id().to_owned();
        let dimensions = model.dimensions();
        let drain_limit = DRAIN_TEXTS.max(model.config().max_batch_texts);
        let pass_observer = Arc::clone(&observer);
        Self::spawn(model_id, dimensions, drain_limit, observer, move |texts| {
            model.embed_observed(texts, pass_observer.as_ref())
        })
    }

    /// Generic over the embedding function so the queueing logic is testable without a model.
    fn spawn<F>(
        model_id: String,
        dimensions: usize,
        drain_limit: usize,
        observer: Arc<dyn EmbedObserver>,
        run: F,
    ) -> Self
    where
        F: FnMut(&[&str]) -> Result<Vec<Vec<f32>>> + Send + 'static,
    {
        let (queue, requests) = mpsc::channel();
        let spawned = thread::Builder::new()
            .name("fuze-embed".into())
            .spawn(move || serve(&requests, run, drain_limit, observer.as_ref()));
        if let Err(err) = spawned {
            // The receiver was dropped with the closure, so every embed call reports the failure.
            tracing::error!(%err, "could not spawn the embedding thread");
        }
        Self {
            inner: Arc::new(Inner {
                queue,
                model_id,
                dimensions,
            }),
        }
    }

    /// Embeds `texts`, returning one L2-normalized vector per text, in input order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .queue
            .send(Request { texts, reply })
            .map_err(|_| anyhow!("embedding thread is not running"))?;
        answer
            .await
            .map_err(|_| anyhow!("embedding thread stopped before answering"))?
    }

    /// Stable id for cache keys, see [`EmbeddingModel::model_id`].
    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    /// Length of the output vectors.
    pub fn dimensions(&self) -> usize {
        self.inner.dimensions
    }
}

/// Thread body: blocks for a request, drains whatever else is queued, answers them all.
fn serve<F>(
    requests: &mpsc::Receiver<Request>,
    mut run: F,
    drain_limit: usize,
    observer: &dyn EmbedObserver,
) where
    F: FnMut(&[&str]) -> Result<Vec<Vec<f32>>>,
{
    // `recv` fails only once every `Embedder` clone is gone: time to exit.
    while let Ok(first) = requests.recv() {
        let mut text_count = first.texts.len();
        let mut drained = vec![first];
        while text_count < drain_limit {
            match requests.try_recv() {
                Ok(next) => {
                    text_count += next.texts.len();
                    drained.push(next);
                }
                Err(_) => break,
            }
        }
        // Callers that gave up (timed-out jobs) no longer need their vectors.
        drained.retain(|r| !r.reply.is_closed());
        if drained.is_empty() {
            continue;
        }
        observer.drained(drained.len(), drained.iter().map(|r| r.texts.len()).sum());
        answer(drained, &mut run);
    }
}

/// Embeds all requests in one call and hands each its slice of the result.
fn answer<F>(requests: Vec<Request>, run: &mut F)
where
    F: FnMut(&[&str]) -> Result<Vec<Vec<f32>>>,
{
    let texts: Vec<&str> = requests
        .iter()
        .flat_map(|r| r.texts.iter().map(String::as_str))
        .collect();
    let result = call(run, &texts);
    match result {
        Ok(vectors) => {
            let mut vectors = vectors.into_iter();
            for request in requests {
                let own = vectors.by_ref().take(request.texts.len()).collect();
                // A send error only means the caller gave up meanwhile.
                let _ = request.reply.send(Ok(own));
            }
        }
        // One bad request must not fail the others it was drained with: retry each alone.
        Err(_) if requests.len() > 1 => {
            for request in requests {
                let texts: Vec<&str> = request.texts.iter().map(String::as_str).collect();
                let result = call(run, &texts);
                let _ = request.reply.send(result);
            }
        }
        Err(err) => {
            if let Some(request) = requests.into_iter().next() {
                let _ = request.reply.send(Err(err));
            }
        }
    }
}

/// Runs the embedding function, turning a panic into an error so the thread keeps serving.
fn call<F>(run: &mut F, texts: &[&str]) -> Result<Vec<Vec<f32>>>
where
    F: FnMut(&[&str]) -> Result<Vec<Vec<f32>>>,
{
    let vectors = catch_unwind(AssertUnwindSafe(|| run(texts)))
        .map_err(|_| anyhow!("embedding panicked"))??;
    ensure!(
        vectors.len() == texts.len(),
        "embedding returned {} vectors for {} texts",
        vectors.len(),
        texts.len()
    );
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use anyhow::bail;
    use futures::poll;

    /// Stand-in model: each text becomes `[len]`, so answers are easy to check.
    fn fake(texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.contains(&"bad") {
            bail!("bad input");
        }
        if texts.contains(&"panic") {
            panic!("boom");
        }
        Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
    }

    fn strings(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| (*t).to_owned()).collect()
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(usize, usize)>>);

    impl EmbedObserver for Recorder {
        fn batch(&self, _: usize, _: usize, _: f64, _: usize) {}
        fn drained(&self, requests: usize, texts: usize) {
            if let Ok(mut seen) = self.0.lock() {
                seen.push((requests, texts));
            }
        }
    }

    /// An embedder whose first call blocks until `release` is sent, so later requests pile up
    /// behind it deterministically. `started` fires when that first call begins.
    fn gated(
        drain_limit: usize,
        observer: Arc<dyn EmbedObserver>,
    ) -> (Embedder, mpsc::Sender<()>, mpsc::Receiver<()>) {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let mut first = true;
        let embedder = Embedder::spawn("fake".into(), 1, drain_limit, observer, move |texts| {
            if first {
                first = false;
                let _ = started_tx.send(());
                let _ = release_rx.recv();
            }
            fake(texts)
        });
        (embedder, release_tx, started_rx)
    }

    #[tokio::test]
    async fn answers_in_input_order() -> Result<()> {
        let embedder = Embedder::spawn("fake".into(), 1, 64, Arc::new(NoopObserver), fake);
        assert_eq!(embedder.model_id(), "fake");
        assert_eq!(embedder.dimensions(), 1);
        let out = embedder.embed(strings(&["abc", "a", "abcde"])).await?;
        assert_eq!(out, vec![vec![3.0], vec![1.0], vec![5.0]]);
        assert!(embedder.embed(Vec::new()).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn queued_requests_share_one_call_and_get_their_own_vectors() -> Result<()> {
        let recorder = Arc::new(Recorder::default());
        let (embedder, release, started) = gated(64, recorder.clone());

        // Enqueue the blocker and wait until the thread is stuck in it.
        let mut blocker = Box::pin(embedder.embed(strings(&["x"])));
        assert!(poll!(&mut blocker).is_pending());
        started.recv()?;
        // Polling once enqueues each request; none can finish while the thread is blocked.
        let mut a = Box::pin(embedder.embed(strings(&["aa", "aaaa"])));
        let mut b = Box::pin(embedder.embed(strings(&["bbb"])));
        let mut c = Box::pin(embedder.embed(strings(&["c", "cccccc", "cc"])));
        assert!(poll!(&mut a).is_pending());
        assert!(poll!(&mut b).is_pending());
        assert!(poll!(&mut c).is_pending());
        release.send(())?;

        assert_eq!(blocker.await?, vec![vec![1.0]]);
        assert_eq!(a.await?, vec![vec![2.0], vec![4.0]]);
        assert_eq!(b.await?, vec![vec![3.0]]);
        assert_eq!(c.await?, vec![vec![1.0], vec![6.0], vec![2.0]]);
        let seen = recorder.0.lock().map_err(|_| anyhow!("poisoned"))?.clone();
        assert_eq!(seen, vec![(1, 1), (3, 6)]);
        Ok(())
    }

    #[tokio::test]
    async fn one_bad_request_does_not_fail_its_neighbours() -> Result<()> {
        let (embedder, release, started) = gated(64, Arc::new(NoopObserver));
        // Enqueue the blocker and wait until the thread is stuck in it.
        let mut blocker = Box::pin(embedder.embed(strings(&["x"])));
        assert!(poll!(&mut blocker).is_pending());
        started.recv()?;
        let mut good = Box::pin(embedder.embed(strings(&["ok"])));
        let mut bad = Box::pin(embedder.embed(strings(&["bad"])));
        let mut boom = Box::pin(embedder.embed(strings(&["panic"])));
        assert!(poll!(&mut good).is_pending());
        assert!(poll!(&mut bad).is_pending());
        assert!(poll!(&mut boom).is_pending());
        release.send(())?;

        blocker.await?;
        assert_eq!(good.await?, vec![vec![2.0]]);
        assert!(bad.await.is_err());
        assert!(boom.await.is_err());
        // The thread survived the panic and keeps serving.
        assert_eq!(embedder.embed(strings(&["abc"])).await?, vec![vec![3.0]]);
        Ok(())
    }

    #[tokio::test]
    async fn drain_stops_at_the_limit() -> Result<()> {
        let recorder = Arc::new(Recorder::default());
        let (embedder, release, started) = gated(3, recorder.clone());
        let mut blocker = Box::pin(embedder.embed(strings(&["x"])));
        assert!(poll!(&mut blocker).is_pending());
        started.recv()?;
        let mut queued: Vec<_> = (0..4)
            .map(|_| Box::pin(embedder.embed(strings(&["y", "y"]))))
            .collect();
        for q in &mut queued {
            assert!(poll!(q).is_pending());
        }
        release.send(())?;
        blocker.await?;
        for q in queued {
            assert_eq!(q.await?, vec![vec![1.0], vec![1.0]]);
        }
        let seen = recorder.0.lock().map_err(|_| anyhow!("poisoned"))?.clone();
        // Limit 3 texts: two 2-text requests per drain.
        assert_eq!(seen, vec![(1, 1), (2, 4), (2, 4)]);
        Ok(())
    }
}
