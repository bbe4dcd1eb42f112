//! bfloat16 operands for the dense kernel: packing, conversion, and the AVX512-BF16 inner loop.
//!
//! `vdpbf16ps` multiplies pairs of bf16 numbers and adds both products to an f32 lane, so one
//! instruction does the work of two f32 FMAs. Operands are stored as pairs along the input
//! dimension, one `u32` per pair (the even input in the low half, as the instruction reads it):
//! weights once at load as `[pairs][PANEL]` per panel, a layer's input rows on every call as
//! `[rows][pairs]`. Sums stay f32; only the operands are rounded (to 8 bits of mantissa).

use half::bf16;
use rayon::prelude::*;

/// [`pairs`] for every row of `x` (`[rows][inputs]`) into `out` (`[rows][inputs.div_ceil(2)]`),
/// on the rayon pool and with AVX512-BF16's conversion where the CPU has it: done once per
/// layer, serially and one number at a time it cost a third of the layer.
pub(super) fn pair_rows(x: &[f32], inputs: usize, out: &mut [u32]) {
    let pairs_per_row = inputs.div_ceil(2);
    x.par_chunks(inputs)
        .zip(out.par_chunks_mut(pairs_per_row))
        .with_min_len(32)
        .for_each(|(row, out)| {
            #[cfg(target_arch = "x86_64")]
            if available() {
                return avx512::pairs(row, out);
            }
            pairs(row, out)
        });
}

/// bf16 pairs of one row: `x[2i]` low, `x[2i + 1]` high (zero past the end).
pub(super) fn pairs(row: &[f32], out: &mut [u32]) {
    for (i, o) in out.iter_mut().enumerate() {
        let lo = row.get(2 * i).copied().unwrap_or(0.0);
        let hi = row.get(2 * i + 1).copied().unwrap_or(0.0);
        *o = pair(lo, hi);
    }
}

/// Two numbers rounded to bf16 (nearest even) in one `u32`, `lo` in the low half.
#[inline(always)]
pub(super) fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(bf16::from_f32(lo).to_bits()) | (u32::from(bf16::from_f32(hi).to_bits()) << 16)
}

/// The two f32 values of a pair.
#[inline(always)]
pub(super) fn unpair(p: u32) -> (f32, f32) {
    (f32::from_bits(p << 16), f32::from_bits(p & 0xffff_0000))
}

/// Whether this CPU runs [`avx512::tile`].
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    #![allow(unsafe_code)]

    use std::arch::x86_64::{
        __m512, __m512bh, __m512i, _mm512_cvtne2ps_pbh, _mm512_dpbf16_ps, _mm512_set1_epi32,
        _mm512_setzero_ps,
    };

    use super::super::dense::PANEL;

    /// `acc[r] = Σ_i x[r][i] · panel[i]` over the pairs `i`, for `R` rows and one panel of 48
    /// columns: 24 accumulators, three weight registers reused by every row.
    ///
    /// Panics unless [`super::available`] (checked, so a wrong call cannot reach the instruction).
    #[inline(always)]
    pub(in super::super) fn tile<const R: usize>(
        x: [&[u32]; R],
        panel: &[[u32; PANEL]],
    ) -> [[f32; PANEL]; R] {
        assert!(super::available(), "AVX512-BF16 kernel on a CPU without it");
        // SAFETY: the CPU has AVX-512F and AVX512-BF16, checked just above.
        unsafe { tile_bf16(x, panel) }
    }

    /// [`super::pairs`] 32 numbers at a time (`vcvtne2ps2bf16`, also nearest even).
    pub(in super::super) fn pairs(row: &[f32], out: &mut [u32]) {
        assert!(
            super::available(),
            "AVX512-BF16 conversion on a CPU without it"
        );
        // SAFETY: the CPU has AVX-512F and AVX512-BF16, checked just above.
        unsafe { pairs_bf16(row, out) }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    fn pairs_bf16(row: &[f32], out: &mut [u32]) {
        let (body, tail) = row.as_chunks::<32>();
        let (out_body, out_tail) = out.split_at_mut(body.len() * 16);
        for (x, o) in body.iter().zip(out_body.as_chunks_mut::<16>().0) {
            let [lo, hi]: [__m512; 2] = bytemuck::cast(*x);
            // The low 16 results come from the second operand.
            let packed = _mm512_cvtne2ps_pbh(hi, lo);
            // SAFETY: __m512bh and [u32; 16] are the same 64 bytes; every bit pattern is valid.
            *o = unsafe { std::mem::transmute::<__m512bh, [u32; 16]>(packed) };
        }
        super::pairs(tail, out_tail);
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    fn tile_bf16<const R: usize>(x: [&[u32]; R], panel: &[[u32; PANEL]]) -> [[f32; PANEL]; R] {
        let mut acc = [[_mm512_setzero_ps(); 3]; R];
        for (i, w) in panel.iter().enumerate() {
            let w: [__m512i; 3] = bytemuck::cast(*w);
            // SAFETY: __m512i and __m512bh are the same 64 bytes; every bit pattern is valid.
            let w: [__m512bh; 3] = unsafe { std::mem::transmute(w) };
            for (acc, row) in acc.iter_mut().zip(&x) {
                let a = _mm512_set1_epi32(row[i] as i32);
                // SAFETY: as above.
                let a: __m512bh = unsafe { std::mem::transmute(a) };
                for (acc, w) in acc.iter_mut().zip(w) {
                    *acc = _mm512_dpbf16_ps(*acc, a, w);
                }
            }
        }
        acc.map(bytemuck::cast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_to_nearest_and_pad_with_zero() {
        let mut out = [u32::MAX; 2];
        pairs(&[1.0, -2.5, 1.0 + 1.0 / 256.0], &mut out);
        assert_eq!(unpair(out[0]), (1.0, -2.5));
        // 1 + 2^-8 is halfway between two bf16 numbers: ties go to the even one, 1.0.
        assert_eq!(unpair(out[1]), (1.0, 0.0));
        let (lo, hi) = unpair(pair(0.1, 3.0e38));
        assert!((lo - 0.1).abs() < 0.1 / 256.0 && (hi - 3.0e38).abs() < 3.0e38 / 256.0);
    }
}
