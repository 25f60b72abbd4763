//! Layer Integrated Gradients as Captum's `LayerIntegratedGradients`: integrated gradients in
//! a layer's output space. The layer's output is replaced by points on the straight path from
//! its value at the baseline to its value at the input (the model's input stays the input, so
//! paths that bypass the layer, such as skip connections, see the input), and the gradients
//! at those points are integrated with the chosen quadrature rule.

use anyhow::Result;
use esegeta_plugin_api::{
    accumulation, register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
    Tap, TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tch::{Kind, Tensor};

use crate::integrated_gradients::{
    convergence_delta, default_n_steps, quadrature, steps_per_eval, Rule,
};
use crate::layer_params::{capture, layer_value};
use crate::layer_path::{by_point, per_point, repeat_copies};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it).
    pub layer: String,
    /// The input whose layer output starts the path: a number for every element, or a tensor
    /// file that broadcasts to the input (default 0).
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// Number of points on the path (Riemann rules need at least 2).
    #[serde(default = "default_n_steps")]
    #[schemars(range(min = 1))]
    pub n_steps: usize,
    /// The quadrature rule.
    #[serde(default)]
    pub method: Rule,
    /// Path points evaluated together (times the batch size); default: as many as the memory
    /// budget allows.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub internal_batch_size: Option<usize>,
    /// Multiply the integrated gradient by the layer's output minus its baseline output
    /// (Captum's default); `false` gives the integrated gradient alone.
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
    /// Attribute to the layer's input (the value its first node reads) instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
}

pub struct LayerIntegratedGradients;

impl Method for LayerIntegratedGradients {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.layer_integrated_gradients",
            title: "Layer Integrated Gradients",
            summary: "Integrated gradients over a layer's output, from its value at a baseline \
                      to its value at the input.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017",
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
        let (alphas, step_sizes) = quadrature(p.method, p.n_steps)?;
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let at_input = layer_value(ctx, inputs, tap)?;
        let at_baseline = layer_value(ctx, &baselines, tap)?;
        let path = LayerPath {
            inputs,
            start: &at_baseline,
            end: &at_input,
            tap,
            target,
        };
        let per_eval = steps_per_eval(ctx, inputs, p.internal_batch_size);
        let integral = path.integrate(ctx, &alphas, &step_sizes, per_eval)?;
        let map = if p.multiply_by_inputs {
            integral * (&at_input - &at_baseline)
        } else {
            integral
        };
        let delta = convergence_delta(ctx, &map, inputs, &baselines, target)?;
        Ok(Attribution::new(map).with_extra("convergence_delta", json!(delta)))
    }
}

register_method!(LayerIntegratedGradients);

/// The straight path between two values of a layer's output, for one batch of inputs.
struct LayerPath<'a> {
    inputs: &'a Tensor,
    start: &'a Tensor,
    end: &'a Tensor,
    tap: Tap<'a>,
    target: i64,
}

impl LayerPath<'_> {
    /// `sum_k step_k * grad(start + alpha_k (end - start))`, `per_eval` points per pass.
    fn integrate(
        &self,
        ctx: &Context<'_>,
        alphas: &[f64],
        step_sizes: &[f32],
        per_eval: usize,
    ) -> Result<Tensor> {
        let diff = self.end - self.start;
        let mut total = self.end.zeros_like();
        let mut done = 0;
        for (points, steps) in alphas.chunks(per_eval).zip(step_sizes.chunks(per_eval)) {
            ctx.check_cancelled()?;
            let scaled: Vec<Tensor> = points.iter().map(|&a| self.start + &diff * a).collect();
            let k = points.len() as i64;
            let grads = by_point(&self.gradient(ctx, &Tensor::cat(&scaled, 0), k)?, k);
            let weights = per_point(steps, grads.dim(), &grads);
            total += (&grads * weights).sum_dim_intlist(0, false, accumulation(grads.kind()));
            done += points.len();
            ctx.progress(done, alphas.len());
        }
        Ok(total)
    }

    /// Gradient of the target score with respect to the layer's output, replaced by `values`
    /// (`k` path points of the batch, one after the other).
    fn gradient(&self, ctx: &Context<'_>, values: &Tensor, k: i64) -> Result<Tensor> {
        let values = values.detach().set_requires_grad(true);
        let inputs = repeat_copies(self.inputs, k);
        let replace = Tap::replace(self.tap.layer, &values).at_input(self.tap.at_input);
        let (scores, _) = ctx.target_scores_taps(&inputs, self.target, &[replace])?;
        let grads = Tensor::f_run_backward(&[scores.sum(Kind::Float)], &[&values], false, false)?;
        Ok(grads.into_iter().next().expect("one gradient"))
    }
}
