//! Gaussian blur over a tensor's spatial axes, as scipy.ndimage.gaussian_filter computes it
//! with `mode="constant"` (zeros outside) and `truncate=4.0`, which PAIR's BlurIG uses: each
//! axis in turn is multiplied by the banded matrix of the normalised 1D kernel (radius
//! `int(4 sigma + 0.5)`), exact for kernels wider than the image too.

use tch::{Kind, Tensor};

/// `x` (`[B, C, ...spatial]`, any float kind) blurred with `sigma` along every spatial axis,
/// computed in the kind of `x`. `sigma` 0 returns `x` unchanged.
pub fn gaussian_blur(x: &Tensor, sigma: f64) -> Tensor {
    if sigma <= 0.0 {
        return x.shallow_clone();
    }
    let mut out = x.shallow_clone();
    for axis in 2..x.dim() as i64 {
        let n = x.size()[axis as usize];
        let m = kernel_matrix(n, sigma)
            .to_kind(x.kind())
            .to_device(x.device());
        // out[..., i] = sum_j x[..., j] w(j - i); the kernel is symmetric.
        out = out.movedim(axis, -1).matmul(&m).movedim(-1, axis);
    }
    out
}

/// The `n x n` matrix of the 1D Gaussian correlation with zero padding.
fn kernel_matrix(n: i64, sigma: f64) -> Tensor {
    let radius = (4.0 * sigma + 0.5).floor() as i64;
    let weights: Vec<f64> = (-radius..=radius)
        .map(|k| (-0.5 * (k * k) as f64 / (sigma * sigma)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut m = vec![0.0f64; (n * n) as usize];
    for i in 0..n {
        for j in (i - radius).max(0)..(i + radius + 1).min(n) {
            m[(j * n + i) as usize] = weights[(j - i + radius) as usize] / total;
        }
    }
    Tensor::from_slice(&m).reshape([n, n]).to_kind(Kind::Double)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.flatten(0, -1)).unwrap()
    }

    /// Values from scipy 1.17: `gaussian_filter1d([0, 0, 1, 0, 0], 1.0, mode="constant")`,
    /// `gaussian_filter(arange(12).reshape(3, 4), 1.0, mode="constant")` (first row) and
    /// `gaussian_filter(arange(24).reshape(2, 3, 4), 0.8, mode="constant")` (first values).
    #[test]
    fn agrees_with_scipy() {
        let close = |got: Vec<f64>, scipy: &[f64]| {
            for (g, s) in got.iter().zip(scipy) {
                assert!((g - s).abs() < 1e-9, "{got:?} against scipy's {scipy:?}");
            }
        };
        let x = Tensor::from_slice(&[0.0f64, 0.0, 1.0, 0.0, 0.0]).reshape([1, 1, 5]);
        let a = 0.05399112742070441;
        let b = 0.24197144565660073;
        close(
            values(&gaussian_blur(&x, 1.0)),
            &[a, b, 0.39894346935609776, b, a],
        );
        let grid = Tensor::arange(12, (Kind::Double, tch::Device::Cpu)).reshape([1, 1, 3, 4]);
        close(
            values(&gaussian_blur(&grid, 1.0)),
            &[
                1.231367672993,
                2.03753432434,
                2.538501109104,
                2.184441832071,
            ],
        );
        let volume = Tensor::arange(24, (Kind::Double, tch::Device::Cpu)).reshape([1, 1, 2, 3, 4]);
        close(
            values(&gaussian_blur(&volume, 0.8)),
            &[
                2.279337124664,
                3.33420778304,
                3.81852259539,
                3.205486168691,
                4.232750784633,
            ],
        );
    }

    #[test]
    fn a_kernel_wider_than_the_image_shrinks_it_towards_zero() {
        let x = Tensor::ones([1, 1, 4, 4], (Kind::Double, tch::Device::Cpu));
        let blurred = gaussian_blur(&x, 50.0);
        let max = blurred.max().double_value(&[]);
        assert!(max > 0.0 && max < 0.01, "{max}");
        assert_eq!(values(&gaussian_blur(&x, 0.0)), vec![1.0; 16]);
    }
}
