//! `fuze-api`: serve the API, or run an admin command (`fuze-api --help`).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fuze_api::startup::Application;
use fuze_shared::{auth, cli, config, config::Config, db, telemetry};

/// Fuze's HTTP API: bookmarks, search, recommendations, imports, job status and live events.
#[derive(Parser)]
#[command(name = "fuze-api", version, after_long_help = config::settings_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API on FUZE_API_HOST:FUZE_API_PORT (the default command).
    Serve,
    /// Apply the database migrations, then exit.
    Migrate,
    /// Create a user and print its bearer token (shown only once).
    CreateUser {
        /// The user's email address.
        email: String,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::exit("fuze-api", run(args))
}

#[actix_web::main]
async fn run(args: Cli) -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_env().context("invalid settings")?;
    match args.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            tracing::info!(port = app.port(), "fuze-api listening");
            app.run_until_stopped().await.context("server failed")
        }
        Command::Migrate => {
            let pool = db::connect(&config).await?;
            db::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::CreateUser { email } => {
            let pool = db::connect(&config).await?;
            let (id, token) = auth::create_user(&pool, &email).await?;
            eprintln!("created user {id} ({email}); the token is shown only once:");
            println!("{token}");
            Ok(())
        }
    }
}
