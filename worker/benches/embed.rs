//! Embedding throughput and latency report, stock candle `BertModel` against the Fuze engine.
//!
//! `cargo bench -p fuze-worker --bench embed`. `FUZE_BENCH_QUICK=1` runs a small subset;
//! `FUZE_BENCH_RUNS=N` (default 3, quick 1) repeats everything and reports medians, since one run
//! on a shared 2-core machine is noisy. Each engine runs in its own child process (this binary
//! again, with `FUZE_BENCH_ENGINE` set), so each peak RSS is that engine's alone, as in a worker.
//! Paths: `FUZE_MODEL_DIR` (default `<repo>/models/all-MiniLM-L6-v2`) and `FUZE_BENCH_CORPUS_DIR`
//! (default `<repo>/../shared/bench-corpus`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fuze_worker::embed::{EmbedEngine, EmbedWeights, EmbedderConfig, EmbeddingModel};
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    text: String,
}

/// How much of one corpus a run uses. Batch size 1 is slow, so it runs on a prefix.
#[derive(Clone, Copy)]
struct Limits {
    texts: usize,
    batch1: usize,
}

struct Plan {
    short: Limits,
    docs: Limits,
    latency_runs: usize,
    runs: usize,
}

const FULL: Plan = Plan {
    short: Limits {
        texts: 2_000,
        batch1: 500,
    },
    // 300 of the 500 docs keep a run of both engines near 3 minutes on 2 cores.
    docs: Limits {
        texts: 300,
        batch1: 100,
    },
    latency_runs: 200,
    runs: 3,
};

const QUICK: Plan = Plan {
    short: Limits {
        texts: 200,
        batch1: 100,
    },
    docs: Limits {
        texts: 40,
        batch1: 20,
    },
    latency_runs: 50,
    runs: 1,
};

/// What one child process measures: an engine, and for Fuze its weight format.
#[derive(Clone, Copy)]
struct Variant {
    label: &'static str,
    engine: EmbedEngine,
    weights: EmbedWeights,
}

/// Stock first (the baseline), then Fuze as the worker runs it (`auto`: bf16 weights on CPUs with
/// AVX512-BF16, else f16), then Fuze with f16 and with f32 weights to show what each format adds.
const VARIANTS: [Variant; 4] = [
    Variant {
        label: "stock",
        engine: EmbedEngine::Stock,
        weights: EmbedWeights::F32,
    },
    Variant {
        label: "fuze",
        engine: EmbedEngine::Fuze,
        weights: EmbedWeights::Auto,
    },
    Variant {
        label: "fuze-f16",
        engine: EmbedEngine::Fuze,
        weights: EmbedWeights::F16,
    },
    Variant {
        label: "fuze-f32",
        engine: EmbedEngine::Fuze,
        weights: EmbedWeights::F32,
    },
];

/// Texts per `embed` call in the "production" rows: what the worker's embedding thread hands the
/// model at most (its drain limit, 256 texts), which it then sorts and cuts itself.
const PRODUCTION_CALL: usize = 256;

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

/// Embeds `texts` in consecutive chunks of `chunk`, one `embed` call per chunk; texts/s.
fn throughput(model: &EmbeddingModel, texts: &[&Sample], chunk: usize) -> Result<f64> {
    let started = Instant::now();
    for part in texts.chunks(chunk) {
        let strs: Vec<&str> = part.iter().map(|(t, _)| t.as_str()).collect();
        model.embed(&strs)?;
    }
    Ok(texts.len() as f64 / started.elapsed().as_secs_f64())
}

/// Child side: one engine, one pass over everything. Prints a readable report and `RESULT` lines
/// for the parent.
fn report_corpus(model: &EmbeddingModel, corpus: &Corpus, limits: Limits) -> Result<()> {
    println!(
        "  {} corpus: {} of {} texts, mean {:.1} tokens",
        corpus.name,
        corpus.texts.len(),
        corpus.file_texts,
        corpus.mean_tokens()
    );
    let input_order: Vec<&Sample> = corpus.texts.iter().collect();
    let batch1 = &input_order[..limits.batch1.min(input_order.len())];
    let mut sorted = input_order.clone();
    sorted.sort_by_key(|(_, n)| *n);
    let runs: [(&str, usize, &[&Sample]); 4] = [
        ("production", PRODUCTION_CALL, &input_order),
        ("batch32-sorted", 32, &sorted),
        ("batch32-unsorted", 32, &input_order),
        ("batch1", 1, batch1),
    ];
    for (row, chunk, texts) in runs {
        let rate = throughput(model, texts, chunk)?;
        println!("    {row:<17} {:>5} texts {rate:>9.1} texts/s", texts.len());
        println!("RESULT {}/{row} {rate}", corpus.name);
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
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (p50, p99) = (ms(percentile(&times, 0.50)), ms(percentile(&times, 0.99)));
    println!(
        "  one short text ({runs} runs, tokenize + forward + pool): p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    println!("RESULT latency/p50-ms {p50}");
    println!("RESULT latency/p99-ms {p99}");
    Ok(())
}

/// A `/proc/self/status` size field in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn run_child(variant: Variant, plan: &Plan) -> Result<()> {
    let cfg = EmbedderConfig {
        model_dir: env_dir("FUZE_MODEL_DIR", "../models/all-MiniLM-L6-v2"),
        engine: variant.engine,
        weights: variant.weights,
        ..EmbedderConfig::default()
    };
    let load = Instant::now();
    let model = EmbeddingModel::load(&cfg)?;
    let loaded_rss = status_mib("VmRSS").unwrap_or(f64::NAN);
    println!(
        "  engine {} ({} weights): loaded in {:.2} s, RSS after load {loaded_rss:.0} MiB",
        variant.label,
        fuze_worker::embed::resolve_weights(variant.weights).name(),
        load.elapsed().as_secs_f64()
    );
    let short = Corpus::load(&model, "short", "short.jsonl", plan.short.texts)?;
    let docs = Corpus::load(&model, "docs", "docs.jsonl", plan.docs.texts)?;
    // Warm-up so the first timed run does not pay for page faults and thread-pool start-up.
    let warm: Vec<&str> = short
        .texts
        .iter()
        .take(32)
        .map(|(t, _)| t.as_str())
        .collect();
    model.embed(&warm)?;

    report_corpus(&model, &short, plan.short)?;
    report_corpus(&model, &docs, plan.docs)?;
    latency(&model, &short, plan.latency_runs)?;
    let peak = status_mib("VmHWM").unwrap_or(f64::NAN);
    println!("  peak RSS (VmHWM) {peak:.0} MiB");
    println!("RESULT rss/loaded-mib {loaded_rss}");
    println!("RESULT rss/peak-mib {peak}");
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Parent side: runs each engine `plan.runs` times in child processes and prints medians.
fn run_parent(plan: &Plan, quick: bool) -> Result<()> {
    let cfg = EmbedderConfig::default();
    println!(
        "fuze embed bench{}: {} run(s) per engine, {} CPU threads available",
        if quick { " (QUICK subset)" } else { "" },
        plan.runs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "production limits: max_tokens {}, max_batch_texts {}, batch_token_budget {} \
         (stock: texts x longest; fuze: real tokens); production rows hand `embed` {PRODUCTION_CALL} \
         texts per call in corpus order, as the worker's embedding thread does",
        cfg.max_tokens, cfg.max_batch_texts, cfg.batch_token_budget
    );
    let mut results: BTreeMap<(String, &str), Vec<f64>> = BTreeMap::new();
    let exe = std::env::current_exe()?;
    for run in 1..=plan.runs {
        for variant in VARIANTS {
            println!("\nrun {run}/{}, {}:", plan.runs, variant.label);
            let out = Command::new(&exe)
                .env("FUZE_BENCH_ENGINE", variant.label)
                .output()
                .context("starting the bench child process")?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                bail!(
                    "{} run failed: {}\n{stdout}",
                    variant.label,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            for line in stdout.lines() {
                match line.strip_prefix("RESULT ") {
                    Some(result) => {
                        let (key, value) = result.split_once(' ').context("bad RESULT line")?;
                        results
                            .entry((key.to_owned(), variant.label))
                            .or_default()
                            .push(value.parse()?);
                    }
                    None => println!("{line}"),
                }
            }
        }
    }

    println!(
        "\nmedians of {} run(s) (texts/s unless noted; fuze/stock = speed-up):",
        plan.runs
    );
    println!(
        "  {:<28} {:>10} {:>10} {:>10} {:>10} {:>11}",
        "measure", "stock", "fuze", "fuze-f16", "fuze-f32", "fuze/stock"
    );
    let keys: Vec<String> = results
        .keys()
        .map(|(k, _)| k.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for key in keys {
        let mut get = |label: &'static str| {
            results
                .get_mut(&(key.clone(), label))
                .map_or(f64::NAN, |v| median(v))
        };
        let (stock, fuze) = (get("stock"), get("fuze"));
        let (fuze_f16, fuze_f32) = (get("fuze-f16"), get("fuze-f32"));
        // For times and memory lower is better, so the speed-up is stock / fuze.
        let ratio = if key.starts_with("latency") || key.starts_with("rss") {
            stock / fuze
        } else {
            fuze / stock
        };
        println!(
            "  {key:<28} {stock:>10.1} {fuze:>10.1} {fuze_f16:>10.1} {fuze_f32:>10.1} {ratio:>10.2}x"
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let quick = std::env::var("FUZE_BENCH_QUICK").is_ok_and(|v| v == "1");
    let mut plan = if quick { QUICK } else { FULL };
    if let Some(runs) = std::env::var("FUZE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        plan.runs = runs;
    }
    match std::env::var("FUZE_BENCH_ENGINE") {
        Ok(label) => {
            let variant = VARIANTS
                .into_iter()
                .find(|v| v.label == label)
                .with_context(|| format!("unknown FUZE_BENCH_ENGINE {label:?}"))?;
            run_child(variant, &plan)
        }
        Err(_) => run_parent(&plan, quick),
    }
}
