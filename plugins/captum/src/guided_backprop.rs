//! Guided Backpropagation (Springenberg et al., 2015): the gradient of the target score with
//! every ReLU passing back only positive gradients where its input was positive.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tch::Tensor;

use crate::noise_tunnel::{with_noise_tunnel, NoiseTunnel};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Average the attribution over noisy copies of the input (SmoothGrad and friends).
    #[serde(default)]
    pub noise_tunnel: Option<NoiseTunnel>,
}

pub struct GuidedBackprop;

impl Method for GuidedBackprop {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.guided_backprop",
            title: "Guided Backpropagation",
            summary: "Gradient of the target score in which every ReLU passes back only positive gradients at positive inputs.",
            kind: MethodKind::Attribution,
            needs: Needs { gradients: true, backward_rules: true, ..Needs::default() },
            reference: "Springenberg et al., Striving for Simplicity: The All Convolutional Net, ICLR 2015 workshop",
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
            relu_rule_gradient(ctx, x, target, "guided_backprop")
        })?;
        Ok(Attribution::new(map))
    }
}

register_method!(GuidedBackprop);

/// The gradient at the input with `rule` on every ReLU and plain gradients elsewhere (Captum
/// overrides the gradients of `nn.ReLU` modules only).
pub(crate) fn relu_rule_gradient(
    ctx: &Context<'_>,
    inputs: &Tensor,
    target: i64,
    rule: &str,
) -> Result<Tensor> {
    let composite = json!({"rules": [{"ops": ["Relu"], "rule": {"name": rule}}]});
    Ok(ctx.backward_rules(inputs, target, &composite, None)?.inputs)
}
