//! `fuze-worker`: run jobs (default), the clock, or an operator command.
//!
//! Usage: `fuze-worker [run]`, `fuze-worker clock`, `fuze-worker embed < texts.jsonl`,
//! `fuze-worker extract --url URL < page.html`.

use fuze_shared::{config::Config, telemetry};
use fuze_worker::{cli, clock, runtime};

fn main() -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_env()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["run"] => tokio_runtime()?.block_on(runtime::run(config)),
        ["clock"] => tokio_runtime()?.block_on(clock::run(config)),
        ["embed"] => cli::embed(&config),
        ["extract", "--url", url] => cli::extract(url),
        _ => anyhow::bail!("usage: fuze-worker [run | clock | embed | extract --url URL]"),
    }
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
