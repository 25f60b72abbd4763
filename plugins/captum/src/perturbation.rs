//! The engine shared by Captum's perturbation methods (Occlusion, FeatureAblation,
//! FeaturePermutation, ShapleyValueSampling): perturbed copies of the input batch evaluated a
//! group at a time, score changes credited to the elements each perturbation covered, and the
//! `feature_mask` that says which elements form one feature.
//!
//! A method describes its perturbations as a count and a function from an index to a
//! [`Perturbed`] batch; [`ablate`] runs Captum's FeatureAblation loop over them. Shapley value
//! sampling chains its perturbations, so it uses the lower-level [`evaluate_copies`] and
//! [`credit`] directly.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{Context, FeatureMaskSpec, Pass};
use tch::{Device, Kind, Tensor};

/// One perturbed copy of the whole input batch.
pub struct Perturbed {
    /// The perturbed batch, shaped like the inputs.
    pub input: Tensor,
    /// Bool, true on the elements the perturbation covers; `[1 or B, ...]`, broadcasting to
    /// the inputs.
    pub mask: Tensor,
}

/// How the credits of perturbations that cover the same element combine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Weighting {
    /// Add them up (FeatureAblation and FeaturePermutation, whose features do not overlap).
    Sum,
    /// Divide each element's sum by the number of perturbations covering it (Occlusion, whose
    /// windows overlap).
    MeanOverCoverage,
}

/// How many perturbed copies of the batch to evaluate in one forward pass: the explicit
/// `perturbations_per_eval`, else as many as the memory budget allows (which the host caps on
/// CPU, where batching buys little). Captum defaults to 1; the map is the same either way,
/// only the number of forward passes changes.
pub fn per_eval(ctx: &Context<'_>, explicit: Option<usize>, inputs: &Tensor) -> Result<usize> {
    if let Some(n) = explicit {
        ensure!(
            n >= 1,
            "perturbations_per_eval must be at least 1 (it is {n})"
        );
        return Ok(n);
    }
    Ok(ctx.copies_per_pass(inputs, Pass::Forward))
}

/// How [`ablate`] evaluates perturbed copies.
pub struct Plan {
    /// Copies per forward pass (at least 1, see [`per_eval`]).
    pub per_eval: usize,
    pub weighting: Weighting,
    /// Whether to ask the host to evaluate copies incrementally from the unperturbed input
    /// (exact; see [`Context::evaluate_near`]). Only for one-example batches: the host records
    /// one base.
    pub incremental: bool,
}

/// Captum's FeatureAblation loop: `sum over p of (f(x) - f(x perturbed by p)) * mask_p`, per
/// example, with `plan.per_eval` perturbations evaluated in one forward pass.
pub fn ablate(
    ctx: &Context<'_>,
    inputs: &Tensor,
    target: i64,
    count: usize,
    plan: Plan,
    perturb: impl FnMut(usize) -> Result<Perturbed>,
) -> Result<Tensor> {
    let near = (plan.incremental && inputs.size().first() == Some(&1)).then_some(inputs);
    let evaluate = |copies: &[&Tensor]| evaluate_copies(ctx, target, copies, near);
    ablate_with(
        ctx,
        inputs,
        count,
        plan.per_eval,
        plan.weighting,
        evaluate,
        perturb,
    )
}

/// [`ablate`] with the copies scored by `evaluate` (target scores `[k, B]` of `k` copies),
/// for methods that perturb something other than the model's input (a layer's output).
pub fn ablate_with(
    ctx: &Context<'_>,
    inputs: &Tensor,
    count: usize,
    per_eval: usize,
    weighting: Weighting,
    mut evaluate: impl FnMut(&[&Tensor]) -> Result<Tensor>,
    mut perturb: impl FnMut(usize) -> Result<Perturbed>,
) -> Result<Tensor> {
    let original = evaluate(&[inputs])?.get(0).to_device(inputs.device());
    let mut total = Tensor::zeros(inputs.size(), (original.kind(), inputs.device()));
    let mut coverage = (weighting == Weighting::MeanOverCoverage).then(|| total.zeros_like());
    let evaluations = count.div_ceil(per_eval) + 1;
    ctx.progress(1, evaluations);
    for (group, start) in (0..count).step_by(per_eval).enumerate() {
        ctx.check_cancelled()?;
        let perturbed = (start..count.min(start + per_eval))
            .map(&mut perturb)
            .collect::<Result<Vec<_>>>()?;
        let copies: Vec<&Tensor> = perturbed.iter().map(|p| &p.input).collect();
        let diffs = original.unsqueeze(0) - evaluate(&copies)?;
        for (j, p) in perturbed.iter().enumerate() {
            credit(&mut total, &diffs.get(j as i64), &p.mask);
            if let Some(coverage) = coverage.as_mut() {
                *coverage += p.mask.to_kind(coverage.kind());
            }
        }
        ctx.progress(group + 2, evaluations);
    }
    Ok(match coverage {
        Some(coverage) => total / coverage,
        None => total,
    })
}

/// Target scores `[k, B]` of `k` perturbed copies of a `B`-example batch, from one forward pass
/// over the copies concatenated along the batch dimension (Captum's layout); incrementally from
/// `near`, the unperturbed input, when given.
pub fn evaluate_copies(
    ctx: &Context<'_>,
    target: i64,
    copies: &[&Tensor],
    near: Option<&Tensor>,
) -> Result<Tensor> {
    let k = copies.len() as i64;
    let batch = copies.first().map_or(0, |c| c.size()[0]);
    let all = Tensor::f_cat(copies, 0)?;
    let scores = match near {
        Some(base) => ctx.evaluate_near(base, &all, target)?,
        None => ctx.evaluate(&all, target)?,
    };
    ensure!(
        scores.numel() as i64 == k * batch,
        "the model returned {} scores for {} examples ({k} perturbed copies of {batch}); \
         perturbation methods need one score per example",
        scores.numel(),
        k * batch
    );
    Ok(scores.reshape([k, batch]).to_device(copies[0].device()))
}

/// `total += diff * mask`: each example's score change `diff` (`[B]`) credited to the elements
/// of `mask` (bool, broadcasting to `total`, `[B, ...]`).
pub fn credit(total: &mut Tensor, diff: &Tensor, mask: &Tensor) {
    let mut per_example = vec![1i64; total.dim()];
    per_example[0] = diff.size()[0];
    *total += diff.view(per_example.as_slice()) * mask.to_kind(total.kind());
}

/// Captum's `feature_mask`: integer labels over the input; the elements that share a label form
/// one feature, perturbed together.
pub struct FeatureMask {
    /// `[1 or B, ...]`, the input's shape after the batch dim.
    labels: Tensor,
    /// The distinct labels, ascending (the order Captum visits them in).
    features: Vec<i64>,
}

impl FeatureMask {
    /// The mask in a file, or the host's segmentation of the input (superpixels, supervoxels),
    /// or each element its own feature when there is none.
    pub fn new(ctx: &Context<'_>, spec: Option<&FeatureMaskSpec>, inputs: &Tensor) -> Result<Self> {
        match spec {
            Some(FeatureMaskSpec::Segmentation(s)) => {
                let labels = segment_labels(ctx, &s.segmentation.to_json(), inputs)?;
                Self::from_labels(labels)
            }
            Some(FeatureMaskSpec::File(path)) => {
                Self::over(ctx, "feature_mask", Some(path), inputs, "the input")
            }
            None => Self::over(ctx, "feature_mask", None, inputs, "the input"),
        }
    }

    fn from_labels(labels: Tensor) -> Result<Self> {
        let (unique, _) = labels.f_internal_unique(true, false)?;
        let features = Vec::<i64>::try_from(&unique.to_device(Device::Cpu))?;
        Ok(FeatureMask { labels, features })
    }

    /// [`FeatureMask::new`] for a mask over something other than the input, such as a
    /// layer's output: `param` names the parameter and `what` the tensor, for errors.
    pub fn over(
        ctx: &Context<'_>,
        param: &str,
        path: Option<&str>,
        inputs: &Tensor,
        what: &str,
    ) -> Result<Self> {
        let labels = match path {
            Some(path) => labels_from_file(ctx, param, path, inputs, what)?,
            None => one_feature_per_element(inputs),
        };
        Self::from_labels(labels)
    }

    pub fn features(&self) -> &[i64] {
        &self.features
    }

    /// The labels, `[1 or B, ...]` (the input's shape after the batch dimension).
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    /// Where `feature` lies: bool, `[1 or B, ...]`.
    pub fn select(&self, feature: i64) -> Tensor {
        self.labels.eq(feature)
    }
}

/// The host's segmentation of each example (`[B, ...spatial]`), shared by its channels:
/// `[B, C, ...spatial]` like the input.
fn segment_labels(ctx: &Context<'_>, spec: &serde_json::Value, inputs: &Tensor) -> Result<Tensor> {
    let labels = ctx
        .segment(inputs, spec)
        .map_err(|e| anyhow::anyhow!("`feature_mask`'s segmentation failed: {e:#}"))?;
    Ok(labels
        .unsqueeze(1)
        .f_expand(inputs.size(), false)?
        .contiguous()
        .to_device(inputs.device()))
}

fn one_feature_per_element(inputs: &Tensor) -> Tensor {
    let mut shape = inputs.size();
    shape[0] = 1;
    let per_example = shape.iter().product::<i64>();
    Tensor::arange(per_example, (Kind::Int64, inputs.device())).view(shape.as_slice())
}

/// The labels in `path`, padded with leading size-1 dims to the input's rank (Captum's
/// ShapleyValueSampling rule, which the ablation methods assume) and expanded over the non-batch
/// dims. The batch dim stays 1 (one mask for all examples) or B (a mask per example).
fn labels_from_file(
    ctx: &Context<'_>,
    param: &str,
    path: &str,
    inputs: &Tensor,
    over: &str,
) -> Result<Tensor> {
    let what = format!("`{param}` ({path})");
    let raw = ctx.load_tensor(path)?;
    let (shape, input) = (raw.size(), inputs.size());
    let fits = shape.len() <= input.len()
        && shape
            .iter()
            .rev()
            .zip(input.iter().rev())
            .all(|(&m, &i)| m == 1 || m == i);
    ensure!(
        fits,
        "{what} has shape {shape:?}, which does not broadcast to the shape of {over}, \
         {input:?}: counted from the last, each of its dimensions must be 1 or equal that \
         shape's (a leading dimension of 1 shares the mask across the batch); give a mask of \
         that shape, or of that shape without the batch dimension"
    );
    let labels = integer_labels(&raw, &what)?;
    let mut padded = vec![1i64; input.len() - shape.len()];
    padded.extend(&shape);
    let mut full = input.clone();
    full[0] = padded[0];
    Ok(labels
        .reshape(padded.as_slice())
        .expand(full.as_slice(), false)
        .contiguous()
        .to_device(inputs.device()))
}

fn integer_labels(raw: &Tensor, what: &str) -> Result<Tensor> {
    if raw.is_floating_point() {
        let integral = raw
            .f_eq_tensor(&raw.f_round()?)?
            .f_logical_and(&raw.f_isfinite()?)?
            .f_all()?;
        ensure!(
            bool::try_from(&integral)?,
            "{what} must hold integer feature labels (0, 1, 2, ...), but some of its values are \
             fractional or not finite"
        );
    }
    Ok(raw.to_kind(Kind::Int64))
}
