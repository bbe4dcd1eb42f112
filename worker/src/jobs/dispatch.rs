//! The dispatcher: one loop per queue and worker process that moves tickets from the fair queue
//! to apalis, in lane and owner order, only while apalis holds fewer than a window of them.
//!
//! It runs when a job is enqueued (the wake-up message), when one of this process's runs ends
//! (a slot is free), and on the poll interval (due delayed tickets, other processes' slots).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, channel::mpsc};
use fuze_shared::jobs::{QueueName, fair::DispatchRules};
use tokio::sync::{Notify, watch};

use crate::context::SharedContext;

/// A ticket taken for apalis but not handed over this long is put back (its taker died).
const RECOVER_AFTER: Duration = Duration::from_secs(30);
/// How often each dispatcher looks for such tickets.
const RECOVER_EVERY: Duration = Duration::from_secs(10);

/// The "a slot is free" signals of this process's dispatchers, one per queue.
#[derive(Default)]
pub struct Dispatchers {
    freed: [Arc<Notify>; QueueName::ALL.len()],
}

impl Dispatchers {
    fn notify(&self, queue: QueueName) -> &Arc<Notify> {
        let at = QueueName::ALL.iter().position(|q| *q == queue).unwrap_or(0);
        &self.freed[at]
    }

    /// A run of `queue` ended: its dispatcher may hand over another ticket.
    pub fn slot_freed(&self, queue: QueueName) {
        self.notify(queue).notify_one();
    }
}

/// Hands `queue`'s tickets to apalis until `stop` turns true. `window` is how many deliveries
/// apalis may hold waiting at once: this process's concurrency for the queue, so a freed slot
/// finds work at once and a new interactive job waits behind at most that many.
pub async fn run(
    ctx: SharedContext,
    queue: QueueName,
    window: u32,
    mut wakes: mpsc::UnboundedReceiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let config = ctx.queues.apalis_config(queue);
    let (ready, scheduled) = (config.active_jobs_list(), config.scheduled_jobs_set());
    let rules = DispatchRules {
        runner_ready_list: &ready,
        runner_scheduled_set: &scheduled,
        window: window.max(1),
        bulk_every: ctx.config.jobs.bulk_every(),
    };
    let freed = ctx.dispatchers.notify(queue).clone();
    let mut tick = tokio::time::interval(ctx.config.worker.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recovered_at = Instant::now();
    while !*stop.borrow() {
        hand_over(&ctx, queue, rules).await;
        if recovered_at.elapsed() >= RECOVER_EVERY {
            recovered_at = Instant::now();
            match ctx.queues.fair().recover(queue, RECOVER_AFTER).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    queue = queue.as_str(),
                    n,
                    "put back tickets never handed over"
                ),
                Err(e) => ctx.metrics.redis_error("queue", &e),
            }
        }
        tokio::select! {
            _ = freed.notified() => {}
            _ = wakes.next() => {}
            _ = tick.tick() => {}
            changed = stop.changed() => {
                // The runtime is ending (the sender is gone): so is this loop.
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Takes tickets and hands them to apalis until the window is full or no ticket waits.
async fn hand_over(ctx: &SharedContext, queue: QueueName, rules: DispatchRules<'_>) {
    let fair = ctx.queues.fair();
    loop {
        let taken = match fair.dispatch(queue, rules).await {
            Ok(Some(taken)) => taken,
            Ok(None) => return,
            Err(e) => {
                ctx.metrics.redis_error("queue", &e);
                return;
            }
        };
        if let Err(e) = ctx.queues.hand_to_runner(queue, taken.envelope).await {
            // The ticket stays taken; `recover` puts it back.
            ctx.metrics.redis_errors.with_label_values(&["queue"]).inc();
            tracing::warn!(queue = queue.as_str(), error = %format!("{e:#}"), "hand-over failed");
            return;
        }
        if let Err(e) = fair.handed_over(queue, &taken.ticket).await {
            ctx.metrics.redis_error("queue", &e);
        }
        ctx.metrics
            .scheduling
            .dispatched
            .with_label_values(&[queue.as_str()])
            .inc();
    }
}
