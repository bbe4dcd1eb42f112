//! Job pickup latency: how long a saved link waits before an idle worker starts it.
//!
//! Saves links one at a time through the real api (each to an idle worker), then reads
//! `jobs.started_at - jobs.created_at` from the database. A second round writes the records directly
//! and enqueues WITHOUT the pub/sub wake-up message, to measure the safety-net poll interval alone.
//! Run with `make bench` (or `cargo bench -p fuze-tests --bench pickup`).

use std::time::Duration;

use fuze_shared::jobs::{Lane, Owner, QueueName, StageJob, Ticket, queue::new_task_id, records};
use fuze_tests::{PageServer, TestApi, TestEnv, WorkerProcess};

const ROUNDS: usize = 200;
const GAP: Duration = Duration::from_millis(60);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{name:<34} n={:<4} p50={:>7.2} ms  p90={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(0.0)
    );
}

async fn wait_started(env: &TestEnv, job_id: &str) -> f64 {
    for _ in 0..2000 {
        let waited: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM started_at - created_at)::float8 FROM jobs WHERE id = $1 AND started_at IS NOT NULL",
        )
        .bind(job_id)
        .fetch_optional(&env.pool)
        .await
        .expect("query");
        if let Some(s) = waited {
            return s * 1000.0;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("job {job_id} never started");
}

#[tokio::main]
async fn main() {
    let env = TestEnv::new().await;
    let pages = PageServer::start().await;
    let api = TestApi::spawn(&env, &[]).await;
    let _worker =
        WorkerProcess::spawn(&env, &[("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8")]).await;
    let (user_id, token) = env.user().await;
    println!(
        "pickup latency, idle worker, {ROUNDS} jobs each, {GAP:?} apart (enqueue -> job started)"
    );

    let mut woken = Vec::new();
    for i in 0..ROUNDS {
        let (_, saved) = api
            .save(&token, &pages.url(&format!("/page/pickup-{i}")))
            .await;
        let id = saved["job"]["id"].as_str().expect("job id").to_owned();
        woken.push(wait_started(&env, &id).await);
        tokio::time::sleep(GAP).await;
    }
    report("with pub/sub wake-up (default)", woken);

    // Same jobs, but pushed straight to apalis: no wake-up message, only the poll interval.
    let queues = fuze_shared::jobs::JobQueues::new(
        fuze_shared::redis_conn::connection_manager(&env.redis_url)
            .await
            .expect("redis"),
        fuze_shared::keys::Keys::new(env.prefix.clone()),
        env.config(&[]).worker,
    );
    let mut polled = Vec::new();
    for i in 0..ROUNDS {
        // Written straight to the database, so nothing else wakes the worker.
        let url =
            fuze_shared::domain::BookmarkUrl::parse(&pages.url(&format!("/page/silent-{i}")), 2048)
                .expect("url");
        let mut conn = env.pool.acquire().await.expect("conn");
        let (bookmark, _) = fuze_shared::bookmarks::insert_or_get(
            &mut conn,
            user_id,
            url.as_str(),
            &url.hash(),
            None,
            None,
        )
        .await
        .expect("bookmark");
        let bookmark_id = bookmark.id;
        let job_id = new_task_id();
        records::insert(
            &env.pool,
            &records::NewJob {
                id: &job_id,
                user_id,
                kind: "ingest",
                stage: QueueName::Scrape.as_str(),
                bookmark_id: Some(bookmark_id),
                max_attempts: 3,
                lane: Lane::Interactive,
            },
        )
        .await
        .expect("job record");
        let payload = StageJob {
            job_id: job_id.clone(),
            user_id,
            bookmark_id,
            refresh: false,
        };
        let ticket = Ticket {
            queue: QueueName::Scrape,
            id: &job_id,
            owner: Owner::User(user_id),
            lane: Lane::Interactive,
        };
        queues
            .enqueue_silently(ticket, &payload, None)
            .await
            .expect("enqueue");
        polled.push(wait_started(&env, &job_id).await);
        tokio::time::sleep(GAP).await;
    }
    report("without wake-up (poll interval only)", polled);
}
