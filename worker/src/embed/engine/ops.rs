//! Row-wise passes over a `[rows][width]` matrix, split over both cores when there are enough rows.

use rayon::prelude::*;

use super::vector::{self, NormParams, vectorized};

/// Below this many rows one thread does the pass: splitting costs more than it saves.
const PAR_MIN_ROWS: usize = 64;

/// In place: `x[r] = layer_norm(x[r] + residual[r])` for every row.
pub(crate) fn add_norm(x: &mut [f32], residual: &[f32], params: &NormParams) {
    let width = params.gamma.len();
    assert!(
        x.len() == residual.len() && x.len().is_multiple_of(width),
        "add_norm: {} values, {} residuals, rows of {width}",
        x.len(),
        residual.len()
    );
    let norm_row = |(row, res): (&mut [f32], &[f32])| {
        vectorized(
            #[inline(always)]
            || vector::add_norm(row, res, params),
        )
    };
    if x.len() < PAR_MIN_ROWS * width {
        x.chunks_exact_mut(width)
            .zip(residual.chunks_exact(width))
            .for_each(norm_row);
    } else {
        x.par_chunks_exact_mut(width)
            .zip(residual.par_chunks_exact(width))
            .with_min_len(PAR_MIN_ROWS / 2)
            .for_each(norm_row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Result, Tensor};

    #[test]
    fn add_norm_matches_candle_layer_norm() -> Result<()> {
        let dev = Device::Cpu;
        // Enough rows to take the multi-threaded path too.
        for rows in [3, 200] {
            let x = Tensor::randn(0f32, 2.0, (rows, 48), &dev)?;
            let res = Tensor::randn(0f32, 2.0, (rows, 48), &dev)?;
            let gamma = Tensor::randn(1f32, 0.1, 48, &dev)?;
            let beta = Tensor::randn(0f32, 0.1, 48, &dev)?;
            let want = candle_nn::ops::layer_norm(&(&x + &res)?, &gamma, &beta, 1e-12)?;
            let params = NormParams {
                gamma: gamma.to_vec1()?,
                beta: beta.to_vec1()?,
                eps: 1e-12,
            };
            let mut got = x.flatten_all()?.to_vec1::<f32>()?;
            add_norm(&mut got, &res.flatten_all()?.to_vec1()?, &params);
            let got = Tensor::from_vec(got, (rows, 48), &dev)?;
            let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "rows {rows}: max diff {diff}");
        }
        Ok(())
    }

    #[test]
    #[should_panic(expected = "add_norm")]
    fn rejects_mismatched_shapes() {
        let params = NormParams {
            gamma: vec![1.0; 8],
            beta: vec![0.0; 8],
            eps: 1e-12,
        };
        add_norm(&mut [0.0; 16], &[0.0; 24], &params);
    }
}
