//! Embedding stale bookmarks again in the current embedding space ([`crate::embedding`]): one
//! pass at a time per space, run as a chain of bulk-lane jobs that each embed a batch and hand on
//! to the next from where they stopped, with the pass's progress in a Redis hash that admins read
//! (`GET /api/v1/admin/reindex`).
//!
//! A pass is identified by a random id: a pass taken over after it stalled gets a new one, and a
//! late job of the old chain, finding another id in the hash, ends without doing anything.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{JobQueues, Lane, Owner, QueueName, Ticket, queue::new_task_id};

/// How long a finished pass's progress stays readable.
const FINISHED_TTL: Duration = Duration::from_secs(30 * 86_400);

/// One run of a reindex pass: the next batch of stale bookmarks after `after` (by id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReindexJob {
    /// The embedding space's name the bookmarks are embedded into.
    pub space: String,
    /// The pass this run belongs to.
    pub pass: String,
    /// The last bookmark id the previous run handled.
    pub after: Option<Uuid>,
}

/// A pass's progress, as admins see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub pass: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set once the pass went through every bookmark.
    pub finished_at: Option<DateTime<Utc>>,
    /// Stale bookmarks counted when the pass started.
    pub stale_at_start: u64,
    /// Bookmarks embedded again so far.
    pub done: u64,
    /// Bookmarks that could not be (left stale; the next pass tries them again).
    pub failed: u64,
    /// The last bookmark id handled.
    pub cursor: Option<Uuid>,
}

/// What the watcher should do about a space with `stale` bookmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing stale, or a pass is under way, or the last pass left only what it failed on.
    Wait,
    /// A new pass from the first bookmark.
    Start,
    /// The running pass went silent for longer than the stall limit: go on from its cursor.
    TakeOver,
}

/// The decision of [`Next`], from the stale count and the last pass's progress.
pub fn next_step(
    stale: u64,
    progress: Option<&Progress>,
    now: DateTime<Utc>,
    stall: Duration,
) -> Next {
    if stale == 0 {
        return Next::Wait;
    }
    match progress {
        None => Next::Start,
        Some(p) if p.finished_at.is_some() => {
            // Rows the last pass failed on alone do not start another pass at every check.
            if stale > p.failed {
                Next::Start
            } else {
                Next::Wait
            }
        }
        Some(p) => {
            let silent = (now - p.updated_at).to_std().unwrap_or_default();
            if silent > stall {
                Next::TakeOver
            } else {
                Next::Wait
            }
        }
    }
}

/// The progress of the pass into `space`, if one ever ran (or its record has not expired).
pub async fn progress(queues: &JobQueues, space: &str) -> anyhow::Result<Option<Progress>> {
    let mut conn = queues.connection();
    let key = queues.keys().reindex(space);
    let fields: HashMap<String, String> = conn
        .hgetall(&key)
        .await
        .with_context(|| format!("HGETALL {key}"))?;
    Ok(parse_progress(&fields))
}

fn parse_progress(fields: &HashMap<String, String>) -> Option<Progress> {
    let time = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
    };
    let count = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(Progress {
        pass: fields.get("pass")?.clone(),
        started_at: time("started_at")?,
        updated_at: time("updated_at")?,
        finished_at: time("finished_at"),
        stale_at_start: count("stale_at_start"),
        done: count("done"),
        failed: count("failed"),
        cursor: fields.get("cursor").and_then(|c| c.parse().ok()),
    })
}

/// Starts a pass (or takes one over) unless another process is starting one right now; returns
/// whether this call did. `hold` is how long the start is reserved for this caller.
pub async fn start(
    queues: &JobQueues,
    space: &str,
    stale: u64,
    take_over: Option<&Progress>,
    hold: Duration,
) -> anyhow::Result<bool> {
    let mut conn = queues.connection();
    let keys = queues.keys();
    let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
    let reserved: Option<String> = redis::cmd("SET")
        .arg(keys.reindex_starting(space))
        .arg(1)
        .arg("NX")
        .arg("PX")
        .arg(hold_ms)
        .query_async(&mut conn)
        .await
        .context("reserving the reindex start")?;
    if reserved.is_none() {
        return Ok(false);
    }
    let pass = new_task_id();
    let now = Utc::now().timestamp_millis();
    let key = keys.reindex(space);
    let mut pipe = redis::pipe();
    pipe.atomic();
    if take_over.is_none() {
        pipe.del(&key).ignore();
        pipe.hset_multiple(
            &key,
            &[
                ("started_at", now.to_string()),
                ("stale_at_start", stale.to_string()),
                ("done", "0".to_owned()),
                ("failed", "0".to_owned()),
            ],
        )
        .ignore();
    }
    pipe.hset_multiple(
        &key,
        &[("pass", pass.clone()), ("updated_at", now.to_string())],
    )
    .ignore()
    .persist(&key)
    .ignore();
    let _: () = pipe
        .query_async(&mut conn)
        .await
        .with_context(|| format!("starting reindex pass in {key}"))?;
    let job = ReindexJob {
        space: space.to_owned(),
        pass,
        after: take_over.and_then(|p| p.cursor),
    };
    enqueue(queues, &job).await?;
    Ok(true)
}

/// Whether `pass` is still the pass of `space` (a run of a superseded pass does nothing).
pub async fn is_current(queues: &JobQueues, space: &str, pass: &str) -> anyhow::Result<bool> {
    let mut conn = queues.connection();
    let current: Option<String> = conn
        .hget(queues.keys().reindex(space), "pass")
        .await
        .context("reading the reindex pass")?;
    Ok(current.as_deref() == Some(pass))
}

/// Records a run's batch: counts, cursor, and whether the pass is finished.
pub async fn record_batch(
    queues: &JobQueues,
    space: &str,
    done: u64,
    failed: u64,
    cursor: Option<Uuid>,
    finished: bool,
) -> anyhow::Result<()> {
    let mut conn = queues.connection();
    let key = queues.keys().reindex(space);
    let now = Utc::now().timestamp_millis().to_string();
    let mut pipe = redis::pipe();
    pipe.atomic()
        .hincr(&key, "done", done)
        .ignore()
        .hincr(&key, "failed", failed)
        .ignore()
        .hset(&key, "updated_at", &now)
        .ignore();
    if let Some(cursor) = cursor {
        pipe.hset(&key, "cursor", cursor.to_string()).ignore();
    }
    if finished {
        pipe.hset(&key, "finished_at", &now)
            .ignore()
            .expire(&key, FINISHED_TTL.as_secs() as i64)
            .ignore();
    }
    let _: () = pipe
        .query_async(&mut conn)
        .await
        .with_context(|| format!("recording reindex progress in {key}"))?;
    Ok(())
}

/// Enqueues a run in the bulk lane: users' own saves go first.
pub async fn enqueue(queues: &JobQueues, job: &ReindexJob) -> anyhow::Result<()> {
    let id = new_task_id();
    let ticket = Ticket {
        queue: QueueName::Reindex,
        id: &id,
        owner: Owner::System,
        lane: Lane::Bulk,
    };
    queues.enqueue(ticket, job, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(updated_ago_s: i64, finished: bool, failed: u64) -> Progress {
        let now = Utc::now();
        let updated = now - chrono::Duration::seconds(updated_ago_s);
        Progress {
            pass: "p".into(),
            started_at: updated,
            updated_at: updated,
            finished_at: finished.then_some(updated),
            stale_at_start: 10,
            done: 10 - failed,
            failed,
            cursor: None,
        }
    }

    #[test]
    fn a_pass_starts_when_rows_are_stale_and_none_runs() {
        let stall = Duration::from_secs(600);
        let now = Utc::now();
        assert_eq!(next_step(0, None, now, stall), Next::Wait);
        assert_eq!(next_step(5, None, now, stall), Next::Start);
        // Running and recently heard of: leave it.
        assert_eq!(
            next_step(5, Some(&progress(10, false, 0)), now, stall),
            Next::Wait
        );
        // Silent past the stall limit: take it over.
        assert_eq!(
            next_step(5, Some(&progress(900, false, 0)), now, stall),
            Next::TakeOver
        );
        // Finished, and only the rows it failed on are stale: wait.
        assert_eq!(
            next_step(2, Some(&progress(10, true, 2)), now, stall),
            Next::Wait
        );
        // Finished, and new stale rows appeared since: a new pass.
        assert_eq!(
            next_step(3, Some(&progress(10, true, 2)), now, stall),
            Next::Start
        );
    }

    #[test]
    fn progress_reads_back_from_its_hash_fields() {
        let cursor = Uuid::from_u128(7);
        let fields: HashMap<String, String> = [
            ("pass", "abc"),
            ("started_at", "1700000000000"),
            ("updated_at", "1700000005000"),
            ("stale_at_start", "12"),
            ("done", "5"),
            ("failed", "1"),
            ("cursor", &cursor.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let p = parse_progress(&fields).expect("complete record");
        assert_eq!(p.pass, "abc");
        assert_eq!((p.stale_at_start, p.done, p.failed), (12, 5, 1));
        assert_eq!(p.cursor, Some(cursor));
        assert_eq!(p.finished_at, None);
        assert_eq!((p.updated_at - p.started_at).num_seconds(), 5);
        assert_eq!(parse_progress(&HashMap::new()), None);
    }
}
