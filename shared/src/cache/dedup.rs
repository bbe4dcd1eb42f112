//! Request deduplication: the same submission (user, action, payload) repeated within a short
//! window (a double click, a client retry) does the work once; every copy gets the first result.
//!
//! The window starts when the first copy arrives and restarts when its work finishes, so a copy
//! that comes while the work is still running, or just after it, is absorbed. A failed piece of
//! work is forgotten at once: the next copy tries again.

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use cached::{Cached, TimedSizedCache};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::keys::hash_parts;

/// Identity of a submission: who, what, and a hash of the payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey {
    user: Uuid,
    action: Box<str>,
    payload_hash: Box<str>,
}

impl DedupKey {
    pub fn new(user: Uuid, action: &str, payload: &[u8]) -> Self {
        Self {
            user,
            action: action.into(),
            payload_hash: hash_parts(&[payload]).into(),
        }
    }
}

/// Settings of a [`RequestDedup`].
#[derive(Debug, Clone)]
pub struct DedupConfig {
    pub window: Duration,
    /// Submissions remembered at most (least recently seen dropped first).
    pub capacity: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(2),
            capacity: 10_000,
        }
    }
}

type Slot<T> = Arc<OnceCell<T>>;

/// Absorbs repeated submissions within a window.
pub struct RequestDedup<T> {
    recent: Mutex<TimedSizedCache<DedupKey, Slot<T>>>,
    deduplicated: AtomicU64,
}

impl<T> std::fmt::Debug for RequestDedup<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestDedup")
            .field("deduplicated", &self.deduplicated)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> RequestDedup<T> {
    pub fn new(config: DedupConfig) -> Self {
        Self {
            recent: Mutex::new(TimedSizedCache::with_size_and_lifespan(
                config.capacity.max(1),
                config.window,
            )),
            deduplicated: AtomicU64::new(0),
        }
    }

    /// Runs `work` unless the same submission ran or is running within the window; returns its
    /// result and whether it was a duplicate.
    pub async fn run<F, Fut, E>(&self, key: DedupKey, work: F) -> Result<(T, bool), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let slot = {
            let mut recent = self.lock();
            match recent.cache_get(&key) {
                Some(slot) => slot.clone(),
                None => {
                    let slot = Slot::default();
                    recent.cache_set(key.clone(), slot.clone());
                    slot
                }
            }
        };
        let mut ran = false;
        let result = slot
            .get_or_try_init(|| {
                ran = true;
                work()
            })
            .await
            .cloned();
        if ran {
            let mut recent = self.lock();
            let current = recent
                .cache_get(&key)
                .is_some_and(|s| Arc::ptr_eq(s, &slot));
            match &result {
                // Restart the window from now.
                Ok(_) if current => {
                    recent.cache_set(key, slot);
                }
                Err(_) if current => {
                    recent.cache_remove(&key);
                }
                _ => {}
            }
        } else if result.is_ok() {
            self.deduplicated.fetch_add(1, Relaxed);
        }
        result.map(|value| (value, !ran))
    }

    /// Submissions absorbed so far.
    pub fn deduplicated(&self) -> u64 {
        self.deduplicated.load(Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TimedSizedCache<DedupKey, Slot<T>>> {
        // The cache is only touched by complete calls under the lock; a poisoned one is still valid.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn dedup(window_ms: u64) -> Arc<RequestDedup<u64>> {
        Arc::new(RequestDedup::new(DedupConfig {
            window: Duration::from_millis(window_ms),
            capacity: 100,
        }))
    }

    #[tokio::test]
    async fn double_submissions_do_one_piece_of_work() {
        let d = dedup(2000);
        let calls = Arc::new(AtomicUsize::new(0));
        let user = Uuid::new_v4();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (d, calls) = (d.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                d.run(DedupKey::new(user, "recommend", b"p1"), || async {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    Ok::<_, ()>(calls.fetch_add(1, Relaxed) as u64 + 100)
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task").expect("work").0, 100);
        }
        // Just after it finished: still absorbed.
        let again = d
            .run(DedupKey::new(user, "recommend", b"p1"), || async {
                Ok::<_, ()>(0)
            })
            .await;
        assert_eq!(again, Ok((100, true)));
        assert_eq!(calls.load(Relaxed), 1);
        assert_eq!(d.deduplicated(), 5);
    }

    #[tokio::test]
    async fn different_users_actions_or_payloads_are_separate() {
        let d = dedup(2000);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let run = |k: DedupKey, v: u64| {
            let d = d.clone();
            async move { d.run(k, || async move { Ok::<_, ()>(v) }).await }
        };
        assert_eq!(run(DedupKey::new(a, "x", b"1"), 1).await, Ok((1, false)));
        assert_eq!(run(DedupKey::new(b, "x", b"1"), 2).await, Ok((2, false)));
        assert_eq!(run(DedupKey::new(a, "y", b"1"), 3).await, Ok((3, false)));
        assert_eq!(run(DedupKey::new(a, "x", b"2"), 4).await, Ok((4, false)));
        assert_eq!(run(DedupKey::new(a, "x", b"1"), 5).await, Ok((1, true)));
    }

    #[tokio::test]
    async fn after_the_window_the_work_runs_again() {
        let d = dedup(50);
        let k = DedupKey::new(Uuid::new_v4(), "x", b"1");
        assert_eq!(
            d.run(k.clone(), || async { Ok::<_, ()>(1) }).await,
            Ok((1, false))
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(d.run(k, || async { Ok::<_, ()>(2) }).await, Ok((2, false)));
    }

    #[tokio::test]
    async fn failures_are_not_remembered() {
        let d = dedup(2000);
        let k = DedupKey::new(Uuid::new_v4(), "x", b"1");
        assert_eq!(
            d.run(k.clone(), || async { Err("boom") }).await,
            Err("boom")
        );
        assert_eq!(
            d.run(k, || async { Ok::<_, &str>(7) }).await,
            Ok((7, false))
        );
    }
}
