//! `GET /api/v1/events`: a user's job, bookmark and import events pushed as Server-Sent Events,
//! carried through Redis so that any api instance serves any user; `Last-Event-ID` resumes
//! without gaps, a gap older than what is kept answers `resync`, heartbeats keep idle streams
//! alive, and each user has a cap on open streams.

use std::time::{Duration, Instant};

use fuze_shared::{
    feed::{BookmarkChange, Feed, FeedEvent},
    keys::Keys,
    redis_conn,
};
use fuze_tests::{
    PageServer, TestApi, TestEnv, WorkerProcess,
    sse::{self, SseEvent, SseStream},
};
use uuid::Uuid;

const ALLOW_PAGES: (&str, &str) = ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8");
const WAIT: Duration = Duration::from_secs(5);

async fn stream(api: &TestApi, token: &str, last: Option<&str>) -> SseStream {
    match sse::open(&api.http, &api.url("/api/v1/events"), token, last).await {
        Ok(stream) => stream,
        Err(res) => panic!("events refused: {}", res.status()),
    }
}

fn id_of(event: &SseEvent) -> (u64, u64) {
    let id = event.id.as_deref().expect("every event has an id");
    let (ms, seq) = id.split_once('-').expect("stream id");
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_on_one_instance_streams_its_stages_in_order_on_another() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let writer = TestApi::spawn(&env, &[]).await;
    let reader = TestApi::spawn(&env, &[]).await;
    let _worker = WorkerProcess::spawn(&env, &[ALLOW_PAGES]).await;
    let (_, token) = env.user().await;
    let (_, stranger) = env.user().await;

    let mut mine = stream(&reader, &token, None).await;
    let ready = mine.next(WAIT).await.expect("ready");
    assert_eq!(ready.event, "ready");
    let mut theirs = stream(&reader, &stranger, None).await;
    assert_eq!(theirs.next(WAIT).await.expect("ready").event, "ready");

    let (status, saved) = writer
        .save(
            &token,
            &pages.doc_url("Streams", "Pushed events reach the reader."),
        )
        .await;
    assert_eq!(status, 202, "{saved}");
    let job_id = saved["job"]["id"].as_str().expect("job id").to_owned();
    let bookmark_id = saved["bookmark"]["id"]
        .as_str()
        .expect("bookmark id")
        .to_owned();

    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let event = mine.next(Duration::from_secs(60)).await.expect("an event");
        let done = event.event == "job" && event.json()["state"] == "succeeded";
        events.push(event);
        if done || Instant::now() > deadline {
            break;
        }
    }
    let ids: Vec<_> = events.iter().map(id_of).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > id_of(&ready),
        "ids strictly increase: {ids:?}"
    );
    let jobs: Vec<_> = events
        .iter()
        .filter(|e| e.event == "job")
        .map(SseEvent::json)
        .collect();
    assert!(jobs.iter().all(|j| j["job_id"] == job_id.as_str()));
    let steps: Vec<(String, String)> = jobs
        .iter()
        .map(|j| {
            (
                j["stage"].as_str().unwrap_or_default().to_owned(),
                j["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let step = |stage: &str, state: &str| {
        steps
            .iter()
            .position(|(s, t)| s == stage && t == state)
            .unwrap_or_else(|| panic!("no {stage}/{state} in {steps:?}"))
    };
    assert_eq!(step("scrape", "queued"), 0, "{steps:?}");
    assert!(
        step("scrape", "running") < step("embed", "queued"),
        "{steps:?}"
    );
    assert!(
        step("embed", "running") < step("analyze", "running"),
        "{steps:?}"
    );
    assert_eq!(step("analyze", "succeeded"), steps.len() - 1, "{steps:?}");
    let bookmark_events = events
        .iter()
        .filter(|e| e.event == "bookmark")
        .map(SseEvent::json)
        .collect::<Vec<_>>();
    assert!(
        bookmark_events.len() >= 3
            && bookmark_events
                .iter()
                .all(|b| b["bookmark_id"] == bookmark_id.as_str() && b["change"] == "updated"),
        "saved, scraped, embedded: {bookmark_events:?}"
    );

    let leaked = theirs.drain(Duration::from_millis(500)).await;
    assert!(
        leaked.is_empty(),
        "another user's events arrived: {leaked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_gets_what_it_missed_and_an_old_gap_asks_for_a_resync() {
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &[("FUZE_EVENTS_RETAIN", "10")]).await;
    let (user_id, token) = env.user().await;
    let config = env.config(&[("FUZE_EVENTS_RETAIN", "10")]);
    let feed = Feed::new(Keys::new(env.prefix.clone()), config.feed.clone());
    let mut conn = redis_conn::connection_manager(&env.redis_url)
        .await
        .expect("redis");
    let edit = |n: u128| FeedEvent::Bookmark {
        bookmark_id: Uuid::from_u128(n),
        change: BookmarkChange::Updated,
    };

    let mut first = stream(&api, &token, None).await;
    let ready = first.next(WAIT).await.expect("ready");
    feed.try_publish(&mut conn, user_id, &edit(1))
        .await
        .expect("publish");
    let seen = first
        .next_named("bookmark", WAIT)
        .await
        .expect("live event");
    drop(first);

    // Missed while away: three events, in order, then `ready`; nothing seen twice.
    for n in 2..=4 {
        feed.try_publish(&mut conn, user_id, &edit(n))
            .await
            .expect("publish");
    }
    let mut back = stream(&api, &token, seen.id.as_deref()).await;
    let missed = [
        back.next(WAIT).await,
        back.next(WAIT).await,
        back.next(WAIT).await,
    ];
    let got: Vec<_> = missed
        .iter()
        .map(|e| e.as_ref().expect("missed event").json()["bookmark_id"].clone())
        .collect();
    let expected: Vec<_> = (2..=4u128)
        .map(|n| serde_json::json!(Uuid::from_u128(n)))
        .collect();
    assert_eq!(got, expected);
    let resumed = back.next(WAIT).await.expect("ready after the replay");
    assert_eq!(resumed.event, "ready");
    assert_eq!(resumed.json()["resumed"], true);
    // Live events follow the replay on the same stream.
    feed.try_publish(&mut conn, user_id, &edit(5))
        .await
        .expect("publish");
    let live = back.next(WAIT).await.expect("live after replay");
    assert_eq!(
        live.json()["bookmark_id"],
        serde_json::json!(Uuid::from_u128(5))
    );
    drop(back);

    // Far more than is kept happened since `ready`: the client must read its state again.
    for n in 6..400 {
        feed.try_publish(&mut conn, user_id, &edit(n))
            .await
            .expect("publish");
    }
    let mut late = stream(&api, &token, ready.id.as_deref()).await;
    let answer = late.next(WAIT).await.expect("an answer");
    assert_eq!(answer.event, "resync", "{answer:?}");
    let tip = answer
        .id
        .clone()
        .expect("resync carries the id to follow from");
    drop(late);
    let mut after_resync = stream(&api, &token, Some(&tip)).await;
    assert_eq!(after_resync.next(WAIT).await.expect("ready").event, "ready");

    let mut nonsense = stream(&api, &token, Some("yesterday")).await;
    assert_eq!(nonsense.next(WAIT).await.expect("answer").event, "resync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_get_heartbeats_and_each_user_has_a_cap() {
    let env = TestEnv::new().await;
    let overrides = [
        ("FUZE_EVENTS_MAX_STREAMS", "2"),
        ("FUZE_EVENTS_HEARTBEAT_MS", "200"),
    ];
    let api = TestApi::spawn(&env, &overrides).await;
    let other = TestApi::spawn(&env, &overrides).await;
    let (_, token) = env.user().await;
    let (_, someone_else) = env.user().await;

    let mut one = stream(&api, &token, None).await;
    assert_eq!(one.next(WAIT).await.expect("ready").event, "ready");
    assert!(one.next(Duration::from_millis(700)).await.is_none());
    assert!(one.comments >= 2, "heartbeats: {}", one.comments);

    // The cap holds across instances.
    let two = stream(&other, &token, None).await;
    let refused = sse::open(&other.http, &other.url("/api/v1/events"), &token, None)
        .await
        .err()
        .expect("a third stream is refused");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_streams");
    // Another user is not affected.
    let _theirs = stream(&api, &someone_else, None).await;

    // A closed stream frees its slot (noticed at the next heartbeat at the latest).
    drop(two);
    let started = Instant::now();
    loop {
        match sse::open(&api.http, &api.url("/api/v1/events"), &token, None).await {
            Ok(_) => break,
            Err(res) => {
                assert_eq!(res.status(), 429);
                assert!(
                    started.elapsed() < WAIT,
                    "the closed stream's slot was not freed"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    let anonymous = api
        .http
        .get(api.url("/api/v1/events"))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401);
}
