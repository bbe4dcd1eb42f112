//! The job queue under load, two users on local page servers (every page answers after 200 ms):
//! user A saves 2,000 links over 20 loopback hosts as fast as the api accepts them; 1 s later
//! user B saves one link per second for 20 s, on a host of its own (so at exactly the rate that
//! host's 1 s interval allows), and again with each of B's links on a host of its own. Reported,
//! for production politeness (2 requests in flight and 1 s between starts per host) and for the
//! most permissive (no cap, no interval):
//! - B's save -> succeeded, p50 and p95 (from the job records' timestamps);
//! - A's throughput (links/s, first save to last job done) and the polite/permissive ratio;
//! - the most requests in flight at once on each page server;
//! - Redis `used_memory` and key count before, right after, and 60 s after the last job, with
//!   the test's keys by kind (the job machinery must go back; caches live out their TTLs).
//!
//! The api runs in this process with per-user write limits off (A saves as fast as it can); one
//! worker process (release build) with the default concurrency. A's pages all carry the same
//! text (distinct URLs), so after the first its embeddings come from the embedding cache: the
//! bench measures the queue and the politeness, not the model's throughput on this machine. `cargo bench -p fuze-tests
//! --bench fair_load` after `cargo build --release --bins`, or `make bench`.
//! `FUZE_BENCH_QUICK=1`: 400 links for A, 10 saves for B, 10 s after.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess, bench::percentile};
use redis::AsyncCommands;

struct Plan {
    a_links: usize,
    b_saves: usize,
    settle: Duration,
}

const FULL: Plan = Plan {
    a_links: 2000,
    b_saves: 20,
    settle: Duration::from_secs(60),
};
const QUICK: Plan = Plan {
    a_links: 400,
    b_saves: 10,
    settle: Duration::from_secs(10),
};

const A_HOSTS: usize = 20;
const PAGE_MS: u64 = 200;

/// Redis-wide memory and keys, and this run's keys by kind (the segment after the prefix).
async fn redis_state(
    conn: &mut redis::aio::ConnectionManager,
    prefix: &str,
) -> (u64, u64, BTreeMap<String, u64>) {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .expect("info");
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let keys: u64 = redis::cmd("DBSIZE")
        .query_async(conn)
        .await
        .expect("dbsize");
    let mut kinds = BTreeMap::new();
    let mut iter: redis::AsyncIter<String> =
        conn.scan_match(format!("{prefix}:*")).await.expect("scan");
    while let Some(key) = futures::StreamExt::next(&mut iter).await {
        let key = key.expect("key");
        let kind = key[prefix.len() + 1..]
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        *kinds.entry(kind).or_insert(0) += 1;
    }
    (used, keys, kinds)
}

fn print_redis(label: &str, state: &(u64, u64, BTreeMap<String, u64>)) {
    println!(
        "  redis {label:<12} used_memory {:>7.2} MiB, {:>6} keys; this run's keys by kind: {:?}",
        state.0 as f64 / 1_048_576.0,
        state.1,
        state.2
    );
}

struct RunResult {
    a_links_per_s: f64,
    b_p50_ms: f64,
    b_p95_ms: f64,
    peak_per_host: usize,
}

/// `b_hosts`: how many hosts B's links are spread over (none of them A's).
async fn run(plan: &Plan, polite: bool, b_hosts: usize) -> RunResult {
    let (cap, interval) = if polite { ("2", "1000") } else { ("0", "0") };
    let vars = [
        ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8"),
        ("FUZE_SCRAPE_HOST_CONCURRENCY", cap),
        ("FUZE_SCRAPE_HOST_INTERVAL_MS", interval),
        ("FUZE_RATE_WRITES_PER_S", "0"),
        ("FUZE_DB_MAX_CONNECTIONS", "10"),
        ("FUZE_SCRAPE_TIMEOUT_MS", "15000"),
    ];
    let env = TestEnv::new().await;
    let api = TestApi::spawn(&env, &vars).await;
    let _worker = WorkerProcess::spawn(&env, &vars).await;
    let (_, a_token) = env.user().await;
    let (b_id, b_token) = env.user().await;
    let mut a_hosts = Vec::new();
    for i in 0..A_HOSTS {
        a_hosts.push(PageServer::start_on(&format!("127.0.0.{}", 11 + i)).await);
    }
    let mut b_servers = Vec::new();
    for i in 0..b_hosts {
        b_servers.push(PageServer::start_on(&format!("127.0.0.{}", 31 + i)).await);
    }
    let mut conn = fuze_shared::redis_conn::connection_manager(&env.redis_url)
        .await
        .expect("redis");
    let before = redis_state(&mut conn, &env.prefix).await;

    let started = Instant::now();
    let a_saving = async {
        let urls: Vec<String> = (0..plan.a_links)
            .map(|i| a_hosts[i % A_HOSTS].url(&format!("/slow/{PAGE_MS}/backlog?n={i}")))
            .collect();
        api.save_new_links(&a_token, &urls, 16).await;
        started.elapsed()
    };
    let b_saving = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for i in 0..plan.b_saves {
            tick.tick().await;
            let host = &b_servers[i % b_hosts];
            let (status, saved) = api
                .save(&b_token, &host.url(&format!("/slow/{PAGE_MS}/b{i}")))
                .await;
            assert_eq!(status, 202, "{saved}");
        }
    };
    let (a_saved_in, ()) = tokio::join!(a_saving, b_saving);
    env.wait_until_jobs_final(Duration::from_secs(3600)).await;
    let (failed,): (i64,) = sqlx::query_as("SELECT count(*) FROM jobs WHERE state = 'failed'")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    let a_done_s: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM max(finished_at) - min(created_at))::float8 FROM jobs WHERE user_id <> $1",
    )
    .bind(b_id)
    .fetch_one(&env.pool)
    .await
    .expect("a span");
    let mut b_ms: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM finished_at - created_at)::float8 * 1000 FROM jobs WHERE user_id = $1",
    )
    .bind(b_id)
    .fetch_all(&env.pool)
    .await
    .expect("b latencies");
    b_ms.sort_by(f64::total_cmp);
    let peaks: Vec<usize> = a_hosts.iter().map(PageServer::peak_in_flight).collect();
    let b_peak = b_servers
        .iter()
        .map(PageServer::peak_in_flight)
        .max()
        .unwrap_or(0);
    let peak_per_host = peaks.iter().copied().max().unwrap_or(0).max(b_peak);
    let result = RunResult {
        a_links_per_s: plan.a_links as f64 / a_done_s,
        b_p50_ms: percentile(&b_ms, 0.5),
        b_p95_ms: percentile(&b_ms, 0.95),
        peak_per_host,
    };
    println!(
        "{}, B on {b_hosts} host(s): A saved {} links in {:.1} s, all done in {:.1} s ({:.1} links/s); {failed} failed",
        if polite {
            "polite (cap 2, 1 s interval)"
        } else {
            "permissive (no cap, no interval)"
        },
        plan.a_links,
        a_saved_in.as_secs_f64(),
        a_done_s,
        result.a_links_per_s
    );
    println!(
        "  B save -> succeeded: n={} p50={:.0} ms p95={:.0} ms max={:.0} ms",
        b_ms.len(),
        result.b_p50_ms,
        result.b_p95_ms,
        b_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!("  peak requests in flight per A host: {peaks:?}; B's hosts: {b_peak}");
    if polite && b_hosts == 1 {
        let right_after = redis_state(&mut conn, &env.prefix).await;
        tokio::time::sleep(plan.settle).await;
        let settled = redis_state(&mut conn, &env.prefix).await;
        print_redis("before", &before);
        print_redis("right after", &right_after);
        print_redis(&format!("{} s after", plan.settle.as_secs()), &settled);
        println!(
            "  used_memory {:+.1} % and keys {:+} against before, {} s after",
            (settled.0 as f64 / before.0 as f64 - 1.0) * 100.0,
            settled.1 as i64 - before.1 as i64,
            plan.settle.as_secs()
        );
    }
    result
}

#[tokio::main]
async fn main() {
    let plan = if std::env::var_os("FUZE_BENCH_QUICK").is_some() {
        &QUICK
    } else {
        &FULL
    };
    println!(
        "fair_load: A saves {} links over {A_HOSTS} hosts, B one per second for {} s; pages take {PAGE_MS} ms",
        plan.a_links, plan.b_saves
    );
    let polite = run(plan, true, 1).await;
    let spread = run(plan, true, plan.b_saves).await;
    let permissive = run(plan, false, 1).await;
    println!(
        "summary: B p95 {:.0} ms (goal <= 1000) polite with B on one host, {:.0} ms with B's links on \
         {} hosts, {:.0} ms permissive; A {:.1} links/s polite, {:.1} permissive, ratio {:.2}; \
         peak in flight per host {} polite (cap 2), {} permissive",
        polite.b_p95_ms,
        spread.b_p95_ms,
        plan.b_saves,
        permissive.b_p95_ms,
        polite.a_links_per_s,
        permissive.a_links_per_s,
        polite.a_links_per_s / permissive.a_links_per_s,
        polite.peak_per_host,
        permissive.peak_per_host
    );
}
