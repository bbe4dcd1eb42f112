//! A fresh database (migrated, with pgvector) and Redis prefix per test.

use std::{collections::HashMap, path::PathBuf};

use fuze_shared::{config::Config, db};
use sqlx::PgPool;
use uuid::Uuid;

pub struct TestEnv {
    pub database_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub pool: PgPool,
    vars: HashMap<String, String>,
}

fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn model_dir() -> PathBuf {
    std::env::var("FUZE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_dir().join("models/all-MiniLM-L6-v2"))
}

impl TestEnv {
    pub async fn new() -> Self {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/fuze".to_owned());
        let server = &base[..base.rfind('/').expect("DATABASE_URL has a database name")];
        let name = format!(
            "fuze_test_{}",
            ulid3::Ulid::generate().to_string().to_lowercase()
        );
        let admin = sqlx::PgPool::connect(&format!("{server}/postgres"))
            .await
            .expect("postgres reachable");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let database_url = format!("{server}/{name}");
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let prefix = format!("fuzetest:{}", &name["fuze_test_".len()..]);
        let vars: HashMap<String, String> = [
            ("DATABASE_URL", database_url.clone()),
            ("REDIS_URL", redis_url.clone()),
            ("FUZE_REDIS_PREFIX", prefix.clone()),
            ("FUZE_MODEL_DIR", model_dir().display().to_string()),
            ("FUZE_API_PORT", "0".to_owned()),
            ("FUZE_DB_MAX_CONNECTIONS", "5".to_owned()),
            ("FUZE_JOB_BACKOFF_BASE_MS", "200".to_owned()),
            ("FUZE_JOB_BACKOFF_MAX_MS", "1000".to_owned()),
            ("FUZE_WORKER_HEARTBEAT_MS", "1000".to_owned()),
            ("FUZE_WORKER_MISSED_HEARTBEATS", "3".to_owned()),
            ("FUZE_SCRAPE_TIMEOUT_MS", "5000".to_owned()),
            // Every page server of a test is one host (127.0.0.1): politeness would serialize
            // them. The politeness tests turn it back on, on several loopback addresses.
            ("FUZE_SCRAPE_HOST_CONCURRENCY", "0".to_owned()),
            ("FUZE_SCRAPE_HOST_INTERVAL_MS", "0".to_owned()),
            // Tests make many requests quickly; the quota tests turn the limits back on.
            ("FUZE_RATE_WRITES_PER_S", "0".to_owned()),
            ("FUZE_RATE_SEARCHES_PER_S", "0".to_owned()),
            ("FUZE_RATE_RECOMMENDATIONS_PER_S", "0".to_owned()),
            ("FUZE_ADMIN_TOKEN", "test-admin-token".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        let pool = db::connect(&config).await.expect("connect test database");
        sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
            .execute(&pool)
            .await
            .expect("pgvector installed");
        db::migrate(&pool).await.expect("migrations");
        Self {
            database_url,
            redis_url,
            prefix,
            pool,
            vars,
        }
    }

    /// Environment for a process of this test, with `overrides` on top.
    pub fn vars(&self, overrides: &[(&str, &str)]) -> HashMap<String, String> {
        let mut vars = self.vars.clone();
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        vars
    }

    pub fn config(&self, overrides: &[(&str, &str)]) -> Config {
        let vars = self.vars(overrides);
        Config::from_lookup(|k| vars.get(k).cloned()).expect("test config")
    }

    /// A new user and its bearer token.
    pub async fn user(&self) -> (Uuid, String) {
        let email = format!("{}@example.test", Uuid::new_v4());
        fuze_shared::auth::create_user(&self.pool, &email)
            .await
            .expect("create user")
    }

    /// Waits until no job record is queued, retrying or running; panics after `timeout`.
    pub async fn wait_until_jobs_final(&self, timeout: std::time::Duration) {
        let started = std::time::Instant::now();
        loop {
            let unfinished: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE state NOT IN ('succeeded', 'failed')",
            )
            .fetch_one(&self.pool)
            .await
            .expect("count unfinished jobs");
            if unfinished == 0 {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "{unfinished} jobs unfinished after {timeout:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .expect("count rows")
    }
}
