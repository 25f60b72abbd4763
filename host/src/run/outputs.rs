//! Writing a finished job's map in each of its formats.
//!
//! The map is the job's result and the npy holds it whatever its shape, so npy is written first
//! and its failure (a full disk) fails the job. NIfTI and PNG only show some maps (NIfTI: on
//! the scan's grid; PNG: 2D or 3D grids): a format that cannot show this map is skipped with a
//! warning sentence for the manifest, never failing the job or losing what was written.

use std::path::PathBuf;

use anyhow::Result;
use tch::Tensor;

use crate::config::{Format, PngChannels};
use crate::io::Input;
use crate::run::plan::PlannedJob;

/// What the writers produced: the files, and a sentence per format skipped.
#[derive(Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// Where the map lies, which decides the formats that can show it.
#[derive(Clone, Copy)]
pub struct Grid {
    /// A metric's "map" is its score per example: only npy holds it, and no grid applies, so
    /// its other formats are skipped without a warning (asking for them is the default).
    pub is_metric: bool,
    /// False for a layer's map: the scan's affine would misplace it in a NIfTI file.
    pub on_input_grid: bool,
}

/// Writes `map` in each of `job`'s formats, npy first, then nii.gz, then png.
pub fn write(
    job: &PlannedJob,
    map: &Tensor,
    input: &Input,
    grid: Grid,
    channels: PngChannels,
) -> Result<Written> {
    let mut outputs: Vec<&(Format, PathBuf)> = job.outputs.iter().collect();
    outputs.sort_by_key(|(format, _)| *format);
    let mut written = Written::default();
    for (format, path) in outputs {
        let skip = |why: String| format!("no {} written: {why}", format.extension());
        let outcome = match format {
            Format::Npy => {
                written
                    .files
                    .extend(crate::io::write_map_files(map, input, path, channels)?);
                continue;
            }
            _ if grid.is_metric => continue,
            Format::NiiGz if !grid.on_input_grid => Err(skip(format!(
                "the map {:?} is on the layer's grid, not the input's {:?}, and the scan's \
                 affine would misplace it (for GradCAM, \"upsample_to_input\": true puts it on \
                 the input's grid)",
                map.size(),
                input.tensor.size()
            ))),
            Format::NiiGz if map.dim() != 5 || map.size()[0] != 1 => Err(skip(format!(
                "a NIfTI file holds a 3D map of one example, [1, C, i, j, k], and this map has \
                 shape {:?}; the .npy holds it",
                map.size()
            ))),
            _ => crate::io::write_map_files(map, input, path, channels)
                .map_err(|e| skip(format!("{e:#}"))),
        };
        match outcome {
            Ok(files) => written.files.extend(files),
            Err(warning) => {
                tracing::warn!("{}: {warning}", job.id);
                written.warnings.push(warning);
            }
        }
    }
    Ok(written)
}

/// Writes the superpixels or supervoxels a method's map is made of (`labels`, `[B,
/// ...spatial]`, from the host's segmentation) beside the map: `<map>_segments.npy`, int64,
/// and `.nii.gz` on the scan's grid where the job writes NIfTI maps of a one-example batch.
/// Only labels on the input's own grid are written: a crop or resize would misplace them.
pub fn write_segments(job: &PlannedJob, labels: &Tensor, input: &Input) -> Result<Written> {
    let mut written = Written::default();
    if labels.size().get(1..) != input.tensor.size().get(2..) {
        written.warnings.push(format!(
            "no segment map written: the segments {:?} lie on the preprocessed grid, not the \
             input's {:?}",
            labels.size(),
            input.tensor.size()
        ));
        return Ok(written);
    }
    let Some((_, first)) = job.outputs.first() else {
        return Ok(written);
    };
    let name = first.to_string_lossy();
    let stem = name.rsplit_once(".nii.gz").map_or_else(
        || first.with_extension("").to_string_lossy().into_owned(),
        |(stem, _)| stem.to_string(),
    );
    let npy = PathBuf::from(format!("{stem}_segments.npy"));
    crate::io::labels::write_labels(labels, input, &npy)?;
    written.files.push(npy);
    let nifti = job.outputs.iter().any(|(f, _)| *f == Format::NiiGz);
    if nifti && input.nifti.is_some() && labels.size()[0] == 1 {
        let nii = PathBuf::from(format!("{stem}_segments.nii.gz"));
        match crate::io::labels::write_labels(labels, input, &nii) {
            Ok(()) => written.files.push(nii),
            Err(e) => written
                .warnings
                .push(format!("no segment map written as NIfTI: {e:#}")),
        }
    }
    Ok(written)
}
