//! Shapley value sampling (Castro et al., 2009; Strumbelj & Kononenko, 2010): features are added
//! one by one to the baseline in random orders, each credited with the change in the target
//! score it makes, averaged over the orders, as Captum's `ShapleyValueSampling`.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, FeatureMaskSpec, LogLevel, Method, MethodKind,
    MethodMeta, Needs, TensorOrScalar,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::perturbation::{credit, evaluate_copies, per_eval, FeatureMask};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The reference the features are added to: a number, or a file with a tensor that
    /// broadcasts to the input. Default 0.
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// A file of integer labels 0, 1, 2, ... grouping the input's elements into features that
    /// are added together. Its shape is the input's, or broadcasts to it (a batch dimension of
    /// 1, or none, shares it across examples). Default: every element is its own feature.
    /// Or `{"segmentation": {"algorithm": "slic", ...}}`: superpixels or supervoxels of the
    /// input the method explains (slic, felzenszwalb, quickshift with scikit-image's
    /// parameters; see `esegeta segment`).
    #[serde(default)]
    pub feature_mask: Option<FeatureMaskSpec>,
    /// Number of random feature orders averaged.
    #[serde(default = "default_n_samples")]
    #[schemars(range(min = 1))]
    pub n_samples: usize,
    /// Steps of one feature order evaluated together in one forward pass.
    /// Default: as many as the memory budget allows (Captum's is 1). The map equals the
    /// unbatched one up to float rounding, except through a segmentation wrapper whose
    /// dynamic mask is near-tied (an argmax gap around 1e-6): batched kernels can flip a few
    /// masked voxels there, so give 1, or a fixed mask (`--fixed-mask`, `mask_mode: fixed`),
    /// to reproduce Captum exactly.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub perturbations_per_eval: Option<usize>,
}

fn default_n_samples() -> usize {
    25
}

pub struct ShapleyValueSampling;

impl Method for ShapleyValueSampling {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.shapley_value_sampling",
            title: "Shapley Value Sampling",
            summary: "Each feature's mean change in the target score when added to the baseline, \
                      over random feature orders.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "Castro, Gomez & Tejada, Polynomial calculation of the Shapley value based \
                        on sampling, Computers & Operations Research 2009; Strumbelj & Kononenko, \
                        An Efficient Explanation of Individual Classifications using Game Theory, \
                        JMLR 2010",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        ensure!(
            p.n_samples >= 1,
            "n_samples must be at least 1 (it is {})",
            p.n_samples
        );
        let batch = per_eval(ctx, p.perturbations_per_eval, inputs)?;
        let features = FeatureMask::new(ctx, p.feature_mask.as_ref(), inputs)?;
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let mut order = playing_features(ctx, &features);
        let walk = Walk {
            ctx,
            inputs,
            baselines: &baselines,
            features: &features,
            target,
            per_eval: batch,
        };
        let start = ctx.evaluate(&baselines, target)?.to_device(inputs.device());
        let mut total = Tensor::zeros(inputs.size(), (start.kind(), inputs.device()));
        let mut rng = StdRng::seed_from_u64(ctx.seed());
        let evaluations = p.n_samples * order.len().div_ceil(batch) + 1;
        let mut done = 1;
        ctx.progress(done, evaluations);
        for _ in 0..p.n_samples {
            order.shuffle(&mut rng);
            done = walk.add_in_order(&order, &start, &mut total, done, evaluations)?;
        }
        Ok(Attribution::new(total / p.n_samples as f64))
    }
}

register_method!(ShapleyValueSampling);

/// The labels that take part: Captum permutes `0..=max label`, so negative labels are never
/// added and their elements stay at the baseline. Labels missing from the mask are left out
/// too; Captum evaluates them to no effect.
pub(crate) fn playing_features(ctx: &Context<'_>, features: &FeatureMask) -> Vec<i64> {
    let playing: Vec<i64> = features
        .features()
        .iter()
        .copied()
        .filter(|&f| f >= 0)
        .collect();
    if playing.len() < features.features().len() {
        ctx.log(
            LogLevel::Warn,
            "feature_mask has negative labels; as in Captum, their elements are never added and \
             get zero attribution",
        );
    }
    playing
}

/// One walk from the baseline to the input, adding features in a given order.
struct Walk<'a, 'h> {
    ctx: &'a Context<'h>,
    inputs: &'a Tensor,
    baselines: &'a Tensor,
    features: &'a FeatureMask,
    target: i64,
    per_eval: usize,
}

impl Walk<'_, '_> {
    /// Credits each feature of `order` with the score change its addition makes, starting from
    /// the baseline's scores `start`. Returns the evaluations done so far.
    fn add_in_order(
        &self,
        order: &[i64],
        start: &Tensor,
        total: &mut Tensor,
        mut done: usize,
        evaluations: usize,
    ) -> Result<usize> {
        let mut current = self.baselines.shallow_clone();
        let mut previous = start.shallow_clone();
        for group in order.chunks(self.per_eval) {
            self.ctx.check_cancelled()?;
            let mut steps = Vec::with_capacity(group.len());
            let mut masks = Vec::with_capacity(group.len());
            for &feature in group {
                let mask = self.features.select(feature);
                current = self.inputs.where_self(&mask, &current);
                steps.push(current.shallow_clone());
                masks.push(mask);
            }
            let scores = evaluate_copies(
                self.ctx,
                self.target,
                &steps.iter().collect::<Vec<_>>(),
                None,
            )?;
            for (j, mask) in masks.iter().enumerate() {
                let score = scores.get(j as i64);
                credit(total, &(&score - &previous), mask);
                previous = score;
            }
            done += 1;
            self.ctx.progress(done, evaluations);
        }
        Ok(done)
    }
}
