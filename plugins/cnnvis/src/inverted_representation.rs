//! Inverted representation (Mahendran & Vedaldi, Understanding Deep Image Representations by
//! Inverting Them, CVPR 2015): an image whose representation at a layer matches the input's,
//! found from a seeded noise start by minimising
//!
//! `distance_weight * |phi(x) - phi(x0)|^2 / |phi(x0)|^2
//!  + alpha_weight * mean |z|^alpha + tv_weight * TV_beta(z) / positions`
//!
//! where `z = (x - mean) / sd` is the image in units of the input's mean and standard
//! deviation, as the paper normalises its priors by the data's range, so that the weights
//! and the learning rate carry over between CT numbers, MR intensities and normalised images.
//! Adam optimises z (CNN-visualisations' SGD at learning rate 1e4 diverges on volumes whose
//! representations are large), its learning rate falling tenfold every `decay_every` steps;
//! the start is `init_sd` times Gaussian noise in z. Total variation counts every spatial axis,
//! so volumes are regularised in 3D. One image per example, `[B, C, ...spatial]`.

use anyhow::{Context as _, Result};
use esegeta_plugin_api::{
    register_method, Adam, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::optimise::{at_least_one, layer_value, non_negative, positive, total_variation};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer (module path; `--layer` sets it) whose representation is inverted.
    pub layer: String,
    /// Adam steps.
    #[serde(default = "default_steps")]
    #[schemars(range(min = 1))]
    pub steps: usize,
    /// Adam's learning rate at the start, in units of the input's standard deviation.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// The learning rate falls tenfold every this many steps.
    #[serde(default = "default_decay_every")]
    #[schemars(range(min = 1))]
    pub decay_every: usize,
    /// Weight of the normalised representation distance.
    #[serde(default = "default_distance_weight")]
    pub distance_weight: f64,
    /// Exponent of the alpha-norm prior `mean |z|^alpha`, which keeps intensities in range.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Weight of the alpha-norm prior.
    #[serde(default = "default_alpha_weight")]
    pub alpha_weight: f64,
    /// Exponent beta of the total-variation prior, which favours piecewise-smooth images.
    #[serde(default = "default_tv_beta")]
    pub tv_beta: f64,
    /// Weight of the total-variation prior.
    #[serde(default = "default_tv_weight")]
    pub tv_weight: f64,
    /// Standard deviation of the start's noise, in units of the input's.
    #[serde(default = "default_init_sd")]
    pub init_sd: f64,
}

fn default_steps() -> usize {
    200
}
fn default_lr() -> f64 {
    0.1
}
fn default_decay_every() -> usize {
    100
}
fn default_distance_weight() -> f64 {
    1.0
}
fn default_alpha() -> f64 {
    6.0
}
fn default_alpha_weight() -> f64 {
    1e-5
}
fn default_tv_beta() -> f64 {
    2.0
}
fn default_tv_weight() -> f64 {
    1e-3
}
fn default_init_sd() -> f64 {
    0.1
}

pub struct InvertedRepresentation;

impl Method for InvertedRepresentation {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "cnnvis.inverted_representation",
            title: "Inverted representation (CNN-vis)",
            summary: "An image whose representation at a layer matches the input's, with \
                      alpha-norm and total-variation priors.",
            kind: MethodKind::Explanation,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Mahendran & Vedaldi, Understanding Deep Image Representations by \
                        Inverting Them, CVPR 2015; Ozbulak, PyTorch CNN Visualizations \
                        (inverted_representation.py)",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        _target: i64,
        p: Params,
    ) -> Result<Attribution> {
        check(&p)?;
        tch::manual_seed(ctx.seed() as i64);
        let mut images = Vec::new();
        for b in 0..inputs.size()[0] {
            let x = inputs.narrow(0, b, 1).to_kind(Kind::Float);
            images.push(invert(ctx, &x, &p)?);
        }
        Ok(Attribution::new(
            Tensor::cat(&images, 0).to_kind(inputs.kind()),
        ))
    }
}

register_method!(InvertedRepresentation);

fn check(p: &Params) -> Result<()> {
    at_least_one("steps", p.steps)?;
    positive("lr", p.lr)?;
    at_least_one("decay_every", p.decay_every)?;
    positive("alpha", p.alpha)?;
    positive("tv_beta", p.tv_beta)?;
    for (name, value) in [
        ("distance_weight", p.distance_weight),
        ("alpha_weight", p.alpha_weight),
        ("tv_weight", p.tv_weight),
        ("init_sd", p.init_sd),
    ] {
        non_negative(name, value)?;
    }
    Ok(())
}

/// The inverted representation of one example `x` (`[1, ...]`), optimised in units of the
/// input's statistics: `image = mean + sd * z`.
fn invert(ctx: &Context<'_>, x: &Tensor, p: &Params) -> Result<Tensor> {
    let target = tch::no_grad(|| layer_value(ctx, x, &p.layer))?.detach();
    let norm = target.square().sum(Kind::Float);
    let (mean, sd) = (x.mean(Kind::Float), x.std(true).clamp_min(1e-12));
    let z =
        (Tensor::randn(x.size(), (Kind::Float, x.device())) * p.init_sd).set_requires_grad(true);
    let mut adam = Adam::new(&z, p.lr, 0.0);
    for step in 1..=p.steps {
        ctx.check_cancelled()?;
        let value = layer_value(ctx, &(&z * &sd + &mean), &p.layer)?;
        let distance = (value - &target).square().sum(Kind::Float) / &norm;
        let loss = distance * p.distance_weight
            + z.abs().pow_tensor_scalar(p.alpha).mean(Kind::Float) * p.alpha_weight
            + mean_total_variation(&z, p.tv_beta) * p.tv_weight;
        let grad = Tensor::f_run_backward(&[loss], &[&z], false, false)
            .with_context(|| format!("step {step}"))?
            .remove(0);
        adam.step(&z, &grad);
        if step % p.decay_every == 0 {
            adam.lr /= 10.0;
        }
        ctx.progress(step, p.steps);
    }
    Ok(tch::no_grad(|| &z * sd + mean).detach())
}

/// Total variation per position (the sum over the positions with a neighbour on every axis,
/// divided by the number of positions), so that its weight does not depend on the size.
fn mean_total_variation(z: &Tensor, beta: f64) -> Tensor {
    total_variation(z, beta) / z.numel() as f64
}
