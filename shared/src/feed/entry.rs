//! Feed entries as Redis stores and publishes them, and the replay of a user's stream.

use std::{fmt, str::FromStr, sync::LazyLock};

use redis::{Script, aio::ConnectionManager};
use uuid::Uuid;

use super::Replay;

/// A stream entry id (`<ms>-<seq>`), the SSE event id: ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EventId {
    pub ms: u64,
    pub seq: u64,
}

impl EventId {
    pub const ZERO: Self = Self { ms: 0, seq: 0 };
}

impl FromStr for EventId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (ms, seq) = s.trim().split_once('-').ok_or(())?;
        Ok(Self {
            ms: ms.parse().map_err(drop)?,
            seq: seq.parse().map_err(drop)?,
        })
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One event of one user's feed, as a stream sends it: `data` is the event's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: EventId,
    pub user_id: Uuid,
    pub name: String,
    pub data: String,
}

impl Entry {
    /// Reads a message of the feed channel: `user id name json` (the JSON holds no raw newline
    /// and the first three hold no space).
    pub fn parse_message(message: &str) -> Option<Self> {
        let mut parts = message.splitn(4, ' ');
        let user_id = parts.next()?.parse().ok()?;
        let id = parts.next()?.parse().ok()?;
        let name = parts.next()?.to_owned();
        let data = parts.next()?.to_owned();
        Some(Self {
            id,
            user_id,
            name,
            data,
        })
    }
}

/// In one step: whether the stream lost anything after ARGV[1] (trimmed past it, or gone
/// altogether while the client held an id), else every entry after it.
/// Returns {0, tip} to resync, or {1, tip, id, name, data, id, name, data, ...}.
static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function newer(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams > bms or (ams == bms and aseq > bseq)
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[1] == '0-0' then return {1, '0-0'} end
  return {0, '0-0'}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local tip, deleted = '0-0', '0-0'
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then tip = info[i + 1] end
  if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
end
if newer(deleted, ARGV[1]) then return {0, tip} end
local out = {1, tip}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+')) do
  local name, data = '', ''
  for i = 1, #e[2], 2 do
    if e[2][i] == 'n' then name = e[2][i + 1] end
    if e[2][i] == 'd' then data = e[2][i + 1] end
  end
  table.insert(out, e[1])
  table.insert(out, name)
  table.insert(out, data)
end
return out
",
    )
});

pub(super) async fn replay(
    conn: &mut ConnectionManager,
    stream: &str,
    user_id: Uuid,
    after: EventId,
) -> redis::RedisResult<Replay> {
    let reply: Vec<redis::Value> = REPLAY
        .key(stream)
        .arg(after.to_string())
        .invoke_async(conn)
        .await?;
    let text = |v: &redis::Value| -> String {
        redis::from_redis_value::<String>(v.clone()).unwrap_or_default()
    };
    let status: i64 = reply
        .first()
        .and_then(|v| redis::from_redis_value(v.clone()).ok())
        .unwrap_or(0);
    let tip = reply
        .get(1)
        .map(text)
        .and_then(|t| t.parse().ok())
        .unwrap_or(EventId::ZERO);
    if status == 0 {
        return Ok(Replay::Resync { tip });
    }
    let entries = reply[2.min(reply.len())..]
        .chunks_exact(3)
        .filter_map(|c| {
            Some(Entry {
                id: text(&c[0]).parse().ok()?,
                user_id,
                name: text(&c[1]),
                data: text(&c[2]),
            })
        })
        .collect();
    Ok(Replay::Missed(entries))
}

pub(super) async fn tip(conn: &mut ConnectionManager, stream: &str) -> redis::RedisResult<EventId> {
    let newest: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(newest
        .ids
        .first()
        .and_then(|e| e.id.parse().ok())
        .unwrap_or(EventId::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_as_redis_orders_them() {
        let a: EventId = "1700000000000-5".parse().expect("id");
        let b: EventId = "1700000000001-0".parse().expect("id");
        assert!(a < b);
        assert_eq!(a.to_string(), "1700000000000-5");
        assert!("nonsense".parse::<EventId>().is_err());
        assert!("12-".parse::<EventId>().is_err());
    }

    #[test]
    fn channel_messages_split_into_their_four_parts() {
        let user = Uuid::from_u128(7);
        let msg = format!("{user} 5-1 job {{\"type\":\"job\",\"a b\":1}}");
        let entry = Entry::parse_message(&msg).expect("parses");
        assert_eq!(entry.user_id, user);
        assert_eq!(entry.id, EventId { ms: 5, seq: 1 });
        assert_eq!(entry.name, "job");
        assert_eq!(entry.data, "{\"type\":\"job\",\"a b\":1}");
        assert!(Entry::parse_message("not-a-uuid 5-1 job {}").is_none());
    }
}
