//! Integrated Gradients (Sundararajan et al., 2017): the path integral of the gradient from a
//! baseline to the input, times the input's difference from the baseline, by Captum's
//! quadrature rules (Gauss-Legendre by default, or four Riemann sums).

use anyhow::{bail, Result};
use esegeta_plugin_api::{
    accumulation, register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
    Pass, TensorOrScalar,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{Kind, Tensor};

use crate::noise_tunnel::{with_noise_tunnel, NoiseTunnel};

/// Captum's approximation methods for the path integral.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    #[default]
    Gausslegendre,
    RiemannLeft,
    RiemannRight,
    RiemannMiddle,
    RiemannTrapezoid,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The starting point of the path: a number for every element, or a tensor file that
    /// broadcasts to the input (default 0).
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
    /// Average the attribution over noisy copies of the input (SmoothGrad and friends).
    #[serde(default)]
    pub noise_tunnel: Option<NoiseTunnel>,
}

pub(crate) fn default_n_steps() -> usize {
    50
}

pub struct IntegratedGradients;

impl Method for IntegratedGradients {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.integrated_gradients",
            title: "Integrated Gradients",
            summary: "Gradients integrated along the straight path from a baseline to the input, times (input - baseline).",
            kind: MethodKind::Attribution,
            needs: Needs { gradients: true, ..Needs::default() },
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
        let path = Path::new(p.method, p.n_steps, p.internal_batch_size)?;
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let gradient = |points: &Tensor| ctx.gradient(points, target);
        let map = with_noise_tunnel(ctx, inputs, p.noise_tunnel.as_ref(), |x| {
            let baselines = expand_batch(&baselines, x.size()[0]);
            path.attribute(ctx, x, &baselines, true, &gradient)
        })?;
        let mut out = Attribution::new(map);
        if p.noise_tunnel.is_none() {
            let delta = convergence_delta(ctx, &out.map, inputs, &baselines, target)?;
            out = out.with_extra("convergence_delta", json!(delta));
        }
        Ok(out)
    }
}

register_method!(IntegratedGradients);

/// The baselines (shaped like the unperturbed input) for a batch of `batch` examples, which
/// the noise tunnel makes a multiple of the input's.
pub(crate) fn expand_batch(baselines: &Tensor, batch: i64) -> Tensor {
    let have = baselines.size()[0];
    if have == batch {
        baselines.shallow_clone()
    } else {
        baselines.repeat_interleave_self_int(batch / have, 0, None)
    }
}

/// The straight path from the baselines to the inputs, by a quadrature rule.
pub(crate) struct Path {
    alphas: Vec<f64>,
    step_sizes: Vec<f32>,
    internal_batch_size: Option<usize>,
}

impl Path {
    pub fn new(rule: Rule, n_steps: usize, internal_batch_size: Option<usize>) -> Result<Self> {
        let (alphas, step_sizes) = quadrature(rule, n_steps)?;
        Ok(Path {
            alphas,
            step_sizes,
            internal_batch_size,
        })
    }

    /// `sum_k step_k * gradient(baseline + alpha_k (x - baseline))`, times `(x - baseline)`
    /// when `multiply_by_inputs`; `gradient` is that of the function explained (the target
    /// score, a neuron) at a batch of path points.
    pub fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        baselines: &Tensor,
        multiply_by_inputs: bool,
        gradient: &dyn Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let steps_per_eval = steps_per_eval(ctx, inputs, self.internal_batch_size);
        let diff = inputs - baselines;
        let mut total = inputs.zeros_like();
        let mut done = 0;
        for (points, steps) in self
            .alphas
            .chunks(steps_per_eval)
            .zip(self.step_sizes.chunks(steps_per_eval))
        {
            ctx.check_cancelled()?;
            let k = points.len() as i64;
            let shape: Vec<i64> = [k].iter().chain(&inputs.size()).copied().collect();
            let mut weight_shape = vec![1i64; shape.len()];
            weight_shape[0] = k;
            let per_step = |values: Tensor| {
                values
                    .to_device(inputs.device())
                    .view(weight_shape.as_slice())
            };
            // All k path points in one expression, step-major as Captum lays them out: one
            // allocation instead of k copies and their concatenation. The alphas go in as
            // float32, as the scalar `baselines + diff * alpha` computes them; in the input's
            // kind, since a float32 tensor would promote a bf16/fp16 path to float32 (and the
            // reduced-precision model would then refuse it).
            let alphas: Vec<f32> = points.iter().map(|&a| a as f32).collect();
            let alphas = per_step(Tensor::from_slice(&alphas)).to_kind(inputs.kind());
            let scaled = (baselines.unsqueeze(0) + diff.unsqueeze(0) * alphas).view(
                [-1].iter()
                    .chain(&inputs.size()[1..])
                    .copied()
                    .collect::<Vec<_>>()
                    .as_slice(),
            );
            let grads = gradient(&scaled)?;
            let weights = per_step(Tensor::from_slice(steps));
            total += (grads.view(shape.as_slice()) * weights).sum_dim_intlist(
                0,
                false,
                accumulation(grads.kind()),
            );
            done += points.len();
            ctx.progress(done, self.alphas.len());
        }
        Ok(if multiply_by_inputs {
            total * diff
        } else {
            total
        })
    }
}

/// How many path points to evaluate in one pass over a batch like `inputs`: Captum's
/// `internal_batch_size` (in examples, so divided by the batch), else what the memory budget
/// allows. At least 1.
pub(crate) fn steps_per_eval(
    ctx: &Context<'_>,
    inputs: &Tensor,
    internal_batch_size: Option<usize>,
) -> usize {
    let batch = inputs.size()[0].max(1) as usize;
    match internal_batch_size {
        Some(n) => n / batch,
        None => ctx.copies_per_pass(inputs, Pass::Gradient),
    }
    .max(1)
}

/// Per example: `sum(attribution) - (F(x)[target] - F(baseline)[target])`; the attribution may
/// be over the input or over a layer.
pub(crate) fn convergence_delta(
    ctx: &Context<'_>,
    map: &Tensor,
    inputs: &Tensor,
    baselines: &Tensor,
    target: i64,
) -> Result<Vec<f64>> {
    let gap = ctx.evaluate(inputs, target)? - ctx.evaluate(baselines, target)?;
    let total = map.flatten(1, -1).sum_dim_intlist(1, false, Kind::Double);
    Ok(Vec::<f64>::try_from(total - gap.to_kind(Kind::Double))?)
}

/// Captum's alphas (path points in [0, 1]) and step sizes (weights) for `n` steps.
pub fn quadrature(rule: Rule, n: usize) -> Result<(Vec<f64>, Vec<f32>)> {
    if n == 0 || (rule != Rule::Gausslegendre && n < 2) {
        bail!(
            "n_steps must be at least {} for {rule:?}, got {n}",
            if rule == Rule::Gausslegendre { 1 } else { 2 }
        );
    }
    if rule == Rule::Gausslegendre {
        let (nodes, weights) = gauss_legendre(n);
        let alphas = nodes.iter().map(|x| 0.5 * (1.0 + x)).collect();
        return Ok((alphas, weights.iter().map(|w| (0.5 * w) as f32).collect()));
    }
    let nf = n as f64;
    let (start, end) = match rule {
        Rule::RiemannLeft => (0.0, 1.0 - 1.0 / nf),
        Rule::RiemannRight => (1.0 / nf, 1.0),
        Rule::RiemannMiddle => (1.0 / (2.0 * nf), 1.0 - 1.0 / (2.0 * nf)),
        _ => (0.0, 1.0),
    };
    // Captum draws Riemann alphas from a float32 torch.linspace.
    let alphas = Vec::<f32>::try_from(Tensor::linspace(
        start,
        end,
        n as i64,
        (Kind::Float, tch::Device::Cpu),
    ))?;
    let mut steps = vec![(1.0 / nf) as f32; n];
    if rule == Rule::RiemannTrapezoid {
        steps[0] = (0.5 / nf) as f32;
        steps[n - 1] = (0.5 / nf) as f32;
    }
    Ok((alphas.into_iter().map(f64::from).collect(), steps))
}

/// Nodes (ascending, in [-1, 1]) and weights of the `n`-point Gauss-Legendre rule, by Newton's
/// method on the Legendre polynomial from the Chebyshev guesses.
fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 0.0;
        for _ in 0..100 {
            let (p, dp) = legendre(n, x);
            derivative = dp;
            let step = p / dp;
            x -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        let (_, dp) = legendre(n, x);
        derivative = if dp != 0.0 { dp } else { derivative };
        let w = 2.0 / ((1.0 - x * x) * derivative * derivative);
        nodes[i] = -x;
        nodes[n - 1 - i] = x;
        weights[i] = w;
        weights[n - 1 - i] = w;
    }
    (nodes, weights)
}

/// `P_n(x)` and `P_n'(x)` by the three-term recurrence.
fn legendre(n: usize, x: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let kf = k as f64;
        let p2 = ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf;
        p0 = p1;
        p1 = p2;
    }
    (p1, n as f64 * (x * p1 - p0) / (x * x - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_matches_numpy_leggauss() {
        // numpy.polynomial.legendre.leggauss(3)
        let (x, w) = gauss_legendre(3);
        let r = (3.0f64 / 5.0).sqrt();
        for (a, b) in x.iter().zip([-r, 0.0, r]) {
            assert!((a - b).abs() < 1e-15, "{x:?}");
        }
        for (a, b) in w.iter().zip([5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0]) {
            assert!((a - b).abs() < 1e-15, "{w:?}");
        }
        let (_, w50) = gauss_legendre(50);
        assert!((w50.iter().sum::<f64>() - 2.0).abs() < 1e-13);
    }

    #[test]
    fn riemann_rules_follow_captum() {
        let (a, s) = quadrature(Rule::RiemannTrapezoid, 5).unwrap();
        assert_eq!(a, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(s, vec![0.1, 0.2, 0.2, 0.2, 0.1]);
        assert!(quadrature(Rule::RiemannLeft, 1).is_err());
    }
}
