//! Input x Gradient (Shrikumar et al., 2016): the input times the gradient of the target score.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::noise_tunnel::{with_noise_tunnel, NoiseTunnel};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Average the attribution over noisy copies of the input (SmoothGrad and friends).
    #[serde(default)]
    pub noise_tunnel: Option<NoiseTunnel>,
}

pub struct InputXGradient;

impl Method for InputXGradient {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.input_x_gradient",
            title: "Input x Gradient",
            summary:
                "Each input element times the gradient of the target score with respect to it.",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                ..Needs::default()
            },
            reference: "Shrikumar et al., Not Just a Black Box, arXiv:1605.01713",
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
            Ok(x * ctx.gradient(x, target)?)
        })?;
        Ok(Attribution::new(map))
    }
}

register_method!(InputXGradient);
