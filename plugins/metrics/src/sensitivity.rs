//! Max-sensitivity (Yeh et al., 2019), as Captum's `captum.metrics.sensitivity_max`: how much
//! the map changes when the input moves a little,
//! `max over samples of ||map(x) - map(x + d)|| / ||map(x)||`, with `d` uniform in the
//! L-infinity ball of radius `perturb_radius`, per example.
//!
//! Each perturbed copy is explained again with the explained method. The maximum grows with
//! `n_perturb_samples`: compare scores computed with the same number of samples.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{register_method, Attribution, Context, Method, MethodMeta, Pass};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Uniform};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::explained::samples_per_batch;
use crate::explained::{meta, Explained};

/// Captum's `sensitivity_max` arguments with its default `perturb_func` (uniform noise).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The attribution method whose map is scored.
    pub explained: Explained,
    /// Half-width of the uniform noise added to every element, in input units (the radius of
    /// the L-infinity ball the perturbed inputs are drawn from).
    #[serde(default = "default_perturb_radius")]
    #[schemars(range(min = 0.0))]
    pub perturb_radius: f64,
    /// Perturbed copies per example; the score is the largest change among them.
    #[serde(default = "default_n_perturb_samples")]
    #[schemars(range(min = 1))]
    pub n_perturb_samples: usize,
    /// The norm of the map and of its change, over all of an example's elements: `fro` (the
    /// 2-norm of the flattened map, Captum's default), `inf`, `-inf`, or a number p for
    /// `(sum |v|^p)^(1/p)` (0 counts the non-zero elements), as `torch.norm` with `dim=1`.
    /// Captum's `nuc` needs a matrix and fails there; it is not offered.
    #[serde(default)]
    pub norm_ord: NormOrd,
    /// Perturbed examples explained together (Captum's meaning: at least the input's batch
    /// size); default: as many as the memory budget allows.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_examples_per_batch: Option<usize>,
}

/// Captum's `norm_ord`: a name or the order p of a vector norm.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(untagged)]
pub enum NormOrd {
    Named(NormName),
    /// The order p of `(sum |v|^p)^(1/p)`.
    Order(f64),
}

/// The norms with a name (JSON has no infinity).
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormName {
    /// The 2-norm of the flattened map (Frobenius).
    #[serde(rename = "fro")]
    Fro,
    /// The largest absolute value.
    #[serde(rename = "inf")]
    Inf,
    /// The smallest absolute value.
    #[serde(rename = "-inf")]
    NegInf,
}

impl Default for NormOrd {
    fn default() -> Self {
        NormOrd::Named(NormName::Fro)
    }
}

impl NormOrd {
    fn order(self) -> f64 {
        match self {
            NormOrd::Named(NormName::Fro) => 2.0,
            NormOrd::Named(NormName::Inf) => f64::INFINITY,
            NormOrd::Named(NormName::NegInf) => f64::NEG_INFINITY,
            NormOrd::Order(p) => p,
        }
    }

    /// The norm of each row of `rows` (`[N, D]`), as `torch.norm(rows, p, dim=1)`.
    fn of_rows(self, rows: &Tensor) -> Tensor {
        let abs = rows.to_kind(Kind::Double).abs();
        let p = self.order();
        if p == f64::INFINITY {
            abs.amax(1, false)
        } else if p == f64::NEG_INFINITY {
            abs.amin(1, false)
        } else if p == 0.0 {
            abs.ne(0.0).sum_dim_intlist(1, false, Kind::Double)
        } else {
            abs.pow_tensor_scalar(p)
                .sum_dim_intlist(1, false, Kind::Double)
                .pow_tensor_scalar(1.0 / p)
        }
    }
}

fn default_perturb_radius() -> f64 {
    0.02
}

fn default_n_perturb_samples() -> usize {
    10
}

/// Keeps this metric's random stream apart from the explained method's (see infidelity.rs).
const STREAM: u64 = 0x7365_6e73_6974_6976; // "sensitiv"

pub struct SensitivityMax;

impl Method for SensitivityMax {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        meta(
            "captum.sensitivity_max",
            "Max-sensitivity",
            "Largest relative change of the map, ||map(x) - map(x + d)|| / ||map(x)||, over \
             random perturbations d uniform in [-perturb_radius, perturb_radius], per example.",
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
        ensure!(
            p.perturb_radius.is_finite() && p.perturb_radius >= 0.0,
            "perturb_radius must be a finite number >= 0, got {}",
            p.perturb_radius
        );
        ensure!(
            !p.norm_ord.order().is_nan(),
            "norm_ord must be `fro`, `inf`, `-inf` or a number"
        );
        let batch = inputs.size()[0];
        let map = p.explained.map(ctx, inputs, target)?.view([batch, 1, -1]);
        let map_norm = p.norm_ord.of_rows(&map.view([batch, -1]));
        // Captum divides by 1 where the map's norm is 0.
        let map_norm = map_norm
            .where_scalarother(&map_norm.ne(0.0), 1.0)
            .view([batch, 1]);
        let per_batch = samples_per_batch(
            ctx,
            inputs,
            p.n_perturb_samples,
            p.max_examples_per_batch,
            // The perturbed copies are explained, usually by a gradient method.
            Pass::Gradient,
        );
        let radius = p.perturb_radius as f32;
        let uniform = (radius > 0.0)
            .then(|| Uniform::new(-radius, radius))
            .transpose()?;
        let mut rng = StdRng::seed_from_u64(ctx.seed() ^ STREAM);
        let mut worst = Tensor::full([batch], f64::NEG_INFINITY, (Kind::Double, inputs.device()));
        let mut done = 0;
        while done < p.n_perturb_samples {
            ctx.check_cancelled()?;
            let k = per_batch.min(p.n_perturb_samples - done);
            let expanded = inputs.repeat_interleave_self_int(k as i64, 0, None);
            let noise: Vec<f32> = match &uniform {
                Some(u) => (0..expanded.numel()).map(|_| u.sample(&mut rng)).collect(),
                None => vec![0.0; expanded.numel()],
            };
            let noise = Tensor::from_slice(&noise)
                .view(expanded.size().as_slice())
                .to_device(inputs.device())
                .to_kind(inputs.kind());
            let perturbed_map = p
                .explained
                .map(ctx, &(expanded + noise), target)?
                .view([batch, k as i64, -1]);
            let change = (&map - perturbed_map).view([batch * k as i64, -1]);
            let sensitivity = p.norm_ord.of_rows(&change).view([batch, k as i64]) / &map_norm;
            worst = worst.maximum(&sensitivity.amax(1, false));
            done += k;
            ctx.progress(done, p.n_perturb_samples);
        }
        let scores = worst.to_kind(Kind::Float);
        let values = Vec::<f64>::try_from(worst.to_device(tch::Device::Cpu))?;
        Ok(Attribution::new(scores).with_extra("sensitivity_max", serde_json::json!(values)))
    }
}

register_method!(SensitivityMax);
