//! Infidelity (Yeh et al., 2019), as Captum's `captum.metrics.infidelity`: how badly the map
//! predicts the model's response to random perturbations of the input,
//! `E_I[(I · map - (f(x) - f(x - I)))²]`, estimated by Monte Carlo per example.
//!
//! Captum takes the perturbation as a function returning `(perturbations, perturbed_inputs)`;
//! here it is a choice (`perturbation`), drawn from the job's seed. With `normalize`, the map
//! is first scaled by the best factor `beta` (Captum's normalisation), so that the score does
//! not change when the map is multiplied by a constant.

use anyhow::{bail, ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodMeta, Pass, TensorOrScalar,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::explained::{meta, samples_per_batch, Explained};

/// Captum's `infidelity` arguments (the model, inputs, target and map come from the job).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The attribution method whose map is scored.
    pub explained: Explained,
    /// How the input is perturbed (Captum's `perturb_func`).
    #[serde(default)]
    pub perturbation: Perturbation,
    /// Perturbations per example.
    #[serde(default = "default_n_perturb_samples")]
    #[schemars(range(min = 1))]
    pub n_perturb_samples: usize,
    /// Perturbed examples evaluated together (Captum's meaning: at least the input's batch
    /// size); default: as many as the memory budget allows.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_examples_per_batch: Option<usize>,
    /// Scale the map by the least-squares factor beta before scoring, so that the score does
    /// not depend on the map's scale.
    #[serde(default)]
    pub normalize: bool,
}

/// A perturbation `I` of the input `x`, evaluated at `x - I`, as Captum's `perturb_func`
/// returns `(I, x - I)`.
#[derive(Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Perturbation {
    #[serde(default)]
    pub kind: PerturbationKind,
    /// `gaussian`: standard deviation of the noise, in input units.
    #[serde(default = "default_stdevs")]
    #[schemars(range(min = 0.0))]
    pub stdevs: f64,
    /// `square_removal` (required there): side of the square, in elements; at most the
    /// smallest spatial side of the input.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub size: Option<i64>,
    /// `square_removal`: the value the square is set to, one number or a file that broadcasts
    /// to the input.
    #[serde(default)]
    pub baselines: TensorOrScalar,
}

/// How the perturbations are drawn.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PerturbationKind {
    /// `I ~ N(0, stdevs²)` independently per element: the noise of Captum's infidelity
    /// tutorial and of the paper, for local maps such as Saliency.
    #[default]
    Gaussian,
    /// A random square (a cube for volumes) of `size` elements per spatial side, over every
    /// channel, set to `baselines`: the paper's square removal, for global maps such as
    /// Integrated Gradients or InputXGradient. `I` is what Captum's
    /// `infidelity_perturb_func_decorator(multiply_by_inputs=True)` computes,
    /// `(x - x') / (x - baselines)`: 1 inside the square where `x` differs from the
    /// baseline, 0 elsewhere.
    SquareRemoval,
}

impl Default for Perturbation {
    fn default() -> Self {
        Perturbation {
            kind: PerturbationKind::Gaussian,
            stdevs: default_stdevs(),
            size: None,
            baselines: TensorOrScalar::default(),
        }
    }
}

/// By hand, since `TensorOrScalar` is not `Serialize`: only for the default in the schema.
impl Serialize for Perturbation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = match self.kind {
            PerturbationKind::Gaussian => {
                serde_json::json!({"kind": self.kind, "stdevs": self.stdevs})
            }
            PerturbationKind::SquareRemoval => {
                let baselines = match &self.baselines {
                    TensorOrScalar::Scalar(v) => serde_json::json!(v),
                    TensorOrScalar::File(path) => serde_json::json!(path),
                };
                serde_json::json!({"kind": self.kind, "size": self.size, "baselines": baselines})
            }
        };
        value.serialize(serializer)
    }
}

fn default_n_perturb_samples() -> usize {
    10
}

fn default_stdevs() -> f64 {
    0.003
}

/// Keeps this metric's random stream apart from the explained method's (a noise tunnel draws
/// from the same job seed): the same noise in both would correlate the map with the
/// perturbations and bias the score.
const STREAM: u64 = 0x696e_6669_6465_6c69; // "infideli"

pub struct Infidelity;

impl Method for Infidelity {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        meta(
            "captum.infidelity",
            "Infidelity",
            "Expected squared error between the map's prediction of the score change under \
             random perturbations (map · I) and the actual change f(x) - f(x - I), per example.",
            "Yeh et al., On the (In)fidelity and Sensitivity of Explanations, NeurIPS 2019, \
             arXiv:1901.09392",
        )
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        ensure!(
            p.n_perturb_samples >= 1,
            "n_perturb_samples must be at least 1"
        );
        let sampler = Sampler::new(ctx, &p.perturbation, inputs)?;
        let map = p.explained.map(ctx, inputs, target)?;
        let batch = inputs.size()[0];
        let flat_map = map.to_kind(Kind::Double).view([batch, 1, -1]);
        let scores = ctx
            .evaluate(inputs, target)?
            .to_kind(Kind::Double)
            .view([batch, 1]);
        let per_batch = samples_per_batch(
            ctx,
            inputs,
            p.n_perturb_samples,
            p.max_examples_per_batch,
            Pass::Forward,
        );
        let mut rng = StdRng::seed_from_u64(ctx.seed() ^ STREAM);
        // Sums over the samples of (map·I)², (map·I)(Δf), (Δf)² and (map·I - Δf)², per example.
        let zeros = || Tensor::zeros([batch], (Kind::Double, inputs.device()));
        let (mut aa, mut ad, mut dd, mut err) = (zeros(), zeros(), zeros(), zeros());
        let mut done = 0;
        while done < p.n_perturb_samples {
            ctx.check_cancelled()?;
            let k = per_batch.min(p.n_perturb_samples - done);
            let expanded = inputs.repeat_interleave_self_int(k as i64, 0, None);
            let (perturbation, perturbed) = sampler.sample(&expanded, &mut rng)?;
            let delta = &scores
                - ctx
                    .evaluate(&perturbed, target)?
                    .to_kind(Kind::Double)
                    .view([batch, k as i64]);
            let dot = (perturbation
                .to_kind(Kind::Double)
                .view([batch, k as i64, -1])
                * &flat_map)
                .sum_dim_intlist(2, false, Kind::Double);
            aa += dot.square().sum_dim_intlist(1, false, Kind::Double);
            ad += (&dot * &delta).sum_dim_intlist(1, false, Kind::Double);
            dd += delta.square().sum_dim_intlist(1, false, Kind::Double);
            err += (&dot - &delta)
                .square()
                .sum_dim_intlist(1, false, Kind::Double);
            done += k;
            ctx.progress(done, p.n_perturb_samples);
        }
        let total = if p.normalize {
            // Captum's safe_div: a zero denominator counts as 1.
            let beta = &ad / aa.where_scalarother(&aa.ne(0.0), 1.0);
            beta.square() * &aa - 2.0 * &beta * &ad + &dd
        } else {
            err
        };
        let infidelity = total / p.n_perturb_samples as f64;
        let values = Vec::<f64>::try_from(infidelity.to_device(tch::Device::Cpu))?;
        Ok(Attribution::new(infidelity.to_kind(Kind::Float))
            .with_extra("infidelity", serde_json::json!(values)))
    }
}

register_method!(Infidelity);

/// Draws perturbations of a batch of inputs.
enum Sampler {
    Gaussian(Normal<f32>),
    Square { size: i64, baselines: Tensor },
}

impl Sampler {
    fn new(ctx: &Context<'_>, p: &Perturbation, inputs: &Tensor) -> Result<Self> {
        Ok(match p.kind {
            PerturbationKind::Gaussian => {
                ensure!(
                    p.stdevs.is_finite() && p.stdevs >= 0.0,
                    "perturbation.stdevs must be a finite number >= 0, got {}",
                    p.stdevs
                );
                ensure!(
                    p.size.is_none() && p.baselines == TensorOrScalar::default(),
                    "perturbation.size and perturbation.baselines belong to the \
                     square_removal perturbation; the gaussian one takes only stdevs"
                );
                Sampler::Gaussian(Normal::new(0.0, p.stdevs as f32)?)
            }
            PerturbationKind::SquareRemoval => {
                ensure!(
                    p.stdevs == default_stdevs(),
                    "perturbation.stdevs belongs to the gaussian perturbation; square_removal \
                     takes size and baselines"
                );
                let spatial = &inputs.size()[2.min(inputs.dim())..];
                ensure!(
                    !spatial.is_empty(),
                    "square_removal needs spatial axes after the batch and channel axes; the \
                     input has shape {:?}",
                    inputs.size()
                );
                let smallest = *spatial.iter().min().expect("not empty");
                let Some(size) = p.size else {
                    bail!(
                        "the square_removal perturbation needs its size, the side of the \
                         square in elements (1 to {smallest} for this input), e.g. \
                         {{\"kind\": \"square_removal\", \"size\": {}}}",
                        (smallest / 2).max(1)
                    );
                };
                ensure!(
                    (1..=smallest).contains(&size),
                    "perturbation.size must be between 1 and the smallest spatial side \
                     ({smallest}) of the input of shape {:?}, got {size}",
                    inputs.size()
                );
                let baselines = p.baselines.resolve(ctx, "perturbation.baselines", inputs)?;
                Sampler::Square { size, baselines }
            }
        })
    }

    /// `(I, x - I)` for each row of `expanded` (`[B * k, ...]`).
    fn sample(&self, expanded: &Tensor, rng: &mut StdRng) -> Result<(Tensor, Tensor)> {
        match self {
            Sampler::Gaussian(normal) => {
                let noise: Vec<f32> = (0..expanded.numel()).map(|_| normal.sample(rng)).collect();
                let noise = Tensor::from_slice(&noise)
                    .view(expanded.size().as_slice())
                    .to_device(expanded.device())
                    .to_kind(expanded.kind());
                let perturbed = expanded - &noise;
                Ok((noise, perturbed))
            }
            Sampler::Square { size, baselines } => {
                let shape = expanded.size();
                let mask = Tensor::zeros(shape.as_slice(), (Kind::Bool, expanded.device()));
                for row in 0..shape[0] {
                    let mut window = mask.get(row);
                    for (axis, &side) in shape[2..].iter().enumerate() {
                        let start = rng.random_range(0..=side - size);
                        window = window.narrow(axis as i64 + 1, start, *size);
                    }
                    let _ = window.fill_(1);
                }
                let copies = shape[0] / baselines.size()[0].max(1);
                let baselines = baselines.repeat_interleave_self_int(copies, 0, None);
                let perturbed = expanded.where_self(&mask.logical_not(), &baselines);
                // Captum's safe_div(x - x', x - baselines, default_denom=1).
                let denom = expanded - &baselines;
                let denom = denom.where_scalarother(&denom.ne(0.0), 1.0);
                let perturbation = (expanded - &perturbed) / denom;
                Ok((perturbation, perturbed))
            }
        }
    }
}
