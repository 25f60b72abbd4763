//! Deconvolution (Zeiler and Fergus, 2014): the target score propagated back with every ReLU
//! passing back only the positive part of its output's gradient.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use tch::Tensor;

use crate::guided_backprop::{relu_rule_gradient, Params};
use crate::noise_tunnel::with_noise_tunnel;

pub struct Deconvolution;

impl Method for Deconvolution {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.deconvolution",
            title: "Deconvolution",
            summary: "The target score propagated back with every ReLU passing back only positive gradients, whatever its input.",
            kind: MethodKind::Attribution,
            needs: Needs { gradients: true, backward_rules: true, ..Needs::default() },
            reference: "Zeiler and Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let map = with_noise_tunnel(ctx, inputs, p.noise_tunnel.as_ref(), |x| {
            relu_rule_gradient(ctx, x, target, "deconvnet")
        })?;
        Ok(Attribution::new(map))
    }
}

register_method!(Deconvolution);
