//! Sentence-transformers pooling: mean over real tokens, then L2 normalization.

use candle_core::{D, Result, Tensor};

/// `hidden`: `[batch, seq, dim]`, `mask`: `[batch, seq]` (f32, 1 = real token, 0 = padding).
/// Returns `[batch, dim]` unit vectors.
pub(crate) fn mean_pool_normalize(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    // Zero the padding positions so they do not pull the mean.
    let summed = hidden.broadcast_mul(&mask.unsqueeze(D::Minus1)?)?.sum(1)?;
    // Every row has at least [CLS] and [SEP]; the floor only guards a degenerate all-zero mask.
    let counts = mask.sum_keepdim(1)?.maximum(1e-9)?;
    let mean = summed.broadcast_div(&counts)?;
    // Same epsilon as torch.nn.functional.normalize.
    let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
    mean.broadcast_div(&norms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn ignores_padding_and_normalizes() -> Result<()> {
        let dev = Device::Cpu;
        // Row 0: tokens (3,4) and (3,4) then a padded (100,100). Row 1: (0,2) then padding.
        let hidden = Tensor::from_vec(
            vec![3f32, 4., 3., 4., 100., 100., 0., 2., 50., 50., 50., 50.],
            (2, 3, 2),
            &dev,
        )?;
        let mask = Tensor::from_vec(vec![1f32, 1., 0., 1., 0., 0.], (2, 3), &dev)?;
        let out = mean_pool_normalize(&hidden, &mask)?.to_vec2::<f32>()?;
        let expect = [[0.6f32, 0.8], [0., 1.]];
        for (row, want) in out.iter().zip(expect) {
            for (got, want) in row.iter().zip(want) {
                assert!((got - want).abs() < 1e-6, "{out:?}");
            }
        }
        Ok(())
    }
}
