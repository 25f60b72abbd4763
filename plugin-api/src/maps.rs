//! Helpers for maps on a layer's grid (`[B, C, ...layer spatial dims]`), shared by the layer
//! methods of every plugin.

use anyhow::{bail, Result};
use tch::Tensor;

/// `map` resampled to the spatial size of `inputs`: bilinear for 2D, trilinear for 3D.
/// `align_corners` as PyTorch's: false for Captum's `LayerAttribution.interpolate`, true for
/// `nn.UpsamplingBilinear2d`. `layer` names the layer in the error for a map without the
/// input's spatial dimensions.
pub fn resample_to_input(
    map: &Tensor,
    inputs: &Tensor,
    layer: &str,
    align_corners: bool,
) -> Result<Tensor> {
    let (m, x) = (map.size(), inputs.size());
    if m.len() != x.len() || !(4..=5).contains(&m.len()) {
        bail!(
            "layer `{layer}` gives a map of shape {m:?} for an input of shape {x:?}, which \
             cannot be resampled to the input: that needs a layer with the input's spatial \
             dimensions (2D or 3D); pick a convolutional layer"
        );
    }
    resample(map, &x[2..], align_corners)
}

/// `map` (`[B, C, ...]`, 2D or 3D) resampled to the spatial `size`: bilinear or trilinear,
/// `align_corners` as PyTorch's.
pub fn resample(map: &Tensor, size: &[i64], align_corners: bool) -> Result<Tensor> {
    Ok(if size.len() == 2 {
        map.f_upsample_bilinear2d(size, align_corners, None, None)?
    } else {
        map.f_upsample_trilinear3d(size, align_corners, None, None, None)?
    })
}

/// `map` (`[B, C, ...]`, 1D to 3D) resized to the spatial `size` by nearest-neighbour
/// interpolation (PyTorch's `interpolate(mode="nearest")`, as Captum's guided Grad-CAM does).
pub fn resample_nearest(map: &Tensor, size: &[i64]) -> Result<Tensor> {
    Ok(match size.len() {
        1 => map.f_upsample_nearest1d(size, None)?,
        2 => map.f_upsample_nearest2d(size, None, None)?,
        3 => map.f_upsample_nearest3d(size, None, None, None)?,
        n => bail!("inputs with {n} spatial dimensions are not supported"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn resampling_follows_the_input_grid() {
        let map = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        let x = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        for corners in [false, true] {
            let up = resample_to_input(&map, &x, "l", corners).unwrap();
            assert_eq!(up.size(), vec![1, 1, 8, 8]);
        }
        let flat = Tensor::ones([1, 1], (Kind::Float, Device::Cpu));
        let err = resample_to_input(&flat, &x, "fc", false).unwrap_err();
        assert!(err.to_string().contains("layer `fc`"), "{err}");
    }
}
