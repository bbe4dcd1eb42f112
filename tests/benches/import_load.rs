//! A bulk import under production politeness: a 10,000-link Netscape export over 50 loopback
//! hosts (every page answers after 100 ms), uploaded to a real `fuze-api` process (release
//! build) with one worker process; 1 s after the upload answered, a second user saves one link
//! per second for 20 s on a host of their own. Reported:
//! - the upload's time until every entry is staged and visible (the 202), and the rows visible;
//! - the api's peak RSS during the upload, above its idle RSS (`VmHWM` - `VmRSS` before);
//! - the crawl's throughput, and what the politeness limits allow at most;
//! - the second user's save -> succeeded p50/p95 during the import.
//!
//! Pages share one text (distinct URLs): after the first, embeddings come from the embedding
//! cache, so the bench measures staging, feeding and politeness rather than the model.
//! `cargo bench -p fuze-tests --bench import_load` after `cargo build --release --bins`, or
//! `make bench`. `FUZE_BENCH_QUICK=1`: 2,000 links over 10 hosts, 5 saves.

use std::time::{Duration, Instant};

use fuze_tests::{
    ApiProcess, PageServer, TestEnv, WorkerProcess,
    bench::{percentile, rss_kib},
};
use serde_json::Value;

struct Plan {
    links: usize,
    hosts: usize,
    b_saves: usize,
}

const FULL: Plan = Plan {
    links: 10_000,
    hosts: 50,
    b_saves: 20,
};
const QUICK: Plan = Plan {
    links: 2_000,
    hosts: 10,
    b_saves: 5,
};

const PAGE_MS: u64 = 100;
/// Production politeness: requests in flight per host, and seconds between starts.
const HOST_CAP: usize = 2;
const HOST_INTERVAL_S: f64 = 1.0;
/// The worker's scrape slots (the default `FUZE_SCRAPE_CONCURRENCY`).
const SCRAPE_SLOTS: usize = 8;

/// A browser export: ten folders of entries.
fn export(urls: &[String]) -> String {
    let mut file = String::from(
        "<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<TITLE>Bookmarks</TITLE>\n<H1>Bookmarks</H1>\n<DL><p>\n",
    );
    for (folder, chunk) in urls.chunks(urls.len().div_ceil(10)).enumerate() {
        file.push_str(&format!("<DT><H3>Folder {folder}</H3>\n<DL><p>\n"));
        for (i, url) in chunk.iter().enumerate() {
            file.push_str(&format!(
                "<DT><A HREF=\"{url}\" ADD_DATE=\"{}\" TAGS=\"bench\">Page {folder}-{i}</A>\n",
                1_600_000_000 + i
            ));
        }
        file.push_str("</DL><p>\n");
    }
    file.push_str("</DL><p>\n");
    file
}

#[tokio::main]
async fn main() {
    let plan = if std::env::var_os("FUZE_BENCH_QUICK").is_some() {
        &QUICK
    } else {
        &FULL
    };
    let vars = [
        ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8"),
        ("FUZE_SCRAPE_HOST_CONCURRENCY", "2"),
        ("FUZE_SCRAPE_HOST_INTERVAL_MS", "1000"),
        ("FUZE_DB_MAX_CONNECTIONS", "10"),
        ("FUZE_SCRAPE_TIMEOUT_MS", "15000"),
        ("RUST_LOG", "warn"),
    ];
    let env = TestEnv::new().await;
    let api = ApiProcess::spawn(&env, &vars).await;
    let _worker = WorkerProcess::spawn(&env, &vars).await;
    let (_, a_token) = env.user().await;
    let (b_id, b_token) = env.user().await;
    let mut hosts = Vec::new();
    for i in 0..plan.hosts {
        hosts.push(PageServer::start_on(&format!("127.0.1.{}", 10 + i)).await);
    }
    let b_host = PageServer::start_on("127.0.2.10").await;
    let urls: Vec<String> = (0..plan.links)
        .map(|i| hosts[i % plan.hosts].url(&format!("/slow/{PAGE_MS}/imported?n={i}")))
        .collect();
    let file = export(&urls);
    let http = reqwest::Client::new();
    // Warm the api's pools and caches with one request, so idle RSS is the serving baseline.
    let _ = http
        .get(api.url("/api/v1/bookmarks"))
        .bearer_auth(&a_token)
        .send()
        .await;
    let (idle_kib, _) = rss_kib(api.pid());
    println!(
        "import_load: {} links over {} hosts ({} MiB file), pages take {PAGE_MS} ms; api idle RSS {:.1} MiB",
        plan.links,
        plan.hosts,
        file.len() / 1_048_576,
        idle_kib as f64 / 1024.0
    );

    let started = Instant::now();
    let res = http
        .post(api.url("/api/v1/imports"))
        .bearer_auth(&a_token)
        .body(file)
        .send()
        .await
        .expect("upload");
    let staged_in = started.elapsed();
    let status = res.status();
    let view: Value = res.json().await.expect("import JSON");
    assert_eq!(status, 202, "{view}");
    let (_, peak_kib) = rss_kib(api.pid());
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM saved_content WHERE user_id <> $1")
        .bind(b_id)
        .fetch_one(&env.pool)
        .await
        .expect("count");
    let id = view["id"].as_str().expect("id").to_owned();
    println!(
        "  staged and visible in {:.2} s ({visible} bookmarks; goal <= 5 s); api peak RSS {:.1} MiB, {:+.1} MiB above idle (goal <= 100)",
        staged_in.as_secs_f64(),
        peak_kib as f64 / 1024.0,
        (peak_kib as f64 - idle_kib as f64) / 1024.0
    );

    let b_saving = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for i in 0..plan.b_saves {
            tick.tick().await;
            let res = http
                .post(api.url("/api/v1/bookmarks"))
                .bearer_auth(&b_token)
                .json(&serde_json::json!({ "url": b_host.url(&format!("/slow/{PAGE_MS}/b{i}")) }))
                .send()
                .await
                .expect("save");
            assert_eq!(res.status(), 202);
        }
    };
    let waiting = async {
        loop {
            let view: Value = http
                .get(api.url(&format!("/api/v1/imports/{id}")))
                .bearer_auth(&a_token)
                .send()
                .await
                .expect("progress")
                .json()
                .await
                .expect("progress JSON");
            if view["state"] == "completed" {
                return view;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let ((), done) = tokio::join!(b_saving, waiting);
    env.wait_until_jobs_final(Duration::from_secs(600)).await;
    let crawl_s: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM finished_at - created_at)::float8 FROM imports WHERE id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&env.pool)
    .await
    .expect("import span");
    let crawled = done["counts"]["crawled"].as_i64().unwrap_or(0);
    let failed = done["counts"]["failed"].as_i64().unwrap_or(0);
    let per_host = (HOST_CAP as f64 / (PAGE_MS as f64 / 1000.0)).min(1.0 / HOST_INTERVAL_S);
    let allowed =
        (per_host * plan.hosts as f64).min(SCRAPE_SLOTS as f64 / (PAGE_MS as f64 / 1000.0));
    println!(
        "  crawl: {crawled} crawled, {failed} failed in {crawl_s:.1} s: {:.1} items/s; the limits allow at most {allowed:.1} items/s \
         ({} hosts x 1 start per {HOST_INTERVAL_S} s, {SCRAPE_SLOTS} scrape slots x {PAGE_MS} ms pages)",
        crawled as f64 / crawl_s,
        plan.hosts
    );
    let mut b_ms: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM finished_at - created_at)::float8 * 1000 FROM jobs WHERE user_id = $1",
    )
    .bind(b_id)
    .fetch_all(&env.pool)
    .await
    .expect("b latencies");
    b_ms.sort_by(f64::total_cmp);
    let peak_host = hosts
        .iter()
        .map(PageServer::peak_in_flight)
        .max()
        .unwrap_or(0);
    println!(
        "  second user's save -> succeeded during the import: n={} p50={:.0} ms p95={:.0} ms (goal p95 <= 1000); peak in flight per host {peak_host} (cap {HOST_CAP})",
        b_ms.len(),
        percentile(&b_ms, 0.5),
        percentile(&b_ms, 0.95)
    );
}
