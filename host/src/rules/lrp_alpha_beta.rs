//! LRP-αβ (Bach et al., 2015) as zennit's `AlphaBeta`: the node's output split into its
//! positive contributions (positive inputs through positive weights, negative through
//! negative, and the positive bias) and its negative ones; relevance flows back `α` times
//! through the first, `-β` times through the second, each normalised by its own sum
//! (α - β = 1 conserves relevance). With α = 1, β = 0 it is zennit's z⁺. Unlike Captum's
//! α1β0 (lrp_alpha1_beta0.rs), inputs are split by sign, which matters on a first layer fed
//! normalised images.

use anyhow::{ensure, Result};
use tch::Tensor;

use super::lrp::{output_relevance, stabilised, Term};
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct LrpAlphaBeta {
    pub alpha: f64,
    pub beta: f64,
    /// Added to each denominator with its sign (zennit's stabiliser).
    pub epsilon: f64,
}

impl Rule for LrpAlphaBeta {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        ensure!(
            self.alpha >= 0.0 && self.beta >= 0.0,
            "the alpha_beta rule weighs positive contributions by alpha and negative ones by \
             -beta, so both must be at least 0 (got alpha {} and beta {})",
            self.alpha,
            self.beta
        );
        let relevance = output_relevance(node, grads)?;
        let a = recorded.input()?.detach();
        let (up, down) = (a.clamp_min(0.0), a.clamp_max(0.0));
        let plus = |w: &Tensor| w.clamp_min(0.0);
        let minus = |w: &Tensor| w.clamp_max(0.0);
        // Positive contributions, then negative ones: (input part, weight part, bias part).
        let positive = [
            Term::new(node, recorded, up.shallow_clone(), &plus, Some(&plus))?,
            Term::new(node, recorded, down.shallow_clone(), &minus, None)?,
        ];
        let negative = [
            Term::new(node, recorded, up, &minus, Some(&minus))?,
            Term::new(node, recorded, down, &plus, None)?,
        ];
        let side = |terms: &[Term; 2]| -> Result<Tensor> {
            let scale = relevance / stabilised(&(&terms[0].z + &terms[1].z), self.epsilon);
            Ok(terms[0].relevance(&scale)? + terms[1].relevance(&scale)?)
        };
        let mut total = side(&positive)? * self.alpha;
        if self.beta != 0.0 {
            total -= side(&negative)? * self.beta;
        }
        Ok(total)
    }
}
