//! The fair queue's scripts against the real Redis: round robin over owners, lanes and the bulk
//! share, delays, the runner's window, deferral, recovery and finishing.

use std::time::{Duration, Instant};

use fuze_shared::{
    jobs::{
        Lane, Owner, QueueName, Ticket,
        fair::{DispatchRules, FairQueue, Place},
    },
    keys::Keys,
    redis_conn,
};
use fuze_tests::TestEnv;
use redis::AsyncCommands;
use serde_json::json;
use uuid::Uuid;

const Q: QueueName = QueueName::Scrape;

struct Fixture {
    fair: FairQueue,
    conn: redis::aio::ConnectionManager,
    ready_list: String,
    scheduled_set: String,
}

async fn fixture() -> Fixture {
    let env = TestEnv::new().await;
    let conn = redis_conn::connection_manager(&env.redis_url)
        .await
        .expect("redis");
    Fixture {
        fair: FairQueue::new(conn.clone(), Keys::new(env.prefix.clone())),
        conn,
        ready_list: format!("{}:test:ready", env.prefix),
        scheduled_set: format!("{}:test:scheduled", env.prefix),
    }
}

impl Fixture {
    fn rules(&self, window: u32, bulk_every: u32) -> DispatchRules<'_> {
        DispatchRules {
            runner_ready_list: &self.ready_list,
            runner_scheduled_set: &self.scheduled_set,
            window,
            bulk_every,
        }
    }

    async fn add(&self, ticket: &str, owner: Owner, lane: Lane, delay: Option<Duration>) {
        let place = if delay.is_some() {
            Place::Front
        } else {
            Place::Back
        };
        let ticket = Ticket {
            queue: Q,
            id: ticket,
            owner,
            lane,
        };
        self.fair
            .enqueue(ticket, &json!({ "n": ticket.id }), delay, place)
            .await
            .expect("enqueue");
    }

    /// Takes tickets (handing each over at once) until none is left; returns their order.
    async fn drain(&self, bulk_every: u32) -> Vec<String> {
        let mut order = Vec::new();
        while let Some(taken) = self
            .fair
            .dispatch(Q, self.rules(1000, bulk_every))
            .await
            .expect("dispatch")
        {
            self.fair
                .handed_over(Q, &taken.ticket)
                .await
                .expect("handed over");
            order.push(taken.ticket);
        }
        order
    }
}

#[tokio::test]
async fn owners_take_turns_whatever_their_backlog() {
    let f = fixture().await;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for i in 0..100 {
        f.add(&format!("a{i}"), Owner::User(a), Lane::Interactive, None)
            .await;
    }
    f.add("b0", Owner::User(b), Lane::Interactive, None).await;
    f.add("b1", Owner::User(b), Lane::Interactive, None).await;
    f.add("c0", Owner::User(c), Lane::Interactive, None).await;
    let order = f.drain(0).await;
    assert_eq!(order.len(), 103);
    // Each owner's own work stays in order, and B and C do not wait behind A's hundred.
    assert_eq!(
        &order[..6],
        ["a0", "b0", "c0", "a1", "b1", "a2"],
        "{order:?}"
    );
    let pending = f.fair.pending(Q).await.expect("pending");
    assert_eq!(pending[0].ready, 0, "the ready count follows the lists");
}

#[tokio::test]
async fn interactive_goes_first_and_bulk_keeps_its_share() {
    let f = fixture().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for i in 0..20 {
        f.add(&format!("bulk{i}"), Owner::User(a), Lane::Bulk, None)
            .await;
        f.add(&format!("mine{i}"), Owner::User(b), Lane::Interactive, None)
            .await;
    }
    // Bulk only when interactive is empty.
    let order = f.drain(0).await;
    assert!(
        order[..20].iter().all(|t| t.starts_with("mine")),
        "{order:?}"
    );

    let f = fixture().await;
    for i in 0..20 {
        f.add(&format!("bulk{i}"), Owner::User(a), Lane::Bulk, None)
            .await;
        f.add(&format!("mine{i}"), Owner::User(b), Lane::Interactive, None)
            .await;
    }
    // One turn in five goes to bulk first: bulk never starves behind a steady interactive flow.
    let order = f.drain(5).await;
    let bulk_in_first_20 = order[..20].iter().filter(|t| t.starts_with("bulk")).count();
    assert_eq!(bulk_in_first_20, 4, "{order:?}");
    let pending = f.fair.pending(Q).await.expect("pending");
    assert_eq!((pending[0].ready, pending[1].ready), (0, 0));
}

#[tokio::test]
async fn a_delayed_ticket_waits_its_delay_then_goes_first() {
    let f = fixture().await;
    let a = Uuid::new_v4();
    f.add(
        "later",
        Owner::User(a),
        Lane::Interactive,
        Some(Duration::from_millis(600)),
    )
    .await;
    let added = Instant::now();
    f.add("now1", Owner::User(a), Lane::Interactive, None).await;
    f.add("now2", Owner::User(a), Lane::Interactive, None).await;
    assert_eq!(f.fair.pending(Q).await.expect("pending")[0].delayed, 1);
    // Only one is taken now: the delayed ticket is not due.
    let first = f
        .fair
        .dispatch(Q, f.rules(1000, 0))
        .await
        .expect("dispatch")
        .expect("one");
    assert_eq!(first.ticket, "now1");
    while added.elapsed() < Duration::from_millis(650) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Due: it goes ahead of the owner's other waiting work (it already had its turn once).
    let order = f.drain(0).await;
    assert_eq!(order, ["later", "now2"]);
}

#[tokio::test]
async fn nothing_is_taken_while_the_runner_holds_a_window() {
    let mut f = fixture().await;
    let a = Uuid::new_v4();
    for i in 0..5 {
        f.add(&format!("t{i}"), Owner::User(a), Lane::Interactive, None)
            .await;
    }
    let _: () = f.conn.rpush(&f.ready_list, "x").await.expect("redis");
    let _: () = f.conn.zadd(&f.scheduled_set, "y", 0).await.expect("redis");
    // Two waiting in the runner, one taken and not handed over yet: a window of 3 is full.
    let taken = f.fair.dispatch(Q, f.rules(3, 0)).await.expect("dispatch");
    assert!(taken.is_some());
    assert_eq!(
        f.fair.dispatch(Q, f.rules(3, 0)).await.expect("dispatch"),
        None
    );
    // Once handed over it no longer counts.
    f.fair
        .handed_over(Q, &taken.expect("taken").ticket)
        .await
        .expect("handed over");
    assert!(
        f.fair
            .dispatch(Q, f.rules(3, 0))
            .await
            .expect("dispatch")
            .is_some()
    );
}

#[tokio::test]
async fn deferred_recovered_and_finished_tickets() {
    let f = fixture().await;
    let a = Uuid::new_v4();
    f.add("t0", Owner::User(a), Lane::Bulk, None).await;
    f.add("t1", Owner::User(a), Lane::Bulk, None).await;
    let t0 = f
        .fair
        .dispatch(Q, f.rules(10, 0))
        .await
        .expect("dispatch")
        .expect("t0");
    assert!(
        f.fair.contains(Q, "t0").await.expect("contains"),
        "alive while it runs"
    );
    // Deferred: it waits, then comes back.
    assert!(
        f.fair
            .defer(Q, &t0.ticket, Duration::from_millis(300))
            .await
            .expect("defer")
    );
    assert_eq!(f.fair.pending(Q).await.expect("pending")[1].delayed, 1);

    // Taken and never handed over (its taker died): recovery puts it back, at the front.
    let t1 = f
        .fair
        .dispatch(Q, f.rules(10, 0))
        .await
        .expect("dispatch")
        .expect("t1");
    assert_eq!(
        f.fair
            .recover(Q, Duration::from_secs(60))
            .await
            .expect("recover"),
        0
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(f.fair.recover(Q, Duration::ZERO).await.expect("recover"), 1);
    let order = f.drain(0).await;
    assert_eq!(
        order,
        ["t0", t1.ticket.as_str()],
        "both back, the due deferral first"
    );

    // Finished: gone, and a finished ticket still listed somewhere is skipped.
    f.fair.finish(Q, "t0").await.expect("finish");
    f.fair.finish(Q, "t1").await.expect("finish");
    assert!(!f.fair.contains(Q, "t0").await.expect("contains"));
    f.add("t2", Owner::User(a), Lane::Bulk, None).await;
    f.add("t3", Owner::User(a), Lane::Bulk, None).await;
    f.fair.finish(Q, "t2").await.expect("finish");
    assert_eq!(f.drain(0).await, ["t3"]);
    assert!(
        !f.fair.defer(Q, "t2", Duration::ZERO).await.expect("defer"),
        "t2 is over"
    );
}
