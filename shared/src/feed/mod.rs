//! The user's live feed: what happens to their jobs, imports and bookmarks, pushed to their open
//! event streams (`GET /api/v1/events`).
//!
//! Every event is appended to a capped Redis stream of its user, whose entry id becomes the SSE
//! event id, and published on the feed channel by the same script. So each api instance hears
//! every user's events in stream order, whichever process wrote them, and a client that
//! reconnects with `Last-Event-ID` is replayed what it missed from the stream. Where the stream
//! was trimmed past that id (or expired), the client is told to resync instead.
//!
//! Best effort, like invalidation: a write never fails because its event could not be sent.

mod entry;
mod streams;

pub use entry::{Entry, EventId};
pub use streams::{OpenStreams, StreamSlot};

use chrono::{DateTime, Utc};
use redis::{Script, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use uuid::Uuid;

use crate::{
    config::FeedConfig, domain::JobState, imports::ImportState, jobs::JobRecord, keys::Keys,
};

/// What a user's event stream carries; `type` is also the SSE event name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedEvent {
    /// One of the user's jobs changed state or stage (the fields `GET /jobs/{id}` answers that
    /// change). Crawls of an import are reported by its progress instead.
    Job {
        job_id: String,
        kind: String,
        stage: Option<String>,
        state: JobState,
        attempts: i32,
        bookmark_id: Option<Uuid>,
        error_code: Option<String>,
        updated_at: DateTime<Utc>,
    },
    /// An import moved on: its state and how many of its entries are final.
    Import {
        import_id: Uuid,
        state: ImportState,
        entries: i64,
        finished: i64,
        failed: i64,
    },
    /// A bookmark was saved, fetched, embedded, edited or deleted.
    Bookmark {
        bookmark_id: Uuid,
        change: BookmarkChange,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookmarkChange {
    /// Its content, status or fields changed: read it again.
    Updated,
    Deleted,
}

impl FeedEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Job { .. } => "job",
            Self::Import { .. } => "import",
            Self::Bookmark { .. } => "bookmark",
        }
    }

    pub fn job(job: &JobRecord) -> Self {
        Self::Job {
            job_id: job.id.clone(),
            kind: job.kind.clone(),
            stage: job.stage.clone(),
            state: job.state,
            attempts: job.attempts,
            bookmark_id: job.bookmark_id,
            error_code: job.error_code.clone(),
            updated_at: job.updated_at,
        }
    }
}

/// Appends to the user's stream, keeps its newest `retain` entries (kept `retain_for` after the
/// last event) and publishes `user id event-name json` on the channel, as one step. The oldest
/// go by XDEL rather than XADD's MAXLEN: only XDEL records the stream's `max-deleted-entry-id`,
/// which tells a replay that it has a gap.
static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local id = redis.call('XADD', KEYS[1], '*', 'n', ARGV[4], 'd', ARGV[5])
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
if excess > 0 then
  local ids = {}
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', math.min(excess, 1000))) do
    table.insert(ids, e[1])
  end
  redis.call('XDEL', KEYS[1], unpack(ids))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[3] .. ' ' .. id .. ' ' .. ARGV[4] .. ' ' .. ARGV[5])
return id
",
    )
});

/// Where events are written: the key names and the retention.
#[derive(Debug, Clone)]
pub struct Feed {
    keys: Keys,
    config: FeedConfig,
}

impl Feed {
    pub fn new(keys: Keys, config: FeedConfig) -> Self {
        Self { keys, config }
    }

    pub fn config(&self) -> &FeedConfig {
        &self.config
    }

    /// Sends the event to the user's streams; logs and carries on when Redis does not answer.
    pub async fn publish(&self, conn: &mut ConnectionManager, user_id: Uuid, event: &FeedEvent) {
        if let Err(e) = self.try_publish(conn, user_id, event).await {
            tracing::warn!(error = %format!("{e:#}"), kind = event.name(), "feed event not sent");
        }
    }

    /// As [`Feed::publish`], with its error and the new entry's id.
    pub async fn try_publish(
        &self,
        conn: &mut ConnectionManager,
        user_id: Uuid,
        event: &FeedEvent,
    ) -> anyhow::Result<String> {
        let data = serde_json::to_string(event)?;
        let retain_ms = u64::try_from(self.config.retain_for.as_millis()).unwrap_or(u64::MAX);
        let id: String = PUBLISH
            .key(self.keys.feed_stream(user_id))
            .key(self.keys.feed_channel())
            .arg(self.config.retain_events)
            .arg(retain_ms.max(1))
            .arg(user_id.to_string())
            .arg(event.name())
            .arg(data)
            .invoke_async(conn)
            .await?;
        Ok(id)
    }

    /// What the user's stream holds after `after`, oldest first, or `Resync` when some of it is
    /// gone (trimmed or expired).
    pub async fn replay(
        &self,
        conn: &mut ConnectionManager,
        user_id: Uuid,
        after: EventId,
    ) -> redis::RedisResult<Replay> {
        entry::replay(conn, &self.keys.feed_stream(user_id), user_id, after).await
    }

    /// The id of the user's newest event (`0-0` when there is none): a new stream starts there.
    pub async fn tip(
        &self,
        conn: &mut ConnectionManager,
        user_id: Uuid,
    ) -> redis::RedisResult<EventId> {
        entry::tip(conn, &self.keys.feed_stream(user_id)).await
    }
}

/// What a reconnecting client missed.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Everything after its last id, oldest first (possibly nothing).
    Missed(Vec<Entry>),
    /// Some of it is no longer kept: it must read its state again, then follow from `tip`.
    Resync { tip: EventId },
}
