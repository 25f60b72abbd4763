//! Task wrappers: from a model's raw output to class scores `[B, K]`, the one shape every
//! method explains (`target` picks a column). Plugins never see task details.

mod argmax;
mod mask;
mod otsu;
mod threshold;

use anyhow::{bail, Result};
use tch::Tensor;

pub use argmax::Argmax;
pub use mask::RegionMask;
pub use threshold::Threshold;

/// How a segmentation's pixel-wise output becomes per-class scores.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WrapperKind {
    /// `scores[b, c]`: the sum of channel c over the pixels whose argmax is c.
    Argmax,
    /// One foreground channel split by Otsu's threshold: `[background, foreground]` sums.
    Threshold,
    /// `scores[b, c]`: the sum of channel c over a given region (ground truth or ROI).
    Mask,
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Classification,
    Segmentation,
}

/// A wrapper, built once per job from the model's output on the unperturbed input.
pub enum TaskWrapper {
    Classification,
    Argmax(Argmax),
    Threshold(Threshold),
    Mask(RegionMask),
}

impl TaskWrapper {
    /// `reference` is the model's output on the unperturbed input (fixes masks when `fixed`);
    /// `region` is the ROI for the `mask` wrapper.
    pub fn new(
        task: TaskKind,
        wrapper: Option<WrapperKind>,
        reference: &Tensor,
        fixed: bool,
        region: Option<Tensor>,
    ) -> Result<Self> {
        match (task, wrapper) {
            (TaskKind::Classification, None) => {
                if reference.dim() != 2 {
                    bail!(
                        "the model's output has shape {:?}, not [batch, classes]; for a \
                         segmentation model pass --task segmentation with a --wrapper",
                        reference.size()
                    );
                }
                Ok(TaskWrapper::Classification)
            }
            (TaskKind::Classification, Some(w)) => {
                bail!("--wrapper {w:?} is for segmentation; add --task segmentation or drop --wrapper")
            }
            (TaskKind::Segmentation, wrapper) => {
                let wrapper = wrapper.unwrap_or(WrapperKind::Argmax);
                check_segmentation_output(reference)?;
                if region.is_some() && wrapper != WrapperKind::Mask {
                    bail!("--mask is the region of the `mask` wrapper; add --wrapper mask");
                }
                Ok(match wrapper {
                    WrapperKind::Argmax => TaskWrapper::Argmax(Argmax::new(reference, fixed)),
                    WrapperKind::Threshold => {
                        TaskWrapper::Threshold(Threshold::new(reference, fixed)?)
                    }
                    WrapperKind::Mask => {
                        let Some(region) = region else {
                            bail!("the `mask` wrapper needs a region: pass --mask FILE (npy or NIfTI)");
                        };
                        TaskWrapper::Mask(RegionMask::new(reference, region)?)
                    }
                })
            }
        }
    }

    /// Scores `[B, K]` from the model's output `[B, ...]`, differentiable through the output.
    pub fn scores(&self, output: &Tensor) -> Result<Tensor> {
        match self {
            TaskWrapper::Classification => Ok(output.shallow_clone()),
            TaskWrapper::Argmax(w) => w.scores(output),
            TaskWrapper::Threshold(w) => w.scores(output),
            TaskWrapper::Mask(w) => w.scores(output),
        }
    }
}

impl TaskWrapper {
    /// A sentence when the target's mask is empty on the unperturbed output of some example:
    /// its score is then 0 whatever the input, and the map explains nothing. Found as a score
    /// that does not depend on any output element, which covers every wrapper alike.
    pub fn empty_mask(&self, reference: &Tensor, target: i64) -> Result<Option<String>> {
        let name = match self {
            TaskWrapper::Classification => return Ok(None),
            TaskWrapper::Argmax(_) => "argmax",
            TaskWrapper::Threshold(_) => "threshold",
            TaskWrapper::Mask(_) => "region",
        };
        let output = reference
            .detach()
            .to_kind(tch::Kind::Float)
            .set_requires_grad(true);
        let score = self
            .scores(&output)?
            .select(1, target)
            .sum(tch::Kind::Float);
        let grad = Tensor::f_run_backward(&[score], &[&output], false, false)?.remove(0);
        let batch = grad.size()[0];
        let reach = Vec::<f64>::try_from(
            grad.abs()
                .reshape([batch, -1])
                .amax(1, false)
                .to_kind(tch::Kind::Double),
        )?;
        let empty: Vec<String> = (0..batch as usize)
            .filter(|&b| reach[b] == 0.0)
            .map(|b| b.to_string())
            .collect();
        Ok((!empty.is_empty()).then(|| {
            format!(
                "the {name} mask of target {target} {EMPTY_MASK} {}: no pixel of the \
                 model's output on the unperturbed input belongs to it, so its score is 0 and \
                 the map explains nothing; pick a target the model segments here",
                empty.join(", ")
            )
        }))
    }
}

/// Whether a warning is [`TaskWrapper::empty_mask`]'s.
pub fn is_empty_mask_warning(sentence: &str) -> bool {
    sentence.contains(EMPTY_MASK)
}

const EMPTY_MASK: &str = "is empty on example";

fn check_segmentation_output(output: &Tensor) -> Result<()> {
    if output.dim() < 3 {
        bail!(
            "the model's output has shape {:?}, not [batch, channels, ...spatial]; for a \
             classifier use --task classification",
            output.size()
        );
    }
    Ok(())
}

/// Sums over every dimension after the first two: `[B, C, ...] -> [B, C]`.
fn sum_spatial(t: &Tensor) -> Tensor {
    let dims: Vec<i64> = (2..t.dim() as i64).collect();
    t.sum_dim_intlist(dims.as_slice(), false, tch::Kind::Float)
}

/// A fixed mask computed on the unperturbed input applies to a batch of perturbed copies of a
/// single example; with several examples there is no telling which copy belongs to which.
fn check_fixed_batch(mask: &Tensor, output: &Tensor) -> Result<()> {
    let (m, b) = (mask.size()[0], output.size()[0]);
    if m != 1 && m != b {
        bail!(
            "a fixed mask needs an input batch of one example (the input has {m}); explain the \
             examples one at a time or drop --fixed-mask"
        );
    }
    Ok(())
}
