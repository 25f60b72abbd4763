//! Reading inputs and writing maps: npy, NIfTI (keeping the source's affine and header),
//! PNG/JPEG images and PNG heatmaps. Every file is written under a temporary name and renamed.

mod atomic;
pub mod heatmap;
mod image_file;
pub mod labels;
pub mod montage;
mod nifti_file;
mod npy;
pub mod png;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tch::Tensor;

pub use atomic::write_atomically;
pub use nifti::NiftiHeader;

use crate::model::extension;

/// A loaded input: the exact model input `[B, ...]` in float32, and what its writers need.
pub struct Input {
    pub tensor: Tensor,
    /// The source header when the input was NIfTI; maps are written on its grid.
    pub nifti: Option<NiftiHeader>,
}

/// Loads a model input by its extension: `.npy` as is (with its batch dimension), NIfTI as
/// `[1, 1, i, j, k]` (or `[1, t, i, j, k]` for 4D), images as `[1, C, H, W]` in [0, 1].
pub fn load_input(path: &Path) -> Result<Input> {
    let input = load(path)?;
    check_finite(&input.tensor, path)?;
    Ok(input)
}

/// Loads a tensor named by a parameter or flag (baselines, masks, ROI), by its extension.
pub fn load_tensor(path: &Path) -> Result<Tensor> {
    Ok(load(path)?.tensor)
}

fn load(path: &Path) -> Result<Input> {
    if !path.is_file() {
        bail!(
            "the file {} does not exist or is not a file",
            path.display()
        );
    }
    match extension(path).as_str() {
        "npy" => Ok(Input {
            tensor: npy::read(path)?,
            nifti: None,
        }),
        "nii" | "nii.gz" => {
            let (tensor, header) = nifti_file::read(path)?;
            Ok(Input {
                tensor,
                nifti: Some(header),
            })
        }
        "png" | "jpg" | "jpeg" => Ok(Input {
            tensor: image_file::read(path)?,
            nifti: None,
        }),
        other => bail!(
            "{}: unknown input format `.{other}`; esegeta reads .npy, .nii, .nii.gz, .png, .jpg",
            path.display()
        ),
    }
}

/// The most values an input file may declare: 2^31, 8 GiB as float32 (a 1024^3 volume is
/// 2^30). A header claiming more is refused before anything is allocated.
pub const MAX_INPUT_VALUES: u64 = 1 << 31;

/// The number of values a header declares for `shape`, refused above [`MAX_INPUT_VALUES`].
pub fn declared_values(shape: &[u64], path: &Path) -> Result<u64> {
    let count = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    match count {
        Some(n) if n <= MAX_INPUT_VALUES => Ok(n),
        _ => bail!(
            "{} declares the shape {shape:?}, {} values, {} as float32; esegeta reads inputs \
             of at most 2^31 values (8 GiB): crop or downsample the data first, or check that \
             the file is what it claims",
            path.display(),
            count.map_or("more than 2^64".into(), |n| n.to_string()),
            count.map_or("more than 2^66 bytes".into(), |n| format!(
                "{} GiB",
                (n >> 28).max(1)
            ))
        ),
    }
}

fn check_finite(t: &Tensor, path: &Path) -> Result<()> {
    let bad = t
        .isfinite()
        .logical_not()
        .sum(tch::Kind::Int64)
        .int64_value(&[]);
    if bad > 0 {
        bail!(
            "{} holds {bad} NaN or infinite value(s); attributions of such an input are \
             meaningless. Clean the input (for example replace NaN by the background value)",
            path.display()
        );
    }
    Ok(())
}

/// Fails unless `out` names a format `write_map` writes; checked before any work starts.
pub fn check_output(out: &Path) -> Result<()> {
    match extension(out).as_str() {
        "npy" | "nii" | "nii.gz" | "png" => Ok(()),
        other => bail!(
            "{}: unknown output format `.{other}`; use .npy, .nii.gz or .png",
            out.display()
        ),
    }
}

/// A NIfTI map takes the source's affine, which is only right on the source's grid: a layer's
/// map (coarser, or with other channels) is refused rather than written misplaced.
fn check_on_input_grid(map: &Tensor, input: &Input, out: &Path) -> Result<()> {
    let (m, x) = (map.size(), input.tensor.size());
    if input.nifti.is_some() && m.len() == x.len() && m.len() > 2 && m[2..] != x[2..] {
        bail!(
            "{}: the map's grid {:?} is not the input's {:?} (a layer's map), so the scan's \
             affine would misplace it; write it as .npy, or for GradCAM pass \
             \"upsample_to_input\": true",
            out.display(),
            &m[2..],
            &x[2..]
        );
    }
    Ok(())
}

/// Writes `map` (the attribution, Captum's shape) to `out` in the format its extension names.
/// `input` is drawn under PNG heatmaps; `nifti` gives NIfTI outputs the source's grid.
pub fn write_map(map: &Tensor, input: &Input, out: &Path) -> Result<()> {
    write_map_files(map, input, out, crate::config::PngChannels::Sum).map(drop)
}

/// [`write_map`] with the PNG's channel choice; returns the files written: `out`, or for a PNG
/// of several examples or channels, one file per picture (`<stem>_b0.png`, `<stem>_c1.png`).
pub fn write_map_files(
    map: &Tensor,
    input: &Input,
    out: &Path,
    channels: crate::config::PngChannels,
) -> Result<Vec<PathBuf>> {
    let map = map
        .detach()
        .to_device(tch::Device::Cpu)
        .to_kind(tch::Kind::Float)
        .contiguous();
    match extension(out).as_str() {
        "npy" => npy::write(&map, out)?,
        "nii" | "nii.gz" => {
            check_on_input_grid(&map, input, out)?;
            nifti_file::write(&map, input.nifti.as_ref(), out)?
        }
        "png" => return png::write(&map, &input.tensor, out, channels),
        _ => check_output(out)?,
    }
    Ok(vec![out.to_path_buf()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nifti_map_off_the_input_grid_is_refused() {
        let opts = (tch::Kind::Float, tch::Device::Cpu);
        let input = Input {
            tensor: Tensor::zeros([1, 1, 8, 6, 4], opts),
            nifti: Some(NiftiHeader::default()),
        };
        let dir = std::env::temp_dir().join(format!("esegeta-grid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("map.nii.gz");
        let coarse = Tensor::zeros([1, 1, 4, 3, 2], opts);
        let e = write_map(&coarse, &input, &out).unwrap_err().to_string();
        assert!(e.contains("[4, 3, 2] is not the input's [8, 6, 4]"), "{e}");
        assert!(!out.exists());
        // On the grid, any channel count is fine.
        write_map(&Tensor::zeros([1, 2, 8, 6, 4], opts), &input, &out).unwrap();
        assert!(out.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
