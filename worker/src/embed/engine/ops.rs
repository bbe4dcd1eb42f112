//! In-place candle ops that fuse the element-wise steps around each matmul into one pass over the
//! freshly computed matrix: no extra tensor per step, and each row is touched while in cache.

use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout, Result, Tensor, bail};
use rayon::prelude::*;

use super::vector::{self, NormParams, vectorized};

/// Below this many rows one thread does the pass: splitting costs more than it saves.
const PAR_MIN_ROWS: usize = 64;

/// The matrix behind `layout` as mutable rows of `width`.
fn rows_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> Result<(&'a mut [f32], usize)> {
    let CpuStorage::F32(data) = storage else {
        bail!("fused ops expect f32");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fused ops expect a contiguous matrix");
    };
    let (_, width) = layout.shape().dims2()?;
    Ok((&mut data[start..end], width))
}

/// Runs `f` on every row, on both cores when there are enough rows.
fn for_each_row(data: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if data.len() < PAR_MIN_ROWS * width {
        for (i, row) in data.chunks_exact_mut(width).enumerate() {
            f(i, row);
        }
    } else {
        data.par_chunks_exact_mut(width)
            .with_min_len(PAR_MIN_ROWS / 2)
            .enumerate()
            .for_each(|(i, row)| f(i, row));
    }
}

/// `x = gelu(x + bias)` on a `[rows, bias.len()]` matrix.
pub(crate) struct BiasGelu<'a>(pub &'a [f32]);

impl InplaceOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "fuze-bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let (data, width) = rows_mut(storage, layout)?;
        if width != self.0.len() {
            bail!("bias has {} values for rows of {width}", self.0.len());
        }
        for_each_row(data, width, |_, row| {
            vectorized(
                #[inline(always)]
                || vector::bias_gelu(row, self.0),
            )
        });
        Ok(())
    }
}

/// `x = layer_norm(x + bias + residual)`, the residual being a same-shaped matrix.
pub(crate) struct AddNorm<'a>(pub &'a NormParams);

impl InplaceOp2 for AddNorm<'_> {
    fn name(&self) -> &'static str {
        "fuze-add-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &mut CpuStorage,
        layout: &Layout,
        residual: &CpuStorage,
        residual_layout: &Layout,
    ) -> Result<()> {
        let (data, width) = rows_mut(storage, layout)?;
        let CpuStorage::F32(res) = residual else {
            bail!("residual must be f32");
        };
        let Some((start, end)) = residual_layout.contiguous_offsets() else {
            bail!("residual must be contiguous");
        };
        let res = &res[start..end];
        if res.len() != data.len() || width != self.0.gamma.len() {
            bail!("residual or norm weights do not match the matrix");
        }
        for_each_row(data, width, |i, row| {
            let r = &res[i * width..(i + 1) * width];
            vectorized(
                #[inline(always)]
                || vector::add_norm(row, r, self.0),
            )
        });
        Ok(())
    }
}

/// Applies [`AddNorm`] to `x` in place.
pub(crate) fn add_norm(x: &Tensor, residual: &Tensor, params: &NormParams) -> Result<()> {
    x.inplace_op2(residual, &AddNorm(params))
}

/// Applies [`BiasGelu`] to `x` in place.
pub(crate) fn bias_gelu(x: &Tensor, bias: &[f32]) -> Result<()> {
    x.inplace_op1(&BiasGelu(bias))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn add_norm_matches_candle_layer_norm() -> Result<()> {
        let dev = Device::Cpu;
        // Enough rows to take the multi-threaded path too.
        for rows in [3, 200] {
            let x = Tensor::randn(0f32, 2.0, (rows, 48), &dev)?;
            let res = Tensor::randn(0f32, 2.0, (rows, 48), &dev)?;
            let bias = Tensor::randn(0f32, 1.0, 48, &dev)?;
            let gamma = Tensor::randn(1f32, 0.1, 48, &dev)?;
            let beta = Tensor::randn(0f32, 0.1, 48, &dev)?;
            let want = candle_nn::ops::layer_norm(
                &(x.broadcast_add(&bias)? + &res)?,
                &gamma,
                &beta,
                1e-12,
            )?;
            let params = NormParams {
                bias: bias.to_vec1()?,
                gamma: gamma.to_vec1()?,
                beta: beta.to_vec1()?,
                eps: 1e-12,
            };
            let got = x.copy()?;
            add_norm(&got, &res, &params)?;
            let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "rows {rows}: max diff {diff}");
        }
        Ok(())
    }

    #[test]
    fn bias_gelu_matches_candle_gelu_erf() -> Result<()> {
        let dev = Device::Cpu;
        for rows in [2, 300] {
            let x = Tensor::randn(0f32, 3.0, (rows, 40), &dev)?;
            let bias = Tensor::randn(0f32, 1.0, 40, &dev)?;
            let want = x.broadcast_add(&bias)?.gelu_erf()?;
            let got = x.copy()?;
            bias_gelu(&got, &bias.to_vec1::<f32>()?)?;
            let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-6, "rows {rows}: max diff {diff}");
        }
        Ok(())
    }

    #[test]
    fn rejects_mismatched_shapes() -> Result<()> {
        let x = Tensor::zeros((2, 8), candle_core::DType::F32, &Device::Cpu)?;
        assert!(bias_gelu(&x, &[0.0; 7]).is_err());
        let params = NormParams {
            bias: vec![0.0; 8],
            gamma: vec![1.0; 8],
            beta: vec![0.0; 8],
            eps: 1e-12,
        };
        let res = Tensor::zeros((3, 8), candle_core::DType::F32, &Device::Cpu)?;
        assert!(add_norm(&x, &res, &params).is_err());
        Ok(())
    }
}
