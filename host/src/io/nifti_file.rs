//! NIfTI volumes, loaded as MONAI loads them (channel first, voxel index order i, j, k, no
//! reorientation) and written back on the source's grid with its affine and header.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use ndarray::{ArrayD, IxDyn};
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, NiftiType, ReaderOptions};
use tch::Tensor;

use super::write_atomically;

/// `[1, 1, i, j, k]` for a 3D volume, `[1, t, i, j, k]` for 4D (the fourth axis as channels),
/// with the header for writing maps back.
pub fn read(path: &Path) -> Result<(Tensor, NiftiHeader)> {
    let not_nifti =
        |e: nifti::NiftiError| anyhow!("{} is not a valid NIfTI file: {e}", path.display());
    // The header alone first: a volume's declared size is checked before it is read (a
    // gzip bomb, or a header claiming 10^12 voxels, allocates nothing).
    let header = NiftiHeader::from_file(path).map_err(not_nifti)?;
    let rank = usize::from(header.dim[0]).min(7);
    let dims: Vec<u64> = header.dim[1..=rank].iter().map(|&d| u64::from(d)).collect();
    super::declared_values(&dims, path)?;
    let object = ReaderOptions::new().read_file(path).map_err(not_nifti)?;
    let header = object.header().clone();
    let volume: ArrayD<f32> = object
        .into_volume()
        .into_ndarray::<f32>()
        .map_err(not_nifti)?;
    let shape: Vec<i64> = volume.shape().iter().map(|&d| d as i64).collect();
    let values: Vec<f32> = volume.iter().copied().collect(); // logical (i, j, k[, t]) order
    let data = Tensor::from_slice(&values).view(shape.as_slice());
    let tensor = match shape.len() {
        2 | 3 => data.unsqueeze(0).unsqueeze(0),
        4 => data.permute([3, 0, 1, 2]).unsqueeze(0).contiguous(),
        n => bail!(
            "{} has {n} dimensions; esegeta reads 2D, 3D and 4D NIfTI",
            path.display()
        ),
    };
    Ok((tensor, header))
}

/// Writes a map `[1, C, i, j, k]` (C = 1 gives a 3D volume, more a 4D one) with the source's
/// header, so that it overlays the scan in any viewer; without a source, an identity affine.
pub fn write(map: &Tensor, source: Option<&NiftiHeader>, out: &Path) -> Result<()> {
    let size = map.size();
    if size.len() != 5 || size[0] != 1 {
        bail!(
            "{}: NIfTI output needs a 3D map of one example, shape [1, C, i, j, k]; this map has \
             shape {size:?}. Write it as .npy instead",
            out.display()
        );
    }
    // Channels last, as NIfTI's fourth axis.
    let volume = if size[1] == 1 {
        map.squeeze_dim(0).squeeze_dim(0)
    } else {
        map.squeeze_dim(0).permute([1, 2, 3, 0])
    };
    let volume = volume.contiguous();
    let shape: Vec<usize> = volume.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(volume.flatten(0, -1))?;
    let array = ArrayD::from_shape_vec(IxDyn(&shape), values)?;
    let header = header_for(source, NiftiType::Float32);
    write_atomically(out, |tmp| {
        nifti::writer::WriterOptions::new(tmp)
            .reference_header(&header)
            .write_nifti(&array)
            .map_err(|e| anyhow!("cannot write {}: {e}", out.display()))
    })
}

/// Writes integer labels `[...spatial]` (2 or 3 dims, int64) as an int32 NIfTI with the
/// source's header (its affine), for label maps such as superpixels.
pub fn write_labels(labels: &Tensor, source: Option<&NiftiHeader>, out: &Path) -> Result<()> {
    let shape: Vec<usize> = labels.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<i64>::try_from(labels.flatten(0, -1))?;
    let values = values
        .into_iter()
        .map(|v| i32::try_from(v).map_err(|_| anyhow!("label {v} does not fit a NIfTI int32")))
        .collect::<Result<Vec<i32>>>()?;
    let array = ArrayD::from_shape_vec(IxDyn(&shape), values)?;
    let header = header_for(source, NiftiType::Int32);
    write_atomically(out, |tmp| {
        nifti::writer::WriterOptions::new(tmp)
            .reference_header(&header)
            .write_nifti(&array)
            .map_err(|e| anyhow!("cannot write {}: {e}", out.display()))
    })
}

/// The source's header (its affine), or a default one, for unscaled 32-bit `datatype`.
fn header_for(source: Option<&NiftiHeader>, datatype: NiftiType) -> NiftiHeader {
    let mut header = source.cloned().unwrap_or_default();
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    header.datatype = datatype as i16;
    header.bitpix = 32;
    header
}
