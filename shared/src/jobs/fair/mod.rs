//! The fair queue in front of each apalis queue: lanes, and round robin over owners.
//!
//! apalis-redis runs one FIFO list per queue and ignores priorities, so one user's 5,000 queued
//! links would delay every other user's save. Jobs are therefore enqueued here, not in apalis:
//! per stage and lane, one list of tickets per owner (a user, or `system`) and a ring of the
//! owners that have any. The worker's dispatcher takes tickets one at a time in lane and owner
//! order (`dispatch.lua`) and hands them to apalis only while apalis's own ready list is short,
//! so apalis still runs every job (concurrency, heartbeats, orphan recovery, shutdown) but the
//! order is decided here, at the moment a worker has room. All state is in Redis and every
//! change is one Lua script, so any number of api and worker processes share it.
//!
//! A ticket names one scheduled run of a job stage (the job record's `task_id`). It stays in
//! the items hash from enqueue until the run that took it finishes, so "is this ticket alive"
//! is one `HEXISTS` (the reconciler's question). apalis only ever sees deliveries: the
//! envelope under a fresh task id per hand-over, so a ticket can be deferred and handed over
//! again without ever reusing an apalis id.

use std::time::Duration;

use redis::{AsyncCommands, Script, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::QueueName;
use crate::{
    clock::{millis, now_ms},
    keys::Keys,
};

/// Which lane a job waits in. Interactive work (a user's own save or refresh) runs ahead of
/// bulk work (imports, re-crawls, backfills, warm-ups), which keeps a guaranteed share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Lane {
    Interactive,
    Bulk,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Interactive, Lane::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Bulk => "bulk",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == name)
    }
}

/// Whose turn a ticket waits for: fair share is per owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    User(Uuid),
    /// Work no user asked for (the clock's warm-ups).
    System,
}

impl Owner {
    fn key(self) -> String {
        match self {
            Self::User(id) => id.to_string(),
            Self::System => "system".to_owned(),
        }
    }
}

/// Where a stage's run enters the queues: its ticket, whose turn it waits for and in which lane.
#[derive(Debug, Clone, Copy)]
pub struct Ticket<'a> {
    pub queue: QueueName,
    pub id: &'a str,
    pub owner: Owner,
    pub lane: Lane,
}

/// What travels through the fair queue and apalis: the ticket and its place, then the job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<J> {
    pub ticket: String,
    pub owner: String,
    pub lane: Lane,
    /// When a deferred ticket comes back: the time it was told to wait for (Unix ms). A host
    /// that promised this run a turn at that time keeps the promise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promised: Option<u64>,
    pub job: J,
}

/// Where an enqueued ticket goes in its owner's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// New work waits behind the owner's other work.
    Back,
    /// Work that already had its turn (a retry, a deferral) goes first when due.
    Front,
}

/// Tickets waiting in one lane of one stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LanePending {
    /// Runnable now, in owners' lists.
    pub ready: i64,
    /// Waiting for a due time (retries, deferrals, delayed jobs).
    pub delayed: i64,
}

/// Ticket taken by [`FairQueue::dispatch`], to be handed to the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub ticket: String,
    pub envelope: Vec<u8>,
}

impl Taken {
    /// The envelope to hand over: as enqueued, plus the time the ticket was promised if it
    /// comes back from a deferral.
    fn with_promise(ticket: String, envelope: Vec<u8>, promised: &str) -> Self {
        let promised: Option<u64> = promised.parse().ok();
        let envelope = match promised {
            None => envelope,
            Some(at) => match serde_json::from_slice::<serde_json::Value>(&envelope) {
                Ok(serde_json::Value::Object(mut fields)) => {
                    fields.insert("promised".to_owned(), at.into());
                    serde_json::to_vec(&fields).unwrap_or(envelope)
                }
                _ => envelope,
            },
        };
        Self { ticket, envelope }
    }
}

/// How a stage's tickets are taken.
#[derive(Debug, Clone, Copy)]
pub struct DispatchRules<'a> {
    /// The runner's ready list (apalis `{queue}:active`).
    pub runner_ready_list: &'a str,
    /// The runner's scheduled set (apalis `{queue}:scheduled`), where every push lands first.
    pub runner_scheduled_set: &'a str,
    /// Most tickets waiting in the runner at once (its ready list plus hand-overs in progress).
    pub window: u32,
    /// Every n-th turn goes to bulk first (0: bulk only runs when interactive is empty).
    pub bulk_every: u32,
}

/// Delayed tickets promoted per lane and call; the rest follow on the next call.
const PROMOTE_MAX: u32 = 500;

/// One Redis layout, used by the api (enqueue) and the workers (everything else).
#[derive(Clone)]
pub struct FairQueue {
    conn: ConnectionManager,
    keys: Keys,
}

struct StageKeys {
    items: String,
    dispatching: String,
    turn: String,
    ready_counts: String,
    promised: String,
}

struct LaneKeys {
    ring: String,
    delayed: String,
    owner_prefix: String,
}

impl FairQueue {
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self { conn, keys }
    }

    fn stage(&self, queue: QueueName) -> StageKeys {
        let base = self.keys.fair(queue.as_str());
        StageKeys {
            items: format!("{base}:items"),
            dispatching: format!("{base}:dispatching"),
            turn: format!("{base}:turn"),
            ready_counts: format!("{base}:ready"),
            promised: format!("{base}:promised"),
        }
    }

    fn lane(&self, queue: QueueName, lane: Lane) -> LaneKeys {
        let base = format!("{}:{}", self.keys.fair(queue.as_str()), lane.as_str());
        LaneKeys {
            ring: format!("{base}:ring"),
            delayed: format!("{base}:delayed"),
            owner_prefix: format!("{base}:owner:"),
        }
    }

    /// Adds a ticket: runnable now, or after `delay`.
    pub async fn enqueue<J: Serialize>(
        &self,
        ticket: Ticket<'_>,
        job: &J,
        delay: Option<Duration>,
        place: Place,
    ) -> anyhow::Result<()> {
        let envelope = Envelope {
            ticket: ticket.id.to_owned(),
            owner: ticket.owner.key(),
            lane: ticket.lane,
            promised: None,
            job,
        };
        let bytes = serde_json::to_vec(&envelope)?;
        let stage = self.stage(ticket.queue);
        let keys = self.lane(ticket.queue, ticket.lane);
        let now = now_ms();
        let due = delay.map_or(0, |d| now + millis(d));
        let mut conn = self.conn.clone();
        let _: i64 = script(Scripts::Enqueue)
            .key(&stage.items)
            .key(&keys.delayed)
            .key(&keys.ring)
            .key(&keys.owner_prefix)
            .key(&stage.ready_counts)
            .arg(ticket.id)
            .arg(bytes)
            .arg(&envelope.owner)
            .arg(ticket.lane.as_str())
            .arg(due)
            .arg(now)
            .arg(match place {
                Place::Back => "back",
                Place::Front => "front",
            })
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Takes the next ticket in lane and owner order, or `None` when there is none or the
    /// runner already has `window` waiting. The caller hands it to the runner, then calls
    /// [`Self::handed_over`]; a ticket it never hands over comes back through [`Self::recover`].
    pub async fn dispatch(
        &self,
        queue: QueueName,
        rules: DispatchRules<'_>,
    ) -> redis::RedisResult<Option<Taken>> {
        let stage = self.stage(queue);
        let [interactive, bulk] = Lane::ALL.map(|l| self.lane(queue, l));
        let mut conn = self.conn.clone();
        let taken: Option<(String, Vec<u8>, String)> = script(Scripts::Dispatch)
            .key(&stage.items)
            .key(&stage.dispatching)
            .key(&stage.turn)
            .key(&stage.ready_counts)
            .key(rules.runner_ready_list)
            .key(rules.runner_scheduled_set)
            .key(&interactive.ring)
            .key(&interactive.delayed)
            .key(&interactive.owner_prefix)
            .key(&bulk.ring)
            .key(&bulk.delayed)
            .key(&bulk.owner_prefix)
            .key(&stage.promised)
            .arg(now_ms())
            .arg(rules.window)
            .arg(rules.bulk_every)
            .arg(PROMOTE_MAX)
            .invoke_async(&mut conn)
            .await?;
        Ok(taken
            .map(|(ticket, envelope, promised)| Taken::with_promise(ticket, envelope, &promised)))
    }

    /// The ticket is in the runner's hands now.
    pub async fn handed_over(&self, queue: QueueName, ticket: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        conn.zrem(self.stage(queue).dispatching, ticket).await
    }

    /// Puts back tickets taken more than `after` ago and never handed over. Returns how many.
    pub async fn recover(&self, queue: QueueName, after: Duration) -> redis::RedisResult<u64> {
        let stage = self.stage(queue);
        let [interactive, bulk] = Lane::ALL.map(|l| self.lane(queue, l));
        let mut conn = self.conn.clone();
        script(Scripts::Recover)
            .key(&stage.items)
            .key(&stage.dispatching)
            .key(&stage.ready_counts)
            .key(&interactive.ring)
            .key(&interactive.delayed)
            .key(&interactive.owner_prefix)
            .key(&bulk.ring)
            .key(&bulk.delayed)
            .key(&bulk.owner_prefix)
            .arg(now_ms().saturating_sub(millis(after)))
            .invoke_async(&mut conn)
            .await
    }

    /// Sends a live ticket back to wait for `delay` (it keeps its place in no list meanwhile).
    /// Returns false when the ticket is no longer alive.
    pub async fn defer(
        &self,
        queue: QueueName,
        ticket: &str,
        delay: Duration,
    ) -> redis::RedisResult<bool> {
        let stage = self.stage(queue);
        let [interactive, bulk] = Lane::ALL.map(|l| self.lane(queue, l));
        let mut conn = self.conn.clone();
        let deferred: i64 = script(Scripts::Defer)
            .key(&stage.items)
            .key(&stage.dispatching)
            .key(&interactive.delayed)
            .key(&bulk.delayed)
            .key(&stage.promised)
            .arg(ticket)
            .arg(now_ms() + millis(delay))
            .invoke_async(&mut conn)
            .await?;
        Ok(deferred == 1)
    }

    /// The ticket's run is over (whatever its outcome): forget it.
    pub async fn finish(&self, queue: QueueName, ticket: &str) -> redis::RedisResult<()> {
        let stage = self.stage(queue);
        let [interactive, bulk] = Lane::ALL.map(|l| self.lane(queue, l));
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hdel(&stage.items, ticket)
            .hdel(&stage.promised, ticket)
            .zrem(&stage.dispatching, ticket)
            .zrem(&interactive.delayed, ticket)
            .zrem(&bulk.delayed, ticket)
            .query_async(&mut conn)
            .await
    }

    /// Whether the ticket is alive: waiting, delayed, or taken by a run not yet finished.
    pub async fn contains(&self, queue: QueueName, ticket: &str) -> redis::RedisResult<bool> {
        let mut conn = self.conn.clone();
        conn.hexists(self.stage(queue).items, ticket).await
    }

    /// Tickets waiting per lane (for metrics and the admin view), in one round trip.
    pub async fn pending(&self, queue: QueueName) -> redis::RedisResult<[LanePending; 2]> {
        let stage = self.stage(queue);
        let [interactive, bulk] = Lane::ALL.map(|l| self.lane(queue, l));
        let mut conn = self.conn.clone();
        let (ready, delayed_i, delayed_b): (Vec<Option<i64>>, i64, i64) = redis::pipe()
            .cmd("HMGET")
            .arg(&stage.ready_counts)
            .arg(Lane::Interactive.as_str())
            .arg(Lane::Bulk.as_str())
            .zcard(&interactive.delayed)
            .zcard(&bulk.delayed)
            .query_async(&mut conn)
            .await?;
        let ready_of = |i: usize| ready.get(i).copied().flatten().unwrap_or(0).max(0);
        Ok([
            LanePending {
                ready: ready_of(0),
                delayed: delayed_i,
            },
            LanePending {
                ready: ready_of(1),
                delayed: delayed_b,
            },
        ])
    }
}

#[derive(Clone, Copy)]
enum Scripts {
    Enqueue,
    Dispatch,
    Recover,
    Defer,
}

/// The scripts, loaded once per process (redis-rs sends EVALSHA, and the source on NOSCRIPT).
fn script(which: Scripts) -> redis::ScriptInvocation<'static> {
    use std::sync::LazyLock;
    static ENQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("enqueue.lua")));
    static DISPATCH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("dispatch.lua")));
    static RECOVER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("recover.lua")));
    static DEFER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("defer.lua")));
    match which {
        Scripts::Enqueue => ENQUEUE.prepare_invoke(),
        Scripts::Dispatch => DISPATCH.prepare_invoke(),
        Scripts::Recover => RECOVER.prepare_invoke(),
        Scripts::Defer => DEFER.prepare_invoke(),
    }
}
