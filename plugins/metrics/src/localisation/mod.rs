//! Localisation metrics: how well a map points at a ground-truth region (`mask`), for 2D and 3D
//! maps alike.
//!
//! - `metrics.relevance_mass_accuracy` (Arras et al., 2022): the share of the positive relevance
//!   that lies inside the region.
//! - `metrics.relevance_rank_accuracy` (Arras et al., 2022): with K the region's voxel count, the
//!   share of the K most relevant voxels that lie inside it.
//! - `metrics.pointing_game` (Zhang et al., 2018): whether the most relevant voxel lies inside
//!   the region, or within `tolerance` voxels of it.
//! - `metrics.attribution_roc_auc`: the ROC-AUC of the relevance as a score that separates the
//!   region's voxels from the others.
//!
//! Conventions shared by the four:
//! - A map `[B, C, ...spatial]` becomes one relevance per voxel by summing its channels (after
//!   taking each element's absolute value when `abs` is true), as Arras et al. pool relevance over
//!   the colour channels by summing. `abs` defaults to false everywhere: the papers score the
//!   signed relevance, so negative evidence never counts as pointing at the region. Maps whose
//!   sign means nothing (a gradient) are best given with `abs` true, or by a method that returns
//!   magnitudes already (`captum.saliency` does by default).
//! - The mask is read from a file; values above 0.5 are inside. It is one region for every
//!   example, or one per example; a region must not be empty.
//! - Exact ties in the relevance are scored by their expected value when the tie is broken at
//!   random (rank accuracy, pointing game) or averaged (ROC-AUC), so that a constant map scores
//!   chance and not a lucky index order.
//!
//! Each metric's computation is a pure function (scores.rs) of the voxel relevance
//! `[B, ...spatial]` and the region (bool, same shape); the `Method` glue here only loads the
//! mask and asks for the map.

use anyhow::{bail, ensure, Result};
use esegeta_plugin_api::{register_method, Attribution, Context, Method, MethodMeta};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::explained::{meta, Explained};

mod scores;
use scores::{
    attribution_roc_auc, pointing_game, relevance_mass_accuracy, relevance_rank_accuracy,
};

// ---------------------------------------------------------------------------------------------
// Parameters

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MassParams {
    /// The attribution method whose map is scored, and its parameters.
    pub explained: Explained,
    /// A file (npy, NIfTI) holding the ground-truth region: values above 0.5 are inside. Its
    /// shape is the input's spatial shape, optionally with a leading batch and a channel
    /// dimension (`[...spatial]`, `[1, ...spatial]`, `[1, 1, ...spatial]`, a batch dimension of
    /// B for one region per example), or the input's whole shape (a voxel is inside when it is
    /// inside in any channel). Relative paths resolve against the working folder (`explain`) or
    /// the run config's folder.
    pub mask: String,
    /// Count only positive relevance (Arras et al.): the score is the positive relevance inside
    /// the region over the positive relevance of the whole map, in [0, 1] (0 when the map has no
    /// positive relevance). The positive part is taken after summing the channels. With false,
    /// the ratio of the signed sums, which can leave [0, 1]. Default true.
    #[serde(default = "yes")]
    pub positive_only: bool,
    /// Take each element's absolute value before summing the channels (the relevance then has
    /// no sign). Default false, as Arras et al. score signed relevance.
    #[serde(default)]
    pub abs: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RankParams {
    /// The attribution method whose map is scored, and its parameters.
    pub explained: Explained,
    /// A file (npy, NIfTI) holding the ground-truth region: values above 0.5 are inside. Its
    /// shape is the input's spatial shape, optionally with a leading batch and a channel
    /// dimension (`[...spatial]`, `[1, ...spatial]`, `[1, 1, ...spatial]`, a batch dimension of
    /// B for one region per example), or the input's whole shape (a voxel is inside when it is
    /// inside in any channel). Relative paths resolve against the working folder (`explain`) or
    /// the run config's folder.
    pub mask: String,
    /// Take each element's absolute value before summing the channels, and rank voxels by
    /// magnitude. Default false: voxels are ranked by signed relevance, as Arras et al. do.
    #[serde(default)]
    pub abs: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointingParams {
    /// The attribution method whose map is scored, and its parameters.
    pub explained: Explained,
    /// A file (npy, NIfTI) holding the ground-truth region: values above 0.5 are inside. Its
    /// shape is the input's spatial shape, optionally with a leading batch and a channel
    /// dimension (`[...spatial]`, `[1, ...spatial]`, `[1, 1, ...spatial]`, a batch dimension of
    /// B for one region per example), or the input's whole shape (a voxel is inside when it is
    /// inside in any channel). Relative paths resolve against the working folder (`explain`) or
    /// the run config's folder.
    pub mask: String,
    /// A hit may miss the region by up to this Euclidean distance, in voxels (the region is
    /// dilated by a ball of this radius). Default 0: the most relevant voxel must lie inside.
    /// Zhang et al. used 15 pixels; their code (TorchRay) accepts distances strictly below it,
    /// so 14.99 here reproduces theirs.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub tolerance: f64,
    /// Take each element's absolute value before summing the channels, so that the strongest
    /// negative evidence can be the pointed-at voxel. Default false: the maximum of the signed
    /// relevance, as in Zhang et al.
    #[serde(default)]
    pub abs: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AucParams {
    /// The attribution method whose map is scored, and its parameters.
    pub explained: Explained,
    /// A file (npy, NIfTI) holding the ground-truth region: values above 0.5 are inside. Its
    /// shape is the input's spatial shape, optionally with a leading batch and a channel
    /// dimension (`[...spatial]`, `[1, ...spatial]`, `[1, 1, ...spatial]`, a batch dimension of
    /// B for one region per example), or the input's whole shape (a voxel is inside when it is
    /// inside in any channel). Relative paths resolve against the working folder (`explain`) or
    /// the run config's folder. It must leave some voxels outside.
    pub mask: String,
    /// Take each element's absolute value before summing the channels, and score voxels by
    /// magnitude. Default false: the signed relevance is the score, so negative evidence ranks
    /// below indifference.
    #[serde(default)]
    pub abs: bool,
}

fn yes() -> bool {
    true
}

// ---------------------------------------------------------------------------------------------
// Methods

pub struct RelevanceMassAccuracy;

impl Method for RelevanceMassAccuracy {
    type Params = MassParams;

    fn meta(&self) -> MethodMeta {
        meta(
            "metrics.relevance_mass_accuracy",
            "Relevance Mass Accuracy",
            "Share of the map's positive relevance that lies inside a ground-truth region, per \
             example, in [0, 1].",
            "Arras et al., CLEVR-XAI: A benchmark dataset for the ground truth evaluation of \
             neural network explanations, Information Fusion 81, 2022, arXiv:2003.07258",
        )
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: MassParams,
    ) -> Result<Attribution> {
        let (relevance, inside) =
            relevance_and_region(ctx, inputs, target, &p.explained, &p.mask, p.abs)?;
        let scores = relevance_mass_accuracy(&relevance, &inside, p.positive_only)?;
        Ok(Attribution::new(scores).with_extra("region_voxels", region_sizes(&inside)?))
    }
}

register_method!(RelevanceMassAccuracy);

pub struct RelevanceRankAccuracy;

impl Method for RelevanceRankAccuracy {
    type Params = RankParams;

    fn meta(&self) -> MethodMeta {
        meta(
            "metrics.relevance_rank_accuracy",
            "Relevance Rank Accuracy",
            "With K the number of voxels of a ground-truth region, the share of the map's K most \
             relevant voxels that lie inside it, per example, in [0, 1].",
            "Arras et al., CLEVR-XAI: A benchmark dataset for the ground truth evaluation of \
             neural network explanations, Information Fusion 81, 2022, arXiv:2003.07258",
        )
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: RankParams,
    ) -> Result<Attribution> {
        let (relevance, inside) =
            relevance_and_region(ctx, inputs, target, &p.explained, &p.mask, p.abs)?;
        let scores = relevance_rank_accuracy(&relevance, &inside)?;
        Ok(Attribution::new(scores).with_extra("region_voxels", region_sizes(&inside)?))
    }
}

register_method!(RelevanceRankAccuracy);

pub struct PointingGame;

impl Method for PointingGame {
    type Params = PointingParams;

    fn meta(&self) -> MethodMeta {
        meta(
            "metrics.pointing_game",
            "Pointing Game",
            "1 when the map's most relevant voxel lies inside a ground-truth region (or within \
             `tolerance` voxels of it), else 0, per example.",
            "Zhang et al., Top-down Neural Attention by Excitation Backprop, IJCV 126, 2018, \
             arXiv:1608.00507",
        )
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: PointingParams,
    ) -> Result<Attribution> {
        ensure!(
            p.tolerance.is_finite() && p.tolerance >= 0.0,
            "tolerance is {}; give a distance in voxels of at least 0",
            p.tolerance
        );
        let (relevance, inside) =
            relevance_and_region(ctx, inputs, target, &p.explained, &p.mask, p.abs)?;
        let pointed = pointing_game(&relevance, &inside, p.tolerance)?;
        Ok(Attribution::new(pointed.hits)
            .with_extra("points", json!(pointed.points))
            .with_extra("distances", json!(pointed.distances))
            .with_extra("tied_maxima", json!(pointed.tied_maxima)))
    }
}

register_method!(PointingGame);

pub struct AttributionRocAuc;

impl Method for AttributionRocAuc {
    type Params = AucParams;

    fn meta(&self) -> MethodMeta {
        meta(
            "metrics.attribution_roc_auc",
            "Attribution ROC-AUC",
            "Area under the ROC curve of the relevance as a score separating a ground-truth \
             region's voxels from the others (the Mann-Whitney U statistic, ties counted half), \
             per example, in [0, 1].",
            "Fawcett, An introduction to ROC analysis, Pattern Recognition Letters 27, 2006; as \
             Quantus' AUC (Hedström et al., JMLR 24, 2023, arXiv:2202.06861)",
        )
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: AucParams,
    ) -> Result<Attribution> {
        let (relevance, inside) =
            relevance_and_region(ctx, inputs, target, &p.explained, &p.mask, p.abs)?;
        let scores = attribution_roc_auc(&relevance, &inside)?;
        Ok(Attribution::new(scores).with_extra("region_voxels", region_sizes(&inside)?))
    }
}

register_method!(AttributionRocAuc);

/// The region first (a bad mask fails before the explained method runs), then the map as voxel
/// relevance.
fn relevance_and_region(
    ctx: &Context<'_>,
    inputs: &Tensor,
    target: i64,
    explained: &Explained,
    mask: &str,
    abs: bool,
) -> Result<(Tensor, Tensor)> {
    check_spatial(inputs)?;
    let what = format!("`mask` ({mask})");
    let inside = region(&ctx.load_tensor(mask)?, &inputs.size(), &what)?.to_device(inputs.device());
    let map = explained.map(ctx, inputs, target)?;
    Ok((voxel_relevance(&map, abs, &explained.method)?, inside))
}

/// The region's voxel count per example, for the extras.
fn region_sizes(inside: &Tensor) -> Result<Value> {
    let b = inside.size()[0];
    let counts = inside
        .f_reshape([b, -1])?
        .f_sum_dim_intlist(1, false, Kind::Int64)?;
    Ok(json!(Vec::<i64>::try_from(&counts.to_device(Device::Cpu))?))
}

// ---------------------------------------------------------------------------------------------
// Shared by the metrics: voxel relevance and the region

/// Fails unless `inputs` has a batch, a channel and at least one spatial dimension.
pub(crate) fn check_spatial(inputs: &Tensor) -> Result<()> {
    ensure!(
        inputs.dim() >= 3,
        "this metric needs inputs with a batch, a channel and spatial dimensions \
         ([B, C, H, W] or [B, C, D, H, W]), but the input has shape {:?}",
        inputs.size()
    );
    Ok(())
}

/// One relevance per voxel, `[B, ...spatial]` in f64: the map's channels summed, after taking
/// each element's absolute value when `abs`. Fails on NaN or infinite values, naming `method`.
pub(crate) fn voxel_relevance(map: &Tensor, abs: bool, method: &str) -> Result<Tensor> {
    ensure!(
        map.dim() >= 3,
        "the map of {method} has shape {:?}; this metric needs a map [B, C, ...spatial]",
        map.size()
    );
    let map = map.f_to_kind(Kind::Double)?;
    ensure!(
        bool::try_from(&map.f_isfinite()?.f_all()?)?,
        "the map of {method} holds NaN or infinite values, which have no mass or rank; check \
         the method's parameters, or run it in fp32"
    );
    let map = if abs { map.f_abs()? } else { map };
    Ok(map.f_sum_dim_intlist(1, false, Kind::Double)?)
}

/// The region in `raw` (values above 0.5 are inside) as bool `[B, ...spatial]` for an input of
/// shape `input` = `[B, C, ...spatial]`. `what` names the mask in errors.
///
/// Accepted shapes: `[...spatial]`, `[1 or B, ...spatial]`, `[1 or B, 1 or C, ...spatial]`; a
/// channel dimension of C is reduced by "inside in any channel". Every example's region must hold
/// at least one voxel.
pub fn region(raw: &Tensor, input: &[i64], what: &str) -> Result<Tensor> {
    let (b, c, spatial) = (input[0], input[1], &input[2..]);
    let shape = raw.size();
    let n = spatial.len();
    let fits = match shape.len() {
        r if r == n => shape == spatial,
        r if r == n + 1 => &shape[1..] == spatial && (shape[0] == 1 || shape[0] == b),
        r if r == n + 2 => {
            &shape[2..] == spatial
                && (shape[0] == 1 || shape[0] == b)
                && (shape[1] == 1 || shape[1] == c)
        }
        _ => false,
    };
    if !fits {
        let with = |lead: &[i64]| -> Vec<i64> { lead.iter().chain(spatial).copied().collect() };
        bail!(
            "{what} has shape {shape:?}, which does not fit the input's shape {input:?} (spatial \
             shape {spatial:?}); give a mask of shape {:?}, {:?}, {:?}, or the input's shape",
            spatial,
            with(&[1]),
            with(&[1, 1]),
        );
    }
    // As [batch, channel, ...spatial]: a missing batch and channel count as 1.
    let full: Vec<i64> = match shape.len() - n {
        0 => [1, 1].iter().chain(spatial).copied().collect(),
        1 => [shape[0], 1].iter().chain(spatial).copied().collect(),
        _ => shape.clone(),
    };
    let inside = raw
        .f_to_kind(Kind::Float)?
        .f_gt(0.5)?
        .f_reshape(full.as_slice())?
        .f_any_dims([1i64].as_slice(), false)?;
    let mut per_example = vec![b];
    per_example.extend_from_slice(spatial);
    let inside = inside
        .f_expand(per_example.as_slice(), false)?
        .f_contiguous()?;
    let counts = inside
        .f_reshape([b, -1])?
        .f_sum_dim_intlist(1, false, Kind::Int64)?;
    let counts = Vec::<i64>::try_from(&counts.to_device(Device::Cpu))?;
    if let Some(i) = counts.iter().position(|&k| k == 0) {
        let which = if full[0] == 1 {
            String::new()
        } else {
            format!(" for example {i}")
        };
        bail!(
            "{what} is empty{which}: none of its values is above 0.5, so there is no region to \
             localise; give a mask that is 1 inside the region and 0 outside"
        );
    }
    Ok(inside)
}
