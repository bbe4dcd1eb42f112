//! `fuze-worker`: run jobs (default), or an operator command (`fuze-worker --help`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fuze_shared::{cli, config, config::Config, telemetry};
use fuze_worker::{cli as commands, runtime};

/// Fuze's worker: scrapes, embeds and analyses saved links, and answers query embeddings.
#[derive(Parser)]
#[command(name = "fuze-worker", version, after_long_help = config::settings_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run jobs until stopped (the default command).
    Run,
    /// Embed JSON lines `{"text": ...}` from stdin; print `{"embedding": [...]}` lines.
    Embed,
    /// Print what the scraper extracts from the HTML page on stdin.
    Extract {
        /// The page's address (resolves its relative links and names its site).
        #[arg(long)]
        url: String,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::exit("fuze-worker", run(args))
}

fn run(args: Cli) -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_env()?;
    match args.command.unwrap_or(Command::Run) {
        Command::Run => fuze_worker::tokio_runtime()?.block_on(runtime::run(config)),
        Command::Embed => commands::embed(&config),
        Command::Extract { url } => commands::extract(&url),
    }
}
