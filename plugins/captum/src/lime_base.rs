//! Captum's `LimeBase`, the engine of Lime and KernelShap: an interpretable surrogate fitted to
//! the model around each example. A sample is a binary vector over the features of the
//! `feature_mask` (1: the feature keeps the input's values, 0: it takes the baseline's); the
//! model scores each sampled input, a similarity weights it, and a linear model fitted to
//! (sample, score, weight) gives each feature its coefficient, which every element of the
//! feature receives. Each example of a batch gets its own samples and fit, as in Captum.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{Context, FeatureMaskSpec, LogLevel, TensorOrScalar};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tch::{Device, Kind, Tensor};

use crate::linear_model::{Samples, Surrogate};
use crate::perturbation::{evaluate_copies, per_eval, FeatureMask};

/// How samples are drawn and weighted.
pub trait Sampler {
    /// The next sample over `features` interpretable features.
    fn draw(&mut self, features: usize, rng: &mut StdRng) -> Vec<bool>;

    /// The weight of `sample`, which turned the example into `perturbed`.
    fn weight(&self, sample: &[bool], perturbed: &Tensor) -> Result<f64>;

    /// Fails when `features` interpretable features are too few for this sampling.
    fn check(&self, _features: usize) -> Result<()> {
        Ok(())
    }

    /// Called before each example's first draw, with the example (`[1, ...]`).
    fn next_example(&mut self, _example: &Tensor) {}
}

/// One fit's settings: the parameters Lime and KernelShap share, resolved against the input.
pub struct Fit {
    baselines: Tensor,
    features: FeatureMask,
    n_samples: usize,
    /// Samples evaluated together in one forward pass.
    per_eval: usize,
    surrogate: Surrogate,
}

impl Fit {
    /// `baselines`, `feature_mask`, `n_samples` and `perturbations_per_eval` as the methods'
    /// parameters give them.
    pub fn new(
        ctx: &Context<'_>,
        inputs: &Tensor,
        baselines: &TensorOrScalar,
        feature_mask: Option<&FeatureMaskSpec>,
        (n_samples, perturbations_per_eval): (usize, Option<usize>),
        surrogate: Surrogate,
    ) -> Result<Self> {
        ensure!(
            n_samples >= 1,
            "n_samples must be at least 1 (it is {n_samples})"
        );
        Ok(Fit {
            baselines: baselines.resolve(ctx, "baselines", inputs)?,
            features: FeatureMask::new(ctx, feature_mask, inputs)?,
            n_samples,
            per_eval: per_eval(ctx, perturbations_per_eval, inputs)?,
            surrogate,
        })
    }
}

/// The attribution map `[B, ...]`: per example, its features' coefficients.
pub fn attribute(
    ctx: &Context<'_>,
    inputs: &Tensor,
    target: i64,
    fit: &Fit,
    sampler: &mut dyn Sampler,
) -> Result<Tensor> {
    let labels = Labels::new(ctx, &fit.features)?;
    sampler.check(labels.count)?;
    let mut rng = StdRng::seed_from_u64(ctx.seed());
    let batch = inputs.size()[0];
    let passes = fit.n_samples.div_ceil(fit.per_eval);
    let mut maps = Vec::with_capacity(batch as usize);
    for e in 0..batch {
        let example = Example {
            ctx,
            target,
            input: inputs.narrow(0, e, 1),
            baseline: fit.baselines.narrow(0, e, 1),
            labels: labels.of(e),
            count: labels.count,
        };
        sampler.next_example(&example.input);
        let progress = (e as usize * passes, batch as usize * passes);
        let samples = example.sample(fit, sampler, &mut rng, progress)?;
        let coefficients = fit.surrogate.fit(&samples)?;
        maps.push(example.spread(&coefficients));
    }
    Ok(Tensor::f_cat(&maps, 0)?.to_kind(inputs.kind()))
}

/// The feature labels shifted to start at 0, as Captum does: `count` interpretable features,
/// `0..=max - min`; a label missing from the mask is a feature that changes nothing.
struct Labels {
    shifted: Tensor,
    count: usize,
}

impl Labels {
    fn new(ctx: &Context<'_>, features: &FeatureMask) -> Result<Self> {
        let (Some(&min), Some(&max)) = (features.features().first(), features.features().last())
        else {
            anyhow::bail!("the feature mask has no features");
        };
        let count = (max - min + 1) as usize;
        if count > 10_000 {
            ctx.log(
                LogLevel::Warn,
                &format!(
                    "the interpretable model has {count} features, which is slow to fit and \
                     needs many samples; give a feature_mask that groups the input's elements"
                ),
            );
        }
        Ok(Labels {
            shifted: features.labels() - min,
            count,
        })
    }

    /// Example `e`'s labels, `[1, ...]`.
    fn of(&self, e: i64) -> Tensor {
        let shared = self.shifted.size()[0] == 1;
        self.shifted.narrow(0, if shared { 0 } else { e }, 1)
    }
}

/// One example and what its samples are made of.
struct Example<'a, 'h> {
    ctx: &'a Context<'h>,
    target: i64,
    input: Tensor,
    baseline: Tensor,
    labels: Tensor,
    count: usize,
}

impl Example<'_, '_> {
    /// `fit.n_samples` samples, scored and weighted, `fit.per_eval` per forward pass.
    /// `progress`: forward passes done before this example's, and in all.
    fn sample(
        &self,
        fit: &Fit,
        sampler: &mut dyn Sampler,
        rng: &mut StdRng,
        (mut done, total): (usize, usize),
    ) -> Result<Samples> {
        let mut samples = Samples {
            rows: Vec::with_capacity(fit.n_samples),
            scores: Vec::with_capacity(fit.n_samples),
            weights: Vec::with_capacity(fit.n_samples),
        };
        while samples.rows.len() < fit.n_samples {
            self.ctx.check_cancelled()?;
            let group = fit.per_eval.min(fit.n_samples - samples.rows.len());
            let mut copies = Vec::with_capacity(group);
            for _ in 0..group {
                let sample = sampler.draw(self.count, rng);
                let perturbed = self.perturbed(&sample);
                samples.weights.push(sampler.weight(&sample, &perturbed)?);
                samples
                    .rows
                    .push(sample.iter().map(|&k| f64::from(u8::from(k))).collect());
                copies.push(perturbed);
            }
            let scores = evaluate_copies(
                self.ctx,
                self.target,
                &copies.iter().collect::<Vec<_>>(),
                None,
            )?;
            let scores = scores
                .to_kind(Kind::Double)
                .to_device(Device::Cpu)
                .view([-1]);
            samples.scores.extend(Vec::<f64>::try_from(&scores)?);
            done += 1;
            self.ctx.progress(done, total);
        }
        Ok(samples)
    }

    /// The input where `sample` keeps a feature, the baseline elsewhere.
    fn perturbed(&self, sample: &[bool]) -> Tensor {
        let keep = Tensor::from_slice(sample).to_device(self.labels.device());
        let mask = keep
            .index_select(0, &self.labels.view([-1]))
            .view_as(&self.labels);
        self.input.where_self(&mask, &self.baseline)
    }

    /// Each element gets its feature's coefficient: `[1, ...]`.
    fn spread(&self, coefficients: &[f64]) -> Tensor {
        let per_feature = Tensor::from_slice(coefficients).to_device(self.labels.device());
        per_feature
            .index_select(0, &self.labels.view([-1]))
            .view_as(&self.labels)
    }
}
