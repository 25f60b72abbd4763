//! Reading inputs and writing maps: npy, NIfTI (keeping the source's affine and header),
//! PNG/JPEG images and PNG heatmaps. Every file is written under a temporary name and renamed.

mod atomic;
pub mod heatmap;
mod image_file;
pub mod montage;
mod nifti_file;
mod npy;

use std::path::Path;

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

/// Writes `map` (the attribution, Captum's shape) to `out` in the format its extension names.
/// `input` is drawn under PNG heatmaps; `nifti` gives NIfTI outputs the source's grid.
pub fn write_map(map: &Tensor, input: &Input, out: &Path) -> Result<()> {
    let map = map
        .detach()
        .to_device(tch::Device::Cpu)
        .to_kind(tch::Kind::Float)
        .contiguous();
    match extension(out).as_str() {
        "npy" => npy::write(&map, out),
        "nii" | "nii.gz" => nifti_file::write(&map, input.nifti.as_ref(), out),
        "png" if map.dim() == 5 => montage::write(&map, &input.tensor, out),
        "png" => heatmap::write(&map, &input.tensor, out),
        _ => check_output(out),
    }
}
