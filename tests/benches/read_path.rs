//! Read-path load test: the layered cache against the machine's ceiling, search on a miss,
//! invalidation latency across processes, and hit rates under a mixed workload.
//!
//! Seeds 100k bookmarks (synthetic 384-d embeddings, each with an analysis) over 100 users, runs
//! the real api in this process and a real worker (release build), and drives HTTP load with
//! `wrk` (Debian's package; `scripts/bench.sh` installs it) as a separate process:
//! 1. a bare actix-web handler returning a dashmap value of the same size (the ceiling);
//! 2. `GET /api/v1/bookmarks` served from L1;
//! 3. the same with L1 disabled (L2 hits), end to end, plus the in-handler L2 read timed in process;
//! 4. search on a cache miss (query embedded by the worker) for a typical and the largest user,
//!    and on a hit;
//! 5. invalidation: write on one cache -> another process's L1 entry gone (pub/sub);
//! 6. hit rates per cache type under 90 % reads / 10 % writes with Zipf-distributed users.
//!
//! `cargo bench -p fuze-tests --bench read_path` (after `cargo build --release --bins`), or
//! `make bench`. `FUZE_BENCH_QUICK=1` shortens every phase.

#[path = "../src/vector_seed.rs"]
mod vector_seed;

use std::{
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use dashmap::DashMap;
use fuze_shared::{
    auth,
    cache::{Bytes, CacheConfig, CacheType, L1Config, LayeredCache},
    events::{self, Event},
};
use fuze_tests::{TestApi, TestEnv, WorkerProcess};
use serde_json::Value;
use uuid::Uuid;
use vector_seed::Rng;

struct Plan {
    wrk_seconds: u32,
    searches: usize,
    invalidations: usize,
    mixed_ops: usize,
}

const FULL: Plan = Plan {
    wrk_seconds: 10,
    searches: 200,
    invalidations: 500,
    mixed_ops: 20_000,
};
const QUICK: Plan = Plan {
    wrk_seconds: 3,
    searches: 40,
    invalidations: 100,
    mixed_ops: 2_000,
};

const USERS: usize = 100;
const ROWS: usize = 100_000;
const LARGEST: usize = 25_000;
const CONNECTIONS: u32 = 64;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summary(name: &str, mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let (p50, p95, p99) = (
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        percentile(&ms, 0.99),
    );
    println!(
        "{name:<46} n={:<5} p50={p50:>8.3} ms  p95={p95:>8.3} ms  p99={p99:>8.3} ms",
        ms.len()
    );
    (p50, p95, p99)
}

/// One `wrk` run: (requests/s, p50 ms, p99 ms).
fn wrk(name: &str, url: &str, token: Option<&str>, seconds: u32) -> (f64, f64, f64) {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let quantile = |q: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(q).map(str::trim))
            .map(wrk_ms)
            .unwrap_or(f64::NAN)
    };
    let non_2xx = text.contains("Non-2xx");
    let (p50, p99) = (quantile("50%"), quantile("99%"));
    println!(
        "{name:<46} c={CONNECTIONS} {seconds}s  {rps:>10.0} req/s  p50={p50:>7.3} ms  p99={p99:>7.3} ms{}",
        if non_2xx {
            "  (NON-2XX RESPONSES!)"
        } else {
            ""
        }
    );
    (rps, p50, p99)
}

/// wrk prints "812.00us", "1.20ms", "2.01s".
fn wrk_ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

/// The ceiling: an actix-web handler returning a value from a dashmap, nothing else.
fn start_bare_server(body: Bytes) -> u16 {
    let map = Arc::new(DashMap::new());
    map.insert("page".to_owned(), body);
    let server = HttpServer::new(move || {
        let map = map.clone();
        App::new().route(
            "/value",
            web::get().to(move || {
                let map = map.clone();
                async move {
                    let value = map.get("page").map(|v| v.clone()).unwrap_or_default();
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(value)
                }
            }),
        )
    })
    .workers(2)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    port
}

/// Tokens for the seeded users (their stored hashes are replaced).
async fn give_tokens(env: &TestEnv, users: &[Uuid]) -> Vec<String> {
    let mut tokens = Vec::with_capacity(users.len());
    for (i, id) in users.iter().enumerate() {
        let token = format!("fz_bench_{i}");
        sqlx::query("UPDATE users SET token_hash = $1 WHERE id = $2")
            .bind(auth::hash_token(&token))
            .bind(id)
            .execute(&env.pool)
            .await
            .expect("token");
        tokens.push(token);
    }
    tokens
}

/// Zipf(s) over `n` ranks: cumulative weights, sampled by binary search.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let cdf = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect::<Vec<_>>();
        let total = acc;
        Self(cdf.into_iter().map(|c| c / total).collect())
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

/// Centroids of the seeded bookmarks: this many texts of the embedding benchmark corpus.
const TOPICS: usize = 300;

/// The first `n` texts of `../shared/bench-corpus/short.jsonl` (`FUZE_BENCH_CORPUS_DIR`).
fn topic_texts(n: usize) -> Vec<String> {
    let dir = std::env::var_os("FUZE_BENCH_CORPUS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench-corpus")
        });
    let body = std::fs::read_to_string(dir.join("short.jsonl")).expect("bench corpus");
    body.lines()
        .take(n)
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("corpus line");
            v["text"].as_str().expect("text").to_owned()
        })
        .collect()
}

/// Embeddings of `texts` with the real model, in this process.
fn embed_texts(texts: &[String]) -> Vec<Vec<f32>> {
    let model = fuze_worker::embed::EmbeddingModel::load(&fuze_worker::embed::EmbedderConfig {
        model_dir: fuze_tests::env::model_dir(),
        ..Default::default()
    })
    .expect("model");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    model.embed(&refs).expect("embed topics")
}

/// Everyday topics, unrelated to the seeded (software documentation) bookmarks.
const QUERIES: [&str; 12] = [
    "how to bake sourdough bread",
    "kubernetes autoscaling",
    "marathon training plan",
    "postgres index tuning",
    "rust async runtime",
    "investing for beginners",
    "climate change and energy",
    "learning to draw",
    "best hiking trails",
    "machine learning basics",
    "home coffee brewing",
    "writing better essays",
];

#[tokio::main]
async fn main() {
    let plan = if std::env::var("FUZE_BENCH_QUICK").is_ok_and(|v| v == "1") {
        QUICK
    } else {
        FULL
    };
    println!(
        "read path: {ROWS} bookmarks over {USERS} users, {CONNECTIONS} connections, 2 shared cores (wrk runs on them too)"
    );
    let env = TestEnv::new().await;
    let started = Instant::now();
    let sizes = vector_seed::skewed_sizes(USERS, ROWS, LARGEST);
    // Topics are embeddings of real texts, so a query text about a user's topic is near that
    // user's bookmarks, as when people search what they saved.
    let topic_texts = topic_texts(TOPICS);
    let centroids = embed_texts(&topic_texts);
    let corpus = vector_seed::seed_around(
        &env.pool,
        &sizes,
        centroids,
        30,
        vector_seed::Rng::new(42),
        Some(&topic_texts),
    )
    .await;
    sqlx::raw_sql(
        "INSERT INTO content_analysis (content_id, keywords, tags, word_count, reading_time_s, language, quality_score) \
         SELECT id, '{benchmark,keyword}', '{databases,performance}', 800, 202, 'eng', 0.7 FROM saved_content;",
    )
    .execute(&mut *vector_seed::admin_conn(&env.pool).await)
    .await
    .expect("analyses");
    // (No UPDATE of the seeded rows: each would insert a new version into the HNSW index.)
    sqlx::raw_sql("VACUUM ANALYZE content_analysis")
        .execute(&mut *vector_seed::admin_conn(&env.pool).await)
        .await
        .expect("analyze");
    println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    let ids: Vec<Uuid> = corpus.users.iter().map(|u| u.id).collect();
    let tokens = give_tokens(&env, &ids).await;
    let typical = corpus
        .users
        .iter()
        .position(|u| u.id == corpus.user_near(1_000).id)
        .expect("typical");
    let largest = corpus
        .users
        .iter()
        .position(|u| u.rows == corpus.users.iter().map(|u| u.rows).max().unwrap_or(0))
        .expect("largest");

    let api = TestApi::spawn(&env, &[("FUZE_API_WORKERS", "2")]).await;
    let _worker = WorkerProcess::spawn(&env, &[]).await;

    // 1 + 2: bare handler vs L1 hits, same body.
    let page_url = api.url("/api/v1/bookmarks");
    let body = api
        .get("/api/v1/bookmarks", &tokens[typical])
        .send()
        .await
        .expect("page")
        .bytes()
        .await
        .expect("body");
    println!(
        "page body: {} bytes (20 bookmarks with analysis headlines)",
        body.len()
    );
    let bare = start_bare_server(body);
    let secs = plan.wrk_seconds;
    let (bare_rps, _, _) = wrk(
        "bare actix handler (dashmap value)",
        &format!("http://127.0.0.1:{bare}/value"),
        None,
        secs,
    );
    let (l1_rps, _, l1_p99) = wrk(
        "GET /bookmarks, L1 hit",
        &page_url,
        Some(&tokens[typical]),
        secs,
    );
    println!(
        "  -> L1 hit / bare = {:.2}x (target >= 0.5x), p99 {l1_p99:.2} ms (target <= 5 ms)",
        l1_rps / bare_rps
    );

    // 3: L2 hits: end to end with L1 off, and the cache read alone in process.
    let no_l1 = TestApi::spawn(
        &env,
        &[("FUZE_API_WORKERS", "2"), ("FUZE_L1_MAX_ENTRIES", "0")],
    )
    .await;
    no_l1
        .get("/api/v1/bookmarks", &tokens[typical])
        .send()
        .await
        .expect("fill");
    wrk(
        "GET /bookmarks, L1 off (L2 hit)",
        &no_l1.url("/api/v1/bookmarks"),
        Some(&tokens[typical]),
        secs,
    );
    let mut config = CacheConfig::with_prefix(env.prefix.clone());
    config.l1 = L1Config::disabled();
    let l2_only = LayeredCache::connect_lazy(&env.redis_url, config).expect("cache");
    let user = ids[typical];
    let page = Bytes::from(vec![b'x'; 9_000]);
    l2_only
        .put(CacheType::UserBookmarks, Some(user), "bench", page.clone())
        .await;
    let mut l2_ms = Vec::new();
    for _ in 0..2_000 {
        let t = Instant::now();
        let (_, layer) = l2_only
            .get_or_load(CacheType::UserBookmarks, Some(user), "bench", async {
                Ok::<_, ()>(page.clone())
            })
            .await
            .expect("get");
        l2_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(format!("{layer:?}"), "L2");
    }
    summary("in-handler L2 read (9 kB page, L1 off)", l2_ms);

    // 4: search on a miss (unique queries, embedded by the worker) and on a hit. On-topic queries
    // are one of the user's topic texts; off-topic ones are about things nobody here saved, so all
    // of the user's rows are about equally far (the case approximate searches get wrong).
    let search = Searches {
        tokens: &tokens,
        corpus: &corpus,
        topic_texts: &topic_texts,
        count: plan.searches,
    };
    search
        .misses(
            &api,
            &[
                ("typical user, on-topic", typical, true, "semantic"),
                ("largest user, on-topic", largest, true, "semantic"),
                ("largest user, off-topic", largest, false, "semantic"),
                ("typical user, on-topic", typical, true, "hybrid"),
                ("largest user, on-topic", largest, true, "hybrid"),
                ("largest user, off-topic", largest, false, "hybrid"),
                ("typical user, on-topic", typical, true, "keyword"),
                ("largest user, on-topic", largest, true, "keyword"),
                ("largest user, off-topic", largest, false, "keyword"),
            ],
            0,
        )
        .await;
    let hit_url = api.url("/api/v1/search?q=rust%20async%20runtime");
    api.get("/api/v1/search?q=rust%20async%20runtime", &tokens[typical])
        .send()
        .await
        .expect("fill");
    wrk("search hit (L1)", &hit_url, Some(&tokens[typical]), secs);

    // 5: invalidation across processes: announce on cache A, wait for B's L1 entry to go.
    let a =
        LayeredCache::connect_lazy(&env.redis_url, CacheConfig::with_prefix(env.prefix.clone()))
            .expect("cache a");
    let b = Arc::new(
        LayeredCache::connect_lazy(&env.redis_url, CacheConfig::with_prefix(env.prefix.clone()))
            .expect("cache b"),
    );
    let channel = format!("{}:events", env.prefix);
    let up = prometheus::IntGauge::new("bench_subscriber_up", "subscribed").expect("gauge");
    tokio::spawn(fuze_api::events::run_subscriber(
        b.clone(),
        up,
        env.redis_url.clone(),
        channel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = redis::aio::ConnectionManager::new(
        redis::Client::open(env.redis_url.as_str()).expect("client"),
    )
    .await
    .expect("redis");
    let key = fuze_shared::cache::CacheKey::new(CacheType::UserBookmarks, Some(user), "inv");
    let mut inv_ms = Vec::new();
    for _ in 0..plan.invalidations {
        b.get_or_load(CacheType::UserBookmarks, Some(user), "inv", async {
            Ok::<_, ()>(Bytes::from_static(b"v"))
        })
        .await
        .expect("fill");
        assert!(b.l1().get(&key).is_some(), "filled");
        let t = Instant::now();
        events::announce(
            &a,
            &mut conn,
            &channel,
            &Event::BookmarksChanged { user_id: user },
        )
        .await;
        // Polled from a blocking thread that sleeps 50 µs between looks: a busy loop would take
        // one of the two cores the subscriber and Redis need, and delay what it measures.
        let (b2, key2) = (b.clone(), key.clone());
        let gone = tokio::task::spawn_blocking(move || {
            while b2.l1().get(&key2).is_some() {
                std::thread::sleep(Duration::from_micros(50));
                assert!(t.elapsed() < Duration::from_secs(5), "event never applied");
            }
            t.elapsed()
        })
        .await
        .expect("poller");
        inv_ms.push(gone.as_secs_f64() * 1000.0);
    }
    summary("invalidation: write -> other L1 evicted", inv_ms);

    // 6: mixed workload, Zipf users: 90 % reads (pages, analyses, searches), 10 % writes.
    let mut first_ids: Vec<Vec<String>> = Vec::with_capacity(USERS);
    for token in &tokens {
        let page: Value = api
            .get("/api/v1/bookmarks", token)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        first_ids.push(
            page["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|b| b["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        );
    }
    let before = api.cache_stats().await;
    let zipf = Zipf::new(USERS, 1.1);
    let query_zipf = Zipf::new(QUERIES.len(), 1.1);
    let api = Arc::new(api);
    let tokens = Arc::new(tokens.clone());
    let first_ids = Arc::new(first_ids);
    let tasks = 16;
    let t = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (api, tokens, first_ids) = (api.clone(), tokens.clone(), first_ids.clone());
        let zipf = Zipf(zipf.0.clone());
        let query_zipf = Zipf(query_zipf.0.clone());
        let ops = plan.mixed_ops / tasks;
        handles.push(tokio::spawn(async move {
            let mut rng = Rng::new(1000 + task as u64);
            let mut writes = 0;
            for _ in 0..ops {
                let u = zipf.sample(&mut rng);
                let token = &tokens[u];
                let ids = &first_ids[u];
                let roll = rng.below(100);
                let req = if roll < 10 && !ids.is_empty() {
                    writes += 1;
                    let id = &ids[rng.below(ids.len())];
                    api.patch(&format!("/api/v1/bookmarks/{id}"), token)
                        .json(&serde_json::json!({"notes": format!("note {}", rng.next_u64())}))
                } else if roll < 64 {
                    api.get("/api/v1/bookmarks", token)
                } else if roll < 82 && !ids.is_empty() {
                    let id = &ids[rng.below(ids.len().min(5))];
                    api.get(&format!("/api/v1/bookmarks/{id}/analysis"), token)
                } else {
                    let q = QUERIES[query_zipf.sample(&mut rng)];
                    api.get(
                        &format!(
                            "/api/v1/search?q={}",
                            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
                        ),
                        token,
                    )
                };
                let res = req.send().await.expect("request");
                assert!(res.status().is_success(), "{}", res.status());
                res.bytes().await.expect("body");
            }
            writes
        }));
    }
    let mut writes = 0;
    for h in handles {
        writes += h.await.expect("task");
    }
    let took = t.elapsed().as_secs_f64();
    let after = api.cache_stats().await;
    println!(
        "mixed workload: {} ops ({writes} writes) in {took:.1} s = {:.0} ops/s, {tasks} clients, Zipf(1.1) users",
        plan.mixed_ops / tasks * tasks,
        (plan.mixed_ops / tasks * tasks) as f64 / took
    );
    for ty in ["user_bookmarks", "content_analysis", "query", "embedding"] {
        let field = |s: &Value, f: &str| {
            s["types"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["cache_type"] == ty))
                .and_then(|t| t[f].as_u64())
                .unwrap_or(0)
        };
        let d = |f: &str| field(&after, f) - field(&before, f);
        let requests = d("requests");
        if requests == 0 {
            continue;
        }
        println!(
            "  {ty:<18} requests={requests:<6} L1 hit={:>5.1} %  L2 hit={:>5.1} %  loaded={:>5.1} %",
            100.0 * d("l1_hits") as f64 / requests as f64,
            100.0 * d("l2_hits") as f64 / requests as f64,
            100.0 * d("loads") as f64 / requests as f64,
        );
    }

    // 7: the largest user's search misses with its rows in one scan instead of two
    // (FUZE_SEARCH_SCAN_PARTS); last, so the extra api instance disturbs no other phase.
    let one_scan = TestApi::spawn(
        &env,
        &[("FUZE_API_WORKERS", "2"), ("FUZE_SEARCH_SCAN_PARTS", "1")],
    )
    .await;
    search
        .misses(
            &one_scan,
            &[
                ("largest user, on-topic, 1 scan", largest, true, "semantic"),
                (
                    "largest user, off-topic, 1 scan",
                    largest,
                    false,
                    "semantic",
                ),
            ],
            9,
        )
        .await;
}

/// What the search-miss rows need: users, their tokens and topics, how many searches a row runs.
struct Searches<'a> {
    tokens: &'a [String],
    corpus: &'a vector_seed::Corpus,
    topic_texts: &'a [String],
    count: usize,
}

impl Searches<'_> {
    /// One summary row per `(label, user, on_topic, mode)`, each with queries no other row asked
    /// (numbered from `first_case`), so nothing is served from a cached embedding or result.
    async fn misses(&self, api: &TestApi, cases: &[(&str, usize, bool, &str)], first_case: usize) {
        for (case, &(label, who, on_topic, mode)) in cases.iter().enumerate() {
            let mut ms = Vec::new();
            let topics = &self.corpus.users[who].topics;
            for i in 0..self.count {
                let n = (first_case + case) * 1_000 + i;
                let q = if on_topic {
                    format!("{} {n}", self.topic_texts[topics[i % topics.len()]])
                } else {
                    format!("{} {n}", QUERIES[i % QUERIES.len()])
                };
                let url = format!(
                    "/api/v1/search?q={}&mode={mode}",
                    url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
                );
                let t = Instant::now();
                let res: Value = api
                    .get(&url, &self.tokens[who])
                    .send()
                    .await
                    .expect("search")
                    .json()
                    .await
                    .expect("json");
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(res["mode"], mode, "{res}");
            }
            summary(
                &format!(
                    "{mode} search miss, {label} ({} rows)",
                    self.corpus.users[who].rows
                ),
                ms,
            );
        }
    }
}
