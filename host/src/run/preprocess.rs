//! The config's preprocessing of each input before the model sees it: centre crop, resize,
//! intensity normalisation, channel order. Crop and resize are undone on the map, so that maps
//! are always written on the input's own grid (and overlay the scan with its affine).

use std::path::Path;

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::config::{ChannelOrder, Normalize, Preprocessing};
use crate::model;

/// How to bring a map of the preprocessed input back onto the input's grid.
pub struct Undo {
    original: Vec<i64>,
    crop_start: Vec<i64>,
    cropped: Vec<i64>,
    resized: bool,
}

/// The preprocessed input `[B, C, ...spatial]` and how to undo its spatial changes.
pub fn apply(t: &Tensor, p: &Preprocessing, path: &Path) -> Result<(Tensor, Undo)> {
    let (spatial_t, undo) = reshape_spatially(t, p, path)?;
    let mut t = match p.normalize {
        Normalize::None => spatial_t,
        Normalize::Minmax => {
            let (lo, hi) = (spatial_t.min(), spatial_t.max());
            (&spatial_t - &lo) / (hi - lo).clamp_min(1e-12)
        }
        Normalize::Zscore => {
            (&spatial_t - spatial_t.mean(Kind::Float)) / spatial_t.std(true).clamp_min(1e-12)
        }
    };
    let is_image = matches!(model::extension(path).as_str(), "png" | "jpg" | "jpeg");
    if p.channel_order == ChannelOrder::Bgr && is_image && t.size()[1] == 3 {
        t = t.flip([1]);
    }
    Ok((t, undo))
}

/// The crop and resize alone, for a region mask that must follow the input.
pub fn reshape_spatially(t: &Tensor, p: &Preprocessing, path: &Path) -> Result<(Tensor, Undo)> {
    let original: Vec<i64> = t.size()[2..].to_vec();
    let cropped = p.crop.clone().unwrap_or_else(|| original.clone());
    check_size("preprocessing.crop", &cropped, &original, path)?;
    if cropped.iter().zip(&original).any(|(c, o)| c > o) {
        bail!("preprocessing.crop {cropped:?} is larger than {} ({original:?}); crop to at most the input's size", path.display());
    }
    let crop_start: Vec<i64> = original
        .iter()
        .zip(&cropped)
        .map(|(o, c)| (o - c) / 2)
        .collect();
    let mut out = crop_start
        .iter()
        .zip(&cropped)
        .enumerate()
        .fold(t.shallow_clone(), |t, (d, (&s, &n))| {
            t.narrow(2 + d as i64, s, n)
        });
    if let Some(size) = &p.resize {
        check_size("preprocessing.resize", size, &original, path)?;
        out = interpolate(&out, size)?;
    }
    Ok((
        out.contiguous(),
        Undo {
            original,
            crop_start,
            cropped,
            resized: p.resize.is_some(),
        },
    ))
}

impl Undo {
    /// The map `[B, C, ...]` of the preprocessed input on the input's grid: resized back, then
    /// padded with zeros where the crop cut the input away.
    pub fn map(&self, map: &Tensor) -> Result<Tensor> {
        let map = if self.resized {
            interpolate(map, &self.cropped)?
        } else {
            map.shallow_clone()
        };
        if self.cropped == self.original {
            return Ok(map);
        }
        let mut full: Vec<i64> = map.size()[..2].to_vec();
        full.extend(&self.original);
        let out = map.new_zeros(full.as_slice(), (map.kind(), map.device()));
        let mut window = self
            .crop_start
            .iter()
            .zip(&self.cropped)
            .enumerate()
            .fold(out.shallow_clone(), |t, (d, (&s, &n))| {
                t.narrow(2 + d as i64, s, n)
            });
        window.copy_(&map);
        Ok(out)
    }
}

fn check_size(name: &str, size: &[i64], spatial: &[i64], path: &Path) -> Result<()> {
    if size.len() != spatial.len() || size.iter().any(|&s| s < 1) {
        bail!(
            "{name} is {size:?}, but {} has {} spatial dimensions ({spatial:?}); give one size >= 1 per dimension",
            path.display(),
            spatial.len()
        );
    }
    Ok(())
}

/// Bilinear (2D) or trilinear (3D) resize of the spatial dims, corners not aligned (as MONAI).
fn interpolate(t: &Tensor, size: &[i64]) -> Result<Tensor> {
    let kind = t.kind();
    let t = t.to_kind(Kind::Float);
    let out = match size.len() {
        2 => t.f_upsample_bilinear2d(size, false, None, None)?,
        3 => t.f_upsample_trilinear3d(size, false, None, None, None)?,
        n => bail!("resizing needs 2 or 3 spatial dimensions, not {n}"),
    };
    Ok(out.to_kind(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(crop: Option<Vec<i64>>, resize: Option<Vec<i64>>) -> Preprocessing {
        Preprocessing {
            crop,
            resize,
            ..Default::default()
        }
    }

    #[test]
    fn a_centre_crop_is_undone_by_zero_padding() {
        let t = Tensor::arange(60, (Kind::Float, tch::Device::Cpu)).view([1, 1, 6, 10]);
        let (cropped, undo) = apply(&t, &spec(Some(vec![4, 4]), None), Path::new("x.npy")).unwrap();
        assert_eq!(cropped.size(), vec![1, 1, 4, 4]);
        assert_eq!(cropped.double_value(&[0, 0, 0, 0]), 13.0); // row 1, column 3
        let back = undo.map(&cropped).unwrap();
        assert_eq!(back.size(), vec![1, 1, 6, 10]);
        assert_eq!(back.double_value(&[0, 0, 1, 3]), 13.0);
        assert_eq!(back.double_value(&[0, 0, 0, 0]), 0.0);
    }

    #[test]
    fn a_resize_is_undone_onto_the_original_grid() {
        let t = Tensor::ones([1, 1, 4, 6, 8], (Kind::Float, tch::Device::Cpu));
        let (resized, undo) =
            apply(&t, &spec(None, Some(vec![8, 8, 8])), Path::new("x.nii.gz")).unwrap();
        assert_eq!(resized.size(), vec![1, 1, 8, 8, 8]);
        let back = undo.map(&resized).unwrap();
        assert_eq!(back.size(), vec![1, 1, 4, 6, 8]);
        assert!((back - 1.0).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn sizes_that_do_not_fit_the_input_are_named() {
        let t = Tensor::ones([1, 1, 4, 4], (Kind::Float, tch::Device::Cpu));
        let e = apply(&t, &spec(Some(vec![4, 4, 4]), None), Path::new("x.npy"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("preprocessing.crop is [4, 4, 4], but x.npy has 2 spatial dimensions"),
            "{e}"
        );
        let e = apply(&t, &spec(Some(vec![8, 2]), None), Path::new("x.npy"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("larger than x.npy"), "{e}");
    }
}
