//! PostgreSQL goes away mid-load and comes back: every save the api accepted still reaches a
//! final state. The api, the worker and the clock reach the database through a proxy that the
//! test cuts (every connection dropped, new ones refused) for six seconds.

use std::time::{Duration, Instant};

use fuze_tests::{PageServer, TcpProxy, TestApi, TestEnv, WorkerProcess};

const SAVES: usize = 200;
const EVERY: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_cut_mid_load_loses_no_accepted_save() {
    let env = TestEnv::new().await;
    let target = env
        .database_url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("host:port in DATABASE_URL");
    let target: std::net::SocketAddr = tokio::net::lookup_host(target)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let proxy = TcpProxy::start(target).await;
    let proxied = env.database_url.replace(
        &format!("{}:{}", target.ip(), target.port()),
        &format!("127.0.0.1:{}", proxy.port),
    );
    assert_ne!(
        proxied, env.database_url,
        "the processes go through the proxy"
    );
    let vars = [
        ("DATABASE_URL", proxied.as_str()),
        ("FUZE_DB_ACQUIRE_TIMEOUT_MS", "1000"),
        ("FUZE_RATE_WRITES_PER_S", "0"),
        ("FUZE_SCRAPE_ALLOW_INTERNAL", "127.0.0.0/8"),
    ];
    let api = TestApi::spawn(&env, &vars).await;
    let _worker = WorkerProcess::spawn(&env, &vars).await;
    let _clock = WorkerProcess::spawn_mode(&env, "clock", &vars).await;
    let (_, token) = env.user().await;
    let pages = PageServer::start_on("127.0.0.10").await;

    // Saves at 20/s for 10 s; pages take 300 ms, so jobs are in every stage when the cut comes.
    let saving = async {
        let mut outcomes = Vec::new();
        let mut tick = tokio::time::interval(EVERY);
        for i in 0..SAVES {
            tick.tick().await;
            let (status, saved) = api
                .save(&token, &pages.url(&format!("/slow/300/p{i}")))
                .await;
            outcomes.push((status, saved));
        }
        outcomes
    };
    let cutting = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(6)).await;
        proxy.restore();
    };
    let (outcomes, ()) = tokio::join!(saving, cutting);
    let accepted: Vec<String> = outcomes
        .iter()
        .filter(|(status, _)| *status == 202)
        .map(|(_, saved)| saved["job"]["id"].as_str().expect("id").to_owned())
        .collect();
    let refused: Vec<&serde_json::Value> = outcomes
        .iter()
        .filter(|(status, _)| *status != 202)
        .map(|(_, saved)| saved)
        .collect();
    println!(
        "{} saves accepted, {} refused during the cut",
        accepted.len(),
        refused.len()
    );
    assert!(!refused.is_empty(), "the cut was felt by the api");
    assert!(
        refused.iter().all(|r| r["error"]["code"] == "unavailable"),
        "refusals are 503 unavailable: {refused:?}"
    );
    // Saves run for 10 s and the database is away from 2 s to 8 s: the api recovers at once.
    assert!(accepted.len() >= SAVES / 4, "{} accepted", accepted.len());
    assert!(
        outcomes[SAVES - 20..]
            .iter()
            .all(|(status, _)| *status == 202),
        "saves after the restore are accepted again"
    );

    let started = Instant::now();
    for job in &accepted {
        let done = api
            .wait_for_job(&token, job, Duration::from_secs(120))
            .await;
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    println!(
        "all accepted saves succeeded {:?} after the saves",
        started.elapsed()
    );
    let stuck: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'running'")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(stuck, 0);
}
