//! Vanilla backpropagation and gradient times image as CNN-visualisations computes them
//! (Ozbulak's pytorch-cnn-visualizations, `VanillaBackprop` and `grad_times_image`): the
//! gradient of the target score at the input, or that times the input, before the library's
//! display scaling; `grayscale` reduces channels as its `convert_to_grayscale` does. They
//! equal Captum's `Saliency(abs=False)` and `InputXGradient`, and run through every task
//! wrapper, 2D and 3D, on TorchScript and ONNX alike.

use anyhow::Result;
use esegeta_plugin_api::{Attribution, Context, Method, MethodKind, MethodMeta, Needs};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::grayscale::grayscale;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Reduce the map to one channel as CNN-visualisations' `convert_to_grayscale` does: the
    /// sum of |values| over channels, scaled from its minimum (0) to its 99th percentile (1)
    /// and clipped. Default false: the signed map, one channel per input channel.
    #[serde(default)]
    pub grayscale: bool,
}

/// One of the two: its description and whether the gradient is multiplied by the input.
pub struct GradientMap {
    pub id: &'static str,
    pub title: &'static str,
    pub summary: &'static str,
    pub times_input: bool,
}

impl Method for GradientMap {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: self.id,
            title: self.title,
            summary: self.summary,
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                ..Needs::default()
            },
            reference: "Simonyan et al., Deep Inside Convolutional Networks, ICLR workshop \
                        2014; Ozbulak, PyTorch CNN Visualizations, \
                        https://github.com/utkuozbulak/pytorch-cnn-visualizations",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let gradient = ctx.gradient(inputs, target)?;
        let map = if self.times_input {
            gradient * inputs
        } else {
            gradient
        };
        let map = if p.grayscale { grayscale(&map) } else { map };
        Ok(Attribution::new(map.to_kind(inputs.kind())))
    }
}

esegeta_plugin_api::register_method!(GradientMap {
    id: "cnnvis.vanilla_backprop",
    title: "Vanilla backpropagation (CNN-vis)",
    summary: "The gradient of the target score at the input, signed, as CNN-visualisations \
              returns it; optionally reduced to grey.",
    times_input: false,
});

esegeta_plugin_api::register_method!(GradientMap {
    id: "cnnvis.grad_times_image",
    title: "Gradient times image (CNN-vis)",
    summary: "The input times the gradient of the target score, as CNN-visualisations \
              computes it; optionally reduced to grey.",
    times_input: true,
});
