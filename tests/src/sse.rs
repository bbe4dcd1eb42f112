//! A minimal Server-Sent Events reader for the tests: frames as the api writes them.

use std::time::Duration;

use futures::StreamExt;

/// One event as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

pub struct SseStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    /// Comment lines (heartbeats) seen so far.
    pub comments: usize,
}

/// Opens `GET /api/v1/events`; the response when it is not a stream.
pub async fn open(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> Result<SseStream, reqwest::Response> {
    let mut req = http
        .get(url)
        .bearer_auth(token)
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let res = req.send().await.expect("events request");
    if res.status() != 200 {
        return Err(res);
    }
    Ok(SseStream {
        body: res.bytes_stream().boxed(),
        buffer: String::new(),
        comments: 0,
    })
}

impl SseStream {
    /// The next event within `within`, or `None`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(event) = self.take_frame() {
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??
                .ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event named `name`, skipping others.
    pub async fn next_named(&mut self, name: &str, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await?;
            if event.event == name {
                return Some(event);
            }
        }
    }

    /// Every event that arrives within `within`.
    pub async fn drain(&mut self, within: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(event) => events.push(event),
                None => return events,
            }
        }
    }

    fn take_frame(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let frame: String = self.buffer.drain(..end + 2).collect();
            let mut event = SseEvent {
                id: None,
                event: "message".into(),
                data: String::new(),
            };
            let mut any = false;
            for line in frame.lines() {
                if line.starts_with(':') {
                    self.comments += 1;
                } else if let Some((field, value)) = line.split_once(':') {
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    any = true;
                    match field {
                        "id" => event.id = Some(value.to_owned()),
                        "event" => event.event = value.to_owned(),
                        "data" => event.data.push_str(value),
                        _ => {}
                    }
                }
            }
            if any {
                return Some(event);
            }
        }
    }
}
