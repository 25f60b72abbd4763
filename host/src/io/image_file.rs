//! 2D images (PNG, JPEG) as `[1, C, H, W]` in [0, 1]: grey images give C = 1, colour ones
//! C = 3 (alpha dropped).

use std::path::Path;

use anyhow::{anyhow, Result};
use image::{DynamicImage, GenericImageView};
use tch::Tensor;

pub fn read(path: &Path) -> Result<Tensor> {
    let img = image::open(path)
        .map_err(|e| anyhow!("{} is not a readable image: {e}", path.display()))?;
    let (w, h) = img.dimensions();
    let (channels, values): (i64, Vec<f32>) = match img {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_) => (1, img.to_luma32f().into_raw()),
        _ => (3, img.to_rgb32f().into_raw()),
    };
    // Pixels are interleaved (H, W, C); the model wants channel first.
    Ok(Tensor::from_slice(&values)
        .view([h as i64, w as i64, channels])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .contiguous())
}
