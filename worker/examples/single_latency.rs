//! Latency of back-to-back single-text embeds, to see the fixed cost of one forward pass; or, with
//! `@file.jsonl`, the throughput of embedding that file's texts in one call (for profiling).
//!
//! `cargo run --release -p fuze-worker --example single_latency -- "some text"` or
//! `... -- @../shared/bench-corpus/docs.jsonl` (model from `FUZE_MODEL_DIR`, default
//! `models/all-MiniLM-L6-v2`; `RAYON_NUM_THREADS` sets the threads).

use std::time::Instant;

use anyhow::Context;
use fuze_worker::embed::{EmbedderConfig, EmbeddingModel};

const RUNS: usize = 300;

fn main() -> anyhow::Result<()> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "How do I profile an async Rust web service under load?".to_owned());
    let cfg = EmbedderConfig {
        model_dir: std::env::var("FUZE_MODEL_DIR")
            .unwrap_or_else(|_| "models/all-MiniLM-L6-v2".to_owned())
            .into(),
        ..EmbedderConfig::default()
    };
    let model = EmbeddingModel::load(&cfg)?;
    match arg.strip_prefix('@') {
        Some(path) => throughput(&model, path),
        None => latency(&model, &arg),
    }
}

fn throughput(model: &EmbeddingModel, path: &str) -> anyhow::Result<()> {
    let body = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let texts = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(v["text"].as_str().unwrap_or_default().to_owned())
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    model.embed(&refs[..refs.len().min(16)])?;
    let started = Instant::now();
    model.embed(&refs)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} texts in one call: {:.1} texts/s",
        refs.len(),
        refs.len() as f64 / secs
    );
    Ok(())
}

fn latency(model: &EmbeddingModel, text: &str) -> anyhow::Result<()> {
    for _ in 0..10 {
        model.embed(&[text])?;
    }
    let mut ms = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        model.embed(&[text])?;
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let (tokens, _) = model.count_tokens(text)?;
    println!(
        "{tokens} tokens, {RUNS} runs: p50 {:.2} ms, p99 {:.2} ms",
        ms[RUNS / 2],
        ms[RUNS * 99 / 100]
    );
    Ok(())
}
