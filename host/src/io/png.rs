//! What the PNG of a map shows, before heatmap.rs (2D) or montage.rs (3D) draws it.
//!
//! A PNG draws one plane (or volume) per picture, so a map `[B, C, ...]` becomes one picture
//! per example, its channels combined as `output.png_channels` asks (or one picture per channel
//! for `each`). A layer's map lies on the layer's coarser grid: it is resampled onto the input's
//! grid (bilinear in 2D, trilinear in 3D, as Captum's `LayerAttribution.interpolate`), so that
//! it can be drawn over the input. Every picture carries the caption lines that say what was
//! done, so a reader never takes a sum of channels or an upsampled 4x4 map for the raw map.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use super::{heatmap, montage};
use crate::config::PngChannels;

/// One picture: a map of one example, one channel, with what lies under it.
pub struct Picture {
    /// Appended to the file's stem: `_b1`, `_c2`, `_b1_c2`; empty when there is one picture.
    pub suffix: String,
    /// `[1, 1, ...spatial]` in float64, on the input's grid when the input has one.
    pub map: Tensor,
    /// The input under it, `[1, C, ...spatial]`; drawn in mid grey when absent.
    pub input: Option<Tensor>,
    /// The colour scale's range: shared by the pictures of one example, so `each`'s channels
    /// compare directly.
    pub range: (f64, f64),
    /// The caption's parts: how channels were combined, the grid it was upsampled from, the
    /// example.
    pub notes: Vec<String>,
}

/// The pictures of `map` (`[B, C, H, W]` or `[B, C, D, H, W]`) over `input`; `out` names the
/// file in errors. Fails, saying why, for a map no PNG can show.
pub fn pictures(
    map: &Tensor,
    input: &Tensor,
    channels: PngChannels,
    out: &Path,
) -> Result<Vec<Picture>> {
    let size = map.size();
    if !(4..=5).contains(&size.len()) || size.contains(&0) {
        bail!(
            "{}: a PNG draws 2D maps [B, C, H, W] or 3D maps [B, C, D, H, W], and this map has \
             shape {size:?}; the .npy output holds it",
            out.display()
        );
    }
    let map = map.detach().to_device(Device::Cpu).to_kind(Kind::Double);
    let input = input.detach().to_device(Device::Cpu).to_kind(Kind::Double);
    let (batch, count) = (size[0], size[1]);
    let spatial = &size[2..];
    let input_size = input.size();
    // An input of the map's rank gives the grid; one of another rank (a metric's, a flattened
    // one) is no background.
    let grid = (input_size.len() == size.len() && !input_size[2..].contains(&0))
        .then(|| input_size[2..].to_vec());
    let upsampled = grid.as_ref().filter(|g| g.as_slice() != spatial);
    let mut out_pictures = Vec::new();
    for b in 0..batch {
        let example = map.narrow(0, b, 1);
        let planes: Vec<(Option<i64>, Tensor)> = match channels {
            _ if count == 1 => vec![(None, example)],
            PngChannels::Sum => vec![(None, example.sum_dim_intlist(1, true, Kind::Double))],
            PngChannels::MaxAbs => {
                let strongest = example.abs().argmax(1, true);
                vec![(None, example.gather(1, &strongest, false))]
            }
            PngChannels::Each => (0..count)
                .map(|c| (Some(c), example.narrow(1, c, 1)))
                .collect(),
        };
        let planes = planes
            .into_iter()
            .map(|(c, p)| match upsampled {
                Some(g) => esegeta_plugin_api::maps::resample(&p, g, false)
                    .with_context(|| format!("{}: cannot resample the map", out.display()))
                    .map(|p| (c, p)),
                None => Ok((c, p)),
            })
            .collect::<Result<Vec<_>>>()?;
        let lo = planes
            .iter()
            .map(|(_, p)| p.min().double_value(&[]))
            .fold(f64::MAX, f64::min);
        let hi = planes
            .iter()
            .map(|(_, p)| p.max().double_value(&[]))
            .fold(f64::MIN, f64::max);
        let under = grid.as_ref().and_then(|_| match input_size[0] {
            n if n == batch => Some(input.narrow(0, b, 1)),
            1 => Some(input.shallow_clone()),
            _ => None,
        });
        for (c, plane) in planes {
            let mut notes = Vec::new();
            match (c, channels) {
                (Some(c), _) => notes.push(format!("ch {c} of {count}")),
                (None, _) if count == 1 => {}
                (None, PngChannels::MaxAbs) => notes.push(format!("max |.| of {count} ch")),
                (None, _) => notes.push(format!("sum of {count} ch")),
            }
            if upsampled.is_some() {
                notes.push(format!("upsampled from {}", grid_text(spatial)));
            }
            if batch > 1 {
                notes.push(format!("example {b} of {batch}"));
            }
            let mut suffix = String::new();
            if batch > 1 {
                suffix += &format!("_b{b}");
            }
            if let Some(c) = c {
                suffix += &format!("_c{c}");
            }
            out_pictures.push(Picture {
                suffix,
                map: plane,
                input: under.as_ref().map(Tensor::shallow_clone),
                range: (lo, hi),
                notes,
            });
        }
    }
    Ok(out_pictures)
}

/// `4x4`, `8x8x4`.
fn grid_text(spatial: &[i64]) -> String {
    spatial
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// `out` with `suffix` before its extension: `map.png` + `_b1` = `map_b1.png`.
pub fn with_suffix(out: &Path, suffix: &str) -> PathBuf {
    if suffix.is_empty() {
        return out.to_path_buf();
    }
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!("{stem}{suffix}.png"))
}

/// Draws `picture`: a heatmap in 2D, a montage in 3D (`slices` picks the montage's slices).
/// Returns the image and the titles of the slices drawn (none in 2D).
pub fn render(
    picture: &Picture,
    out: &Path,
    slices: montage::Slices,
) -> Result<(image::RgbImage, Vec<String>)> {
    match picture.map.dim() {
        5 => montage::render(picture, out, slices),
        _ => Ok((heatmap::render(picture, out)?, Vec::new())),
    }
}

/// Writes the PNG(s) of `map` over `input` at `out` (suffixed per example and channel when
/// there are several) and returns the files written. Every picture is drawn before any is
/// saved, so a map that cannot be drawn leaves no partial set behind.
pub fn write(
    map: &Tensor,
    input: &Tensor,
    out: &Path,
    channels: PngChannels,
) -> Result<Vec<PathBuf>> {
    let drawn = pictures(map, input, channels, out)?
        .iter()
        .map(|p| {
            let file = with_suffix(out, &p.suffix);
            render(p, &file, montage::Slices::ByMass).map(|(img, _)| (file, img))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut files = Vec::new();
    for (file, img) in drawn {
        heatmap::save_png(&img, &file)?;
        files.push(file);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeros(shape: &[i64]) -> Tensor {
        Tensor::zeros(shape, (Kind::Float, Device::Cpu))
    }

    #[test]
    fn a_batch_gives_a_picture_per_example_and_each_one_per_channel() {
        let map = zeros(&[2, 3, 8, 8]);
        let input = zeros(&[2, 3, 8, 8]);
        let p = pictures(&map, &input, PngChannels::Sum, Path::new("m.png")).unwrap();
        let suffixes: Vec<&str> = p.iter().map(|p| p.suffix.as_str()).collect();
        assert_eq!(suffixes, ["_b0", "_b1"]);
        assert_eq!(p[1].notes, ["sum of 3 ch", "example 1 of 2"]);
        let p = pictures(&map, &input, PngChannels::Each, Path::new("m.png")).unwrap();
        assert_eq!(p.len(), 6);
        assert_eq!(p[4].suffix, "_b1_c1");
        assert_eq!(p[4].notes[0], "ch 1 of 3");
        assert_eq!(
            with_suffix(Path::new("d/m.png"), "_b1"),
            Path::new("d/m_b1.png")
        );
    }

    #[test]
    fn max_abs_keeps_the_sign_of_the_strongest_channel() {
        let map = Tensor::from_slice(&[1.0f32, -3.0, 2.0, 0.5]).view([1, 2, 1, 2]);
        let p = pictures(
            &map,
            &zeros(&[1, 1, 1, 2]),
            PngChannels::MaxAbs,
            Path::new("m.png"),
        )
        .unwrap();
        assert_eq!(
            Vec::<f64>::try_from(p[0].map.flatten(0, -1)).unwrap(),
            [2.0, -3.0]
        );
        assert_eq!(p[0].notes, ["max |.| of 2 ch"]);
    }

    #[test]
    fn a_layer_grid_is_upsampled_to_the_input_and_says_so() {
        let p = pictures(
            &zeros(&[1, 1, 4, 4]),
            &zeros(&[1, 3, 32, 32]),
            PngChannels::Sum,
            Path::new("m.png"),
        )
        .unwrap();
        assert_eq!(p[0].map.size(), [1, 1, 32, 32]);
        assert_eq!(p[0].notes, ["upsampled from 4x4"]);
        let p = pictures(
            &zeros(&[1, 1, 2, 2, 2]),
            &zeros(&[1, 1, 8, 8, 8]),
            PngChannels::Sum,
            Path::new("m.png"),
        )
        .unwrap();
        assert_eq!(p[0].map.size(), [1, 1, 8, 8, 8]);
        let e = pictures(
            &zeros(&[2, 5]),
            &zeros(&[2, 5]),
            PngChannels::Sum,
            Path::new("m.png"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("m.png") && e.contains("[2, 5]") && e.contains(".npy"),
            "{e}"
        );
    }
}
