//! `example.blur_integrated_gradients`: Blur Integrated Gradients (Xu, Venugopalan and
//! Sundararajan, "Attribution in Scale and Space", CVPR 2020), as PAIR's saliency library
//! (`saliency.core.BlurIG`) computes it, with its keyword names and defaults.
//!
//! The path runs from the input blurred by a Gaussian of width `max_sigma` to the input
//! itself, through `steps` widths `sigma_i = i * max_sigma / steps` (or their square roots).
//! The attribution is `-sum_i (sigma_{i+1} - sigma_i) * d blur(x, sigma)/d sigma at sigma_i *
//! gradient of the target at blur(x, sigma_i)`, the derivative along sigma a forward difference
//! of `grad_step`. Unlike integrated gradients it needs no baseline: a blurred image holds no
//! information at the scales blurring removed, and adds none (no new edges or colours). On
//! volumes the blur covers the three spatial axes.

use anyhow::{bail, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Pass,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::blur::gaussian_blur;

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The standard deviation (in pixels or voxels) of the Gaussian that blurs the input at
    /// the start of the path: the most blurred image. saliency's default, 50, blurs a
    /// 224-pixel image to almost nothing.
    #[serde(default = "max_sigma")]
    #[schemars(range(min = 0.0))]
    pub max_sigma: f64,
    /// How many steps the path takes from the most blurred image to the input.
    #[serde(default = "steps")]
    #[schemars(range(min = 1))]
    pub steps: usize,
    /// The step in sigma of the forward difference that approximates the blur's derivative.
    #[serde(default = "grad_step")]
    pub grad_step: f64,
    /// Space the blur widths as square roots, `sqrt(i * max_sigma / steps)`: more steps at
    /// small blurs.
    #[serde(default)]
    pub sqrt: bool,
    /// How many points of the path go through the model in one pass (saliency's batch_size);
    /// by default as many as the memory budget allows. It changes speed and memory only.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub batch_size: Option<usize>,
}

fn max_sigma() -> f64 {
    50.0
}

fn steps() -> usize {
    100
}

fn grad_step() -> f64 {
    0.01
}

pub struct BlurIntegratedGradients;

impl Method for BlurIntegratedGradients {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "example.blur_integrated_gradients",
            title: "Blur Integrated Gradients",
            summary: "Integrated gradients along a path from a blurred input to the input \
                      (no baseline), as PAIR saliency's BlurIG; 2D and 3D.",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                ..Needs::default()
            },
            reference: "Xu, Venugopalan, Sundararajan. Attribution in Scale and Space. CVPR \
                        2020 (arXiv:2004.03383)",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        check(&p)?;
        let sigmas = sigmas(&p);
        // The blur and its finite difference in float64: with grad_step 0.01 a float32
        // difference keeps only about four digits.
        let x = inputs.detach().to_kind(Kind::Double);
        let per_pass = p
            .batch_size
            .unwrap_or_else(|| ctx.copies_per_pass(inputs, Pass::Gradient))
            .max(1);
        let mut total = x.zeros_like();
        let mut start = 0;
        while start < p.steps {
            ctx.check_cancelled()?;
            let end = (start + per_pass).min(p.steps);
            // Cancellation is checked per step, not only per pass: on small inputs one pass
            // holds the whole path, and blurring it takes most of the time.
            let mut blurred = Vec::with_capacity(end - start);
            for &sigma in &sigmas[start..end] {
                ctx.check_cancelled()?;
                blurred.push(gaussian_blur(&x, sigma));
            }
            let points = Tensor::cat(&blurred, 0).to_kind(inputs.kind());
            let gradients = ctx.gradient(&points, target)?.to_kind(Kind::Double);
            let batch = inputs.size()[0];
            for (k, i) in (start..end).enumerate() {
                ctx.check_cancelled()?;
                let ahead = gaussian_blur(&x, sigmas[i] + p.grad_step);
                let derivative = (ahead - &blurred[k]) / p.grad_step;
                let gradient = gradients.narrow(0, k as i64 * batch, batch);
                total += derivative * gradient * (sigmas[i + 1] - sigmas[i]);
            }
            start = end;
            ctx.progress(start, p.steps);
        }
        let map = (-total).to_kind(inputs.kind());
        Ok(Attribution::new(map))
    }
}

register_method!(BlurIntegratedGradients);

/// The blur widths of the path, `steps + 1` of them from 0 to `max_sigma`.
fn sigmas(p: &Params) -> Vec<f64> {
    (0..=p.steps)
        .map(|i| {
            let s = i as f64 * p.max_sigma / p.steps as f64;
            if p.sqrt {
                s.sqrt()
            } else {
                s
            }
        })
        .collect()
}

fn check(p: &Params) -> Result<()> {
    if !(p.max_sigma.is_finite() && p.max_sigma >= 0.0) {
        bail!(
            "max_sigma must be a width of at least 0 pixels, got {}",
            p.max_sigma
        );
    }
    if p.steps == 0 {
        bail!("steps must be at least 1 (saliency's default is 100)");
    }
    if !(p.grad_step.is_finite() && p.grad_step > 0.0) {
        bail!(
            "grad_step must be a positive step in sigma (saliency's default is 0.01), got {}",
            p.grad_step
        );
    }
    if p.batch_size == Some(0) {
        bail!("batch_size must be at least 1, or left out to follow the memory budget");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        esegeta_plugin_api::serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_path_runs_from_no_blur_to_max_sigma() {
        let s = sigmas(&params(r#"{"max_sigma": 4, "steps": 4}"#));
        assert_eq!(s, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        let s = sigmas(&params(r#"{"max_sigma": 4, "steps": 4, "sqrt": true}"#));
        assert_eq!(s, vec![0.0, 1.0, 2f64.sqrt(), 3f64.sqrt(), 2.0]);
    }

    #[test]
    fn defaults_are_saliencys_and_bad_values_are_refused_by_name() {
        let p = params("{}");
        assert_eq!(
            (p.max_sigma, p.steps, p.grad_step, p.sqrt),
            (50.0, 100, 0.01, false)
        );
        let e = check(&params(r#"{"grad_step": 0}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("grad_step must be a positive"), "{e}");
        let e = check(&params(r#"{"steps": 0}"#)).unwrap_err().to_string();
        assert!(e.contains("steps must be at least 1"), "{e}");
    }
}
