//! Dense layers, `y = act(x · W + b)`, on weights packed once at load time.
//!
//! W is cut into panels of [`PANEL`] output columns, each stored `[inputs][PANEL]` so the kernel
//! reads it front to back. With AVX-512 the kernel keeps up to [`TILE_ROWS`] rows × 48 columns of
//! the output in 24 registers, streams its panel once per tile, and adds the bias (and GELU) as it
//! stores. A tile's rows never mix, so a text's vector does not depend on its batch mates.
//!
//! Weights are bf16 by default on CPUs with AVX512-BF16 (`vdpbf16ps` does two multiply-adds per
//! lane and instruction: 1.7x the throughput of f32 FMAs on large passes on an AMD Zen 4, vectors
//! within cosine 0.99998 of sentence-transformers), else half precision. A short text's pass is
//! bound by reading the weights (42 MB for six layers in f32), and f16 halves that; its vectors
//! stay within cosine 0.9999996 (docs/PERFORMANCE.md). candle's gemm, which this replaces, spent a
//! one-text pass largely waking its thread pool; on large passes it is level with this kernel on
//! an AMD Zen 5 and faster on an Intel Xeon (docs/PERFORMANCE.md, kernels bench).

use std::ops::Range;

use fuze_shared::config::EmbedWeights;
use half::f16;
use rayon::prelude::*;

use super::bf16;
use super::vector::{self, gelu};

/// Output columns per panel: three AVX-512 registers of f32.
pub(super) const PANEL: usize = 48;
/// Output rows per register tile: 8 rows × 3 registers = 24 of the 32 AVX-512 registers.
const TILE_ROWS: usize = 8;
/// Rows whose inputs stay in L2 while every panel of a task passes over them.
const ROW_BLOCK: usize = 64;
/// Tasks a product is cut into: enough for rayon to even out two cores that are not equally free.
const TASKS: usize = 8;
/// A task gets at least this many rows before rows, not columns, are split.
const MIN_TASK_ROWS: usize = 32;

/// What the store applies after adding the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// The exact (erf) GELU of BERT.
    Gelu,
}

/// The panels' numbers.
enum Panels {
    /// IEEE half-precision bit patterns.
    F16(Vec<u16>),
    F32(Vec<f32>),
    /// bfloat16 pairs along the inputs (`bf16::pairs`), `[pairs][PANEL]` per panel.
    Bf16(Vec<u32>),
}

/// The format `Auto` stands for on this CPU: bf16 where AVX512-BF16 does two multiply-adds per
/// instruction, else f16.
pub fn resolve(weights: EmbedWeights) -> EmbedWeights {
    match weights {
        EmbedWeights::Auto if bf16::available() => EmbedWeights::Bf16,
        EmbedWeights::Auto => EmbedWeights::F16,
        other => other,
    }
}

/// Whether this CPU runs the register-tiled kernels (AVX-512). Elsewhere the portable kernel
/// runs, one row at a time, which was 7-13x slower than candle's matmul on an AVX2 machine
/// (docs/PERFORMANCE.md).
pub fn tiled_kernels_available() -> bool {
    matches!(Isa::detect(), Isa::V4(_))
}

/// A dense layer's weights and bias, packed for [`Dense::forward`].
pub struct Dense {
    inputs: usize,
    outputs: usize,
    panels: Panels,
    /// Bias padded with zeros to whole panels.
    bias: Vec<f32>,
}

/// One rectangle of the output: some rows × some panels, holding its part of each row.
struct Task<'a> {
    first_row: usize,
    panels: Range<usize>,
    out: Vec<&'a mut [f32]>,
}

impl Dense {
    /// Packs `weight`, `[outputs][inputs]` as checkpoints store it (PyTorch's `Linear`).
    pub fn new(
        weight: &[f32],
        bias: &[f32],
        outputs: usize,
        inputs: usize,
        precision: EmbedWeights,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            weight.len() == outputs * inputs && bias.len() == outputs && inputs > 0,
            "dense layer of {outputs}x{inputs} got {} weights and {} biases",
            weight.len(),
            bias.len()
        );
        let panel_count = outputs.div_ceil(PANEL);
        let mut packed = vec![0f32; panel_count * inputs * PANEL];
        for (o, row) in weight.chunks_exact(inputs).enumerate() {
            let (panel, col) = (o / PANEL, o % PANEL);
            for (i, w) in row.iter().enumerate() {
                packed[(panel * inputs + i) * PANEL + col] = *w;
            }
        }
        let panels = match resolve(precision) {
            EmbedWeights::F32 => Panels::F32(packed),
            EmbedWeights::Bf16 => {
                let pairs = inputs.div_ceil(2);
                let mut out = vec![0u32; panel_count * pairs * PANEL];
                for (p, panel) in packed.chunks_exact(inputs * PANEL).enumerate() {
                    for i in 0..pairs {
                        for c in 0..PANEL {
                            let lo = panel[2 * i * PANEL + c];
                            let hi = panel.get((2 * i + 1) * PANEL + c).copied().unwrap_or(0.0);
                            out[(p * pairs + i) * PANEL + c] = bf16::pair(lo, hi);
                        }
                    }
                }
                Panels::Bf16(out)
            }
            EmbedWeights::F16 | EmbedWeights::Auto => {
                let max = packed.iter().fold(0f32, |m, w| m.max(w.abs()));
                anyhow::ensure!(
                    max <= f32::from(f16::MAX),
                    "a weight of {max} does not fit f16: use FUZE_EMBED_WEIGHTS=f32"
                );
                Panels::F16(packed.iter().map(|&w| f16::from_f32(w).to_bits()).collect())
            }
        };
        let mut padded_bias = bias.to_vec();
        padded_bias.resize(panel_count * PANEL, 0.0);
        Ok(Self {
            inputs,
            outputs,
            panels,
            bias: padded_bias,
        })
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    fn panel_count(&self) -> usize {
        self.bias.len() / PANEL
    }

    /// `out[r] = act(x[r] · W + b)` for every row of `x` (`[rows][inputs]`) into `out`
    /// (`[rows][outputs]`), on the rayon pool.
    pub fn forward(&self, x: &[f32], out: &mut [f32], act: Activation) {
        self.forward_staged(x, &mut Vec::new(), out, act);
    }

    /// [`Dense::forward`] with a caller's buffer for the bf16-rounded inputs (bf16 weights only),
    /// so a pass does not allocate one per layer.
    pub fn forward_staged(
        &self,
        x: &[f32],
        staged: &mut Vec<u32>,
        out: &mut [f32],
        act: Activation,
    ) {
        let rows = x.len() / self.inputs;
        assert!(
            x.len() == rows * self.inputs && out.len() == rows * self.outputs,
            "dense layer {}x{}: input of {} and output of {} values",
            self.inputs,
            self.outputs,
            x.len(),
            out.len()
        );
        if rows == 0 {
            return;
        }
        // bf16 weights multiply bf16 inputs: round this layer's input rows once, not per task.
        let x_pairs: &[u32] = match self.panels {
            Panels::Bf16(_) => {
                let len = rows * self.inputs.div_ceil(2);
                if staged.len() < len {
                    staged.resize(len, 0);
                }
                bf16::pair_rows(x, self.inputs, &mut staged[..len]);
                &staged[..len]
            }
            _ => &[],
        };
        let inputs = Inputs { x, x_pairs };
        let tasks = self.split(rows, out);
        if tasks.len() == 1 {
            tasks
                .into_iter()
                .for_each(|task| self.run(inputs, task, act, Isa::detect()));
        } else {
            tasks
                .into_par_iter()
                .for_each(|task| self.run(inputs, task, act, Isa::detect()));
        }
    }

    /// Cuts the output into up to [`TASKS`] rectangles: by rows when there are many, else by
    /// panels, so that one short text still keeps both cores busy.
    fn split<'a>(&self, rows: usize, out: &'a mut [f32]) -> Vec<Task<'a>> {
        let panels = self.panel_count();
        let row_groups = (rows / MIN_TASK_ROWS).clamp(1, TASKS);
        let col_groups = (TASKS / row_groups).clamp(1, panels);
        let rows_per_group = rows.div_ceil(row_groups).next_multiple_of(TILE_ROWS);
        let panels_per_group = panels.div_ceil(col_groups);
        let mut tasks = Vec::with_capacity(row_groups * col_groups);
        for (g, block) in out.chunks_mut(rows_per_group * self.outputs).enumerate() {
            let first = tasks.len();
            let mut start = 0;
            while start < panels {
                let end = (start + panels_per_group).min(panels);
                tasks.push(Task {
                    first_row: g * rows_per_group,
                    panels: start..end,
                    out: Vec::with_capacity(rows_per_group),
                });
                start = end;
            }
            for row in block.chunks_exact_mut(self.outputs) {
                let mut rest = row;
                for task in &mut tasks[first..] {
                    let width =
                        (task.panels.end * PANEL).min(self.outputs) - task.panels.start * PANEL;
                    let (part, tail) = rest.split_at_mut(width);
                    task.out.push(part);
                    rest = tail;
                }
            }
        }
        tasks
    }

    fn run(&self, inputs: Inputs<'_>, task: Task<'_>, act: Activation, isa: Isa) {
        let x = inputs.x;
        match (isa, &self.panels) {
            #[cfg(target_arch = "x86_64")]
            (Isa::V4(simd), Panels::Bf16(w)) if bf16::available() => {
                let job = self.job(w, inputs.x_pairs, task, act);
                pulp::Simd::vectorize(simd, avx512::Tiles(simd, job))
            }
            (_, Panels::Bf16(w)) => {
                let job = self.job(w, inputs.x_pairs, task, act);
                pulp::Arch::new().dispatch(portable::Rows(job))
            }
            #[cfg(target_arch = "x86_64")]
            (Isa::V4(simd), Panels::F16(w)) => {
                pulp::Simd::vectorize(simd, avx512::Tiles(simd, self.job(w, x, task, act)))
            }
            #[cfg(target_arch = "x86_64")]
            (Isa::V4(simd), Panels::F32(w)) => {
                pulp::Simd::vectorize(simd, avx512::Tiles(simd, self.job(w, x, task, act)))
            }
            (_, Panels::F16(w)) => {
                pulp::Arch::new().dispatch(portable::Rows(self.job(w, x, task, act)))
            }
            (_, Panels::F32(w)) => {
                pulp::Arch::new().dispatch(portable::Rows(self.job(w, x, task, act)))
            }
        }
    }

    fn job<'a, W: Weight>(
        &'a self,
        weights: &'a [W],
        x: &'a [W::Input],
        task: Task<'a>,
        act: Activation,
    ) -> Job<'a, W> {
        Job {
            dense: self,
            weights,
            x,
            task,
            act,
        }
    }
}

/// A layer's input rows: as given, and as bf16 pairs when the weights are bf16.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    x: &'a [f32],
    x_pairs: &'a [u32],
}

/// One task's inputs, handed to a kernel.
struct Job<'a, W: Weight> {
    dense: &'a Dense,
    weights: &'a [W],
    /// `[rows][W::row_len(inputs)]`.
    x: &'a [W::Input],
    task: Task<'a>,
    act: Activation,
}

/// The instruction set the kernel runs with.
#[derive(Clone, Copy)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    V4(pulp::x86::V4),
    Portable,
}

impl Isa {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V4::try_new() {
            return Self::V4(simd);
        }
        Self::Portable
    }
}

/// A panel's number type and the input rows it multiplies.
trait Weight: bytemuck::Pod + Send + Sync {
    /// The numbers of an input row: f32, or bf16 pairs for bf16 weights.
    type Input: bytemuck::Pod + Send + Sync;

    /// Numbers per input row (and per panel column) for a layer of `inputs` inputs.
    fn row_len(inputs: usize) -> usize {
        inputs
    }

    /// `acc += row · panel`, one row in plain Rust (the portable kernel).
    fn accumulate(row: &[Self::Input], panel: &[[Self; PANEL]], acc: &mut [f32; PANEL]);
}

/// `acc += row · panel` for f32 rows and weights that `widen` turns into f32.
#[inline(always)]
fn accumulate_widened<W: Copy>(
    row: &[f32],
    panel: &[[W; PANEL]],
    acc: &mut [f32; PANEL],
    widen: impl Fn(W) -> f32,
) {
    for (a, w) in row.iter().zip(panel) {
        for (acc, w) in acc.iter_mut().zip(w) {
            *acc = a.mul_add(widen(*w), *acc);
        }
    }
}

impl Weight for f32 {
    type Input = f32;

    #[inline(always)]
    fn accumulate(row: &[f32], panel: &[[f32; PANEL]], acc: &mut [f32; PANEL]) {
        accumulate_widened(row, panel, acc, |w| w);
    }
}

/// IEEE half precision.
impl Weight for u16 {
    type Input = f32;

    #[inline(always)]
    fn accumulate(row: &[f32], panel: &[[u16; PANEL]], acc: &mut [f32; PANEL]) {
        accumulate_widened(row, panel, acc, |w| f16::from_bits(w).to_f32());
    }
}

/// A pair of bf16 numbers along the inputs (`bf16::pair`).
impl Weight for u32 {
    type Input = u32;

    fn row_len(inputs: usize) -> usize {
        inputs.div_ceil(2)
    }

    #[inline(always)]
    fn accumulate(row: &[u32], panel: &[[u32; PANEL]], acc: &mut [f32; PANEL]) {
        for (a, w) in row.iter().zip(panel) {
            let (a0, a1) = bf16::unpair(*a);
            for (acc, w) in acc.iter_mut().zip(w) {
                let (w0, w1) = bf16::unpair(*w);
                *acc = a1.mul_add(w1, a0.mul_add(w0, *acc));
            }
        }
    }
}

/// Stores one finished tile row: bias, activation, and only the columns that exist.
#[inline(always)]
fn store(acc: &[f32; PANEL], bias: &[f32], dst: &mut [f32], act: Activation) {
    for ((d, a), b) in dst.iter_mut().zip(acc).zip(bias) {
        *d = a + b;
    }
    if act == Activation::Gelu {
        for d in dst.iter_mut() {
            *d = gelu(*d);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use pulp::f32x16;
    use pulp::x86::V4;

    use super::*;

    /// The sums of `R` rows × one panel, in 3 registers per row.
    pub(super) trait Load: Weight {
        fn tile<const R: usize>(
            simd: V4,
            rows: [&[Self::Input]; R],
            panel: &[[Self; PANEL]],
        ) -> [[f32x16; 3]; R];
    }

    /// f32 rows times weights widened to f32 once per tile: 24 FMAs per three weight registers.
    #[inline(always)]
    fn widened_tile<W: Weight<Input = f32>, const R: usize>(
        simd: V4,
        rows: [&[f32]; R],
        panel: &[[W; PANEL]],
        load: impl Fn(&[W; PANEL]) -> [f32x16; 3],
    ) -> [[f32x16; 3]; R] {
        let zero = simd.splat_f32x16(0.0);
        let mut acc = [[zero; 3]; R];
        for (i, w) in panel.iter().enumerate() {
            let w = load(w);
            for (acc, row) in acc.iter_mut().zip(&rows) {
                let a = simd.splat_f32x16(row[i]);
                for (acc, w) in acc.iter_mut().zip(&w) {
                    *acc = simd.mul_add_f32x16(a, *w, *acc);
                }
            }
        }
        acc
    }

    impl Load for f32 {
        #[inline(always)]
        fn tile<const R: usize>(
            simd: V4,
            rows: [&[f32]; R],
            panel: &[[f32; PANEL]],
        ) -> [[f32x16; 3]; R] {
            widened_tile(simd, rows, panel, |w| pulp::cast(*w))
        }
    }

    impl Load for u16 {
        #[inline(always)]
        fn tile<const R: usize>(
            simd: V4,
            rows: [&[f32]; R],
            panel: &[[u16; PANEL]],
        ) -> [[f32x16; 3]; R] {
            widened_tile(simd, rows, panel, |w| {
                let [a, b, c]: [[u16; 16]; 3] = pulp::cast(*w);
                [widen(simd, a), widen(simd, b), widen(simd, c)]
            })
        }
    }

    impl Load for u32 {
        #[inline(always)]
        fn tile<const R: usize>(
            _: V4,
            rows: [&[u32]; R],
            panel: &[[u32; PANEL]],
        ) -> [[f32x16; 3]; R] {
            bf16::avx512::tile(rows, panel).map(pulp::cast)
        }
    }

    #[inline(always)]
    fn widen(simd: V4, h: [u16; 16]) -> f32x16 {
        pulp::cast(simd.avx512f._mm512_cvtph_ps(pulp::cast(h)))
    }

    /// The register-tiled kernel, with the token that proves the CPU has AVX-512.
    pub(super) struct Tiles<'a, W: Weight>(pub V4, pub Job<'a, W>);

    impl<W: Load> pulp::WithSimd for Tiles<'_, W> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Tiles(
                simd,
                Job {
                    dense,
                    weights,
                    x,
                    mut task,
                    act,
                },
            ) = self;
            let k = W::row_len(dense.inputs);
            let rows = task.out.len();
            for block in (0..rows).step_by(ROW_BLOCK) {
                let block_end = (block + ROW_BLOCK).min(rows);
                for p in task.panels.clone() {
                    let panel: &[[W; PANEL]] =
                        bytemuck::cast_slice(&weights[p * k * PANEL..(p + 1) * k * PANEL]);
                    let bias = &dense.bias[p * PANEL..(p + 1) * PANEL];
                    let col = (p - task.panels.start) * PANEL;
                    for tile in (block..block_end).step_by(TILE_ROWS) {
                        let n = TILE_ROWS.min(block_end - tile);
                        let first = task.first_row + tile;
                        let x = &x[first * k..(first + n) * k];
                        let out = &mut task.out[tile..tile + n];
                        match n {
                            8 => tile_rows::<W, 8>(simd, x, panel, bias, out, col, act),
                            7 => tile_rows::<W, 7>(simd, x, panel, bias, out, col, act),
                            6 => tile_rows::<W, 6>(simd, x, panel, bias, out, col, act),
                            5 => tile_rows::<W, 5>(simd, x, panel, bias, out, col, act),
                            4 => tile_rows::<W, 4>(simd, x, panel, bias, out, col, act),
                            3 => tile_rows::<W, 3>(simd, x, panel, bias, out, col, act),
                            2 => tile_rows::<W, 2>(simd, x, panel, bias, out, col, act),
                            _ => tile_rows::<W, 1>(simd, x, panel, bias, out, col, act),
                        }
                    }
                }
            }
        }
    }

    /// `R` rows × one panel: the inner loop of the whole engine.
    #[inline(always)]
    fn tile_rows<W: Load, const R: usize>(
        simd: V4,
        x: &[W::Input],
        panel: &[[W; PANEL]],
        bias: &[f32],
        out: &mut [&mut [f32]],
        col: usize,
        act: Activation,
    ) {
        let k = panel.len();
        let rows: [&[W::Input]; R] = std::array::from_fn(|r| &x[r * k..(r + 1) * k]);
        let zero = simd.splat_f32x16(0.0);
        let acc = W::tile(simd, rows, panel);
        let bias: [f32x16; 3] = pulp::cast(<[f32; PANEL]>::try_from(bias).unwrap_or([0.0; PANEL]));
        for (acc, dst) in acc.iter().zip(out) {
            let mut y = [zero; 3];
            for ((y, a), b) in y.iter_mut().zip(acc).zip(&bias) {
                let sum = simd.add_f32x16(*a, *b);
                *y = match act {
                    Activation::Identity => sum,
                    Activation::Gelu => vector::avx512::gelu(simd, sum),
                };
            }
            let y: [f32; PANEL] = pulp::cast(y);
            let width = (dst.len() - col).min(PANEL);
            // A whole panel as three vector stores; `copy_from_slice` would call `memmove`.
            match <&mut [f32; PANEL]>::try_from(&mut dst[col..col + width]) {
                Ok(whole) => *whole = y,
                Err(_) => dst[col..col + width].copy_from_slice(&y[..width]),
            }
        }
    }
}

/// The kernel in plain Rust for CPUs without AVX-512: one row at a time, compiled for the best
/// instruction set pulp finds (AVX2 + FMA on most x86-64).
mod portable {
    use super::*;

    /// One row at a time.
    pub(super) struct Rows<'a, W: Weight>(pub Job<'a, W>);

    impl<W: Weight> pulp::WithSimd for Rows<'_, W> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Job {
                dense,
                weights,
                x,
                mut task,
                act,
            } = self.0;
            run(dense, weights, x, &mut task, act);
        }
    }

    #[inline(always)]
    fn run<W: Weight>(
        dense: &Dense,
        weights: &[W],
        x: &[W::Input],
        task: &mut Task<'_>,
        act: Activation,
    ) {
        let k = W::row_len(dense.inputs);
        for p in task.panels.clone() {
            let panel: &[[W; PANEL]] =
                bytemuck::cast_slice(&weights[p * k * PANEL..(p + 1) * k * PANEL]);
            let bias = &dense.bias[p * PANEL..(p + 1) * PANEL];
            let col = (p - task.panels.start) * PANEL;
            for (r, dst) in task.out.iter_mut().enumerate() {
                let row = &x[(task.first_row + r) * k..(task.first_row + r + 1) * k];
                let mut acc = [0f32; PANEL];
                W::accumulate(row, panel, &mut acc);
                let width = (dst.len() - col).min(PANEL);
                store(&acc, bias, &mut dst[col..col + width], act);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// f64 reference with the weights as the layer stores them.
    fn reference(x: &[f32], w: &[f32], b: &[f32], outputs: usize, act: Activation) -> Vec<f32> {
        let inputs = w.len() / outputs;
        x.chunks_exact(inputs)
            .flat_map(|row| {
                (0..outputs).map(move |o| {
                    let dot: f64 = row
                        .iter()
                        .zip(&w[o * inputs..(o + 1) * inputs])
                        .map(|(a, w)| f64::from(*a) * f64::from(*w))
                        .sum::<f64>()
                        + f64::from(b[o]);
                    let y = dot as f32;
                    if act == Activation::Gelu { gelu(y) } else { y }
                })
            })
            .collect()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    }

    #[test]
    fn matches_reference_for_every_shape_precision_and_kernel() -> anyhow::Result<()> {
        // Outputs off the panel width, rows off the tile height and past a row block.
        for (rows, inputs, outputs) in [(1, 7, 5), (9, 64, 100), (70, 40, 48), (300, 96, 130)] {
            let x = pseudo_random(rows * inputs, 1);
            let w = pseudo_random(outputs * inputs, 2);
            let b = pseudo_random(outputs, 3);
            for precision in [EmbedWeights::F32, EmbedWeights::F16, EmbedWeights::Bf16] {
                let to_bf16 = |v: &[f32]| -> Vec<f32> {
                    v.iter()
                        .map(|&v| half::bf16::from_f32(v).to_f32())
                        .collect()
                };
                // bf16 rounds the inputs too.
                let (stored, x_used): (Vec<f32>, Vec<f32>) = match precision {
                    EmbedWeights::F16 => (
                        w.iter().map(|&v| f16::from_f32(v).to_f32()).collect(),
                        x.clone(),
                    ),
                    EmbedWeights::Bf16 => (to_bf16(&w), to_bf16(&x)),
                    _ => (w.clone(), x.clone()),
                };
                let dense = Dense::new(&w, &b, outputs, inputs, precision)?;
                for act in [Activation::Identity, Activation::Gelu] {
                    let want = reference(&x_used, &stored, &b, outputs, act);
                    let mut got = vec![f32::NAN; rows * outputs];
                    dense.forward(&x, &mut got, act);
                    let diff = max_diff(&got, &want);
                    assert!(
                        diff < 1e-5,
                        "{rows}x{inputs}x{outputs} {precision:?} {act:?}: {diff}"
                    );
                    // The portable kernel, whatever this CPU has.
                    let mut portable = vec![f32::NAN; rows * outputs];
                    let mut x_pairs = vec![0u32; rows * inputs.div_ceil(2)];
                    bf16::pair_rows(&x, inputs, &mut x_pairs);
                    let staged = Inputs {
                        x: &x,
                        x_pairs: &x_pairs,
                    };
                    for task in dense.split(rows, &mut portable) {
                        dense.run(staged, task, act, Isa::Portable);
                    }
                    let diff = max_diff(&portable, &want);
                    assert!(diff < 1e-5, "portable {rows}x{inputs}x{outputs}: {diff}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn a_row_does_not_depend_on_its_batch_mates() -> anyhow::Result<()> {
        let (inputs, outputs) = (64, 96);
        let x = pseudo_random(37 * inputs, 4);
        let dense = Dense::new(
            &pseudo_random(outputs * inputs, 5),
            &pseudo_random(outputs, 6),
            outputs,
            inputs,
            EmbedWeights::F16,
        )?;
        let mut batch = vec![0f32; 37 * outputs];
        dense.forward(&x, &mut batch, Activation::Identity);
        for r in [0, 8, 36] {
            let mut alone = vec![0f32; outputs];
            dense.forward(
                &x[r * inputs..(r + 1) * inputs],
                &mut alone,
                Activation::Identity,
            );
            assert_eq!(alone, batch[r * outputs..(r + 1) * outputs], "row {r}");
        }
        Ok(())
    }

    #[test]
    fn rejects_mismatched_weights_and_f16_overflow() {
        assert!(Dense::new(&[0.0; 6], &[0.0; 2], 2, 2, EmbedWeights::F32).is_err());
        assert!(Dense::new(&[1e6; 4], &[0.0; 2], 2, 2, EmbedWeights::F16).is_err());
        assert!(Dense::new(&[1e6; 4], &[0.0; 2], 2, 2, EmbedWeights::F32).is_ok());
    }
}
