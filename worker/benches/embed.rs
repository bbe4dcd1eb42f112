//! Embedding throughput and latency report (not a statistical benchmark: one timed run each).
//!
//! `cargo bench -p fuze-worker --bench embed`. `FUZE_BENCH_QUICK=1` runs a small subset.
//! Paths: `FUZE_MODEL_DIR` (default `<repo>/models/all-MiniLM-L6-v2`) and `FUZE_BENCH_CORPUS_DIR`
//! (default `<repo>/../shared/bench-corpus`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fuze_worker::embed::{EmbedderConfig, EmbeddingModel};
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    text: String,
}

/// How much of one corpus a run uses. Batch size 1 is slow, and on long docs the unsorted
/// comparison adds little (their lengths are already similar), so those run on a prefix.
#[derive(Clone, Copy)]
struct Limits {
    texts: usize,
    batch1: usize,
    unsorted: usize,
}

struct Plan {
    short: Limits,
    docs: Limits,
    latency_runs: usize,
}

const FULL: Plan = Plan {
    short: Limits {
        texts: 2_000,
        batch1: 500,
        unsorted: 2_000,
    },
    // 300 of the 500 docs keep the full run near 2-3 minutes on 2 cores.
    docs: Limits {
        texts: 300,
        batch1: 100,
        unsorted: 200,
    },
    latency_runs: 200,
};

const QUICK: Plan = Plan {
    short: Limits {
        texts: 200,
        batch1: 100,
        unsorted: 200,
    },
    docs: Limits {
        texts: 40,
        batch1: 20,
        unsorted: 40,
    },
    latency_runs: 50,
};

fn env_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(default))
}

/// The first `limit` texts of a corpus file, and how many lines the file has.
fn read_corpus(name: &str, limit: usize) -> Result<(Vec<String>, usize)> {
    let path = env_dir("FUZE_BENCH_CORPUS_DIR", "../../shared/bench-corpus").join(name);
    let body = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (set FUZE_BENCH_CORPUS_DIR)", path.display()))?;
    let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    let texts = lines
        .iter()
        .take(limit)
        .map(|l| Ok(serde_json::from_str::<Line>(l)?.text))
        .collect::<Result<_>>()?;
    Ok((texts, lines.len()))
}

/// A text and its token count after truncation.
type Sample = (String, usize);

struct Corpus {
    name: &'static str,
    texts: Vec<Sample>,
    file_texts: usize,
}

impl Corpus {
    fn load(model: &EmbeddingModel, name: &'static str, file: &str, limit: usize) -> Result<Self> {
        let (texts, file_texts) = read_corpus(file, limit)?;
        let texts = texts
            .into_iter()
            .map(|t| {
                let (n, _) = model.count_tokens(&t)?;
                Ok((t, n))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            name,
            texts,
            file_texts,
        })
    }

    fn mean_tokens(&self) -> f64 {
        let total: usize = self.texts.iter().map(|(_, n)| n).sum();
        total as f64 / self.texts.len().max(1) as f64
    }
}

/// Embeds `texts` in consecutive chunks of `batch`, one `embed` call per chunk.
/// Returns texts/s and the share of padded positions that were real tokens.
fn throughput(model: &EmbeddingModel, texts: &[&Sample], batch: usize) -> Result<(f64, f64)> {
    let (mut real, mut padded) = (0usize, 0usize);
    let started = Instant::now();
    for chunk in texts.chunks(batch) {
        let strs: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
        model.embed(&strs)?;
        let widest = chunk.iter().map(|(_, n)| *n).max().unwrap_or(0);
        real += chunk.iter().map(|(_, n)| n).sum::<usize>();
        padded += widest * chunk.len();
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((
        texts.len() as f64 / secs,
        real as f64 / padded.max(1) as f64,
    ))
}

fn report_corpus(model: &EmbeddingModel, corpus: &Corpus, limits: Limits) -> Result<()> {
    println!(
        "\n{} corpus: {} of {} texts, mean {:.1} tokens",
        corpus.name,
        corpus.texts.len(),
        corpus.file_texts,
        corpus.mean_tokens()
    );
    println!(
        "  {:<7} {:<9} {:>6} {:>10} {:>10}",
        "batch", "order", "texts", "texts/s", "pad-use"
    );
    let input_order: Vec<&Sample> = corpus.texts.iter().collect();
    let prefix = |n: usize| &input_order[..n.min(input_order.len())];
    let mut sorted = input_order.clone();
    sorted.sort_by_key(|(_, n)| *n);
    let runs: [(usize, &str, &[&Sample]); 4] = [
        (1, "-", prefix(limits.batch1)),
        (8, "sorted", &sorted),
        (32, "sorted", &sorted),
        (32, "unsorted", prefix(limits.unsorted)),
    ];
    for (batch, order, texts) in runs {
        let (rate, pad_use) = throughput(model, texts, batch)?;
        println!(
            "  {batch:<7} {order:<9} {:>6} {rate:>10.1} {:>9.0}%",
            texts.len(),
            pad_use * 100.0
        );
    }
    for (what, limit) in [("batch 1", limits.batch1), ("unsorted", limits.unsorted)] {
        if limit < corpus.texts.len() {
            println!("  ({what} runs on the first {limit} texts only, to keep the bench short)");
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn latency(model: &EmbeddingModel, corpus: &Corpus, runs: usize) -> Result<()> {
    let texts: Vec<&str> = corpus.texts.iter().map(|(t, _)| t.as_str()).collect();
    for t in texts.iter().take(10) {
        model.embed(&[t])?;
    }
    let mut times = Vec::with_capacity(runs);
    for t in texts.iter().cycle().take(runs) {
        let started = Instant::now();
        model.embed(&[t])?;
        times.push(started.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / u32::try_from(runs.max(1))?;
    println!(
        "\nsingle short text latency ({runs} runs, different texts, tokenize + forward + pool):\n  \
         p50 {:.2} ms   p99 {:.2} ms   mean {:.2} ms",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3
    );
    Ok(())
}

fn proc_status(field: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim_start_matches(':').trim().to_owned())
}

fn main() -> Result<()> {
    let quick = std::env::var("FUZE_BENCH_QUICK").is_ok_and(|v| v == "1");
    let plan = if quick { QUICK } else { FULL };
    let cfg = EmbedderConfig {
        model_dir: env_dir("FUZE_MODEL_DIR", "../models/all-MiniLM-L6-v2"),
        ..EmbedderConfig::default()
    };
    let started = Instant::now();
    let load = Instant::now();
    let model = EmbeddingModel::load(&cfg)?;
    println!(
        "fuze embed bench{}: model {} ({} dims), loaded in {:.2} s, {} CPU threads available",
        if quick { " (QUICK subset)" } else { "" },
        model.model_id(),
        model.dimensions(),
        load.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "config: max_tokens {}, max_batch_texts {}, batch_token_budget {}; \
         pad-use = real tokens / padded positions",
        cfg.max_tokens, cfg.max_batch_texts, cfg.batch_token_budget
    );

    let short = Corpus::load(&model, "short", "short.jsonl", plan.short.texts)?;
    let docs = Corpus::load(&model, "docs", "docs.jsonl", plan.docs.texts)?;
    // Warm-up so the first timed run does not pay for page faults and thread-pool start-up.
    model.embed(
        &short
            .texts
            .iter()
            .take(32)
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>(),
    )?;

    report_corpus(&model, &short, plan.short)?;
    report_corpus(&model, &docs, plan.docs)?;
    latency(&model, &short, plan.latency_runs)?;

    println!(
        "\npeak RSS (VmHWM) {}, current RSS (VmRSS) {}; total bench time {:.1} s",
        proc_status("VmHWM").unwrap_or_else(|| "n/a".into()),
        proc_status("VmRSS").unwrap_or_else(|| "n/a".into()),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
