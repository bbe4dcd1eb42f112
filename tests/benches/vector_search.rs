//! Per-user semantic search: recall@10 against exact, and latency, for several query strategies.
//!
//! Seeds 100k bookmarks over 100 users (one with 25k rows, the rest Zipf-distributed) with
//! synthetic clustered 384-d embeddings (unit vectors around 300 random centroids, each user on 30
//! of them), builds the HNSW index of the migration, then runs ~200 queries (near one of the user's
//! centroids, one in five near any centroid) for a small (~300 rows), a medium (~2k) and the large
//! user, with each strategy. Exact = every row of the user, distance computed, sorted.
//!
//! Run with `cargo bench -p fuze-tests --bench vector_search` (env: `VS_QUERIES`, default 200;
//! `VS_ONLY` keeps some strategies; `VS_KEEP_DB=1` leaves the seeded database for `EXPLAIN`).
//! Results and decision: docs/SEARCH.md; the chosen query: `fuze_shared::search`.

#[path = "../src/vector_seed.rs"]
mod vector_seed;

use std::num::NonZeroU32;
use std::time::Instant;

use fuze_shared::{embedding::EmbeddingSpace, search};
use fuze_tests::TestEnv;
use pgvector::Vector;
use sqlx::{Acquire, PgConnection, PgPool};
use uuid::Uuid;
use vector_seed::{EXACT_SQL, recall};

const K: i64 = 10;

/// Global HNSW with the user filter applied to what the index scan returns.
const HNSW_SQL: &str = "SELECT id, (embedding <=> $2)::float4 FROM saved_content \
     WHERE user_id = $1 ORDER BY embedding <=> $2 LIMIT $3";

/// Exact by inner product (`1 + <#>` is the cosine distance of unit vectors).
const EXACT_IP_SQL: &str = "SELECT id, (1 + (embedding <#> $2))::float4 AS d \
     FROM saved_content WHERE user_id = $1 AND embedding IS NOT NULL ORDER BY d, id LIMIT $3";

/// relaxed_order returns slightly out-of-order rows: fetch `$4`, re-sort, keep `$3`.
const RELAXED_SQL: &str = "WITH r AS MATERIALIZED ( \
       SELECT id, embedding <=> $2 AS d FROM saved_content \
       WHERE user_id = $1 ORDER BY d LIMIT $4) \
     SELECT id, d::float4 FROM r ORDER BY d LIMIT $3";

#[derive(Clone)]
struct Single {
    settings: String,
    sql: &'static str,
    /// Rows the inner query fetches (RELAXED_SQL's $4).
    fetch: i64,
}

#[derive(Clone)]
enum Strategy {
    Single(Single),
    /// Exact when the user has fewer than `threshold` rows (bounded count first), else `large`.
    Hybrid {
        threshold: i64,
        large: Single,
    },
    /// What Fuze runs (`fuze_shared::search`): half-precision scan, exact re-rank of
    /// `candidates`, the user's rows split into `parts` concurrent scans.
    Halfvec {
        candidates: u32,
        parts: u32,
    },
}

fn hnsw(order: &str, ef: u32, max_scan: Option<u32>, fetch: i64) -> Single {
    let mut settings = format!(
        "SET LOCAL hnsw.iterative_scan = {order}; SET LOCAL hnsw.ef_search = {ef}; \
         SET LOCAL work_mem = '16MB'"
    );
    if let Some(m) = max_scan {
        settings.push_str(&format!("; SET LOCAL hnsw.max_scan_tuples = {m}"));
    }
    Single {
        settings,
        sql: if order == "relaxed_order" {
            RELAXED_SQL
        } else {
            HNSW_SQL
        },
        fetch,
    }
}

fn exact() -> Single {
    Single {
        settings: String::new(),
        sql: EXACT_SQL,
        fetch: K,
    }
}

fn strategies() -> Vec<(String, Strategy)> {
    let mut s: Vec<(String, Strategy)> = vec![(
        "a  global hnsw + filter (defaults)".into(),
        Strategy::Single(Single {
            settings: String::new(),
            sql: HNSW_SQL,
            fetch: K,
        }),
    )];
    for ef in [40, 100, 200] {
        s.push((
            format!("b  strict_order  ef={ef}"),
            Strategy::Single(hnsw("strict_order", ef, None, K)),
        ));
    }
    for ef in [40, 100, 200] {
        s.push((
            format!("b  relaxed_order ef={ef}"),
            Strategy::Single(hnsw("relaxed_order", ef, None, K)),
        ));
    }
    s.push((
        "b  strict_order  ef=200 max_scan=100k".into(),
        Strategy::Single(hnsw("strict_order", 200, Some(100_000), K)),
    ));
    s.push((
        "b  relaxed_order ef=200 fetch 40".into(),
        Strategy::Single(hnsw("relaxed_order", 200, None, 4 * K)),
    ));
    s.push((
        "b  relaxed_order ef=500 fetch 100".into(),
        Strategy::Single(hnsw("relaxed_order", 500, Some(100_000), 10 * K)),
    ));
    s.push((
        "c  exact via user_id (planner scan)".into(),
        Strategy::Single(exact()),
    ));
    s.push((
        "c  exact, seqscan off (btree/bitmap)".into(),
        Strategy::Single(Single {
            settings: "SET LOCAL enable_seqscan = off".into(),
            ..exact()
        }),
    ));
    s.push((
        "c  exact, index-only (seq, bitmap off)".into(),
        Strategy::Single(Single {
            settings: "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off".into(),
            ..exact()
        }),
    ));
    // Unit vectors: inner product orders like cosine, at a third of the arithmetic, and no
    // cosine-opclass HNSW index can serve it, so no CTE is needed to keep the planner off it.
    s.push((
        "c  exact <#>, index-only, no CTE".into(),
        Strategy::Single(Single {
            settings: "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off".into(),
            sql: EXACT_IP_SQL,
            fetch: K,
        }),
    ));
    s.push((
        "e  exact <10k rows, else relaxed ef=200 f40".into(),
        Strategy::Hybrid {
            threshold: 10_000,
            large: hnsw("relaxed_order", 200, None, 4 * K),
        },
    ));
    for (candidates, parts) in [(10, 1), (20, 1), (64, 1), (64, 2)] {
        s.push((
            format!("h  halfvec scan, re-rank {candidates}, {parts} part(s)"),
            Strategy::Halfvec { candidates, parts },
        ));
    }
    // `VS_ONLY=c,h` keeps the strategies whose label starts with one of those letters.
    if let Ok(only) = std::env::var("VS_ONLY") {
        let keep: Vec<&str> = only.split(',').map(str::trim).collect();
        s.retain(|(name, _)| keep.iter().any(|k| name.starts_with(k)));
    }
    s
}

async fn run_single(conn: &mut PgConnection, s: &Single, user: Uuid, q: &[f32]) -> Vec<Uuid> {
    let mut tx = conn.begin().await.expect("begin");
    if !s.settings.is_empty() {
        sqlx::raw_sql(&s.settings)
            .execute(&mut *tx)
            .await
            .expect("settings");
    }
    let mut query = sqlx::query_as::<_, (Uuid, f32)>(s.sql)
        .bind(user)
        .bind(Vector::from(q.to_vec()))
        .bind(K);
    if s.sql == RELAXED_SQL {
        query = query.bind(s.fetch);
    }
    let rows = query.fetch_all(&mut *tx).await.expect("search");
    tx.commit().await.expect("commit");
    rows.into_iter().map(|(id, _)| id).collect()
}

async fn run(
    conn: &mut PgConnection,
    pool: &PgPool,
    space: &EmbeddingSpace,
    s: &Strategy,
    user: Uuid,
    q: &[f32],
) -> Vec<Uuid> {
    match s {
        Strategy::Halfvec { candidates, parts } => {
            let parts = NonZeroU32::new(*parts).expect("positive parts");
            search::nearest_bookmarks_among(pool, space, user, q, K as u32, *candidates, parts)
                .await
                .expect("search")
                .into_iter()
                .map(|n| n.id)
                .collect()
        }
        Strategy::Single(s) => run_single(conn, s, user, q).await,
        Strategy::Hybrid { threshold, large } => {
            let rows: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT 1 FROM saved_content WHERE user_id = $1 LIMIT $2) s",
            )
            .bind(user)
            .bind(threshold)
            .fetch_one(&mut *conn)
            .await
            .expect("count");
            if rows < *threshold {
                run_single(conn, &exact(), user, q).await
            } else {
                run_single(conn, large, user, q).await
            }
        }
    }
}

/// Scan nodes of the plan for the first query, abbreviated.
async fn plan(conn: &mut PgConnection, s: &Strategy, user: Uuid, rows: usize, q: &[f32]) -> String {
    let s = match s {
        Strategy::Halfvec { candidates, .. } => Single {
            settings: String::new(),
            // Leaked once per class: a handful of short strings. The plan of the whole id range.
            sql: Box::leak(
                search::nearest_sql()
                    .replace("$4", &candidates.to_string())
                    .replace("$5", &format!("'{}'::uuid", Uuid::nil()))
                    .replace("$6", &format!("'{}'::uuid", Uuid::max()))
                    .into_boxed_str(),
            ),
            fetch: K,
        },
        Strategy::Hybrid { threshold, large } if rows as i64 >= *threshold => large.clone(),
        Strategy::Hybrid { .. } => exact(),
        Strategy::Single(s) => s.clone(),
    };
    let mut tx = conn.begin().await.expect("begin");
    if !s.settings.is_empty() {
        sqlx::raw_sql(&s.settings)
            .execute(&mut *tx)
            .await
            .expect("settings");
    }
    let mut query = sqlx::query_scalar::<_, String>(
        // Leaked once per (strategy, class): a handful of short strings.
        Box::leak(format!("EXPLAIN (COSTS OFF) {}", s.sql).into_boxed_str()),
    )
    .bind(user)
    .bind(Vector::from(q.to_vec()))
    .bind(K);
    if s.sql == RELAXED_SQL {
        query = query.bind(s.fetch);
    }
    let lines = query.fetch_all(&mut *tx).await.expect("explain");
    tx.commit().await.expect("commit");
    let mut nodes: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("Scan") && !l.contains("CTE Scan"))
        .map(|l| {
            let l = l.trim().trim_start_matches("->").trim();
            let kind = if l.starts_with("Seq Scan") {
                "seq"
            } else if l.starts_with("Bitmap Index") {
                "bitmap"
            } else if l.starts_with("Bitmap Heap") {
                return String::new();
            } else if l.starts_with("Index Only") {
                "ixonly"
            } else {
                "ix"
            };
            match l.split(" using ").nth(1) {
                Some(rest) => {
                    let index = rest.split_whitespace().next().unwrap_or("");
                    format!("{kind}({})", index.trim_start_matches("saved_content_"))
                }
                None => kind.to_owned(),
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    nodes.dedup();
    nodes.join("+")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let queries_per_class: usize = std::env::var("VS_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let total_started = Instant::now();
    let env = TestEnv::new().await;
    let sizes = vector_seed::skewed_sizes(100, 100_000, 25_000);
    let corpus = vector_seed::seed(&env.pool, &sizes, 300, 30, 42).await;
    println!(
        "seeded {} rows / {} users in {:.1} s (binary COPY, no vector index); \
         HNSW index (m=16, ef_construction=64) built in {:.1} s",
        sizes.iter().sum::<usize>(),
        sizes.len(),
        corpus.seed_time.as_secs_f64(),
        corpus.index_time.as_secs_f64()
    );

    let classes = [
        ("small", corpus.user_near(300)),
        ("medium", corpus.user_near(2_000)),
        ("7k", corpus.user_near(7_000)),
        ("large", corpus.user_near(25_000)),
    ];
    let mut conn = vector_seed::admin_conn(&env.pool).await;
    sqlx::raw_sql("SET statement_timeout = '30s'")
        .execute(&mut *conn)
        .await
        .expect("timeout");

    // Reference answers (also warms the cache for everyone).
    let mut work = Vec::new();
    for (i, (class, user)) in classes.iter().enumerate() {
        let qs = corpus.queries(user, queries_per_class, 1000 + i as u64);
        let mut truth = Vec::with_capacity(qs.len());
        for (q, _) in &qs {
            let sql = EXACT_SQL.replace("SELECT id, d::float4", "SELECT id");
            let ids: Vec<Uuid> = sqlx::query_scalar(&sql)
                .bind(user.id)
                .bind(Vector::from(q.to_vec()))
                .bind(K)
                .fetch_all(&mut *conn)
                .await
                .expect("exact");
            truth.push(ids);
        }
        work.push((*class, *user, qs, truth));
    }

    println!(
        "\n{queries_per_class} queries per user, k = {K}; recall@10 vs exact: mean over all queries, \
         mean over on-topic ones, min; latency per query incl. transaction and SET LOCAL round trips"
    );
    println!(
        "{:<42} {:<6} {:>6} {:>6} {:>6} {:>5} {:>7} {:>7}  plan (first query, custom plan)",
        "strategy", "user", "rows", "recall", "on-top", "min", "p50 ms", "p95 ms"
    );
    for (name, strategy) in strategies() {
        for (class, user, qs, truth) in &work {
            let plan = plan(&mut conn, &strategy, user.id, user.rows, &qs[0].0).await;
            let mut ms = Vec::with_capacity(qs.len());
            let mut recalls = Vec::with_capacity(qs.len());
            let mut on_topic = Vec::with_capacity(qs.len());
            for ((q, topical), t) in qs.iter().zip(truth) {
                let started = Instant::now();
                let got = run(&mut conn, &env.pool, &corpus.space, &strategy, user.id, q).await;
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
                let r = recall(&got, t);
                recalls.push(r);
                if *topical {
                    on_topic.push(r);
                }
            }
            ms.sort_by(f64::total_cmp);
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let min = recalls.iter().copied().fold(1.0, f64::min);
            println!(
                "{name:<42} {class:<6} {:>6} {:>6.3} {:>6.3} {min:>5.2} {:>7.2} {:>7.2}  {plan}",
                user.rows,
                mean(&recalls),
                mean(&on_topic),
                percentile(&ms, 0.5),
                percentile(&ms, 0.95),
            );
        }
    }
    println!("\ntotal {:.0} s", total_started.elapsed().as_secs_f64());
    drop(conn);
    if std::env::var("VS_KEEP_DB").is_ok_and(|v| v == "1") {
        println!("kept the database for inspection: {}", env.database_url);
    } else {
        vector_seed::drop_database(&env.database_url, env.pool.clone()).await;
    }
}
