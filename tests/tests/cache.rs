//! The layered cache against the real Redis: single flight, layers, generations, isolation, and
//! Redis being unreachable or restarting.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use fuze_shared::{
    cache::{Bytes, CacheConfig, CacheType, L1Config, Layer, LayeredCache, l2},
    events::Event,
};
use fuze_tests::RedisServer;
use redis::AsyncCommands;
use uuid::Uuid;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn unique_prefix() -> String {
    format!(
        "fuzetest:cache:{}",
        ulid3::Ulid::generate().to_string().to_lowercase()
    )
}

fn config(prefix: &str) -> CacheConfig {
    CacheConfig::with_prefix(prefix)
}

fn cache_on(url: &str, config: CacheConfig) -> Arc<LayeredCache> {
    Arc::new(LayeredCache::connect_lazy(url, config).expect("valid Redis URL"))
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis reachable")
}

/// A loader that counts its calls and answers `value` after `delay`.
fn counted(
    calls: &Arc<AtomicUsize>,
    value: &'static str,
    delay: Duration,
) -> impl Future<Output = Result<Bytes, Infallible>> + Send + 'static {
    let calls = calls.clone();
    async move {
        calls.fetch_add(1, SeqCst);
        tokio::time::sleep(delay).await;
        Ok(Bytes::from_static(value.as_bytes()))
    }
}

async fn stampede(cache: Arc<LayeredCache>) {
    let user = Uuid::new_v4();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (cache, calls) = (cache.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_load(
                    CacheType::UserBookmarks,
                    Some(user),
                    "page:first",
                    counted(&calls, "page one", Duration::from_millis(200)),
                )
                .await
        }));
    }
    for task in tasks {
        let (bytes, _) = task.await.expect("task").expect("load");
        assert_eq!(bytes, "page one");
    }
    assert_eq!(calls.load(SeqCst), 1, "exactly one load");
    let stats = cache.stats();
    let t = stats.of(CacheType::UserBookmarks);
    assert_eq!(t.loads, 1);
    assert_eq!(t.requests, 100);
    assert_eq!(t.shared_loads + t.l1_hits + t.l2_hits, 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stampede_of_identical_misses_loads_once() {
    stampede(cache_on(&redis_url(), config(&unique_prefix()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stampede_loads_once_without_l1() {
    let mut config = config(&unique_prefix());
    config.l1 = L1Config::disabled();
    stampede(cache_on(&redis_url(), config)).await;
}

#[tokio::test]
async fn layers_fill_on_the_way_back_and_l2_serves_after_l1_eviction() {
    let prefix = unique_prefix();
    let mut config = config(&prefix);
    config.l1.max_entries = 1;
    let cache = cache_on(&redis_url(), config);
    let calls = Arc::new(AtomicUsize::new(0));
    let no_wait = Duration::ZERO;

    let (v, layer) = cache
        .get_or_load(CacheType::Scraped, None, "a", counted(&calls, "A", no_wait))
        .await
        .expect("load");
    assert_eq!((v.as_ref(), layer), (&b"A"[..], Layer::L3));
    let (_, layer) = cache
        .get_or_load(CacheType::Scraped, None, "a", counted(&calls, "A", no_wait))
        .await
        .expect("load");
    assert_eq!(layer, Layer::L1);

    // "b" takes the only L1 slot; "a" is then served by Redis and goes back into L1.
    cache
        .get_or_load(CacheType::Scraped, None, "b", counted(&calls, "B", no_wait))
        .await
        .expect("load");
    assert_eq!(cache.l1().len(), 1);
    let (v, layer) = cache
        .get_or_load(CacheType::Scraped, None, "a", counted(&calls, "A", no_wait))
        .await
        .expect("load");
    assert_eq!((v.as_ref(), layer), (&b"A"[..], Layer::L2));
    let (_, layer) = cache
        .get_or_load(CacheType::Scraped, None, "a", counted(&calls, "A", no_wait))
        .await
        .expect("load");
    assert_eq!(layer, Layer::L1);
    assert_eq!(calls.load(SeqCst), 2);

    // Stored under the design's key with the type's TTL.
    let mut conn = redis().await;
    let ttl: i64 = conn.ttl(format!("{prefix}:scraped:a")).await.expect("ttl");
    assert!((3500..=3600).contains(&ttl), "ttl {ttl}");
    let stats = cache.stats();
    assert_eq!(stats.l1.evictions, 2);
    assert!(stats.l2.hits >= 1);
}

#[tokio::test]
async fn large_values_are_compressed_in_redis() {
    let prefix = unique_prefix();
    let cache = cache_on(&redis_url(), config(&prefix));
    let body = Bytes::from("{\"title\":\"a bookmark\"},".repeat(500));
    let expected = body.clone();
    cache
        .get_or_load(CacheType::Query, Some(Uuid::nil()), "q", async move {
            Ok::<_, Infallible>(body)
        })
        .await
        .expect("load");
    let mut conn = redis().await;
    let key = cache.keys().derived(CacheType::Query, Uuid::nil(), 0, "q");
    let stored: Vec<u8> = conn.get(&key).await.expect("stored");
    assert_eq!(stored[0], l2::HEADER_LZ4);
    assert!(stored.len() < expected.len() / 4);
    assert_eq!(cache.stats().l2.compressed_writes, 1);

    // Another process (empty L1) reads it back intact.
    let other = cache_on(&redis_url(), config(&prefix));
    let (v, layer) = other
        .get_or_load(CacheType::Query, Some(Uuid::nil()), "q", async {
            Ok::<_, Infallible>(Bytes::new())
        })
        .await
        .expect("load");
    assert_eq!((v, layer), (expected, Layer::L2));
}

#[tokio::test]
async fn a_generation_bump_makes_old_derived_keys_unreachable() {
    let prefix = unique_prefix();
    let mut no_l1 = config(&prefix);
    no_l1.l1 = L1Config::disabled();
    let a = cache_on(&redis_url(), config(&prefix));
    let b = cache_on(&redis_url(), no_l1);
    let user = Uuid::new_v4();
    let calls = Arc::new(AtomicUsize::new(0));
    let get = |cache: &Arc<LayeredCache>, value: &'static str| {
        let (cache, calls) = (cache.clone(), calls.clone());
        async move {
            cache
                .get_or_load(
                    CacheType::Recommendations,
                    Some(user),
                    "project:1",
                    counted(&calls, value, Duration::ZERO),
                )
                .await
                .expect("load")
        }
    };

    assert_eq!(get(&a, "v1").await, (Bytes::from("v1"), Layer::L3));
    assert_eq!(get(&a, "v1").await.1, Layer::L1);
    assert_eq!(get(&b, "v1").await, (Bytes::from("v1"), Layer::L2));
    assert_eq!(
        a.generation(user, CacheType::Recommendations).await,
        Some(0)
    );

    // A writes and bumps the generation; B (no L1) sees the change at once, A after the event.
    let project = Event::ProjectChanged {
        user_id: user,
        project_id: Uuid::new_v4(),
    };
    assert_eq!(
        a.invalidate_user(user, project.stale_types()).await,
        Some(vec![1])
    );
    b.apply_event(&project.invalidation());
    assert_eq!(get(&b, "v2").await, (Bytes::from("v2"), Layer::L3));
    assert_eq!(get(&a, "v2").await, (Bytes::from("v2"), Layer::L2));
    assert_eq!(calls.load(SeqCst), 2);

    // The old value still sits in Redis under generation 0, unreachable; the counter has a TTL.
    let mut conn = redis().await;
    let old = a
        .keys()
        .derived(CacheType::Recommendations, user, 0, "project:1");
    assert!(conn.exists::<_, bool>(&old).await.expect("exists"));
    let gen_ttl: i64 = conn
        .ttl(a.keys().generation(user, CacheType::Recommendations))
        .await
        .expect("ttl");
    assert!(gen_ttl > 0);
}

#[tokio::test]
async fn an_event_drops_the_users_l1_entries_in_another_process() {
    let prefix = unique_prefix();
    let a = cache_on(&redis_url(), config(&prefix));
    let b = cache_on(&redis_url(), config(&prefix));
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let calls = Arc::new(AtomicUsize::new(0));
    for cache in [&a, &b] {
        for u in [user, other] {
            cache
                .get_or_load(
                    CacheType::UserBookmarks,
                    Some(u),
                    "page:first",
                    counted(&calls, "old", Duration::ZERO),
                )
                .await
                .expect("load");
        }
    }
    assert_eq!(b.l1().len(), 2);
    let changed = Event::BookmarksChanged { user_id: user };
    a.invalidate_user(user, changed.stale_types())
        .await
        .expect("bumped");
    b.apply_event(&changed.invalidation());
    assert_eq!(b.l1().len(), 1);
    let (v, layer) = b
        .get_or_load(
            CacheType::UserBookmarks,
            Some(user),
            "page:first",
            counted(&calls, "new", Duration::ZERO),
        )
        .await
        .expect("load");
    assert_eq!((v.as_ref(), layer), (&b"new"[..], Layer::L3));
    let (_, layer) = b
        .get_or_load(
            CacheType::UserBookmarks,
            Some(other),
            "page:first",
            counted(&calls, "new", Duration::ZERO),
        )
        .await
        .expect("load");
    assert_eq!(layer, Layer::L1);
}

#[tokio::test]
async fn users_never_see_each_others_entries() {
    let prefix = unique_prefix();
    let a_cache = cache_on(&redis_url(), config(&prefix));
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let calls = Arc::new(AtomicUsize::new(0));
    for ty in [
        CacheType::UserBookmarks,
        CacheType::Recommendations,
        CacheType::Query,
    ] {
        let (va, _) = a_cache
            .get_or_load(ty, Some(a), "same", counted(&calls, "A's", Duration::ZERO))
            .await
            .expect("load");
        let (vb, layer) = a_cache
            .get_or_load(ty, Some(b), "same", counted(&calls, "B's", Duration::ZERO))
            .await
            .expect("load");
        assert_eq!((va.as_ref(), vb.as_ref()), (&b"A's"[..], &b"B's"[..]));
        assert_eq!(layer, Layer::L3);
        // Through Redis too (a process with an empty L1).
        let fresh = cache_on(&redis_url(), config(&prefix));
        let (vb, layer) = fresh
            .get_or_load(ty, Some(b), "same", counted(&calls, "?", Duration::ZERO))
            .await
            .expect("load");
        assert_eq!((vb.as_ref(), layer), (&b"B's"[..], Layer::L2));
        assert!(fresh.get(ty, Some(Uuid::new_v4()), "same").await.is_none());
    }
    assert_eq!(calls.load(SeqCst), 6);
}

#[tokio::test]
async fn unreachable_redis_still_serves_loads_and_counts_errors() {
    let mut config = config(&unique_prefix());
    config.l2.op_timeout = Duration::from_millis(200);
    let cache = cache_on("redis://127.0.0.1:1", config.clone());
    let user = Uuid::new_v4();
    let calls = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let (v, layer) = cache
        .get_or_load(
            CacheType::UserBookmarks,
            Some(user),
            "page:first",
            counted(&calls, "from db", Duration::ZERO),
        )
        .await
        .expect("load");
    assert_eq!((v.as_ref(), layer), (&b"from db"[..], Layer::L3));
    let (_, layer) = cache
        .get_or_load(
            CacheType::UserBookmarks,
            Some(user),
            "page:first",
            counted(&calls, "from db", Duration::ZERO),
        )
        .await
        .expect("load");
    assert_eq!(layer, Layer::L1);
    assert_eq!(
        cache.invalidate_user(user, &CacheType::PER_USER).await,
        None
    );

    // Without L1 every call loads, and none waits on Redis.
    config.l1 = L1Config::disabled();
    let no_l1 = cache_on("redis://127.0.0.1:1", config);
    for _ in 0..20 {
        let (v, layer) = no_l1
            .get_or_load(
                CacheType::Scraped,
                None,
                "u",
                counted(&calls, "page", Duration::ZERO),
            )
            .await
            .expect("load");
        assert_eq!((v.as_ref(), layer), (&b"page"[..], Layer::L3));
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(calls.load(SeqCst), 21);
    for stats in [cache.stats(), no_l1.stats()] {
        assert!(stats.l2.errors >= 1, "{:?}", stats.l2);
        assert_eq!(stats.l2.hits, 0);
    }
    // One bump per type invalidated, each failed.
    assert_eq!(
        cache.stats().generation_bump_failures,
        CacheType::PER_USER.len() as u64
    );
}

#[tokio::test]
async fn redis_down_then_back_resumes_by_itself() {
    let mut server = RedisServer::start().await;
    let mut config = config(&unique_prefix());
    config.l1 = L1Config::disabled();
    config.l2.op_timeout = Duration::from_millis(200);
    config.l2.retry_after = Duration::from_millis(200);
    let cache = cache_on(&server.url(), config);
    let calls = Arc::new(AtomicUsize::new(0));
    let get = |value: &'static str| {
        let (cache, calls) = (cache.clone(), calls.clone());
        async move {
            cache
                .get_or_load(
                    CacheType::Embedding,
                    None,
                    "text",
                    counted(&calls, value, Duration::ZERO),
                )
                .await
                .expect("load")
        }
    };
    assert_eq!(get("e1").await.1, Layer::L3);
    assert_eq!(get("e1").await.1, Layer::L2);

    server.kill();
    for _ in 0..5 {
        assert_eq!(get("e2").await, (Bytes::from("e2"), Layer::L3));
    }
    assert!(cache.stats().l2.errors >= 1);

    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, layer) = get("e3").await;
        if layer == Layer::L2 {
            break;
        }
        assert!(Instant::now() < deadline, "L2 never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
