//! Single flight: concurrent loads of one key in a process run one loader; the others wait for its
//! value.
//!
//! Values are shared; errors are not (callers' error types need not be `Clone`). When the running
//! loader fails or its caller goes away, one waiting caller runs its own loader next, so a failing
//! source still sees at most one load of a key at a time.

use std::{
    future::Future,
    hash::Hash,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use dashmap::DashMap;
use tokio::sync::OnceCell;

/// Loads in flight, by key.
#[derive(Debug)]
pub struct SingleFlight<K: Hash + Eq, V> {
    flights: DashMap<K, Arc<OnceCell<V>>>,
    loads: AtomicU64,
    shared: AtomicU64,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    pub fn new() -> Self {
        Self {
            flights: DashMap::new(),
            loads: AtomicU64::new(0),
            shared: AtomicU64::new(0),
        }
    }

    /// Runs `load` unless a load of `key` is already running, in which case its value is awaited.
    /// Returns the value and whether it came from another caller's load.
    pub async fn run<F, Fut, E>(&self, key: K, load: F) -> Result<(V, bool), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let flight = Flight {
            cell: self.flights.entry(key.clone()).or_default().clone(),
            flights: &self.flights,
            key,
        };
        let mut ran = false;
        let result = flight
            .cell
            .get_or_try_init(|| {
                ran = true;
                self.loads.fetch_add(1, Relaxed);
                load()
            })
            .await
            .cloned();
        let value = result?;
        if !ran {
            self.shared.fetch_add(1, Relaxed);
        }
        Ok((value, !ran))
    }

    /// Loaders run.
    pub fn loads(&self) -> u64 {
        self.loads.load(Relaxed)
    }

    /// Callers served by another caller's load.
    pub fn shared(&self) -> u64 {
        self.shared.load(Relaxed)
    }

    /// Keys with a load running or waited on.
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }
}

/// A caller's handle on a flight. Dropping it (also when the caller is cancelled) removes the flight
/// once it has a value, or when no one else waits on it. Clones of the cell are only made under the
/// map's shard lock, so the count seen here cannot grow meanwhile.
struct Flight<'a, K: Hash + Eq, V> {
    flights: &'a DashMap<K, Arc<OnceCell<V>>>,
    key: K,
    cell: Arc<OnceCell<V>>,
}

impl<K: Hash + Eq, V> Drop for Flight<'_, K, V> {
    fn drop(&mut self) {
        self.flights.remove_if(&self.key, |_, current| {
            Arc::ptr_eq(current, &self.cell)
                && (current.initialized() || Arc::strong_count(current) <= 2)
        });
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::AtomicUsize, time::Duration};

    use super::*;

    #[tokio::test]
    async fn concurrent_loads_of_one_key_run_once() {
        let flight = Arc::new(SingleFlight::<String, u32>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flight, calls) = (flight.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                flight
                    .run("k".to_owned(), || async {
                        calls.fetch_add(1, Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>(42)
                    })
                    .await
            }));
        }
        let mut shared = 0;
        for t in tasks {
            let (v, was_shared) = t.await.expect("task").expect("load");
            assert_eq!(v, 42);
            shared += usize::from(was_shared);
        }
        assert_eq!(calls.load(Relaxed), 1);
        assert_eq!(shared, 49);
        assert_eq!(flight.shared(), 49);
        assert_eq!(flight.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_failed_load_is_not_shared_and_the_next_caller_loads() {
        let flight = SingleFlight::<&str, u32>::new();
        let failed: Result<(u32, bool), &str> = flight.run("k", || async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
        assert_eq!(flight.in_flight(), 0);
        let ok: Result<(u32, bool), &str> = flight.run("k", || async { Ok(1) }).await;
        assert_eq!(ok, Ok((1, false)));
    }

    #[tokio::test]
    async fn waiters_take_over_when_the_loader_is_cancelled() {
        let flight = Arc::new(SingleFlight::<&str, u32>::new());
        let leader = {
            let flight = flight.clone();
            tokio::spawn(async move {
                flight
                    .run("k", || async {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        Ok::<_, ()>(1)
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let follower = {
            let flight = flight.clone();
            tokio::spawn(async move { flight.run("k", || async { Ok::<_, ()>(2) }).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("follower not stuck")
            .expect("task");
        assert_eq!(got, Ok((2, false)));
        assert_eq!(flight.in_flight(), 0);
    }
}
