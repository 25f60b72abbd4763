//! How much a randomised model's map still looks like the original's.
//!
//! - Spearman rank correlation: Pearson's correlation of the ranks, ties given their average
//!   rank (as scipy.stats.spearmanr); of the values and of their absolute values.
//! - SSIM (Wang et al. 2004) as skimage's `structural_similarity(gaussian_weights=True,
//!   sigma=1.5, use_sample_covariance=False, data_range=1)`, the setting Adebayo et al. use:
//!   both maps (summed over channels) min-max normalised to [0, 1]; local statistics under a
//!   Gaussian window of sigma 1.5 truncated at 3.5 sigma (11 taps per axis, normalised);
//!   K1 = 0.01, K2 = 0.03; the mean SSIM over the positions whose window lies inside the map
//!   (skimage crops the 5-voxel border whatever its padding). 2D and 3D alike; a map with a
//!   side under 11 has no SSIM (skimage refuses it too).

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// Spearman's rank correlation of two equally long samples; NaN when either is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Ranks from 1, ties sharing the average of the ranks they span.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let average = (start + 1 + end) as f64 / 2.0; // ranks start+1 ..= end
        for &i in &order[start..end] {
            ranks[i] = average;
        }
        start = end;
    }
    ranks
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa * bb).sqrt()
}

pub const SSIM_SIGMA: f64 = 1.5;
pub const SSIM_RADIUS: i64 = 5; // int(3.5 * 1.5 + 0.5)
const K1: f64 = 0.01;
const K2: f64 = 0.03;

/// SSIM of two maps `[1, C, ...spatial]` (2D or 3D), summed over channels and min-max
/// normalised first.
pub fn ssim(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.size() != b.size() || !(4..=5).contains(&a.dim()) {
        bail!(
            "SSIM compares two maps of one shape [1, C, H, W] or [1, C, D, H, W]; got {:?} and {:?}",
            a.size(),
            b.size()
        );
    }
    let side = 2 * SSIM_RADIUS + 1;
    if a.size()[2..].iter().any(|&s| s < side) {
        bail!(
            "SSIM needs every spatial side of at least {side} (its window); the maps have shape {:?}",
            a.size()
        );
    }
    let prepare = |t: &Tensor| {
        normalised(
            &t.to_kind(Kind::Double)
                .sum_dim_intlist(1, true, Kind::Double),
        )
    };
    let (x, y) = (prepare(a), prepare(b));
    let filter = |t: &Tensor| gaussian_filter(t);
    let (mx, my) = (filter(&x), filter(&y));
    let vx = filter(&(&x * &x)) - &mx * &mx;
    let vy = filter(&(&y * &y)) - &my * &my;
    let cxy = filter(&(&x * &y)) - &mx * &my;
    let (c1, c2) = (K1 * K1, K2 * K2);
    let s = ((&mx * &my * 2.0 + c1) * (cxy * 2.0 + c2))
        / ((&mx * &mx + &my * &my + c1) * (vx + vy + c2));
    Ok(s.mean(Kind::Double).double_value(&[]))
}

fn normalised(t: &Tensor) -> Tensor {
    let (lo, hi) = (t.min().double_value(&[]), t.max().double_value(&[]));
    if hi > lo {
        (t - lo) / (hi - lo)
    } else {
        t.zeros_like()
    }
}

/// The normalised Gaussian taps, sigma 1.5, radius 5.
pub fn gaussian_taps() -> Vec<f64> {
    let taps: Vec<f64> = (-SSIM_RADIUS..=SSIM_RADIUS)
        .map(|i| (-(i * i) as f64 / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let sum: f64 = taps.iter().sum();
    taps.into_iter().map(|t| t / sum).collect()
}

/// Separable Gaussian filtering of `[1, 1, ...spatial]`, keeping only positions whose window
/// lies inside (a "valid" convolution).
fn gaussian_filter(t: &Tensor) -> Tensor {
    let taps = Tensor::from_slice(&gaussian_taps());
    let spatial = t.dim() - 2;
    let mut out = t.shallow_clone();
    for axis in 0..spatial {
        let mut shape = vec![1i64; spatial + 2];
        shape[2 + axis] = 2 * SSIM_RADIUS + 1;
        let kernel = taps.reshape(shape.as_slice());
        out = if spatial == 2 {
            out.conv2d(&kernel, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
        } else {
            out.conv3d(&kernel, None::<Tensor>, [1, 1, 1], [0, 0, 0], [1, 1, 1], 1)
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_get_average_ranks() {
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), [2.0, 3.5, 3.5, 1.0]);
        assert_eq!(ranks(&[1.0, 1.0, 1.0]), [2.0, 2.0, 2.0]);
    }

    #[test]
    fn spearman_matches_hand_computed_values() {
        // Monotone: 1; reversed: -1.
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 25.0, 100.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // No ties: 1 - 6 sum d^2 / (n (n^2 - 1)); ranks of b are [1, 3, 2, 5, 4], d^2 sums to 4,
        // so 1 - 24 / 120 = 0.8.
        assert!(
            (spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0, 3.0, 2.0, 5.0, 4.0]) - 0.8).abs() < 1e-12
        );
        // With ties: a ranks [1, 2.5, 2.5, 4], b ranks [1, 2, 3, 4]; deviations from the mean
        // rank 2.5: a [-1.5, 0, 0, 1.5], b [-1.5, -0.5, 0.5, 1.5]; covariance sum 4.5, norms
        // 4.5 and 5, so 4.5 / sqrt(4.5 * 5) = 0.9487 (scipy.stats.spearmanr: 0.9486833).
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]);
        assert!((rho - 4.5 / (4.5f64 * 5.0).sqrt()).abs() < 1e-12, "{rho}");
        assert!(
            spearman(&[1.0, 1.0], &[1.0, 2.0]).is_nan(),
            "a constant sample has no rank correlation"
        );
    }

    /// SSIM with explicit loops over every valid window, in f64, for comparison.
    fn naive_ssim(x: &[f64], y: &[f64], h: usize, w: usize) -> f64 {
        let norm = |v: &[f64]| {
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &a| (l.min(a), h.max(a)));
            v.iter().map(|a| (a - lo) / (hi - lo)).collect::<Vec<f64>>()
        };
        let (x, y) = (norm(x), norm(y));
        let g = gaussian_taps();
        let r = SSIM_RADIUS as usize;
        let (mut total, mut count) = (0.0, 0);
        for i in r..h - r {
            for j in r..w - r {
                let (mut mx, mut my, mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for di in 0..=2 * r {
                    for dj in 0..=2 * r {
                        let wgt = g[di] * g[dj];
                        let k = (i + di - r) * w + (j + dj - r);
                        mx += wgt * x[k];
                        my += wgt * y[k];
                        xx += wgt * x[k] * x[k];
                        yy += wgt * y[k] * y[k];
                        xy += wgt * x[k] * y[k];
                    }
                }
                let (vx, vy, cxy) = (xx - mx * mx, yy - my * my, xy - mx * my);
                let (c1, c2) = (K1 * K1, K2 * K2);
                total += ((2.0 * mx * my + c1) * (2.0 * cxy + c2))
                    / ((mx * mx + my * my + c1) * (vx + vy + c2));
                count += 1;
            }
        }
        total / count as f64
    }

    fn pattern(h: usize, w: usize, f: impl Fn(usize, usize) -> f64) -> Vec<f64> {
        (0..h * w).map(|k| f(k / w, k % w)).collect()
    }

    #[test]
    fn ssim_is_one_for_the_same_map_up_to_scale_and_matches_the_loops() {
        let (h, w) = (14, 13);
        let x = pattern(h, w, |i, j| {
            ((i * 7 + j * 3) % 11) as f64 + (i as f64 * 0.3).sin()
        });
        let y = pattern(h, w, |i, j| {
            ((i * 5 + j * 2) % 7) as f64 - (j as f64 * 0.4).cos()
        });
        let t = |v: &[f64]| Tensor::from_slice(v).reshape([1, 1, h as i64, w as i64]);
        let same = ssim(&t(&x), &(t(&x) * 3.0 + 2.0)).unwrap();
        assert!((same - 1.0).abs() < 1e-12, "{same}");
        let ours = ssim(&t(&x), &t(&y)).unwrap();
        let loops = naive_ssim(&x, &y, h, w);
        assert!((ours - loops).abs() < 1e-12, "{ours} vs {loops}");
        assert!(ours < 0.9, "different maps: {ours}");
    }

    #[test]
    fn ssim_works_on_volumes_and_refuses_maps_smaller_than_its_window() {
        let v = Tensor::arange(11 * 12 * 13, (Kind::Double, tch::Device::Cpu))
            .reshape([1, 1, 11, 12, 13])
            .sin();
        let s = ssim(&v, &v.flip([2])).unwrap();
        assert!(s.is_finite() && s < 1.0, "{s}");
        assert!((ssim(&v, &v).unwrap() - 1.0).abs() < 1e-12);
        let small = Tensor::zeros([1, 1, 8, 8, 8], (Kind::Double, tch::Device::Cpu));
        let e = ssim(&small, &small).unwrap_err().to_string();
        assert!(e.contains("at least 11"), "{e}");
    }
}
