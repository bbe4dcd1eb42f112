//! Event streams under load: `EV_STREAMS` (2,000) users each hold one open `GET /api/v1/events`
//! stream on one api process while events are published to them as a worker publishes them.
//! Prints the api's memory per open stream, each event's delivery latency from the publish to
//! the client (p50/p99), and the L1-hit `GET /bookmarks` throughput of the same api with and
//! without the streams open and events flowing.
//!
//! `cargo bench -p fuze-tests --bench event_streams` (needs `cargo build --release --bins`).
//! `EV_STREAMS`, `EV_EVENTS` (4,000), `EV_RATE` (events per second, 400), `EV_LOAD_S` (10).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fuze_shared::{
    feed::{BookmarkChange, Feed, FeedEvent},
    keys::Keys,
    redis_conn,
};
use fuze_tests::{
    ApiProcess, TestEnv,
    bench::{percentile, rss_kib},
    sse,
};
use uuid::Uuid;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests per second of `GET /bookmarks` (an L1 hit after the first) over `secs`, from 32
/// concurrent clients.
async fn list_throughput(api: &ApiProcess, token: &str, secs: u64) -> f64 {
    let http = reqwest::Client::new();
    let url = api.url("/api/v1/bookmarks?limit=20");
    let warm = http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("warm");
    assert_eq!(warm.status(), 200);
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (http, url, token) = (http.clone(), url.clone(), token.to_owned());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < until {
                    let res = http
                        .get(&url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("list");
                    assert_eq!(res.status(), 200);
                    res.bytes().await.expect("body");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("client");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let streams = setting("EV_STREAMS", 2_000) as usize;
    let events = setting("EV_EVENTS", 4_000) as usize;
    let rate = setting("EV_RATE", 400).max(1);
    let load_s = setting("EV_LOAD_S", 10);
    let env = TestEnv::new().await;
    let api = ApiProcess::spawn(&env, &[]).await;
    let config = env.config(&[]);
    let feed = Feed::new(Keys::new(env.prefix.clone()), config.feed.clone());
    let mut conn = redis_conn::connection_manager(&env.redis_url)
        .await
        .expect("redis");

    // A reader with a few bookmarks, for the list throughput.
    let (_, reader) = env.user().await;
    for n in 0..20 {
        let res = reqwest::Client::new()
            .post(api.url("/api/v1/bookmarks"))
            .bearer_auth(&reader)
            .json(&serde_json::json!({ "url": format!("https://example.com/{n}") }))
            .send()
            .await
            .expect("save");
        assert_eq!(res.status(), 202);
    }
    let alone = list_throughput(&api, &reader, load_s).await;
    let (rss_before, _) = rss_kib(api.pid());

    let mut users = Vec::with_capacity(streams);
    for _ in 0..streams {
        users.push(env.user().await);
    }
    // Keyed by user and id: ids are per user's stream, so two users' events can share one.
    let received: Arc<Mutex<HashMap<(Uuid, String), Instant>>> = Arc::default();
    let opened = Instant::now();
    let mut readers = Vec::with_capacity(streams);
    for &(user_id, ref token) in &users {
        // One connection per stream, as browsers hold them.
        let http = reqwest::Client::new();
        let mut stream = sse::open(&http, &api.url("/api/v1/events"), token, None)
            .await
            .unwrap_or_else(|res| panic!("stream refused: {}", res.status()));
        let ready = stream.next(Duration::from_secs(10)).await.expect("ready");
        assert_eq!(ready.event, "ready");
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            let _http = http;
            while let Some(event) = stream.next(Duration::from_secs(3_600)).await {
                if let Some(id) = event.id {
                    received
                        .lock()
                        .expect("lock")
                        .insert((user_id, id), Instant::now());
                }
            }
        }));
    }
    let open_s = opened.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_open, _) = rss_kib(api.pid());
    let streams_idle = list_throughput(&api, &reader, load_s).await;

    // Publish as the worker does, at `rate`, to users in turn; meanwhile measure the list.
    let sent: Arc<Mutex<HashMap<(Uuid, String), Instant>>> = Arc::default();
    let publisher = {
        let (sent, users) = (
            sent.clone(),
            users.iter().map(|u| u.0).collect::<Vec<Uuid>>(),
        );
        let feed = feed.clone();
        let mut conn = conn.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            for n in 0..events {
                tick.tick().await;
                let event = FeedEvent::Bookmark {
                    bookmark_id: Uuid::from_u128(n as u128),
                    change: BookmarkChange::Updated,
                };
                let user_id = users[n % users.len()];
                let at = Instant::now();
                let id = feed
                    .try_publish(&mut conn, user_id, &event)
                    .await
                    .expect("publish");
                sent.lock().expect("lock").insert((user_id, id), at);
            }
        })
    };
    let with_streams = list_throughput(&api, &reader, load_s).await;
    publisher.await.expect("publisher");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_end, peak) = rss_kib(api.pid());

    for r in &readers {
        r.abort();
    }
    // Once every stream is closed again: tells the streams' cost from the machine's drift.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closed = list_throughput(&api, &reader, load_s).await;
    let sent = sent.lock().expect("lock").clone();
    let received = received.lock().expect("lock").clone();
    let mut latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(id, at)| Some(received.get(id)?.duration_since(*at).as_secs_f64() * 1e3))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let _ = feed.tip(&mut conn, users[0].0).await;

    println!("event_streams: {streams} streams on one api process, {events} events at {rate}/s");
    println!("  streams opened in {open_s:.1} s");
    println!(
        "  api RSS: {:.1} MiB before, {:.1} MiB with the streams open (+{:.1} KiB per stream), {:.1} MiB after the events (peak {:.1} MiB)",
        rss_before as f64 / 1024.0,
        rss_open as f64 / 1024.0,
        (rss_open.saturating_sub(rss_before)) as f64 / streams as f64,
        rss_end as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "  delivered {} of {} events; publish -> client latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        sent.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  GET /bookmarks (L1 hit, 32 clients, {load_s} s): {alone:.0} req/s alone, {streams_idle:.0} with the streams open ({:.2}x), {with_streams:.0} with the streams and events flowing ({:.2}x; goal >= 0.9x)",
        streams_idle / alone,
        with_streams / alone
    );
    println!(
        "  GET /bookmarks again after the streams closed: {closed:.0} req/s ({:.2}x of alone)",
        closed / alone
    );
}
