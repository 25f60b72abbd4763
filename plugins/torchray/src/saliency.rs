//! What TorchRay does to every backpropagation map before returning it, and the parameters
//! that control it: `resize` (resample the map to the input's grid, with `resize_mode`) and
//! `smooth` (a Gaussian blur of the map with that standard deviation, in pixels of the grid
//! the map is on). Both work on 2D maps as TorchRay's and on 3D maps alike.

use anyhow::{bail, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

/// How a map is resampled to the input's grid (TorchRay passes it to PyTorch's
/// `interpolate`; in 3D `bilinear` is trilinear).
#[derive(Deserialize, JsonSchema, Clone, Copy, Default, PartialEq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    #[default]
    Bilinear,
    Nearest,
}

/// The post-processing parameters every TorchRay backpropagation method takes.
#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct Post {
    /// Resample the map to the input's spatial size (TorchRay's `resize=True`), for display
    /// over the input. Default false: the map stays on the grid where it was computed.
    #[serde(default)]
    pub resize: bool,
    /// The resampling of `resize`: `bilinear` (trilinear in 3D, `align_corners=False`) or
    /// `nearest`. Default: bilinear.
    #[serde(default)]
    pub resize_mode: ResizeMode,
    /// Standard deviation, in pixels of the map's grid, of a Gaussian blur applied to the map
    /// before any resizing (TorchRay's `smooth`); 0 (the default) leaves it as it is.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub smooth: f64,
}

impl Post {
    /// `map` `[B, 1, ...]` smoothed, then resized to the spatial size of `inputs`.
    pub fn apply(&self, map: &Tensor, inputs: &Tensor) -> Result<Tensor> {
        let map = if self.smooth > 0.0 {
            gaussian_blur(map, self.smooth)?
        } else {
            map.shallow_clone()
        };
        if !self.resize {
            return Ok(map);
        }
        resize(&map, &inputs.size()[2..], self.resize_mode)
    }
}

/// Resamples `map` `[B, C, ...]` to the spatial `size`.
pub fn resize(map: &Tensor, size: &[i64], mode: ResizeMode) -> Result<Tensor> {
    if map.size()[2..] == *size {
        return Ok(map.shallow_clone());
    }
    Ok(match (mode, size.len()) {
        (ResizeMode::Bilinear, 2) => map.f_upsample_bilinear2d(size, false, None, None)?,
        (ResizeMode::Bilinear, 3) => map.f_upsample_trilinear3d(size, false, None, None, None)?,
        (ResizeMode::Nearest, 2) => map.f_upsample_nearest2d(size, None, None)?,
        (ResizeMode::Nearest, 3) => map.f_upsample_nearest3d(size, None, None, None)?,
        (_, n) => bail!(
            "resize takes 2D or 3D maps, but this map has {n} spatial dimension(s) (shape {:?})",
            map.size()
        ),
    })
}

/// Gaussian blur with standard deviation `sigma` along every spatial dimension, one separable
/// 1D convolution per dimension, zero padding, the kernel truncated at `TRUNCATE` sigmas.
pub fn gaussian_blur(map: &Tensor, sigma: f64) -> Result<Tensor> {
    let radius = (TRUNCATE * sigma).ceil() as i64;
    let taps: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = taps.iter().sum();
    let kernel = Tensor::from_slice(&taps).to_kind(Kind::Float) / f64::from(total);
    let kernel = kernel.to_device(map.device()).to_kind(map.kind());
    let spatial = map.dim() - 2;
    let (b, c) = (map.size()[0], map.size()[1]);
    // Channels as batch entries: one single-channel convolution blurs them all.
    let mut out = map.reshape([b * c, 1].iter().chain(&map.size()[2..]).copied().collect::<Vec<_>>().as_slice());
    for d in 0..spatial {
        let mut shape = vec![1i64, 1];
        let mut padding = vec![0i64; spatial];
        for e in 0..spatial {
            shape.push(if e == d { 2 * radius + 1 } else { 1 });
        }
        padding[d] = radius;
        let k = kernel.view(shape.as_slice());
        out = match spatial {
            2 => out.f_conv2d(&k, None::<Tensor>, [1, 1], padding.as_slice(), [1, 1], 1)?,
            3 => out.f_conv3d(&k, None::<Tensor>, [1, 1, 1], padding.as_slice(), [1, 1, 1], 1)?,
            n => bail!("smooth takes 2D or 3D maps, but this map has {n} spatial dimension(s)"),
        };
    }
    Ok(out.reshape(map.size().as_slice()))
}

/// How far the Gaussian kernel reaches, in standard deviations.
const TRUNCATE: f64 = 4.0;

/// `[B, C, ...]` -> `[B, 1, ...]`: the largest |value| over channels, TorchRay's reduction of
/// an input gradient to a saliency map.
pub fn max_abs_over_channels(t: &Tensor) -> Tensor {
    t.abs().amax(1, true)
}
