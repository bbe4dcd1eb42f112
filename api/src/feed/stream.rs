//! One open event stream: replay, then follow the user's events live, with heartbeats.
//!
//! Every event carries its stream id as the SSE `id`, and a stream never sends an id at or below
//! one it sent, so replayed and live events neither repeat nor cross. The first frame (`ready`,
//! or `resync` when what the client missed is no longer kept) carries the id to resume from.

use std::time::Duration;

use bytes::Bytes;
use fuze_shared::feed::{Entry, EventId, Feed, OpenStreams, Replay, StreamSlot};
use redis::aio::ConnectionManager;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use uuid::Uuid;

use super::hub::{Signal, Subscription};

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new client: from now.
    Now,
    /// A reconnect: after the last event the client had (`Last-Event-ID`).
    After(EventId),
    /// A `Last-Event-ID` that is not one of ours: the client must read its state again.
    Unknown,
}

impl Start {
    pub fn from_header(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("") => Self::Now,
            Some(v) => v.parse().map_or(Self::Unknown, Self::After),
        }
    }
}

/// Everything one stream runs with.
pub struct Stream {
    pub user_id: Uuid,
    pub feed: Feed,
    pub open: OpenStreams,
    pub slot: StreamSlot,
    pub conn: ConnectionManager,
    pub subscription: Subscription,
    pub heartbeat: Duration,
}

impl Stream {
    /// Writes frames to `out` until the client goes; then frees the stream's slot.
    pub async fn run(mut self, start: Start, out: mpsc::Sender<Bytes>) {
        let mut last = EventId::ZERO;
        let opened = self.open_at(start, &mut last, &out).await;
        if opened.is_ok() {
            let _ = self.follow(&mut last, &out).await;
        }
        if let Err(e) = OpenStreams::free(&mut self.conn, &self.slot).await {
            tracing::warn!(error = %e, "event stream slot not freed; it lapses by itself");
        }
    }

    async fn open_at(&mut self, start: Start, last: &mut EventId, out: &Out) -> Result<(), Gone> {
        match start {
            Start::Now => {
                *last = self
                    .feed
                    .tip(&mut self.conn, self.user_id)
                    .await
                    .unwrap_or_default();
                send(out, frame(Some(*last), "ready", "{\"resumed\":false}")).await
            }
            Start::After(after) => {
                *last = after;
                self.catch_up(last, out).await?;
                send(out, frame(Some(*last), "ready", "{\"resumed\":true}")).await
            }
            Start::Unknown => self.resync(last, out).await,
        }
    }

    async fn follow(&mut self, last: &mut EventId, out: &Out) -> Result<(), Gone> {
        let mut beat = tokio::time::interval(self.heartbeat);
        beat.tick().await;
        loop {
            tokio::select! {
                () = out.closed() => return Err(Gone),
                _ = beat.tick() => {
                    send(out, Bytes::from_static(b": ping\n\n")).await?;
                    if let Err(e) = self.open.renew(&mut self.conn, &self.slot).await {
                        tracing::warn!(error = %e, "event stream slot not renewed");
                    }
                }
                signal = self.subscription.receiver.recv() => match signal {
                    Ok(Signal::Event(entry)) => {
                        if entry.id > *last {
                            send(out, entry_frame(&entry)).await?;
                            *last = entry.id;
                        }
                    }
                    Ok(Signal::CatchUp) | Err(RecvError::Lagged(_)) => self.catch_up(last, out).await?,
                    Err(RecvError::Closed) => return Err(Gone),
                },
            }
        }
    }

    /// Sends what the user's kept events hold after `last`, or a resync when some is gone.
    async fn catch_up(&mut self, last: &mut EventId, out: &Out) -> Result<(), Gone> {
        match self.feed.replay(&mut self.conn, self.user_id, *last).await {
            Ok(Replay::Missed(entries)) => {
                for entry in &entries {
                    if entry.id > *last {
                        send(out, entry_frame(entry)).await?;
                        *last = entry.id;
                    }
                }
                Ok(())
            }
            Ok(Replay::Resync { tip }) => {
                *last = tip.max(*last);
                send(out, frame(Some(*last), "resync", "{}")).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "kept events unreadable; the client resyncs");
                self.resync(last, out).await
            }
        }
    }

    async fn resync(&mut self, last: &mut EventId, out: &Out) -> Result<(), Gone> {
        let tip = self
            .feed
            .tip(&mut self.conn, self.user_id)
            .await
            .unwrap_or_default();
        *last = tip.max(*last);
        send(out, frame(Some(*last), "resync", "{}")).await
    }
}

type Out = mpsc::Sender<Bytes>;

/// The client went away.
struct Gone;

async fn send(out: &Out, bytes: Bytes) -> Result<(), Gone> {
    out.send(bytes).await.map_err(|_| Gone)
}

fn entry_frame(entry: &Entry) -> Bytes {
    frame(Some(entry.id), &entry.name, &entry.data)
}

/// One SSE frame. `data` is one line of JSON (serde_json escapes newlines).
pub fn frame(id: Option<EventId>, name: &str, data: &str) -> Bytes {
    let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    Bytes::from(format!("{id}event: {name}\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_headers_pick_the_start() {
        assert_eq!(Start::from_header(None), Start::Now);
        assert_eq!(Start::from_header(Some(" ")), Start::Now);
        assert_eq!(
            Start::from_header(Some("17-2")),
            Start::After(EventId { ms: 17, seq: 2 })
        );
        assert_eq!(Start::from_header(Some("yesterday")), Start::Unknown);
    }

    #[test]
    fn frames_carry_id_name_and_one_data_line() {
        let f = frame(Some(EventId { ms: 3, seq: 1 }), "job", "{\"a\":1}");
        assert_eq!(&f[..], b"id: 3-1\nevent: job\ndata: {\"a\":1}\n\n");
    }
}
