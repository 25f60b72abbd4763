//! Writing integer label maps (superpixels, supervoxels) `[1, ...spatial]`: `.npy` as int64,
//! NIfTI as int32 on the source's grid (its affine and header), PNG as 16-bit grey (2D, labels
//! 0 to 65535), each by the output's extension.

use std::path::Path;

use anyhow::{bail, Context, Result};
use image::{ImageBuffer, Luma};
use tch::{Device, Kind, Tensor};

use super::{nifti_file, write_atomically, Input};
use crate::model::extension;

/// Fails unless `out` names a format [`write_labels`] writes; checked before any work.
pub fn check_labels_output(out: &Path) -> Result<()> {
    match extension(out).as_str() {
        "npy" | "nii" | "nii.gz" | "png" => Ok(()),
        other => bail!(
            "{}: unknown output format `.{other}` for a label map; use .npy, .nii.gz or .png",
            out.display()
        ),
    }
}

/// Writes `labels` (`[1, ...spatial]`, int64) of `input` to `out`.
pub fn write_labels(labels: &Tensor, input: &Input, out: &Path) -> Result<()> {
    let labels = labels
        .to_device(Device::Cpu)
        .to_kind(Kind::Int64)
        .contiguous();
    match extension(out).as_str() {
        "npy" => write_atomically(out, |tmp| {
            labels
                .write_npy(tmp)
                .with_context(|| format!("cannot write {}", out.display()))
        }),
        "nii" | "nii.gz" => {
            nifti_file::write_labels(&labels.squeeze_dim(0), input.nifti.as_ref(), out)
        }
        "png" => write_png(&labels, out),
        _ => check_labels_output(out),
    }
}

fn write_png(labels: &Tensor, out: &Path) -> Result<()> {
    let size = labels.size();
    if size.len() != 3 {
        bail!(
            "{}: a PNG holds a 2D label map, but these labels have shape {size:?}; write a \
             volume's labels as .nii.gz or .npy",
            out.display()
        );
    }
    let (h, w) = (size[1] as u32, size[2] as u32);
    let values = Vec::<i64>::try_from(labels.flatten(0, -1))?;
    let pixels = values
        .into_iter()
        .map(|v| {
            u16::try_from(v).map_err(|_| {
                anyhow::anyhow!(
                    "{}: label {v} does not fit a 16-bit PNG (0 to 65535); write .npy instead",
                    out.display()
                )
            })
        })
        .collect::<Result<Vec<u16>>>()?;
    let img: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_raw(w, h, pixels)
        .context("the label map's size does not match its values")?;
    write_atomically(out, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
            .with_context(|| format!("cannot write {}", out.display()))
    })
}
