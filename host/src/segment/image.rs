//! [`Image`]: one example as scikit-image's segmentations see it, spatial dims `(z, y, x)` (a
//! 2D image has depth 1) and channels last, in float64.

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

#[derive(Clone, Debug)]
pub struct Image {
    /// `(depth, height, width)`; 1 deep for a 2D image.
    pub dims: [usize; 3],
    pub channels: usize,
    /// Whether the source had two spatial dims.
    pub is_2d: bool,
    /// `((z * height + y) * width + x) * channels + c`.
    pub data: Vec<f64>,
}

impl Image {
    /// One example `[C, H, W]` or `[C, D, H, W]`.
    pub fn from_tensor(example: &Tensor) -> Result<Self> {
        let size = example.size();
        ensure!(
            size.len() == 3 || size.len() == 4,
            "an example to segment must be [C, H, W] or [C, D, H, W]; this one is {size:?}"
        );
        let channels = size[0] as usize;
        let is_2d = size.len() == 3;
        let dims = if is_2d {
            [1, size[1] as usize, size[2] as usize]
        } else {
            [size[1] as usize, size[2] as usize, size[3] as usize]
        };
        ensure!(
            channels >= 1 && dims.iter().all(|&d| d >= 1),
            "cannot segment an empty input (shape {size:?})"
        );
        let last = example
            .to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .movedim(&[0], &[-1])
            .contiguous();
        let data = Vec::<f64>::try_from(last.flatten(0, -1))?;
        ensure!(
            data.iter().all(|v| v.is_finite()),
            "the input to segment holds NaN or infinite values"
        );
        Ok(Image {
            dims,
            channels,
            is_2d,
            data,
        })
    }

    pub fn pixels(&self) -> usize {
        self.dims.iter().product()
    }

    /// The channels of pixel `i` (raster order).
    pub fn pixel(&self, i: usize) -> &[f64] {
        &self.data[i * self.channels..(i + 1) * self.channels]
    }

    /// The same grid with other values per pixel.
    pub fn with_data(&self, channels: usize, data: Vec<f64>) -> Image {
        Image {
            dims: self.dims,
            channels,
            is_2d: self.is_2d,
            data,
        }
    }
}
