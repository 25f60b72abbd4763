//! Lucent's `standard_transforms`, applied to the image before every step with new random
//! draws: pad by 12 with 0.5, jitter by up to 8, scale by 0.9 to 1.1, rotate by up to 10
//! degrees (2D only), jitter by up to 4. The optimum must then survive small shifts, so the
//! image cannot excite the unit through a pattern of single pixels.

use anyhow::Result;
use esegeta_plugin_api::maps::resample;
use rand::rngs::StdRng;
use rand::Rng;
use tch::Tensor;

/// One draw of the standard transforms on `image` (`[1, C, spatial...]`).
pub fn standard(image: &Tensor, rng: &mut StdRng) -> Result<Tensor> {
    let x = pad(image, 12, 0.5);
    let x = jitter(&x, 8, rng);
    let scales: Vec<f64> = (0..11).map(|i| 1.0 + (i as f64 - 5.0) / 50.0).collect();
    let x = scale(&x, scales[rng.random_range(0..scales.len())])?;
    // 21 angles from -10 to 10 degrees, and 0 five more times, as Lucent draws them.
    let angle = match rng.random_range(0..26) {
        k if k < 21 => k as f64 - 10.0,
        _ => 0.0,
    };
    let x = rotate(&x, angle);
    Ok(jitter(&x, 4, rng))
}

/// Resampled to the spatial `size` (bilinear or trilinear, `align_corners=True`, as Lucent's
/// `fixed_image_size`); unchanged when it has that size.
pub fn resize(image: &Tensor, size: &[i64]) -> Result<Tensor> {
    if image.size()[2..] == *size {
        return Ok(image.shallow_clone());
    }
    resample(image, size, true)
}

/// `w` more elements of `value` on both sides of every spatial axis.
fn pad(image: &Tensor, w: i64, value: f64) -> Tensor {
    let sides = vec![w; 2 * (image.dim() - 2)];
    image.pad(sides.as_slice(), "constant", value)
}

/// Shifted by a random 0..d along each spatial axis (as kornia's `translate` with integer
/// shifts: the content moves towards higher indices; zeros come in).
fn jitter(image: &Tensor, d: i64, rng: &mut StdRng) -> Tensor {
    let mut x = image.shallow_clone();
    for axis in 2..image.dim() as i64 {
        let shift = rng.random_range(0..d);
        let size = x.size()[axis as usize];
        if shift == 0 || shift >= size {
            continue;
        }
        let kept = x.narrow(axis, 0, size - shift);
        let mut zeros_shape = x.size();
        zeros_shape[axis as usize] = shift;
        let zeros = Tensor::zeros(zeros_shape.as_slice(), (x.kind(), x.device()));
        x = Tensor::cat(&[zeros, kept], axis);
    }
    x
}

/// Resampled to `ceil(factor * size)` per axis (bilinear or trilinear, `align_corners=True`),
/// then padded back up where it shrank, as Lucent's `random_scale`.
fn scale(image: &Tensor, factor: f64) -> Result<Tensor> {
    let space = &image.size()[2..];
    let size: Vec<i64> = space
        .iter()
        .map(|&d| (factor * d as f64).ceil() as i64)
        .collect();
    let resized = resize(image, &size)?;
    let sides: Vec<i64> = (0..space.len())
        .rev()
        .flat_map(|d| {
            let p = ((space[d] - size[d]) as f64 / 2.0).ceil().max(0.0) as i64;
            [p, p]
        })
        .collect();
    Ok(resized.constant_pad_nd(sides.as_slice()))
}

/// Rotated by `degrees` about the centre (bilinear, zeros outside); 3D images are left as
/// they are.
fn rotate(image: &Tensor, degrees: f64) -> Tensor {
    if degrees == 0.0 || image.dim() != 4 {
        return image.shallow_clone();
    }
    let (h, w) = (image.size()[2] as f64, image.size()[3] as f64);
    let (sin, cos) = degrees.to_radians().sin_cos();
    // The sampling grid in normalised coordinates ([-1, 1] over the corners' centres), with
    // the aspect ratio undone so that the rotation is one in pixels.
    let theta = Tensor::from_slice(&[
        cos as f32,
        (-sin * h / w) as f32,
        0.0,
        (sin * w / h) as f32,
        cos as f32,
        0.0,
    ])
    .view([1, 2, 3])
    .expand([image.size()[0], 2, 3], false)
    .to_device(image.device());
    let size = image.size();
    let grid = Tensor::affine_grid_generator(&theta, size.as_slice(), true).to_kind(image.kind());
    // Interpolation 0: bilinear; padding 0: zeros.
    image.grid_sampler(&grid, 0, 0, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tch::{Device, Kind};

    fn ramp(shape: &[i64]) -> Tensor {
        let n: i64 = shape.iter().product();
        Tensor::arange(n, (Kind::Float, Device::Cpu)).view(shape) / n as f64
    }

    #[test]
    fn pad_adds_a_border_of_the_value() {
        let x = ramp(&[1, 1, 2, 2]);
        let p = pad(&x, 1, 0.5);
        assert_eq!(p.size(), vec![1, 1, 4, 4]);
        assert_eq!(p.double_value(&[0, 0, 0, 0]), 0.5);
        assert_eq!(p.double_value(&[0, 0, 1, 1]), x.double_value(&[0, 0, 0, 0]));
    }

    #[test]
    fn jitter_shifts_content_and_keeps_the_size() {
        let x = ramp(&[1, 1, 5, 5]);
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..10 {
            let j = jitter(&x, 3, &mut rng);
            assert_eq!(j.size(), x.size());
            // The last row and column moved out; nothing new but zeros came in.
            let sum = j.sum(Kind::Float).double_value(&[]);
            assert!(sum <= x.sum(Kind::Float).double_value(&[]) + 1e-6);
        }
    }

    #[test]
    fn scaling_follows_lucent_sizes() {
        let x = ramp(&[1, 2, 10, 10]);
        assert_eq!(scale(&x, 1.1).unwrap().size(), vec![1, 2, 11, 11]);
        // 0.9 * 10 = 9, padded by ceil(0.5) = 1 on each side.
        assert_eq!(scale(&x, 0.9).unwrap().size(), vec![1, 2, 11, 11]);
        assert_eq!(
            scale(&ramp(&[1, 1, 10, 10, 10]), 1.0).unwrap().size(),
            vec![1, 1, 10, 10, 10]
        );
    }

    #[test]
    fn a_quarter_turn_moves_a_corner_to_the_next() {
        let x = Tensor::zeros([1, 1, 5, 5], (Kind::Float, Device::Cpu));
        let _ = x.get(0).get(0).get(0).get(0).fill_(1.0);
        let r = rotate(&x, 90.0);
        let total = r.sum(Kind::Float).double_value(&[]);
        assert!(
            (total - 1.0).abs() < 1e-5,
            "a quarter turn keeps the pixel: {total}"
        );
        assert!(r.double_value(&[0, 0, 0, 0]) < 1e-5, "the corner moved");
    }
}
