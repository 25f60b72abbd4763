//! KernelShap (Lundberg & Lee, 2017): Shapley values estimated by a weighted linear regression
//! on sampled coalitions of features, as Captum's `KernelShap`. The coalitions' sizes are drawn
//! with the Shapley kernel's probabilities, so every sample weighs the same, except the full
//! and the empty coalition, which come first and weigh 1e6: the fit then all but meets
//! `f(x) - f(baseline) = sum of attributions`.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, FeatureMaskSpec, Method, MethodKind, MethodMeta, Needs,
    TensorOrScalar,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::lime_base::{attribute, Fit, Sampler};
use crate::linear_model::Surrogate;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// What a feature left out of a coalition takes: a number, or a file with a tensor that
    /// broadcasts to the input. Default 0.
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// A file of integer labels grouping the input's elements into the features that join or
    /// leave coalitions together. Its shape is the input's, or broadcasts to it (a batch
    /// dimension of 1, or none, shares it across examples). Default: every element is its own
    /// feature, which needs far more samples than there are elements: give a mask on images.
    /// Or `{"segmentation": {"algorithm": "slic", ...}}`: superpixels or supervoxels of the
    /// input the method explains (slic, felzenszwalb, quickshift with scikit-image's
    /// parameters; see `esegeta segment`).
    #[serde(default)]
    pub feature_mask: Option<FeatureMaskSpec>,
    /// Coalitions sampled per example, the full and the empty one included.
    #[serde(default = "default_n_samples")]
    #[schemars(range(min = 1))]
    pub n_samples: usize,
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

fn default_n_samples() -> usize {
    25
}

/// Weight of the full and the empty coalition (Captum's `inf_weight`): in theory infinite.
const ENDPOINT_WEIGHT: f64 = 1e6;

pub struct KernelShap;

impl Method for KernelShap {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.kernel_shap",
            title: "Kernel SHAP",
            summary: "Shapley values of feature groups, from a linear model fitted to the target \
                      score on coalitions sampled with the Shapley kernel.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "Lundberg & Lee, A Unified Approach to Interpreting Model Predictions, \
                        NeurIPS 2017; Captum documentation, KernelShap, \
                        https://captum.ai/api/kernel_shap.html",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let fit = Fit::new(
            ctx,
            inputs,
            &p.baselines,
            p.feature_mask.as_ref(),
            (p.n_samples, p.perturbations_per_eval),
            Surrogate::LinearRegression,
        )?;
        let map = attribute(ctx, inputs, target, &fit, &mut Coalitions::default())?;
        Ok(Attribution::new(map))
    }
}

register_method!(KernelShap);

/// Captum's sampling: per example, the full coalition, the empty one, then coalitions whose
/// size k (1 to M - 1 of M features) has probability proportional to `(M - 1) / (k (M - k))`,
/// their members uniform among the subsets of that size.
#[derive(Default)]
struct Coalitions {
    /// Samples drawn for the current example.
    drawn: usize,
    /// Cumulative probabilities of the sizes 1..M-1, for the current M.
    sizes: Vec<f64>,
}

impl Coalitions {
    fn size(&mut self, features: usize, rng: &mut StdRng) -> usize {
        if self.sizes.len() != features - 1 {
            let p: Vec<f64> = (1..features)
                .map(|k| 1.0 / (k * (features - k)) as f64)
                .collect();
            let total: f64 = p.iter().sum();
            self.sizes = p
                .iter()
                .scan(0.0, |acc, q| {
                    *acc += q / total;
                    Some(*acc)
                })
                .collect();
        }
        let u: f64 = rng.random();
        1 + self
            .sizes
            .iter()
            .position(|&c| u < c)
            .unwrap_or(features - 2)
    }
}

impl Sampler for Coalitions {
    fn draw(&mut self, features: usize, rng: &mut StdRng) -> Vec<bool> {
        self.drawn += 1;
        match self.drawn {
            1 => return vec![true; features],
            2 => return vec![false; features],
            _ => {}
        }
        let mut sample = vec![false; features];
        let k = self.size(features, rng);
        let mut order: Vec<usize> = (0..features).collect();
        order.shuffle(rng);
        for &j in &order[..k] {
            sample[j] = true;
        }
        sample
    }

    fn weight(&self, sample: &[bool], _: &Tensor) -> Result<f64> {
        let kept = sample.iter().filter(|&&k| k).count();
        Ok(if kept == 0 || kept == sample.len() {
            ENDPOINT_WEIGHT
        } else {
            1.0
        })
    }

    fn next_example(&mut self, _: &Tensor) {
        self.drawn = 0;
    }

    fn check(&self, features: usize) -> Result<()> {
        ensure!(
            features >= 2,
            "KernelShap needs at least 2 features, but the feature mask has {features}: with one, \
             every coalition is full or empty; give a feature_mask with more groups"
        );
        Ok(())
    }
}
