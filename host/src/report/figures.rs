//! The report's pictures as PNG data URIs, drawn by the same code as the run's PNG outputs
//! (io::heatmap, io::montage), so the page and the files read the same way.
//!
//! - A 3D map: the middle slice along i, j and k, the slice along each through the voxel of
//!   largest |map|, and the maximum-intensity projection along each, over the scan, one colour
//!   scale for the nine panels and its colour bar.
//! - A 2D map: the heatmap over the image (a layer's map upsampled onto it, as in the PNGs).
//! - A batch: one figure per example, up to four.
//! - A thumbnail (randomisation strips): the projection along k of a 3D map (the value of
//!   largest magnitude, with its sign) over the scan's projection, or the 2D heatmap.

use std::io::Cursor;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use image::RgbImage;
use tch::{Kind, Tensor};

use crate::config::PngChannels;
use crate::io::png::{self, Picture};
use crate::io::{heatmap, montage};

/// More examples than this of one batch would bury the page; the npy holds them all.
const MAX_EXAMPLES: usize = 4;

/// One drawn picture and what the page says under it.
pub struct Figure {
    pub uri: String,
    /// What was drawn: channels combined, upsampled, the example, the slices.
    pub caption: String,
}

/// The figures of `map` over `input`, one per example (the first few of a batch).
pub fn figures(map: &Tensor, input: &Tensor, name: &Path) -> Result<Vec<Figure>> {
    png::pictures(map, input, PngChannels::Sum, name)?
        .iter()
        .take(MAX_EXAMPLES)
        .map(|p| {
            let (img, slices) = png::render(p, name, montage::Slices::MiddleAndMax)?;
            let mut caption = p.notes.clone();
            if !slices.is_empty() {
                caption.push(slice_caption(&slices));
            }
            Ok(Figure {
                uri: data_uri(&img)?,
                caption: caption.join("; "),
            })
        })
        .collect()
}

/// The figures of a method's segments (`labels`, `[B, ...spatial]`, the superpixels or
/// supervoxels its map is made of): where a label differs from its next neighbour along an
/// axis, over the input, one figure per example as for maps.
pub fn segment_figures(labels: &Tensor, input: &Tensor, name: &Path) -> Result<Vec<Figure>> {
    let labels = labels.to_kind(Kind::Int64);
    let count = labels.flatten(0, -1).internal_unique(false, false).0.size()[0];
    let edges = boundaries(&labels).unsqueeze(1).to_kind(Kind::Float);
    let mut drawn = figures(&edges, input, name)?;
    for f in &mut drawn {
        let what = format!("the boundaries of the {count} segments the map is made of");
        f.caption = [what, std::mem::take(&mut f.caption)]
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
    }
    Ok(drawn)
}

/// True where a label differs from the next along a spatial axis of `labels` `[B, ...]`.
fn boundaries(labels: &Tensor) -> Tensor {
    let edges = labels.zeros_like().to_kind(Kind::Bool);
    for axis in 1..labels.dim() as i64 {
        let n = labels.size()[axis as usize];
        if n < 2 {
            continue;
        }
        let differs = labels
            .narrow(axis, 1, n - 1)
            .ne_tensor(&labels.narrow(axis, 0, n - 1));
        let _ = edges.narrow(axis, 0, n - 1).logical_or_(&differs);
    }
    edges
}

/// `mid i=4`, ..., `max k=6` as "middle slices i=4, j=4, k=4; through the largest |map|: ...".
fn slice_caption(titles: &[String]) -> String {
    let of = |prefix: &str| {
        titles
            .iter()
            .filter_map(|t| t.strip_prefix(prefix))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "middle slices {}; slices through the largest |map| {}",
        of("mid "),
        of("max ")
    )
}

/// A small picture of `map` (its first example) for a strip of maps.
pub fn thumbnail(map: &Tensor, input: &Tensor, name: &Path) -> Result<String> {
    let pictures = png::pictures(map, input, PngChannels::Sum, name)?;
    let first = pictures.first().context("an empty map")?;
    if first.map.dim() != 5 {
        return data_uri(&heatmap::render(first, name)?);
    }
    let m = projection(&first.map);
    let g = first.input.as_ref().map(|i| {
        i.to_kind(Kind::Double)
            .sum_dim_intlist(1, true, Kind::Double)
            .amax(4, false)
    });
    let range = (m.min().double_value(&[]), m.max().double_value(&[]));
    let projected = Picture {
        suffix: String::new(),
        map: m,
        input: g,
        range,
        notes: first.notes.clone(),
    };
    data_uri(&heatmap::render(&projected, name)?)
}

/// `[1, 1, D, H, W]` to its projection along k, `[1, 1, D, H]`, keeping the value of largest
/// magnitude with its sign.
fn projection(map: &Tensor) -> Tensor {
    let strongest = map.abs().argmax(4, true);
    map.gather(4, &strongest, false).squeeze_dim(4)
}

fn data_uri(img: &RgbImage) -> Result<String> {
    let mut bytes = Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes.into_inner())
    ))
}
