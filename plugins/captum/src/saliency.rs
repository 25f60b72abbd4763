//! Saliency (Simonyan et al., 2013): the gradient of the target score with respect to the input.

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
    /// Return the absolute value of the gradient (Captum's default).
    #[serde(default = "crate::yes")]
    pub abs: bool,
    /// Average the attribution over noisy copies of the input (SmoothGrad and friends).
    #[serde(default)]
    pub noise_tunnel: Option<NoiseTunnel>,
}

pub struct Saliency;

impl Method for Saliency {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.saliency",
            title: "Saliency",
            summary: "Gradient of the target score with respect to each input element.",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                ..Needs::default()
            },
            reference: "Simonyan et al., Deep Inside Convolutional Networks, arXiv:1312.6034",
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
            let grad = ctx.gradient(x, target)?;
            Ok(if p.abs { grad.abs() } else { grad })
        })?;
        Ok(Attribution::new(map))
    }
}

register_method!(Saliency);
