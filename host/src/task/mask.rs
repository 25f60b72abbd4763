//! The `mask` segmentation wrapper: "why did it segment this region?" Each class scores its
//! summed output over a given region (a ground-truth or user ROI).

use anyhow::{bail, Result};
use tch::Tensor;

use super::sum_spatial;

pub struct RegionMask {
    /// `[1, 1, ...spatial]`, in the output's kind and device.
    region: Tensor,
}

impl RegionMask {
    /// `region` may be `[...spatial]`, `[1, ...spatial]` or `[1, 1, ...spatial]`.
    pub fn new(reference: &Tensor, region: Tensor) -> Result<Self> {
        let spatial = &reference.size()[2..];
        let given = region.size();
        let trimmed: Vec<i64> = given.iter().copied().skip_while(|&d| d == 1).collect();
        let spatial_trimmed: Vec<i64> = spatial.iter().copied().skip_while(|&d| d == 1).collect();
        if trimmed != spatial_trimmed {
            bail!(
                "the region mask has shape {given:?} but the model's output has spatial shape \
                 {spatial:?}; give a mask on the output's grid"
            );
        }
        let shape: Vec<i64> = [1, 1].iter().chain(spatial).copied().collect();
        let region = region
            .reshape(shape.as_slice())
            .to_kind(reference.kind())
            .to_device(reference.device());
        Ok(RegionMask { region })
    }

    pub fn scores(&self, output: &Tensor) -> Result<Tensor> {
        Ok(sum_spatial(&(output * &self.region)))
    }
}
