//! PostgreSQL pool and migrations.

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::{Config, DbConfig};

/// Migrations embedded in every binary, so `fuze-api migrate` needs no files at run time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A pool sized and bounded by config; every connection gets a statement timeout and the planner
/// costs of [`DbConfig`].
pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    connect_url(&config.database_url, &config.db).await
}

pub async fn connect_url(url: &str, db: &DbConfig) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().context("invalid DATABASE_URL")?;
    anyhow::ensure!(
        db.random_page_cost.is_finite() && db.random_page_cost > 0.0,
        "FUZE_DB_RANDOM_PAGE_COST must be a positive number, got {}",
        db.random_page_cost
    );
    let options = options.options([
        (
            "statement_timeout",
            format!("{}", db.statement_timeout.as_millis()),
        ),
        ("random_page_cost", db.random_page_cost.to_string()),
    ]);
    PgPoolOptions::new()
        .max_connections(db.max_connections)
        .min_connections(db.min_connections)
        .acquire_timeout(db.acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        .test_before_acquire(true)
        .connect_with(options)
        .await
        .with_context(|| format!("failed to connect to PostgreSQL at {}", redact(url)))
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("failed to run migrations")
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Whether `e` says the database could not be reached or went away mid-request (a restart, a
/// network cut, a full pool): the server's state, not the request's fault, so worth a retry.
pub fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception) and 57P0x (shutdown, cannot connect now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")),
        _ => false,
    }
}
