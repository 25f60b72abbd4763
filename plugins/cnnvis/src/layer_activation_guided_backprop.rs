//! Layer activation with guided backpropagation, as CNN-visualisations computes it (its
//! `layer_activation_with_guided_backprop.py`, the map of the seed's Figure 5): the guided
//! gradient, at the input, of one filter's summed absolute activation at a layer,
//! `sum |A[b, filter, ...]|` per example. Captum's `NeuronGuidedBackprop` with that sum as its
//! neuron selector computes the same map.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Tap,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::guided;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer (module path; `--layer` sets it) whose filter is explained.
    pub layer: String,
    /// The filter: a channel of the layer's output.
    #[schemars(range(min = 0))]
    pub filter: i64,
}

pub struct LayerActivationGuidedBackprop;

impl Method for LayerActivationGuidedBackprop {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "cnnvis.layer_activation_guided_backprop",
            title: "Layer activation with guided backpropagation (CNN-vis)",
            summary: "The guided gradient at the input of one filter's summed absolute \
                      activation at a layer.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                backward_rules: true,
            },
            reference: "Springenberg et al., Striving for Simplicity: The All Convolutional \
                        Net, ICLR 2015 workshop; Ozbulak, PyTorch CNN Visualizations \
                        (layer_activation_with_guided_backprop.py)",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        _target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let tap = Tap::capture(&p.layer);
        let mut values = tch::no_grad(|| ctx.layer_values(inputs, &[tap]))?;
        let activation = values.remove(0);
        let channels = if activation.dim() >= 2 {
            activation.size()[1]
        } else {
            0
        };
        ensure!(
            (0..channels).contains(&p.filter),
            "filter {} is not a channel of layer `{}`, whose output has shape {:?}; give a \
             channel below {channels}",
            p.filter,
            p.layer,
            activation.size()
        );
        // d/dA of sum |A[:, filter]|: the sign of the filter's activation, zero elsewhere.
        let seed = activation.zeros_like();
        seed.select(1, p.filter)
            .f_copy_(&activation.select(1, p.filter).sign())?;
        let map = guided::of_layer(ctx, inputs, tap, &seed)?;
        Ok(Attribution::new(map.to_kind(inputs.kind())))
    }
}

register_method!(LayerActivationGuidedBackprop);
