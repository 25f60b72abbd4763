//! Layer Conductance (Dhamdhere et al., 2018) as Captum's `LayerConductance`: along the path
//! from a baseline to the input, each step's change in a layer's output times the gradient of
//! the target score at that layer, summed over the path.
//!
//! Captum takes `n_steps + 1` points of the chosen rule and sums
//! `(act[k+1] - act[k]) * grad[k]` for `k < n_steps`; the rule's weights play no part.

use anyhow::Result;
use esegeta_plugin_api::{
    accumulation, register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use serde_json::json;
use tch::Tensor;

use crate::integrated_gradients::{convergence_delta, quadrature};
use crate::layer_params::capture;
use crate::layer_path::{along_path, PathParams};

pub struct LayerConductance;

impl Method for LayerConductance {
    type Params = PathParams;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.layer_conductance",
            title: "Layer Conductance",
            summary: "The flow of the target score through each unit of a layer along the path \
                      from a baseline to the input.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Dhamdhere et al., How Important Is a Neuron?, arXiv:1805.12233",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: PathParams,
    ) -> Result<Attribution> {
        let tap = capture(&p.layer, p.attribute_to_layer_input);
        let (alphas, _) = quadrature(p.method, p.n_steps + 1)?;
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let mut sum = Conductance::default();
        along_path(
            ctx,
            inputs,
            &baselines,
            target,
            tap,
            &alphas,
            p.internal_batch_size,
            |_, grads, acts| {
                sum.add(grads, acts);
                Ok(())
            },
        )?;
        let map = sum.total.expect("at least two path points").detach();
        let delta = convergence_delta(ctx, &map, inputs, &baselines, target)?;
        Ok(Attribution::new(map).with_extra("convergence_delta", json!(delta)))
    }
}

register_method!(LayerConductance);

/// The running sum of `(act[k+1] - act[k]) * grad[k]` over path points that arrive in chunks
/// (`[k, B, ...]`), carrying the last point of one chunk into the next.
#[derive(Default)]
struct Conductance {
    total: Option<Tensor>,
    last: Option<(Tensor, Tensor)>,
}

impl Conductance {
    fn add(&mut self, grads: &Tensor, acts: &Tensor) {
        let (grads, acts) = match self.last.take() {
            Some((g, a)) => (
                Tensor::cat(&[g.unsqueeze(0), grads.shallow_clone()], 0),
                Tensor::cat(&[a.unsqueeze(0), acts.shallow_clone()], 0),
            ),
            None => (grads.shallow_clone(), acts.shallow_clone()),
        };
        let k = grads.size()[0];
        self.last = Some((grads.get(k - 1), acts.get(k - 1)));
        if k < 2 {
            return;
        }
        let steps = acts.narrow(0, 1, k - 1) - acts.narrow(0, 0, k - 1);
        let part = (steps * grads.narrow(0, 0, k - 1)).sum_dim_intlist(
            0,
            false,
            accumulation(grads.kind()),
        );
        self.total = Some(match self.total.take() {
            Some(t) => t + part,
            None => part,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn chunks_give_the_same_sum_as_one_pass() {
        let opts = (Kind::Float, tch::Device::Cpu);
        let grads = Tensor::randn([7, 2, 3], opts);
        let acts = Tensor::randn([7, 2, 3], opts);
        let mut whole = Conductance::default();
        whole.add(&grads, &acts);
        let mut parts = Conductance::default();
        for (start, len) in [(0, 1), (1, 3), (4, 3)] {
            parts.add(&grads.narrow(0, start, len), &acts.narrow(0, start, len));
        }
        let (a, b) = (whole.total.unwrap(), parts.total.unwrap());
        // Same float ops in a different order: 1e-6 relative.
        assert!(a.allclose(&b, 1e-6, 1e-6, false));
        // And by hand: sum over k of (act[k+1] - act[k]) * grad[k].
        let mut expected = Tensor::zeros([2, 3], opts);
        for k in 0..6 {
            expected += (acts.get(k + 1) - acts.get(k)) * grads.get(k);
        }
        assert!(a.allclose(&expected, 1e-6, 1e-6, false));
    }
}
