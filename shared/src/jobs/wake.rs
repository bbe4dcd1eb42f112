//! Fast pickup for idle workers.
//!
//! apalis-redis only re-fetches on its heartbeat timer (tens of seconds when idle), and its interval
//! strategy re-arms its timer without polling it, so a wake-up can be lost. Fuze wakes workers in two
//! ways: a Redis pub/sub message published after every push, and a short interval whose timer is
//! always polled after it fires, so one of them is always armed.

use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use apalis_core::backend::ext::poll_strategy::{PollSnapshot, PollStrategy};
use futures::{StreamExt, channel::mpsc};
use tokio::time::{Interval, MissedTickBehavior};

use super::queue::QueueName;

type Subscribers = Vec<(QueueName, mpsc::UnboundedSender<()>)>;

/// Fans wake-ups from the Redis subscription out to every worker of a queue in this process.
#[derive(Clone, Default)]
pub struct WakeHub {
    subscribers: Arc<Mutex<Subscribers>>,
}

impl WakeHub {
    pub fn subscribe(&self, queue: QueueName) -> mpsc::UnboundedReceiver<()> {
        let (tx, rx) = mpsc::unbounded();
        self.lock().push((queue, tx));
        rx
    }

    /// Wakes the workers of `queue`, or of every queue when `None` (after a reconnect: pushes may
    /// have been published while we were not listening).
    pub fn wake(&self, queue: Option<QueueName>) {
        self.lock().retain(|(q, tx)| {
            if queue.is_none_or(|wanted| wanted == *q) {
                tx.unbounded_send(()).is_ok()
            } else {
                !tx.is_closed()
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers> {
        // A poisoned lock only means a panic elsewhere mid-push; the list itself is still valid.
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Listens on the wake channel until the process ends, reconnecting with backoff.
    pub async fn run_subscriber(self, redis_url: String, channel: String) {
        const FIRST_DELAY: Duration = Duration::from_millis(100);
        let mut delay = FIRST_DELAY;
        loop {
            let mut subscribed = false;
            match self.listen(&redis_url, &channel, &mut subscribed).await {
                Ok(()) => tracing::warn!("wake-up subscription ended; reconnecting"),
                Err(e) => tracing::warn!(error = %e, "wake-up subscription failed; reconnecting"),
            }
            if subscribed {
                // The backoff is for an unreachable Redis; a subscription that worked starts over,
                // or one long outage would slow every later reconnect to the 5 s cap.
                delay = FIRST_DELAY;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn listen(
        &self,
        redis_url: &str,
        channel: &str,
        subscribed: &mut bool,
    ) -> redis::RedisResult<()> {
        let client = redis::Client::open(redis_url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        *subscribed = true;
        self.wake(None);
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let name: String = msg.get_payload().unwrap_or_default();
            if let Some(queue) = QueueName::parse(&name) {
                self.wake(Some(queue));
            }
        }
        Ok(())
    }
}

/// Poll strategy: wake on a pushed message or on the interval, whichever comes first.
pub struct WakeOrInterval {
    wakes: mpsc::UnboundedReceiver<()>,
    interval: Interval,
}

impl WakeOrInterval {
    pub fn new(wakes: mpsc::UnboundedReceiver<()>, every: Duration) -> Self {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { wakes, interval }
    }
}

impl PollStrategy for WakeOrInterval {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut woke = false;
        // Drain until Pending so the waker is registered for the next message.
        while let Poll::Ready(Some(())) = self.wakes.poll_next_unpin(cx) {
            woke = true;
        }
        // Same for the timer: after a tick, poll again so the next tick is armed (the upstream bug).
        while self.interval.poll_tick(cx).is_ready() {
            woke = true;
        }
        if woke {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        task::{Wake, Waker},
    };

    use super::*;

    /// A waker that only counts how often it was woken.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Harness {
        strategy: WakeOrInterval,
        counter: Arc<CountingWaker>,
        waker: Waker,
    }

    impl Harness {
        fn new(every: Duration) -> (Self, mpsc::UnboundedSender<()>) {
            let (tx, rx) = mpsc::unbounded();
            let counter = Arc::new(CountingWaker::default());
            let waker = Waker::from(counter.clone());
            (
                Self {
                    strategy: WakeOrInterval::new(rx, every),
                    counter,
                    waker,
                },
                tx,
            )
        }

        fn poll(&mut self) -> Poll<Option<()>> {
            let mut cx = Context::from_waker(&self.waker);
            self.strategy.poll_drive(&mut cx, &PollSnapshot::default())
        }

        fn wakes(&self) -> usize {
            self.counter.0.load(Ordering::SeqCst)
        }
    }

    /// Lets the (paused) clock's timer wheel fire whatever is due and deliver its wake-ups.
    async fn advance(d: Duration) {
        tokio::time::advance(d).await;
        tokio::task::yield_now().await;
    }

    #[tokio::test(start_paused = true)]
    async fn every_interval_tick_wakes_the_worker_even_after_a_tick_was_consumed() {
        let every = Duration::from_millis(100);
        let (mut h, _tx) = Harness::new(every);
        // The first tick of a tokio interval is immediate.
        assert_eq!(h.poll(), Poll::Ready(Some(())));
        // Nothing new: pending, and (the contract) a wake-up is armed for the next tick.
        assert_eq!(h.poll(), Poll::Pending);
        for tick in 1..=10 {
            let before = h.wakes();
            advance(every / 2).await;
            assert_eq!(
                h.wakes(),
                before,
                "tick {tick}: woken before the interval elapsed"
            );
            advance(every / 2).await;
            assert!(
                h.wakes() > before,
                "tick {tick}: the interval elapsed but the waker was never woken (lost wake-up)"
            );
            // The worker wakes, polls, and the strategy hands out the tick. It is NOT polled again
            // before the next tick: the strategy itself must have re-armed and polled its timer.
            assert_eq!(h.poll(), Poll::Ready(Some(())), "tick {tick}");
        }
        // And it does not report ticks that did not happen.
        assert_eq!(h.poll(), Poll::Pending);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_message_wakes_the_worker_at_once_every_time() {
        // A long interval, so only messages can explain the wake-ups.
        let every = Duration::from_secs(3600);
        let (mut h, tx) = Harness::new(every);
        assert_eq!(h.poll(), Poll::Ready(Some(())), "first interval tick");
        assert_eq!(h.poll(), Poll::Pending);
        for round in 1..=5 {
            let before = h.wakes();
            tx.unbounded_send(()).expect("receiver alive");
            assert!(
                h.wakes() > before,
                "round {round}: a message did not wake the worker"
            );
            // Several messages before the next poll collapse into one fetch.
            tx.unbounded_send(()).expect("receiver alive");
            assert_eq!(h.poll(), Poll::Ready(Some(())), "round {round}");
            assert_eq!(
                h.poll(),
                Poll::Pending,
                "round {round}: messages were drained"
            );
        }
        // Messages and ticks mix: after a message was consumed, the interval still wakes.
        let before = h.wakes();
        advance(every).await;
        assert!(
            h.wakes() > before,
            "the interval stopped waking after messages"
        );
        assert_eq!(h.poll(), Poll::Ready(Some(())));
        // A message after a consumed tick also still wakes.
        let before = h.wakes();
        tx.unbounded_send(()).expect("receiver alive");
        assert!(h.wakes() > before);
        assert_eq!(h.poll(), Poll::Ready(Some(())));
    }
}
