//! Layer (filter) visualisation (Erhan et al., 2009) as CNN-visualisations'
//! `layer_visualisation.py` runs it: Adam with weight decay on an image from a seeded random
//! start, maximising one filter's mean activation at a layer. The start is uniform at
//! CNN-vis's grey level, 150-180 of 255, of the input's value range (for an image in [0, 1],
//! CNN-vis's own start before its ImageNet normalisation); the input gives only that range and
//! the image's shape. The map written is the image itself, `[1, C, ...spatial]`.

use anyhow::{Context as _, Result};
use esegeta_plugin_api::{
    register_method, Adam, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::optimise::{at_least_one, check_filter, layer_value, non_negative, positive, range};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer (module path; `--layer` sets it).
    pub layer: String,
    /// The filter to excite: a channel of the layer's output.
    #[schemars(range(min = 0))]
    pub filter: i64,
    /// Adam steps (CNN-vis: 30).
    #[serde(default = "default_steps")]
    #[schemars(range(min = 1))]
    pub steps: usize,
    /// Adam's learning rate (CNN-vis: 0.1).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Adam's weight decay, an L2 penalty on the image (CNN-vis: 1e-6).
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
}

fn default_steps() -> usize {
    30
}

fn default_lr() -> f64 {
    0.1
}

fn default_weight_decay() -> f64 {
    1e-6
}

pub struct LayerVisualisation;

impl Method for LayerVisualisation {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "cnnvis.layer_visualisation",
            title: "Layer visualisation (CNN-vis)",
            summary: "An image optimised from a random start to maximise one filter's mean \
                      activation at a layer.",
            kind: MethodKind::Explanation,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Erhan et al., Visualizing Higher-Layer Features of a Deep Network, \
                        2009; Ozbulak, PyTorch CNN Visualizations (layer_visualisation.py)",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        _target: i64,
        p: Params,
    ) -> Result<Attribution> {
        at_least_one("steps", p.steps)?;
        positive("lr", p.lr)?;
        non_negative("weight_decay", p.weight_decay)?;
        let first = inputs.narrow(0, 0, 1).to_kind(Kind::Float);
        check_filter(
            &tch::no_grad(|| layer_value(ctx, &first, &p.layer))?,
            p.filter,
            &p.layer,
        )?;
        let (lo, hi) = range(&first);
        tch::manual_seed(ctx.seed() as i64);
        let grey = Tensor::rand(first.size(), (Kind::Float, first.device())) * (30.0 / 255.0)
            + 150.0 / 255.0;
        let image = (grey * (hi - lo) + lo).set_requires_grad(true);
        let mut adam = Adam::new(&image, p.lr, p.weight_decay);
        for step in 1..=p.steps {
            ctx.check_cancelled()?;
            let value = layer_value(ctx, &image, &p.layer)?;
            let loss = -value.select(1, p.filter).mean(Kind::Float);
            let grad = Tensor::f_run_backward(&[loss], &[&image], false, false)
                .with_context(|| format!("step {step}"))?
                .remove(0);
            adam.step(&image, &grad);
            ctx.progress(step, p.steps);
        }
        Ok(Attribution::new(image.detach().to_kind(inputs.kind())))
    }
}

register_method!(LayerVisualisation);
