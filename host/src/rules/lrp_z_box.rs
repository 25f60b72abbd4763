//! LRP-z^B (Montavon et al., 2017) as zennit's `ZBox`, for a first layer whose input is bounded
//! by `low` and `high` (the lowest and highest pixel values): with `x` the input,
//! `z = (x w + b) - (low w⁺ + b⁺) - (high w⁻ + b⁻)` and the relevance
//! `x g - low g⁺ - high g⁻`, each `g` the gradient of its term with the output relevance over
//! `z`.

use anyhow::Result;
use tch::Tensor;

use super::lrp::{output_relevance, stabilised, Term};
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct LrpZBox {
    pub low: f64,
    pub high: f64,
    pub epsilon: f64,
}

impl Rule for LrpZBox {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let relevance = output_relevance(node, grads)?;
        let x = recorded.input()?.detach();
        let same = |w: &Tensor| w.shallow_clone();
        let plus = |w: &Tensor| w.clamp_min(0.0);
        let minus = |w: &Tensor| w.clamp_max(0.0);
        let terms = [
            Term::new(node, recorded, x.shallow_clone(), &same, Some(&same))?,
            Term::new(node, recorded, x.full_like(self.low), &plus, Some(&plus))?,
            Term::new(node, recorded, x.full_like(self.high), &minus, Some(&minus))?,
        ];
        let z = &terms[0].z - &terms[1].z - &terms[2].z;
        let scale = relevance / stabilised(&z, self.epsilon);
        Ok(terms[0].relevance(&scale)?
            - terms[1].relevance(&scale)?
            - terms[2].relevance(&scale)?)
    }
}
