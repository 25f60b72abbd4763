//! Lime (Ribeiro, Singh & Guestrin, 2016) as Captum's `Lime` with its defaults: random halves
//! of the features kept (each with probability 1/2), each sample weighted by an exponential
//! kernel of its distance to the input, and a weighted Lasso fitted to the target scores.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, FeatureMaskSpec, Method, MethodKind, MethodMeta, Needs,
    TensorOrScalar,
};
use rand::rngs::StdRng;
use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::lime_base::{attribute, Fit, Sampler};
use crate::linear_model::Surrogate;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// What a feature left out of a sample takes: a number, or a file with a tensor that
    /// broadcasts to the input. Default 0.
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// A file of integer labels grouping the input's elements into the interpretable features
    /// (superpixels, regions). Its shape is the input's, or broadcasts to it (a batch dimension
    /// of 1, or none, shares it across examples). Default: every element is its own feature,
    /// which needs far more samples than there are elements: give a mask on images.
    /// Or `{"segmentation": {"algorithm": "slic", ...}}`: superpixels or supervoxels of the
    /// input the method explains (slic, felzenszwalb, quickshift with scikit-image's
    /// parameters; see `esegeta segment`).
    #[serde(default)]
    pub feature_mask: Option<FeatureMaskSpec>,
    /// Samples per example.
    #[serde(default = "default_n_samples")]
    #[schemars(range(min = 1))]
    pub n_samples: usize,
    /// Samples evaluated together in one forward pass.
    /// Default: as many as the memory budget allows (Captum's is 1). The map equals the
    /// unbatched one up to float rounding, except through a segmentation wrapper whose
    /// dynamic mask is near-tied (an argmax gap around 1e-6): batched kernels can flip a few
    /// masked voxels there, so give 1, or a fixed mask (`--fixed-mask`, `mask_mode: fixed`),
    /// to reproduce Captum exactly.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub perturbations_per_eval: Option<usize>,
    /// The Lasso's L1 penalty (Captum's `SkLearnLasso(alpha=0.01)`); 0 fits ordinary least
    /// squares.
    #[serde(default = "default_alpha")]
    #[schemars(range(min = 0.0))]
    pub alpha: f64,
    /// How a sample's distance to the input is measured, over all elements flattened:
    /// `cosine` (1 - cosine similarity) or `euclidean`.
    #[serde(default)]
    pub distance_mode: DistanceMode,
    /// Width of the exponential kernel: a sample at distance d weighs
    /// `exp(-d^2 / (2 kernel_width^2))`.
    #[serde(default = "default_kernel_width")]
    pub kernel_width: f64,
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Default, Debug)]
#[serde(rename_all = "snake_case")]
pub enum DistanceMode {
    #[default]
    Cosine,
    Euclidean,
}

fn default_n_samples() -> usize {
    25
}

fn default_alpha() -> f64 {
    0.01
}

fn default_kernel_width() -> f64 {
    1.0
}

pub struct Lime;

impl Method for Lime {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.lime",
            title: "LIME",
            summary: "Coefficients of a sparse linear model fitted to the target score on random \
                      subsets of feature groups, weighted by their closeness to the input.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "Ribeiro, Singh & Guestrin, \"Why Should I Trust You?\": Explaining the \
                        Predictions of Any Classifier, KDD 2016; Captum documentation, Lime, \
                        https://captum.ai/api/lime.html",
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
            p.alpha >= 0.0 && p.alpha.is_finite(),
            "alpha must be a finite number of at least 0 (it is {})",
            p.alpha
        );
        ensure!(
            p.kernel_width > 0.0 && p.kernel_width.is_finite(),
            "kernel_width must be a finite number above 0 (it is {})",
            p.kernel_width
        );
        let surrogate = match p.alpha {
            0.0 => Surrogate::LinearRegression,
            alpha => Surrogate::Lasso { alpha },
        };
        let fit = Fit::new(
            ctx,
            inputs,
            &p.baselines,
            p.feature_mask.as_ref(),
            (p.n_samples, p.perturbations_per_eval),
            surrogate,
        )?;
        let mut kernel = ExponentialKernel::new(p.distance_mode, p.kernel_width);
        let map = attribute(ctx, inputs, target, &fit, &mut kernel)?;
        Ok(Attribution::new(map))
    }
}

register_method!(Lime);

/// Captum's default sampling (`default_perturb_func`) and similarity
/// (`get_exp_kernel_similarity_function`).
struct ExponentialKernel {
    distance: DistanceMode,
    width: f64,
    /// The current example, flattened, in float64, and its norm.
    original: Tensor,
    norm: Tensor,
}

impl ExponentialKernel {
    fn new(distance: DistanceMode, width: f64) -> Self {
        ExponentialKernel {
            distance,
            width,
            original: Tensor::new(),
            norm: Tensor::new(),
        }
    }
}

impl Sampler for ExponentialKernel {
    fn draw(&mut self, features: usize, rng: &mut StdRng) -> Vec<bool> {
        (0..features).map(|_| rng.random_bool(0.5)).collect()
    }

    fn next_example(&mut self, example: &Tensor) {
        self.original = example.to_kind(Kind::Double).view([-1]);
        // As torch's CosineSimilarity: each norm clamped at 1e-8.
        self.norm = self.original.norm().clamp_min(1e-8);
    }

    fn weight(&self, _: &[bool], perturbed: &Tensor) -> Result<f64> {
        let b = perturbed.to_kind(Kind::Double).view([-1]);
        let d = match self.distance {
            DistanceMode::Cosine => {
                let norms = &self.norm * b.norm().clamp_min(1e-8);
                1.0 - f64::try_from(self.original.dot(&b) / norms)?
            }
            DistanceMode::Euclidean => f64::try_from((&self.original - &b).norm())?,
        };
        Ok((-(d * d) / (2.0 * self.width * self.width)).exp())
    }
}
