//! `fuze-api`: serve the API, or run an admin command.
//!
//! Usage: `fuze-api [serve]`, `fuze-api migrate`, `fuze-api create-user <email>`.

use anyhow::Context;
use fuze_api::startup::Application;
use fuze_shared::{auth, config::Config, db, telemetry};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_env()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => {
            let app = Application::build(config).await?;
            tracing::info!(port = app.port(), "fuze-api listening");
            app.run_until_stopped().await.context("server failed")
        }
        ["migrate"] => {
            let pool = db::connect(&config).await?;
            db::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        ["create-user", email] => {
            let pool = db::connect(&config).await?;
            let (id, token) = auth::create_user(&pool, email).await?;
            eprintln!("created user {id} ({email}); the token is shown only once:");
            println!("{token}");
            Ok(())
        }
        _ => anyhow::bail!("usage: fuze-api [serve | migrate | create-user <email>]"),
    }
}
