//! Exact Shapley values of feature groups (Shapley, 1953), the values of Captum's
//! `ShapleyValues`. Captum averages each feature's marginal contribution over all n!
//! orders, n * n! model evaluations; the same average is a weighted sum over the 2^n
//! coalitions, so here each coalition is evaluated once:
//! `phi_i = sum over S not holding i of |S|! (n - |S| - 1)! / n! * (v(S + i) - v(S))`,
//! where `v(S)` is the target score of the input with the features of S kept and the others
//! at the baseline. Eight regions take 256 evaluations instead of Captum's 322,560.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, FeatureMaskSpec, Method, MethodKind, MethodMeta, Needs,
    TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::perturbation::{credit, evaluate_copies, per_eval, FeatureMask};
use crate::shapley_value_sampling::playing_features;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// What a feature outside a coalition takes: a number, or a file with a tensor that
    /// broadcasts to the input. Default 0.
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// A file of integer labels 0, 1, 2, ... grouping the input's elements into the features
    /// (regions, organs, patches), at most 20 of them: the method evaluates all 2^n
    /// coalitions. Its shape is the input's, or broadcasts to it (a batch dimension of 1, or
    /// none, shares it across examples). Required unless the input has at most 20 elements.
    /// Or `{"segmentation": {"algorithm": "slic", ...}}`: superpixels or supervoxels of the
    /// input the method explains (slic, felzenszwalb, quickshift with scikit-image's
    /// parameters; see `esegeta segment`).
    #[serde(default)]
    pub feature_mask: Option<FeatureMaskSpec>,
    /// Coalitions evaluated together in one forward pass.
    /// Default: as many as the memory budget allows (Captum's is 1). The map equals the
    /// unbatched one up to float rounding, except through a segmentation wrapper whose
    /// dynamic mask is near-tied (an argmax gap around 1e-6): batched kernels can flip a few
    /// masked voxels there, so give 1, or a fixed mask (`--fixed-mask`, `mask_mode: fixed`),
    /// to reproduce Captum exactly.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub perturbations_per_eval: Option<usize>,
}

/// 2^20 evaluations: beyond, shapley_value_sampling or kernel_shap estimate the values.
const MAX_FEATURES: usize = 20;

pub struct ShapleyValues;

impl Method for ShapleyValues {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.shapley_values",
            title: "Shapley Values",
            summary: "Each feature group's exact Shapley value for the target score, from every \
                      coalition of the groups kept at the input and the rest at the baseline.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "Shapley, A Value for n-Person Games, 1953; Captum documentation, \
                        ShapleyValues, https://captum.ai/api/shapley_value_sampling.html",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let features = FeatureMask::new(ctx, p.feature_mask.as_ref(), inputs)?;
        let players = playing_features(ctx, &features);
        ensure!(
            players.len() <= MAX_FEATURES,
            "exact Shapley values evaluate all 2^n coalitions of the n features, and the \
             feature mask has {} features (at most {MAX_FEATURES}): group the input into fewer \
             regions with feature_mask, or estimate the values with captum.shapley_value_sampling \
             or captum.kernel_shap",
            players.len()
        );
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let coalitions = Coalitions {
            ctx,
            inputs,
            baselines: &baselines,
            masks: players.iter().map(|&f| features.select(f)).collect(),
        };
        let values = coalitions.values(target, per_eval(ctx, p.perturbations_per_eval, inputs)?)?;
        let mut map = Tensor::zeros(inputs.size(), (Kind::Float, inputs.device()));
        for (i, mask) in coalitions.masks.iter().enumerate() {
            let phi = shapley_value(&values, i).to_device(inputs.device());
            credit(&mut map, &phi, mask);
        }
        Ok(Attribution::new(map.to_kind(inputs.kind())))
    }
}

register_method!(ShapleyValues);

/// The inputs of every coalition of `masks`' features.
struct Coalitions<'a, 'h> {
    ctx: &'a Context<'h>,
    inputs: &'a Tensor,
    baselines: &'a Tensor,
    /// Per feature, where it lies (bool, broadcasting to the inputs).
    masks: Vec<Tensor>,
}

impl Coalitions<'_, '_> {
    /// The input with the features in `coalition` (bit i: feature i) kept.
    fn input(&self, coalition: usize) -> Tensor {
        let mut x = self.baselines.shallow_clone();
        for (i, mask) in self.masks.iter().enumerate() {
            if coalition >> i & 1 == 1 {
                x = self.inputs.where_self(mask, &x);
            }
        }
        x
    }

    /// `v`: the target scores `[2^n, B]` (float64, CPU) of every coalition, indexed by its
    /// bits, `per_eval` coalitions per forward pass.
    fn values(&self, target: i64, per_eval: usize) -> Result<Tensor> {
        let count = 1usize << self.masks.len();
        let passes = count.div_ceil(per_eval);
        let mut scores = Vec::with_capacity(passes);
        for (pass, start) in (0..count).step_by(per_eval).enumerate() {
            self.ctx.check_cancelled()?;
            let copies: Vec<Tensor> = (start..count.min(start + per_eval))
                .map(|c| self.input(c))
                .collect();
            let v = evaluate_copies(self.ctx, target, &copies.iter().collect::<Vec<_>>(), None)?;
            scores.push(v.to_kind(Kind::Double).to_device(Device::Cpu));
            self.ctx.progress(pass + 1, passes);
        }
        Ok(Tensor::f_cat(&scores, 0)?)
    }
}

/// Feature `i`'s Shapley value per example (`[B]`) from the coalitions' scores `values`.
fn shapley_value(values: &Tensor, i: usize) -> Tensor {
    let count = values.size()[0] as usize;
    let n = count.trailing_zeros() as usize;
    // weight[s] = s! (n - s - 1)! / n!, for coalitions of s features without i.
    let weight: Vec<f64> = (0..n)
        .map(|s| 1.0 / (n as f64 * binomial(n - 1, s)))
        .collect();
    let mut phi = values.get(0).zeros_like();
    for without in (0..count).filter(|c| c >> i & 1 == 0) {
        let with = without | 1 << i;
        let s = without.count_ones() as usize;
        phi += (values.get(with as i64) - values.get(without as i64)) * weight[s];
    }
    phi.to_kind(Kind::Float)
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, j| acc * (n - j) as f64 / (j + 1) as f64)
}
