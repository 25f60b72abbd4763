//! The report's pictures as PNG data URIs, drawn by the same code as the run's PNG outputs
//! (io::heatmap, io::montage), so the page and the files read the same way.
//!
//! - A 3D map: the middle slice along i, j and k and the maximum-intensity projection along
//!   each, over the scan, one colour scale for the six panels and its colour bar.
//! - A 2D map: the heatmap over the image.
//! - A thumbnail (randomisation strips): the projection along k of a 3D map (the value of
//!   largest magnitude, with its sign) over the scan's projection, or the 2D heatmap.

use std::io::Cursor;
use std::path::Path;

use anyhow::{bail, Result};
use base64::Engine;
use image::RgbImage;
use tch::{Kind, Tensor};

use crate::io::{heatmap, montage};

/// The figure of `map` over `input` (both on the input's grid) as a data URI.
pub fn figure(map: &Tensor, input: &Tensor, name: &Path) -> Result<String> {
    let img = match map.dim() {
        5 => montage::render(map, input, name, montage::Slices::Middle)?,
        4 => heatmap::render(map, input, name)?,
        _ => bail!(
            "{}: no figure for a map of shape {:?}",
            name.display(),
            map.size()
        ),
    };
    data_uri(&img)
}

/// A small picture of `map` for a strip of maps.
pub fn thumbnail(map: &Tensor, input: &Tensor, name: &Path) -> Result<String> {
    match map.dim() {
        5 => {
            let (m, g) = (projection(map), projection_of_input(input, map));
            data_uri(&heatmap::render(&m, &g, name)?)
        }
        _ => figure(map, input, name),
    }
}

/// `[1, C, D, H, W]` to its projection along k, `[1, 1, D, H]`, keeping the value of largest
/// magnitude (summed over channels) with its sign.
fn projection(map: &Tensor) -> Tensor {
    let v = map
        .to_kind(Kind::Double)
        .sum_dim_intlist(1, true, Kind::Double);
    let strongest = v.abs().argmax(4, true);
    v.gather(4, &strongest, false).squeeze_dim(4)
}

fn projection_of_input(input: &Tensor, map: &Tensor) -> Tensor {
    if input.size()[2..] == map.size()[2..] && input.dim() == 5 {
        input
            .to_kind(Kind::Double)
            .sum_dim_intlist(1, true, Kind::Double)
            .amax(4, false)
    } else {
        projection(map).zeros_like()
    }
}

fn data_uri(img: &RgbImage) -> Result<String> {
    let mut bytes = Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes.into_inner())
    ))
}
