//! Superpixels and supervoxels: SLIC, Felzenszwalb and quickshift as scikit-image 0.26
//! computes them (`skimage.segmentation.slic`, `felzenszwalb`, `quickshift`), for
//! `esegeta segment` and for every method whose `feature_mask` names a segmentation instead of
//! a file (the host's `segment` service, see [`crate::host_services`]).
//!
//! An input tensor `[B, C, H, W]` or `[B, C, D, H, W]` is segmented one example at a time, its
//! `C` channels taken as the colour (one channel: scikit-image's `channel_axis=None`); the
//! labels come back as `[B, ...spatial]` int64. Values are used as given, in float64 (the
//! oracle feeds scikit-image the same float64 values): images esegeta reads are in [0, 1].

mod connectivity;
mod felzenszwalb;
mod gaussian;
mod image;
mod lab;
mod numpy_random;
mod quickshift;
mod slic;
mod slic_seeds;
mod spec;

pub mod command;

use std::path::Path;

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

pub use image::Image;
pub use spec::Spec;

/// Labels `[B, ...spatial]` (int64) of each example of `inputs` (`[B, C, ...spatial]`, 2 or 3
/// spatial dims) by the segmentation `spec` (a JSON object `{"algorithm": ..., params}`);
/// relative paths in it (`mask`) are resolved against `base_dir`.
pub fn segment_json(inputs: &Tensor, spec: &serde_json::Value, base_dir: &Path) -> Result<Tensor> {
    let spec = Spec::parse(spec, base_dir)?;
    segment(inputs, &spec)
}

/// [`segment_json`] for a parsed spec.
pub fn segment(inputs: &Tensor, spec: &Spec) -> Result<Tensor> {
    let size = inputs.size();
    ensure!(
        size.len() == 4 || size.len() == 5,
        "segmentation needs an input of shape [B, C, H, W] or [B, C, D, H, W]; this one has \
         shape {size:?}"
    );
    let mut spatial = size[2..].to_vec();
    let batch = size[0];
    let mut per_example = Vec::new();
    for b in 0..batch {
        let image = Image::from_tensor(&inputs.get(b))?;
        let labels = spec.run(&image)?;
        per_example.push(Tensor::from_slice(&labels).view(spatial.as_slice()));
    }
    spatial.insert(0, batch);
    Ok(Tensor::stack(&per_example, 0)
        .view(spatial.as_slice())
        .to_kind(Kind::Int64)
        .to_device(Device::Cpu))
}
