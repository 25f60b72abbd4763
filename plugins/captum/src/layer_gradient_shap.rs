//! Layer GradientSHAP as Captum's `LayerGradientShap`: the expected layer gradient at random
//! points between the input (plus Gaussian noise) and baselines drawn from a distribution,
//! times the layer's output at the noisy input minus its output at the baseline.
//!
//! Each of the `n_samples` draws per example picks a noisy copy `x + N(0, stdevs²)`, a
//! baseline uniformly from the distribution and `alpha ~ U(0, 1)`; the gradient is taken at
//! `alpha x + (1 - alpha) baseline`. Draws come from a generator seeded with the job's seed,
//! so maps agree with Captum's in distribution, not draw for draw.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Pass, Tap,
    TensorOrScalar,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::baselines::distribution_or_constant;
use crate::layer_params::{capture, layer_value};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it).
    pub layer: String,
    /// The baseline distribution: a tensor file `[N, ...]` of N baselines shaped like one
    /// example of the input, or one number for a single constant baseline.
    pub baselines: TensorOrScalar,
    /// Random draws per example.
    #[serde(default = "crate::gradient_shap::default_n_samples")]
    #[schemars(range(min = 1))]
    pub n_samples: usize,
    /// Standard deviation of the Gaussian noise added to the input, in input units.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub stdevs: f64,
    /// Multiply the gradient by the layer's output minus its baseline output (Captum's
    /// default); `false` gives the expected gradient alone.
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
    /// Attribute to the layer's input (the value its first node reads) instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
}

pub struct LayerGradientShap;

impl Method for LayerGradientShap {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.layer_gradient_shap",
            title: "Layer GradientSHAP",
            summary: "Expected layer gradients between noisy inputs and baselines drawn from a \
                      distribution, times the layer's output difference (SHAP values at a layer).",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Lundberg and Lee, A Unified Approach to Interpreting Model Predictions, \
                        NeurIPS 2017",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let tap = capture(&p.layer, p.attribute_to_layer_input);
        ensure!(p.n_samples >= 1, "n_samples must be at least 1");
        let distribution = distribution_or_constant(ctx, &p.baselines, inputs)?;
        let mut draws = Draws::new(ctx.seed(), p.n_samples, p.stdevs)?;
        let batch = inputs.size()[0] as usize;
        let rows = batch * p.n_samples;
        let per_eval = rows.min(ctx.examples_per_pass(inputs, Pass::Gradient));
        let mut total: Option<Tensor> = None;
        for start in (0..rows).step_by(per_eval) {
            ctx.check_cancelled()?;
            let sample = draws.next(inputs, &distribution, start..rows.min(start + per_eval));
            let attr = sample.attribute(ctx, target, tap, p.multiply_by_inputs)?;
            let sum = match total.take() {
                Some(t) => t,
                None => {
                    let mut shape = attr.size();
                    shape[0] = batch as i64;
                    Tensor::zeros(shape.as_slice(), (attr.kind(), attr.device()))
                }
            };
            total = Some(sum.index_add(0, &sample.example, &attr));
            ctx.progress(rows.min(start + per_eval), rows);
        }
        let mean = total.expect("at least one draw") / p.n_samples as f64;
        Ok(Attribution::new(mean.detach()))
    }
}

register_method!(LayerGradientShap);

/// The random draws, in Captum's order: each example's `n_samples` draws in a row.
struct Draws {
    rng: StdRng,
    n_samples: usize,
    noise: Normal<f32>,
}

impl Draws {
    fn new(seed: u64, n_samples: usize, stdevs: f64) -> Result<Self> {
        let noise = Normal::new(0.0f32, stdevs as f32)
            .map_err(|_| anyhow::anyhow!("stdevs must be a finite number >= 0, got {stdevs}"))?;
        Ok(Draws {
            rng: StdRng::seed_from_u64(seed),
            n_samples,
            noise,
        })
    }

    /// Draw rows `rows` (row r belongs to example r / n_samples).
    fn next(
        &mut self,
        inputs: &Tensor,
        distribution: &Tensor,
        rows: std::ops::Range<usize>,
    ) -> Sample {
        let n = rows.len();
        let examples: Vec<i64> = rows.clone().map(|r| (r / self.n_samples) as i64).collect();
        let count = distribution.size()[0] as usize;
        let picks: Vec<i64> = (0..n)
            .map(|_| self.rng.random_range(0..count) as i64)
            .collect();
        let alphas: Vec<f32> = (0..n).map(|_| self.rng.random::<f32>()).collect();
        let device = inputs.device();
        let example = Tensor::from_slice(&examples).to_device(device);
        let x = inputs.index_select(0, &example);
        let noise: Vec<f32> = (0..x.numel())
            .map(|_| self.noise.sample(&mut self.rng))
            .collect();
        let noise = Tensor::from_slice(&noise)
            .view(x.size().as_slice())
            .to_device(device)
            .to_kind(x.kind());
        let baseline = distribution.index_select(0, &Tensor::from_slice(&picks).to_device(device));
        let mut alpha_shape = vec![1i64; x.dim()];
        alpha_shape[0] = n as i64;
        let alpha = Tensor::from_slice(&alphas)
            .to_device(device)
            .to_kind(x.kind())
            .view(alpha_shape.as_slice());
        Sample {
            example,
            noisy: x + noise,
            baseline,
            alpha,
        }
    }
}

/// One chunk of draws.
struct Sample {
    /// The example each row belongs to, `[n]` (int64).
    example: Tensor,
    noisy: Tensor,
    baseline: Tensor,
    /// `[n, 1, ...]`.
    alpha: Tensor,
}

impl Sample {
    /// Per row: the gradient at the tapped layer value at the random point, times the
    /// difference of that value between the noisy input and the baseline when `multiply`.
    fn attribute(
        &self,
        ctx: &Context<'_>,
        target: i64,
        tap: Tap<'_>,
        multiply: bool,
    ) -> Result<Tensor> {
        let point = &self.alpha * &self.noisy + (1.0 - &self.alpha) * &self.baseline;
        let (grad, _) = ctx.tap_gradient(&point, target, tap)?;
        if !multiply {
            return Ok(grad);
        }
        let difference =
            layer_value(ctx, &self.noisy, tap)? - layer_value(ctx, &self.baseline, tap)?;
        Ok(grad * difference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_example_order_and_pick_from_the_distribution() {
        let inputs = Tensor::from_slice(&[1.0f32, 2.0]).view([2, 1]);
        let distribution = Tensor::from_slice(&[10.0f32, 20.0, 30.0]).view([3, 1]);
        let mut draws = Draws::new(7, 3, 0.0).unwrap();
        let s = draws.next(&inputs, &distribution, 0..6);
        assert_eq!(
            Vec::<i64>::try_from(&s.example).unwrap(),
            [0, 0, 0, 1, 1, 1]
        );
        // No noise: each row is its example.
        assert_eq!(
            Vec::<f32>::try_from(s.noisy.flatten(0, -1)).unwrap(),
            [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
        let b = Vec::<f32>::try_from(s.baseline.flatten(0, -1)).unwrap();
        assert!(b.iter().all(|v| [10.0, 20.0, 30.0].contains(v)), "{b:?}");
        let a = Vec::<f32>::try_from(s.alpha.flatten(0, -1)).unwrap();
        assert!(a.iter().all(|v| (0.0..1.0).contains(v)), "{a:?}");
    }
}
