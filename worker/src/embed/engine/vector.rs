//! Row kernels in plain Rust, shaped so the compiler vectorizes them (fixed-width lane arrays,
//! branch-free math), and run through [`vectorized`] so they are compiled for AVX-512 or AVX2 + FMA
//! when the CPU reports them at run time. No `-C target-cpu` is needed, so one binary stays portable;
//! candle's own element-wise ops call scalar `libm` functions (erf, exp) per element.

/// Accumulator width: one AVX-512 or two AVX2 registers of f32.
const LANES: usize = 16;

/// The widest instruction set found at run time.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Level {
    V4(pulp::x86::V4),
    V3(pulp::x86::V3),
    Baseline,
}

/// Runs `f` compiled for AVX-512 (x86-64-v4) or AVX2 + FMA (x86-64-v3) when this CPU has them,
/// else as built.
///
/// Only code inlined into `f` gets the wider instruction set, hence `#[inline(always)]` on the
/// kernels below and on the closures passed here.
#[cfg(target_arch = "x86_64")]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<Level> = OnceLock::new();
    let level = *LEVEL.get_or_init(|| {
        pulp::x86::V4::try_new()
            .map(Level::V4)
            .or_else(|| pulp::x86::V3::try_new().map(Level::V3))
            .unwrap_or(Level::Baseline)
    });
    match level {
        Level::V4(simd) => simd.vectorize(f),
        Level::V3(simd) => simd.vectorize(f),
        Level::Baseline => f(),
    }
}

/// Other targets: the baseline instruction set.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Sum of `xs` with `LANES` partial sums (a single running sum would not vectorize).
#[inline(always)]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element of `xs` (`-inf` when empty).
#[inline(always)]
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = a.max(x);
        }
    }
    acc.iter().fold(tail, |m, &x| m.max(x))
}

/// `e^x` to about 2 ulp for x in [-87, 88] (clamped outside), without branches.
///
/// e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2) / 2, where a degree-7 Taylor
/// polynomial of e^r is accurate to 1e-8 relative.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = (-n).mul_add(LN2_HI, x);
    let r = (-n).mul_add(LN2_LO, r);
    let mut p = EXP_TAYLOR[0];
    for c in &EXP_TAYLOR[1..] {
        p = p.mul_add(r, *c);
    }
    // 2^n built from its exponent bits; the clamp keeps n + 127 within 1..=254.
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * two_n
}

/// `exp`'s input range.
const EXP_MIN: f32 = -87.0;
const EXP_MAX: f32 = 88.0;
/// ln(2) split in two so that n * LN2_HI is exact for |n| < 2^11.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// Taylor coefficients of e^r, highest power first.
const EXP_TAYLOR: [f32; 8] = [
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];
/// Abramowitz & Stegun 7.1.26: erfc(z) ~ t * poly(t) * e^(-z^2), t = 1 / (1 + P z).
const ERFC_P: f32 = 0.327_591_1;
/// Its coefficients, highest power first.
const ERFC_POLY: [f32; 5] = [
    1.061_405_4,
    -1.453_152,
    1.421_413_8,
    -0.284_496_74,
    0.254_829_6,
];

/// Standard normal CDF times x: GELU as BERT defines it, `x * (1 + erf(x / sqrt 2)) / 2`.
///
/// erfc(z) for z >= 0 uses Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7). Computing
/// the lower tail as erfc(|z|) / 2 avoids the cancellation `1 + erf(z)` would have for z < 0.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / ERFC_P.mul_add(z, 1.0);
    let mut poly = ERFC_POLY[0];
    for a in &ERFC_POLY[1..] {
        poly = poly.mul_add(t, *a);
    }
    let half_erfc = 0.5 * poly * t * exp(-z * z);
    let cdf = if x >= 0.0 { 1.0 - half_erfc } else { half_erfc };
    x * cdf
}

/// In place: `row = softmax(row)`.
#[inline(always)]
pub(crate) fn softmax(row: &mut [f32]) {
    let m = max(row);
    for x in row.iter_mut() {
        *x = exp(*x - m);
    }
    let inv = 1.0 / sum(row);
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// The same functions on AVX-512 registers, operation for operation, so a lane gives the bits the
/// scalar function gives. Loops over [`exp`] and [`gelu`] do not vectorize well (LLVM kept the
/// softmax scalar), so the hot loops use these.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use pulp::x86::V4;
    use pulp::{Simd, f32x16};

    use super::*;

    #[inline(always)]
    pub(crate) fn exp(simd: V4, x: f32x16) -> f32x16 {
        let splat = |v| simd.splat_f32x16(v);
        let x = simd.min_f32x16(simd.max_f32x16(x, splat(EXP_MIN)), splat(EXP_MAX));
        // Round to nearest even, as the scalar `round_ties_even`.
        let n_int = simd.avx512f._mm512_cvtps_epi32(pulp::cast(
            simd.mul_f32x16(x, splat(std::f32::consts::LOG2_E)),
        ));
        let n = simd.convert_i32x16_to_f32x16(pulp::cast(n_int));
        let r = simd.mul_add_f32x16(n, splat(-LN2_HI), x);
        let r = simd.mul_add_f32x16(n, splat(-LN2_LO), r);
        let mut p = splat(EXP_TAYLOR[0]);
        for c in &EXP_TAYLOR[1..] {
            p = simd.mul_add_f32x16(p, r, splat(*c));
        }
        let bits = simd.shl_const_i32x16::<23>(
            simd.wrapping_add_i32x16(pulp::cast(n_int), simd.splat_i32x16(127)),
        );
        simd.mul_f32x16(p, pulp::cast(bits))
    }

    #[inline(always)]
    pub(crate) fn gelu(simd: V4, x: f32x16) -> f32x16 {
        let splat = |v| simd.splat_f32x16(v);
        let z = simd.mul_f32x16(simd.abs_f32x16(x), splat(std::f32::consts::FRAC_1_SQRT_2));
        let t = simd.div_f32x16(
            splat(1.0),
            simd.mul_add_f32x16(splat(ERFC_P), z, splat(1.0)),
        );
        let mut poly = splat(ERFC_POLY[0]);
        for a in &ERFC_POLY[1..] {
            poly = simd.mul_add_f32x16(poly, t, splat(*a));
        }
        let minus_z2 = simd.mul_f32x16(simd.sub_f32x16(splat(0.0), z), z);
        let half_erfc = simd.mul_f32x16(
            simd.mul_f32x16(simd.mul_f32x16(splat(0.5), poly), t),
            exp(simd, minus_z2),
        );
        let cdf = simd.select_f32x16(
            simd.cmp_ge_f32x16(x, splat(0.0)),
            simd.sub_f32x16(splat(1.0), half_erfc),
            half_erfc,
        );
        simd.mul_f32x16(x, cdf)
    }

    /// In place: `row = softmax(row)`.
    #[inline(always)]
    pub(crate) fn softmax(simd: V4, row: &mut [f32]) {
        let (body, tail) = pulp::as_arrays_mut::<16, f32>(row);
        let mut top = simd.splat_f32x16(f32::NEG_INFINITY);
        for x in body.iter() {
            top = simd.max_f32x16(top, pulp::cast(*x));
        }
        let m = tail
            .iter()
            .fold(simd.reduce_max_f32s(top), |m, &x| m.max(x));
        let (mut total, m16) = (simd.splat_f32x16(0.0), simd.splat_f32x16(m));
        for x in body.iter_mut() {
            let e = exp(simd, simd.sub_f32x16(pulp::cast(*x), m16));
            total = simd.add_f32x16(total, e);
            *x = pulp::cast(e);
        }
        let mut sum = simd.reduce_sum_f32s(total);
        for x in tail.iter_mut() {
            *x = super::exp(*x - m);
            sum += *x;
        }
        let inv = 1.0 / sum;
        let inv16 = simd.splat_f32x16(inv);
        for x in body.iter_mut() {
            *x = pulp::cast(simd.mul_f32x16(pulp::cast(*x), inv16));
        }
        for x in tail.iter_mut() {
            *x *= inv;
        }
    }
}

/// Weights of one LayerNorm.
pub(crate) struct NormParams {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

/// In place: `row = layer_norm(row + residual)`, two-pass mean/variance in f32.
#[inline(always)]
pub(crate) fn add_norm(row: &mut [f32], residual: &[f32], p: &NormParams) {
    for (x, r) in row.iter_mut().zip(residual) {
        *x += r;
    }
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let mut acc = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|x| (x - mean) * (x - mean))
        .sum();
    for chunk in chunks {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a = (x - mean).mul_add(x - mean, *a);
        }
    }
    let var = (acc.iter().sum::<f32>() + tail) / n;
    let inv_std = 1.0 / (var + p.eps).sqrt();
    for ((x, g), b) in row.iter_mut().zip(&p.gamma).zip(&p.beta) {
        *x = ((*x - mean) * inv_std).mul_add(*g, *b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf_f64(x: f64) -> f64 {
        // Maclaurin series; accurate in f64 for |x| <= 4.
        let mut sum: f64 = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
            if n > 400.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        let mut worst = 0f64;
        for i in -8700..8800 {
            let x = i as f32 * 0.01;
            let want = f64::from(x).exp();
            let got = vectorized(|| exp(x));
            worst = worst.max(((f64::from(got) - want) / want).abs());
        }
        assert!(worst < 5e-7, "worst relative error {worst:e}");
        assert!(vectorized(|| exp(-1000.0)) < 1e-37);
    }

    #[test]
    fn gelu_matches_the_exact_erf_form() {
        let mut worst = 0f64;
        // The series loses precision past |x| = 5; beyond that GELU is x or 0 within 2e-6.
        for i in -1000..=1000 {
            let x = f64::from(i as f32 * 0.005);
            let want = 0.5 * x * (1.0 + erf_f64(x / std::f64::consts::SQRT_2));
            let got = f64::from(vectorized(|| gelu(x as f32)));
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 5e-7, "worst absolute error {worst:e}");
        assert!(vectorized(|| gelu(-30.0)).abs() < 1e-30);
        assert_eq!(vectorized(|| gelu(30.0)), 30.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_versions_give_the_scalar_bits() {
        let Some(simd) = pulp::x86::V4::try_new() else {
            return; // nothing to compare on this CPU; the scalar tests still run
        };
        struct Check(pulp::x86::V4);
        impl pulp::WithSimd for Check {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _: S) {
                let simd = self.0;
                for i in -1000..1000 {
                    let base = i as f32 * 0.09;
                    let x: [f32; 16] = std::array::from_fn(|l| base + l as f32 * 0.0057);
                    let e: [f32; 16] = pulp::cast(avx512::exp(simd, pulp::cast(x)));
                    let g: [f32; 16] = pulp::cast(avx512::gelu(simd, pulp::cast(x)));
                    for l in 0..16 {
                        assert_eq!(e[l].to_bits(), exp(x[l]).to_bits(), "exp({})", x[l]);
                        assert_eq!(g[l].to_bits(), gelu(x[l]).to_bits(), "gelu({})", x[l]);
                    }
                }
                for len in [1, 16, 37, 205] {
                    let row: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin() * 6.0).collect();
                    let (mut a, mut b) = (row.clone(), row);
                    avx512::softmax(simd, &mut a);
                    softmax(&mut b);
                    // Only the order of the sum differs.
                    for (x, y) in a.iter().zip(&b) {
                        assert!(
                            (x - y).abs() <= 1e-6 * y.abs().max(1e-30),
                            "{len}: {x} vs {y}"
                        );
                    }
                }
            }
        }
        pulp::Simd::vectorize(simd, Check(simd));
    }

    #[test]
    fn reductions_cover_the_tail() {
        let xs: Vec<f32> = (0..37).map(|i| i as f32).collect();
        assert_eq!(sum(&xs), 666.0);
        assert_eq!(max(&xs), 36.0);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut row: Vec<f32> = (0..21).map(|i| (i as f32 * 0.7).sin() * 5.0).collect();
        let orig = row.clone();
        vectorized(|| softmax(&mut row));
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let denom: f64 = orig.iter().map(|&x| f64::from(x).exp()).sum();
        for (got, x) in row.iter().zip(&orig) {
            let want = f64::from(*x).exp() / denom;
            assert!((f64::from(*got) - want).abs() < 1e-7, "{got} vs {want}");
        }
    }

    #[test]
    fn add_norm_normalizes_the_sum() {
        let mut row: Vec<f32> = (0..40).map(|i| i as f32 - 3.0).collect();
        let residual = vec![3f32; 40];
        let p = NormParams {
            gamma: vec![2.0; 40],
            beta: vec![0.5; 40],
            eps: 0.0,
        };
        vectorized(|| add_norm(&mut row, &residual, &p));
        // 0..40 has mean 19.5 and variance (40^2 - 1) / 12.
        let std = ((40f32 * 40.0 - 1.0) / 12.0).sqrt();
        for (i, y) in row.iter().enumerate() {
            let want = (i as f32 - 19.5) / std * 2.0 + 0.5;
            assert!((y - want).abs() < 1e-5, "{i}: {y} vs {want}");
        }
    }
}
