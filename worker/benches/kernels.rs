//! The Fuze engine's kernels on MiniLM's shapes:
//! - the dense layers of one pass (6 layers x QKV, attention output, up, down projections), timed
//!   for candle's matmul (gemm, what the stock path and Fuze's earlier engine used) against Fuze's
//!   kernel with f32, f16 and bf16 weights, for batches of 1 to 2,048 tokens. Random weights of
//!   the real shapes, each layer its own, so a pass streams all 42 MB of f32 weights as the model
//!   does;
//! - attention (12 heads of 32) over packed batches of equal-length texts.
//!
//! `cargo bench -p fuze-worker --bench kernels` (`FUZE_BENCH_QUICK=1`: fewer repetitions;
//! `FUZE_BENCH_ONLY=attention`: attention only). Prints
//! median times and the multiply-adds per second they imply.

use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};
use fuze_worker::embed::EmbedWeights;
use fuze_worker::embed::kernels::{Activation, Dense, attend};

/// (inputs, outputs) of MiniLM-L6's dense layers, in pass order.
const SHAPES: [(usize, usize); 4] = [(384, 1152), (384, 384), (384, 1536), (1536, 384)];
const LAYERS: usize = 6;
const TOKENS: [usize; 9] = [1, 4, 16, 32, 64, 128, 256, 512, 2048];

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Runs `pass` until about `budget_s` seconds or `max` repetitions have passed; median ms.
fn time(mut pass: impl FnMut() -> Result<()>, max: usize, budget_s: f64) -> Result<f64> {
    pass()?;
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < max && (samples.len() < 5 || started.elapsed().as_secs_f64() < budget_s) {
        let t = Instant::now();
        pass()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median_ms(samples))
}

/// (texts, tokens each) of the attention rows: one query, a batch of short texts, one document, a
/// production batch of documents (about 2,048 tokens).
const ATTENTION_BATCHES: [(usize, usize); 4] = [(1, 16), (32, 16), (1, 210), (10, 205)];
const HEADS: usize = 12;
const HEAD_DIM: usize = 32;

fn attention(max: usize, budget: f64) -> Result<()> {
    println!(
        "\nattention, {HEADS} heads of {HEAD_DIM}, one layer: median ms (GFMA/s of Q·K and P·V)"
    );
    let hidden = HEADS * HEAD_DIM;
    for (texts, len) in ATTENTION_BATCHES {
        let tokens = texts * len;
        let qkv = Tensor::randn(0f32, 1.0, (tokens, 3 * hidden), &Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let spans: Vec<_> = (0..texts).map(|t| t * len..(t + 1) * len).collect();
        let mut ctx = vec![0f32; tokens * hidden];
        let ms = time(
            || {
                attend(&qkv, &spans, HEADS, HEAD_DIM, &mut ctx);
                Ok(())
            },
            max,
            budget,
        )?;
        let fmas = (texts * len * len * 2 * hidden) as f64;
        println!(
            "  {texts:>3} x {len:>3} tokens: {ms:8.3} ms ({:5.0})",
            fmas / ms / 1e6
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let quick = std::env::var("FUZE_BENCH_QUICK").is_ok_and(|v| v == "1");
    let (max, budget) = if quick { (20, 1.0) } else { (200, 4.0) };
    if std::env::var("FUZE_BENCH_ONLY").is_ok_and(|v| v == "attention") {
        return attention(max, budget);
    }
    let dev = Device::Cpu;
    let mut candle = Vec::new();
    let (mut f32s, mut f16s, mut bf16s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..LAYERS {
        for (inputs, outputs) in SHAPES {
            // [out][in] as checkpoints store it; candle multiplies by its [in][out] transpose.
            let w = Tensor::randn(0f32, 0.05, (outputs, inputs), &dev)?;
            let flat = w.flatten_all()?.to_vec1::<f32>()?;
            let bias = vec![0f32; outputs];
            f32s.push(Dense::new(
                &flat,
                &bias,
                outputs,
                inputs,
                EmbedWeights::F32,
            )?);
            f16s.push(Dense::new(
                &flat,
                &bias,
                outputs,
                inputs,
                EmbedWeights::F16,
            )?);
            bf16s.push(Dense::new(
                &flat,
                &bias,
                outputs,
                inputs,
                EmbedWeights::Bf16,
            )?);
            candle.push(w.t()?.contiguous()?);
        }
    }
    let fmas_per_token: usize = SHAPES.iter().map(|(i, o)| i * o).sum::<usize>() * LAYERS;
    println!(
        "dense layers of one pass ({LAYERS} layers, {:.1} M multiply-adds per token), median ms per pass \
         (GFMA/s), {} CPU threads",
        fmas_per_token as f64 / 1e6,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>6} {:>18} {:>18} {:>18} {:>18} {:>12} {:>12}",
        "tokens",
        "candle matmul",
        "fuze f32",
        "fuze f16",
        "fuze bf16",
        "f16 speed-up",
        "bf16 speed-up"
    );
    for tokens in TOKENS {
        let inputs: Vec<Tensor> = SHAPES
            .iter()
            .map(|&(i, _)| Tensor::randn(0f32, 1.0, (tokens, i), &dev))
            .collect::<candle_core::Result<_>>()?;
        let flat: Vec<Vec<f32>> = inputs
            .iter()
            .map(|t| t.flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<_>>()?;
        let mut out = vec![0f32; tokens * 1536];
        let gemm = time(
            || {
                for (n, w) in candle.iter().enumerate() {
                    inputs[n % SHAPES.len()].matmul(w)?;
                }
                Ok(())
            },
            max,
            budget,
        )?;
        let mut fuze = |layers: &[Dense]| {
            time(
                || {
                    for (n, d) in layers.iter().enumerate() {
                        let x = &flat[n % SHAPES.len()];
                        d.forward(x, &mut out[..tokens * d.outputs()], Activation::Identity);
                    }
                    Ok(())
                },
                max,
                budget,
            )
        };
        let (f32_ms, f16_ms, bf16_ms) = (fuze(&f32s)?, fuze(&f16s)?, fuze(&bf16s)?);
        let rate = |ms: f64| (fmas_per_token * tokens) as f64 / ms / 1e6;
        let cell = |ms: f64| format!("{ms:8.3} ({:5.0})", rate(ms));
        println!(
            "{tokens:>6} {:>18} {:>18} {:>18} {:>18} {:>11.2}x {:>11.2}x",
            cell(gemm),
            cell(f32_ms),
            cell(f16_ms),
            cell(bf16_ms),
            gemm / f16_ms,
            gemm / bf16_ms
        );
    }
    attention(max, budget)
}
