//! Sparseness (Chalasani et al., 2020): the Gini index of the map's absolute values, per
//! example, as Quantus' `Sparseness` computes it: over every element of the map (channels and
//! voxels flattened together, not summed), `sum_i (2i - n - 1) a_(i) / (n sum_i a_i)` with `a`
//! sorted ascending. 0 for a map whose mass is spread evenly, (n - 1) / n for a single non-zero
//! element; higher is sparser.
//!
//! Unlike Quantus, no 1e-7 is added to every element (it moves the score of maps whose values
//! are that small, as gradients often are); an all-zero map scores 0 instead.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{register_method, Attribution, Context, Method, MethodMeta};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::explained::{meta, Explained};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The attribution method whose map is scored, and its parameters.
    pub explained: Explained,
}

pub struct Sparseness;

impl Method for Sparseness {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        meta(
            "metrics.sparseness",
            "Sparseness",
            "Gini index of the map's absolute values, per example, in [0, 1): higher when a few \
             elements hold the relevance.",
            "Chalasani et al., Concise Explanations of Neural Networks using Adversarial \
             Training, ICML 2020, arXiv:1810.06583; as Quantus' Sparseness (Hedström et al., \
             JMLR 24, 2023)",
        )
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let map = p.explained.map(ctx, inputs, target)?;
        Ok(Attribution::new(gini(&map, &p.explained.method)?))
    }
}

register_method!(Sparseness);

/// The Gini index of `|map|` per example (`[B, ...]` -> `[B]`, f32), over all elements of an
/// example; 0 for an all-zero example. `method` names the map in errors.
pub fn gini(map: &Tensor, method: &str) -> Result<Tensor> {
    ensure!(
        map.dim() >= 1 && map.numel() > 0,
        "the map of {method} has shape {:?}; sparseness needs a map [B, ...] with elements",
        map.size()
    );
    let b = map.size()[0];
    let a = map.f_to_kind(Kind::Double)?.f_abs()?.f_reshape([b, -1])?;
    ensure!(
        bool::try_from(&a.f_isfinite()?.f_all()?)?,
        "the map of {method} holds NaN or infinite values, which have no Gini index; check the \
         method's parameters, or run it in fp32"
    );
    let n = a.size()[1];
    let (sorted, _) = a.f_sort(1, false)?;
    // 2i - n - 1 for i = 1..=n.
    let weights = Tensor::f_arange_start(1, n + 1, (Kind::Double, a.device()))?
        .f_mul_scalar(2.0)?
        .f_sub_scalar((n + 1) as f64)?;
    let numerator = sorted
        .f_mul(&weights)?
        .f_sum_dim_intlist(1, false, Kind::Double)?;
    let total = sorted.f_sum_dim_intlist(1, false, Kind::Double)?;
    let score = numerator.f_div(&total.f_mul_scalar(n as f64)?)?;
    let zero = score.f_zeros_like()?;
    Ok(score
        .f_where_self(&total.f_ne(0.0)?, &zero)?
        .f_to_kind(Kind::Float)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(values: &[f64], shape: &[i64]) -> Vec<f64> {
        let t = Tensor::from_slice(values).reshape(shape);
        Vec::<f64>::try_from(&gini(&t, "m").unwrap().to_kind(Kind::Double)).unwrap()
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn gini_of_hand_computed_vectors() {
        // One non-zero of four: (3 * 1) / (4 * 1).
        close(&scores(&[0.0, 0.0, 0.0, 1.0], &[1, 4]), &[0.75]);
        // Order and sign do not matter.
        close(&scores(&[0.0, -2.0, 0.0, 0.0], &[1, 4]), &[0.75]);
        // Constant: 0. All zero: 0.
        close(&scores(&[0.3; 4], &[1, 4]), &[0.0]);
        close(&scores(&[0.0; 4], &[1, 4]), &[0.0]);
        // Half and half: (1 + 3) / (4 * 2).
        close(&scores(&[1.0, 0.0, 1.0, 0.0], &[1, 4]), &[0.5]);
        // [1, 2, 3]: (-2 * 1 + 0 * 2 + 2 * 3) / (3 * 6) = 4 / 18.
        close(&scores(&[3.0, 1.0, 2.0], &[1, 3]), &[4.0 / 18.0]);
    }

    #[test]
    fn gini_is_per_example_over_channels_and_voxels() {
        // [2, 2, 2]: example 0 has a single non-zero of 4 elements, example 1 is constant.
        close(
            &scores(&[0.0, 0.0, 5.0, 0.0, 1.0, 1.0, 1.0, 1.0], &[2, 2, 2]),
            &[0.75, 0.0],
        );
    }

    #[test]
    fn gini_refuses_nan() {
        let t = Tensor::from_slice(&[1.0, f64::NAN]).reshape([1, 2]);
        let e = gini(&t, "captum.x").unwrap_err().to_string();
        assert!(e.contains("captum.x") && e.contains("NaN"), "{e}");
    }
}
