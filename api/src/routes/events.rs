//! `GET /api/v1/events`: the user's live events as Server-Sent Events (`crate::feed`).

use super::table::Routes;
use std::convert::Infallible;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use bytes::Bytes;
use tokio::sync::mpsc;

use utoipa::OpenApi;

use crate::{
    auth::AuthUser,
    error::{ApiError, ErrorBody},
    feed::stream::{Start, Stream},
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(paths(open))]
pub struct Api;

pub fn configure(r: &mut Routes) {
    r.resource("/events", |m| m.get(open));
}

/// Frames a stream may have written that the connection has not taken yet.
const UNSENT_FRAMES: usize = 16;

/// The user's live events as Server-Sent Events: `job`, `import` and `bookmark` events whose
/// `data` is JSON, with the Redis stream id as the SSE `id`. First comes `ready` (after any replay);
/// a `Last-Event-ID` too old to replay gets `resync` (read the state again). `: ping` comments
/// keep the connection open.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    params(("Last-Event-ID" = Option<String>, Header, description = "The last event id seen: the events after it are sent first")),
    responses(
        (status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String),
        (status = 429, description = "`too_many_streams`: the user has the configured number of streams open", body = ErrorBody),
    ),
)]
async fn open(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let feeds = &state.feeds;
    let mut conn = state.redis.clone();
    let slot = match feeds.open.take(&mut conn, user.0).await {
        Ok(Some(slot)) => slot,
        Ok(None) => {
            state
                .metrics
                .scheduling
                .limited
                .with_label_values(&["events", "too_many_streams"])
                .inc();
            return Err(ApiError::Limited {
                code: "too_many_streams",
                message: format!(
                    "you already have {} event streams open; close one first",
                    feeds.open.cap
                ),
                retry_after_s: 5,
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "event stream cap unreadable");
            return Err(ApiError::Unavailable(
                "event streams are unavailable; retry shortly",
            ));
        }
    };
    let start = Start::from_header(
        req.headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok()),
    );
    let stream = Stream {
        user_id: user.0,
        feed: feeds.feed.clone(),
        open: feeds.open.clone(),
        slot,
        conn,
        subscription: feeds.hub.subscribe(user.0),
        heartbeat: state.config.feed.heartbeat,
    };
    let (out, frames) = mpsc::channel::<Bytes>(UNSENT_FRAMES);
    let open_streams = state.metrics.event_streams_open.clone();
    open_streams.inc();
    tokio::spawn(async move {
        stream.run(start, out).await;
        open_streams.dec();
    });
    let body = futures::stream::unfold(frames, |mut frames| async move {
        frames
            .recv()
            .await
            .map(|frame| (Ok::<_, Infallible>(frame), frames))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies that buffer responses (nginx) must pass each event on at once.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
