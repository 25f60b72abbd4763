//! The image being optimised, as Lucent's `param.image` parameterises it: a spectrum whose
//! frequencies are scaled by 1 / frequency (so the optimisation favours smooth images) and
//! turned into an image by an inverse real FFT, or plain pixels; for RGB, colours mixed by
//! Lucid's ImageNet colour-correlation matrix; then a sigmoid. Lucent's parameters draw their
//! start from `torch.randn` after the seed, in the same shapes, so a seeded render starts where
//! Lucent's does. 3D images take the 3D transform.

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// Square root of the colour correlation of ImageNet (Lucid's `color_correlation_svd_sqrt`).
const COLOR_CORRELATION_SVD_SQRT: [[f32; 3]; 3] =
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// Lucid's constant that divides the image from the spectrum ("reduces saturation").
const SPECTRUM_DIVISOR: f64 = 4.0;

pub struct ImageParam {
    /// What the optimiser updates (requires grad).
    pub values: Tensor,
    /// `[1, C, spatial...]`.
    shape: Vec<i64>,
    /// For a spectrum: the per-frequency scale `[1, 1, freqs..., 1]`; None for pixels.
    scale: Option<Tensor>,
    decorrelate: bool,
}

impl ImageParam {
    /// An image of `shape` (`[1, C, H, W]` or `[1, C, D, H, W]`), its values drawn from
    /// `randn * sd`; `decorrelate` applies to 3 channels only.
    pub fn new(shape: &[i64], fft: bool, decorrelate: bool, sd: f64) -> Result<Self> {
        ensure!(
            (4..=5).contains(&shape.len()),
            "feature visualisation renders 2D or 3D images, but the input has shape {shape:?}"
        );
        let options = (Kind::Float, Device::Cpu);
        let (values, scale) = if fft {
            let space = &shape[2..];
            let freqs = frequencies(space);
            let mut size = shape[..2].to_vec();
            size.extend(freqs.size());
            size.push(2);
            let values = Tensor::randn(size.as_slice(), options) * sd;
            let floor = 1.0 / *space.iter().max().unwrap_or(&1) as f64;
            let scale = freqs.clamp_min(floor).reciprocal().to_kind(Kind::Float);
            (values, Some(scale.unsqueeze(0).unsqueeze(0).unsqueeze(-1)))
        } else {
            (Tensor::randn(shape, options) * sd, None)
        };
        Ok(ImageParam {
            values: values.set_requires_grad(true),
            shape: shape.to_vec(),
            scale,
            decorrelate: decorrelate && shape[1] == 3,
        })
    }

    /// The image, in (0, 1), with autograd history to `values`.
    pub fn image(&self) -> Tensor {
        let space = &self.shape[2..];
        let raw = match &self.scale {
            Some(scale) => {
                let spectrum = (&self.values * scale).view_as_complex();
                let dims: Vec<i64> = (2..self.shape.len() as i64).collect();
                let image = spectrum.fft_irfftn(Some(space), Some(dims.as_slice()), "ortho");
                image / SPECTRUM_DIVISOR
            }
            None => self.values.shallow_clone(),
        };
        let raw = if self.decorrelate {
            decorrelate_colours(&raw)
        } else {
            raw
        };
        raw.sigmoid()
    }
}

/// `|f|` on the grid of an n-D real FFT of `space`: numpy's `fftfreq` on every axis, the last
/// one halved as `rfft` keeps it (one more for an odd size, which the inverse then drops, as
/// Lucent draws it).
fn frequencies(space: &[i64]) -> Tensor {
    let n = space.len();
    let mut squared: Option<Tensor> = None;
    for (d, &size) in space.iter().enumerate() {
        let mut f = fftfreq(size);
        if d == n - 1 {
            f.truncate((size / 2 + 1 + size % 2) as usize);
        }
        let mut view = vec![1i64; n];
        view[d] = f.len() as i64;
        let axis = Tensor::from_slice(&f).view(view.as_slice());
        let term = &axis * &axis;
        squared = Some(match squared {
            Some(s) => s + term,
            None => term,
        });
    }
    squared.expect("at least one axis").sqrt()
}

/// numpy's `fft.fftfreq(n)`: `[0, 1, ..., (n - 1) / 2, -(n / 2), ..., -1] / n`.
fn fftfreq(n: i64) -> Vec<f64> {
    (0..n)
        .map(|i| if i <= (n - 1) / 2 { i } else { i - n } as f64 / n as f64)
        .collect()
}

/// Colours mixed by the correlation matrix scaled to a largest column norm of 1.
fn decorrelate_colours(image: &Tensor) -> Tensor {
    let m = Tensor::from_slice(&COLOR_CORRELATION_SVD_SQRT.concat()).view([3, 3]);
    let largest = m.norm_scalaropt_dim(2, [0i64].as_slice(), false).max();
    let normalised = (m / largest).to_device(image.device());
    // Channels last, times the matrix's transpose, channels first again.
    let last = image.movedim(&[1i64][..], &[-1i64][..]);
    last.matmul(&normalised.tr())
        .movedim(&[-1i64][..], &[1i64][..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fftfreq_is_numpys() {
        assert_eq!(fftfreq(4), [0.0, 0.25, -0.5, -0.25]);
        assert_eq!(fftfreq(5), [0.0, 0.2, 0.4, -0.4, -0.2]);
    }

    #[test]
    fn the_spectrum_has_lucents_shape_and_renders_the_image_shape() {
        for (shape, spectrum) in [
            (vec![1, 3, 8, 8], vec![1, 3, 8, 5, 2]),
            (vec![1, 1, 6, 7], vec![1, 1, 6, 5, 2]),
            (vec![1, 1, 4, 6, 5], vec![1, 1, 4, 6, 4, 2]),
        ] {
            let p = ImageParam::new(&shape, true, true, 0.01).unwrap();
            assert_eq!(p.values.size(), spectrum);
            let image = p.image();
            assert_eq!(image.size(), shape);
            let (lo, hi) = (image.min().double_value(&[]), image.max().double_value(&[]));
            assert!(lo > 0.0 && hi < 1.0);
        }
    }
}
