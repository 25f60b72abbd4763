//! GradientShap (Lundberg and Lee, 2017), as Captum 0.9 computes it: for `n_samples` noisy
//! copies of each input (Gaussian noise of `stdevs`), a baseline drawn from the distribution
//! and a point drawn uniformly on the path from it to the noisy input; the attribution is
//! the mean of `(noisy input - baseline) * gradient at the point`.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, TensorOrScalar,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::baselines::distribution_or_constant;
use crate::noise_tunnel::{with_noise_tunnel, NoiseTunnel, NtType};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The baseline distribution: a tensor file `[N, ...]` of reference examples (or one
    /// example), or a number for every element.
    pub baselines: TensorOrScalar,
    /// Noisy copies (each with a random baseline and path point) per input.
    #[serde(default = "default_n_samples")]
    #[schemars(range(min = 1))]
    pub n_samples: usize,
    /// Standard deviation of the Gaussian noise added to the input (Captum's default: none).
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub stdevs: f64,
    /// Multiply the gradients by `(input - baseline)` (Captum's default).
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
}

pub(crate) fn default_n_samples() -> usize {
    5
}

pub struct GradientShap;

impl Method for GradientShap {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.gradient_shap",
            title: "GradientShap",
            summary: "Expected gradients times (input - baseline) over random baselines, path points and input noise: an approximation of SHAP values.",
            kind: MethodKind::Attribution,
            needs: Needs { gradients: true, ..Needs::default() },
            reference: "Lundberg and Lee, A Unified Approach to Interpreting Model Predictions, NeurIPS 2017",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let baselines = distribution_or_constant(ctx, &p.baselines, inputs)?;
        let sampling = Sampling {
            n_samples: p.n_samples,
            stdevs: p.stdevs,
            multiply_by_inputs: p.multiply_by_inputs,
        };
        let gradient = |points: &Tensor| ctx.gradient(points, target);
        let map = expected_gradients(ctx, inputs, &baselines, &sampling, &gradient)?;
        Ok(Attribution::new(map))
    }
}

/// How GradientShap samples: Captum's `n_samples`, `stdevs` and `multiply_by_inputs`.
pub(crate) struct Sampling {
    pub n_samples: usize,
    pub stdevs: f64,
    pub multiply_by_inputs: bool,
}

/// GradientShap of the function whose gradient at a batch of points `gradient` gives (the
/// target score; a neuron for NeuronGradientShap), with baselines drawn from `baselines`.
pub(crate) fn expected_gradients(
    ctx: &Context<'_>,
    inputs: &Tensor,
    baselines: &Tensor,
    p: &Sampling,
    gradient: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let tunnel = NoiseTunnel {
        nt_type: NtType::Smoothgrad,
        nt_samples: p.n_samples,
        nt_samples_batch_size: None,
        stdevs: p.stdevs,
    };
    // A stream apart from the noise's, so that both repeat with the job's seed.
    let mut rng = StdRng::seed_from_u64(ctx.seed() ^ 0x9e37_79b9_7f4a_7c15);
    with_noise_tunnel(ctx, inputs, Some(&tunnel), |noisy| {
        let drawn = draw_baselines(baselines, noisy.size()[0], &mut rng);
        let alphas = draw_alphas(noisy, &mut rng);
        let points = &drawn + &alphas * (noisy - &drawn);
        let grads = gradient(&points)?;
        Ok(if p.multiply_by_inputs {
            (noisy - &drawn) * grads
        } else {
            grads
        })
    })
}

register_method!(GradientShap);

/// `count` baselines drawn uniformly, with replacement, from the distribution.
fn draw_baselines(baselines: &Tensor, count: i64, rng: &mut StdRng) -> Tensor {
    let n = baselines.size()[0];
    let picks: Vec<i64> = (0..count).map(|_| rng.random_range(0..n)).collect();
    baselines.index_select(0, &Tensor::from_slice(&picks).to_device(baselines.device()))
}

/// One uniform path coefficient in [0, 1) per example, shaped to broadcast over it.
fn draw_alphas(like: &Tensor, rng: &mut StdRng) -> Tensor {
    let count = like.size()[0];
    let alphas: Vec<f32> = (0..count).map(|_| rng.random::<f32>()).collect();
    let mut shape = vec![1i64; like.dim()];
    shape[0] = count;
    Tensor::from_slice(&alphas)
        .view(shape.as_slice())
        .to_kind(like.kind())
        .to_device(like.device())
}
