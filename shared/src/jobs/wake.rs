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
        let mut delay = Duration::from_millis(100);
        loop {
            match self.listen(&redis_url, &channel).await {
                Ok(()) => tracing::warn!("wake-up subscription ended; reconnecting"),
                Err(e) => tracing::warn!(error = %e, "wake-up subscription failed; reconnecting"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn listen(&self, redis_url: &str, channel: &str) -> redis::RedisResult<()> {
        let client = redis::Client::open(redis_url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
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
        if woke { Poll::Ready(Some(())) } else { Poll::Pending }
    }
}
