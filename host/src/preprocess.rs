//! Preprocessing of each input before the model sees it, for a run config's `preprocessing`
//! and `esegeta explain`'s flags alike: centre crop, resize, intensity normalisation, channel
//! order. Crop and resize are undone on the map, so that maps are always written on the
//! input's own grid (and overlay the scan with its affine).

use std::path::Path;

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::config::{ChannelOrder, ChannelStats, Normalize, Preprocessing, WholeNormalize};
use crate::model;

/// What the user calls each setting, for messages: the config's keys or explain's flags.
pub struct Labels {
    pub crop: &'static str,
    pub resize: &'static str,
    pub mean: &'static str,
    pub std: &'static str,
}

/// A run config's names.
pub const CONFIG: Labels = Labels {
    crop: "preprocessing.crop",
    resize: "preprocessing.resize",
    mean: "preprocessing.normalize.mean",
    std: "preprocessing.normalize.std",
};

/// `esegeta explain`'s names.
pub const FLAGS: Labels = Labels {
    crop: "--crop",
    resize: "--resize",
    mean: "--mean",
    std: "--std",
};

/// How to bring a map of the preprocessed input back onto the input's grid.
pub struct Undo {
    original: Vec<i64>,
    crop_start: Vec<i64>,
    cropped: Vec<i64>,
    resized: bool,
}

/// The preprocessed input `[B, C, ...spatial]` and how to undo its spatial changes, with a run
/// config's names in messages.
pub fn apply(t: &Tensor, p: &Preprocessing, path: &Path) -> Result<(Tensor, Undo)> {
    apply_labelled(t, p, path, &CONFIG)
}

/// [`apply`], naming the settings as `labels` does.
pub fn apply_labelled(
    t: &Tensor,
    p: &Preprocessing,
    path: &Path,
    labels: &Labels,
) -> Result<(Tensor, Undo)> {
    if let Normalize::Channels(stats) = &p.normalize {
        check_stats(stats, t.size().get(1).copied().unwrap_or(0), path, labels)?;
    }
    let (mut t, undo) = reshape_labelled(t, p, path, labels)?;
    // Flipped before the per-channel statistics, which are in the model's channel order.
    let is_image = matches!(model::extension(path).as_str(), "png" | "jpg" | "jpeg");
    if p.channel_order == ChannelOrder::Bgr && is_image && t.size()[1] == 3 {
        t = t.flip([1]);
    }
    let t = match &p.normalize {
        Normalize::Whole(WholeNormalize::None) => t,
        Normalize::Whole(WholeNormalize::Minmax) => {
            let (lo, hi) = (t.min(), t.max());
            (&t - &lo) / (hi - lo).clamp_min(1e-12)
        }
        Normalize::Whole(WholeNormalize::Zscore) => {
            (&t - t.mean(Kind::Float)) / t.std(true).clamp_min(1e-12)
        }
        Normalize::Channels(stats) => {
            // [C] viewed as [1, C, 1, ...] to broadcast over the batch and spatial dims.
            let mut shape = vec![1i64; t.dim()];
            shape[1] = -1;
            let column = |v: &[f64]| {
                Tensor::from_slice(v)
                    .to_kind(t.kind())
                    .to_device(t.device())
                    .view(shape.as_slice())
            };
            (&t - column(&stats.mean)) / column(&stats.std)
        }
    };
    Ok((t, undo))
}

/// One mean and one positive std per channel of the input at `path` (`channels` of them).
pub fn check_stats(
    stats: &ChannelStats,
    channels: i64,
    path: &Path,
    labels: &Labels,
) -> Result<()> {
    for (name, values) in [(labels.mean, &stats.mean), (labels.std, &stats.std)] {
        if values.len() as i64 != channels {
            bail!(
                "{name} has {} value(s) but {} has {channels} channel(s); give one {} per channel \
                 (e.g. 3 for RGB images, 1 for a grey image or a single-modality scan)",
                values.len(),
                path.display(),
                if name == labels.mean { "mean" } else { "std" }
            );
        }
    }
    if let Some((i, s)) = stats
        .std
        .iter()
        .enumerate()
        .find(|(_, s)| !(**s > 0.0 && s.is_finite()))
    {
        bail!(
            "{}[{i}] is {s}; every std must be a finite number > 0 (each channel is divided by it)",
            labels.std
        );
    }
    if let Some((i, m)) = stats.mean.iter().enumerate().find(|(_, m)| !m.is_finite()) {
        bail!(
            "{}[{i}] is {m}; every mean must be a finite number",
            labels.mean
        );
    }
    Ok(())
}

/// The crop and resize alone, for a region mask that must follow the input.
pub fn reshape_spatially(t: &Tensor, p: &Preprocessing, path: &Path) -> Result<(Tensor, Undo)> {
    reshape_labelled(t, p, path, &CONFIG)
}

/// [`reshape_spatially`], naming the settings as `labels` does.
pub fn reshape_labelled(
    t: &Tensor,
    p: &Preprocessing,
    path: &Path,
    labels: &Labels,
) -> Result<(Tensor, Undo)> {
    let original: Vec<i64> = t.size()[2..].to_vec();
    let cropped = p.crop.clone().unwrap_or_else(|| original.clone());
    check_size(labels.crop, &cropped, &original, path)?;
    if cropped.iter().zip(&original).any(|(c, o)| c > o) {
        bail!(
            "{} {cropped:?} is larger than {} ({original:?}); crop to at most the input's size",
            labels.crop,
            path.display()
        );
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
        check_size(labels.resize, size, &original, path)?;
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

/// The region file of the `mask` wrapper as `[1, 1, ...spatial]` on the input's grid, then
/// cropped and resized like the input.
pub fn region_like(path: &Path, input: &Tensor, preprocessing: &Preprocessing) -> Result<Tensor> {
    let region = crate::io::load_tensor(path)?;
    let spatial = &input.size()[2..];
    if region.numel() as i64 != spatial.iter().product::<i64>() {
        bail!(
            "the region {} has shape {:?}, but the input's spatial shape is {spatial:?}; give a mask on the input's grid",
            path.display(),
            region.size()
        );
    }
    let shape: Vec<i64> = [1, 1].iter().chain(spatial).copied().collect();
    Ok(reshape_spatially(&region.reshape(shape.as_slice()), preprocessing, path)?.0)
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

    fn stats(mean: Vec<f64>, std: Vec<f64>) -> Preprocessing {
        Preprocessing {
            normalize: Normalize::Channels(ChannelStats { mean, std }),
            ..Default::default()
        }
    }

    #[test]
    fn per_channel_statistics_normalise_each_channel_by_its_own() {
        let t = Tensor::arange(8, (Kind::Float, tch::Device::Cpu)).view([1, 2, 2, 2]);
        let (out, _) = apply(
            &t,
            &stats(vec![1.0, 4.0], vec![2.0, 0.5]),
            Path::new("x.npy"),
        )
        .unwrap();
        // Channel 0 holds 0..3, channel 1 holds 4..7: by hand, (x - 1) / 2 and (x - 4) / 0.5.
        let want =
            Tensor::from_slice(&[-0.5f32, 0.0, 0.5, 1.0, 0.0, 2.0, 4.0, 6.0]).view([1, 2, 2, 2]);
        assert!((out - want).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn per_channel_statistics_must_fit_the_channels_and_be_positive() {
        let t = Tensor::ones([1, 1, 4, 4], (Kind::Float, tch::Device::Cpu));
        let e = apply(&t, &stats(vec![0.5; 3], vec![0.2; 3]), Path::new("x.npy"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("preprocessing.normalize.mean has 3 value(s) but x.npy has 1 channel(s)"),
            "{e}"
        );
        let e = apply_labelled(&t, &stats(vec![0.5], vec![0.0]), Path::new("x.npy"), &FLAGS)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("--std[0] is 0; every std must be a finite number > 0"),
            "{e}"
        );
    }
}
