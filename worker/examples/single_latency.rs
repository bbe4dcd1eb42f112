//! Latency of back-to-back single-text embeds, to see the fixed cost of one forward pass.
//!
//! `cargo run --release -p fuze-worker --example single_latency -- "some text"` (model from
//! `FUZE_MODEL_DIR`, default `models/all-MiniLM-L6-v2`; `RAYON_NUM_THREADS` sets the threads).

use std::time::Instant;

use fuze_worker::embed::{EmbedderConfig, EmbeddingModel};

const RUNS: usize = 300;

fn main() -> anyhow::Result<()> {
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "How do I profile an async Rust web service under load?".to_owned());
    let cfg = EmbedderConfig {
        model_dir: std::env::var("FUZE_MODEL_DIR")
            .unwrap_or_else(|_| "models/all-MiniLM-L6-v2".to_owned())
            .into(),
        ..EmbedderConfig::default()
    };
    let model = EmbeddingModel::load(&cfg)?;
    for _ in 0..10 {
        model.embed(&[&text])?;
    }
    let mut ms = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        model.embed(&[&text])?;
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let (tokens, _) = model.count_tokens(&text)?;
    println!(
        "{tokens} tokens, {RUNS} runs: p50 {:.2} ms, p99 {:.2} ms",
        ms[RUNS / 2],
        ms[RUNS * 99 / 100]
    );
    Ok(())
}
