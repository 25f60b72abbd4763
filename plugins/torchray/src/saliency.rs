//! What TorchRay does to every backpropagation map before returning it, and the parameters
//! that control it: `resize` (resample the map to the input's grid, or to a given size, with
//! `resize_mode`), then `smooth` (a Gaussian blur whose standard deviation is that fraction of
//! the map's largest side, the border replicated). Both work on 2D maps as TorchRay's and on
//! 3D maps alike.

use anyhow::{bail, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

/// How a map is resampled (TorchRay passes it to PyTorch's `interpolate`; in 3D `bilinear`
/// is trilinear).
#[derive(Deserialize, JsonSchema, Clone, Copy, Default, PartialEq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    #[default]
    Bilinear,
    /// 2D only.
    Bicubic,
    /// (TorchRay refuses it; here it works.)
    Nearest,
}

/// `resize`: to the input's grid (`true`), not at all (`false`), or to a size.
#[derive(Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Resize {
    Input(bool),
    /// One size per spatial dimension, e.g. `[224, 224]`.
    Size(Vec<i64>),
}

impl Default for Resize {
    fn default() -> Self {
        Resize::Input(false)
    }
}

/// The post-processing parameters every TorchRay backpropagation method takes.
#[derive(Deserialize, JsonSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct Post {
    /// Resample the map: `true` to the input's spatial size (TorchRay's `resize=True`), or to
    /// the given size (`[h, w]`, `[d, h, w]`). Default false: the map stays on the grid where
    /// it was computed.
    #[serde(default)]
    pub resize: Resize,
    /// The resampling of `resize`: `bilinear` (trilinear in 3D, `align_corners=False`),
    /// `bicubic` (2D) or `nearest`. Default: bilinear.
    #[serde(default)]
    pub resize_mode: ResizeMode,
    /// A Gaussian blur of the map after any resizing, with a standard deviation of this
    /// fraction of the map's largest side (TorchRay's `smooth`: 0.02 on a 224 map is 4.5
    /// pixels); 0 (the default) leaves it as it is.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub smooth: f64,
}

impl Post {
    /// `map` `[B, 1, ...]` resized as asked (against `inputs`' spatial size), then smoothed.
    pub fn apply(&self, map: &Tensor, inputs: &Tensor) -> Result<Tensor> {
        let map = match &self.resize {
            Resize::Input(false) => map.shallow_clone(),
            Resize::Input(true) => resize(map, &inputs.size()[2..], self.resize_mode)?,
            Resize::Size(size) => {
                if size.len() != map.dim() - 2 || size.iter().any(|&s| s < 1) {
                    bail!(
                        "resize is {size:?}, but the map has {} spatial dimension(s); give one \
                         size >= 1 per dimension, or true for the input's size",
                        map.dim() - 2
                    );
                }
                resize(map, size, self.resize_mode)?
            }
        };
        if self.smooth <= 0.0 {
            return Ok(map);
        }
        let side = map.size()[2..].iter().copied().max().unwrap_or(1) as f64;
        blur(&map, self.smooth * side)
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
        (ResizeMode::Bicubic, 2) => map.f_upsample_bicubic2d(size, false, None, None)?,
        (ResizeMode::Nearest, 2) => map.f_upsample_nearest2d(size, None, None)?,
        (ResizeMode::Nearest, 3) => map.f_upsample_nearest3d(size, None, None, None)?,
        (ResizeMode::Bicubic, 3) => {
            bail!("resize_mode bicubic is for 2D maps; use bilinear (trilinear) or nearest in 3D")
        }
        (_, n) => bail!(
            "resize takes 2D or 3D maps, but this map has {n} spatial dimension(s) (shape {:?})",
            map.size()
        ),
    })
}

/// Gaussian blur with standard deviation `sigma` (pixels) along every spatial dimension, one
/// separable 1D convolution per dimension, the kernel truncated at `TRUNCATE` sigmas and
/// normalised to sum 1, the border's values repeated beyond it, the output the size of the
/// input.
pub fn blur(map: &Tensor, sigma: f64) -> Result<Tensor> {
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
    let flat: Vec<i64> = [b * c, 1].iter().chain(&map.size()[2..]).copied().collect();
    let mut out = map.reshape(flat.as_slice());
    for d in 0..spatial {
        let mut shape = vec![1i64, 1];
        for e in 0..spatial {
            shape.push(if e == d { 2 * radius + 1 } else { 1 });
        }
        out = replicate_pad(&out, 2 + d as i64, radius)?;
        let k = kernel.view(shape.as_slice());
        out = match spatial {
            2 => out.f_conv2d(&k, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)?,
            3 => out.f_conv3d(&k, None::<Tensor>, [1, 1, 1], [0, 0, 0], [1, 1, 1], 1)?,
            n => bail!("smooth takes 2D or 3D maps, but this map has {n} spatial dimension(s)"),
        };
    }
    Ok(out.reshape(map.size().as_slice()))
}

/// Pads dimension `dim` by `r` on both sides with the border's values (by index, so that a
/// radius larger than the dimension works too).
fn replicate_pad(t: &Tensor, dim: i64, r: i64) -> Result<Tensor> {
    let n = t.size()[dim as usize];
    let index: Vec<i64> = (-r..n + r).map(|i| i.clamp(0, n - 1)).collect();
    let index = Tensor::from_slice(&index).to_device(t.device());
    Ok(t.f_index_select(dim, &index)?)
}

/// How far the Gaussian kernel reaches, in standard deviations.
const TRUNCATE: f64 = 4.0;

/// `[B, C, ...]` -> `[B, 1, ...]`: the largest |value| over channels, TorchRay's reduction of
/// an input gradient to a saliency map.
pub fn max_abs_over_channels(t: &Tensor) -> Tensor {
    t.abs().amax(1, true)
}
