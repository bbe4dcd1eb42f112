//! `fuze-clock`: the scheduler (`fuze-clock --help`). Run one per deployment; a second one is
//! harmless (each tick is claimed once in Redis).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fuze_shared::{cli, config, config::Config, telemetry};
use fuze_worker::clock;

/// Fuze's clock: re-enqueues lost jobs, feeds running imports and warms the caches of active
/// users on its schedules.
#[derive(Parser)]
#[command(name = "fuze-clock", version, after_long_help = config::settings_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the schedules until stopped (the default command).
    Run,
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::exit("fuze-clock", run(args))
}

fn run(args: Cli) -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_env()?;
    match args.command.unwrap_or(Command::Run) {
        Command::Run => fuze_worker::tokio_runtime()?.block_on(clock::run(config)),
    }
}
