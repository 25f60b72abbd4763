//! Feature visualisation (Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017)
//! as Lucent's `render_vis`: images optimised by Adam (learning rate 0.05) to minimise an
//! objective (objective.rs): by default minus one channel's mean at a layer, or one neuron's
//! (a channel at one position, by default the centre); `objective` composes Lucent's others.
//! The input gives only the image's shape; the map written is the rendered images
//! themselves, `[batch, C, spatial...]`, in (0, 1).
//!
//! Lucent's defaults, except where a medical model differs from torchvision's: the image has
//! the input's size, and after the transforms it is resampled back to that size, as Lucent's
//! `fixed_image_size` does (an exported graph takes one size; Lucent's default instead
//! upsamples anything under 224 pixels to 224); no ImageNet normalisation is added unless
//! `preprocess` asks for it.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Result};
use esegeta_plugin_api::{
    register_method, Adam, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Tap,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::objective::{Objective, Position};
use crate::param::ImageParam;
use crate::transform;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it); objectives that name no layer take this one.
    #[serde(default)]
    pub layer: Option<String>,
    /// The channel of the layer's output to excite (Lucent's `channel` objective), unless
    /// `objective` is given.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub channel: Option<i64>,
    /// Excite one neuron of the channel, at this position of the layer's grid (one index per
    /// spatial axis), instead of the channel's mean; `"centre"` takes Lucent's default, the
    /// middle position (rounded up).
    #[serde(default)]
    pub neuron: Option<Position>,
    /// Any of Lucent's objectives, or a weighted sum of them, in place of `channel` and
    /// `neuron`.
    #[serde(default)]
    pub objective: Option<Objective>,
    /// How many images to render together (Lucent's `param.image(..., batch=N)`); objectives
    /// with `batch` pick one, `diversity` pushes them apart.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub batch: i64,
    /// Optimisation steps (Lucent's `thresholds=(512,)`).
    #[serde(default = "default_steps")]
    #[schemars(range(min = 1))]
    pub steps: usize,
    /// Adam's learning rate.
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// Optimise a spectrum scaled by 1 / frequency (smooth images) instead of pixels.
    #[serde(default = "yes")]
    pub fft: bool,
    /// Mix an RGB image's colours by ImageNet's colour correlation (3 channels only).
    #[serde(default = "yes")]
    pub decorrelate: bool,
    /// Standard deviation of the random start.
    #[serde(default = "default_sd")]
    pub sd: f64,
    /// `standard`: Lucent's random padding, jitter, scaling and rotation before each step;
    /// `none`: the image as it is.
    #[serde(default)]
    pub transforms: Transforms,
    /// `imagenet`: normalise an RGB image by ImageNet's mean and deviation before the model,
    /// as Lucent does for torchvision models; `none`: the model takes the image in (0, 1).
    #[serde(default)]
    pub preprocess: Preprocess,
}

#[derive(Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Transforms {
    #[default]
    Standard,
    None,
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Preprocess {
    #[default]
    None,
    Imagenet,
}

fn default_steps() -> usize {
    512
}

fn default_learning_rate() -> f64 {
    0.05
}

fn default_sd() -> f64 {
    0.01
}

fn yes() -> bool {
    true
}

fn one() -> i64 {
    1
}

pub struct FeatureVisualisation;

impl Method for FeatureVisualisation {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "featvis.feature_visualisation",
            title: "Feature Visualisation",
            summary: "An image optimised to excite one channel (or neuron) of a layer, as \
                      Lucent renders it.",
            kind: MethodKind::Explanation,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Olah, Mordvintsev & Schubert, Feature Visualization, Distill 2017; \
                        Lucent 0.1.8 render_vis, https://github.com/greentfrapp/lucent",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        _target: i64,
        p: Params,
    ) -> Result<Attribution> {
        ensure!(
            p.learning_rate > 0.0 && p.learning_rate.is_finite(),
            "learning_rate must be a finite number above 0 (it is {})",
            p.learning_rate
        );
        ensure!(
            p.sd > 0.0 && p.sd.is_finite(),
            "sd must be a finite number above 0 (it is {})",
            p.sd
        );
        ensure!(
            p.preprocess == Preprocess::None || inputs.size().get(1) == Some(&3),
            "preprocess `imagenet` normalises RGB images, but the input has shape {:?}; use \
             `none`",
            inputs.size()
        );
        ensure!(p.batch >= 1, "batch must be at least 1 (it is {})", p.batch);
        let objective = objective_of(&p)?;
        let mut layers = Vec::new();
        objective.layers(&mut layers);
        let mut shape = inputs.size();
        shape[0] = p.batch;
        // Lucent draws its start from torch's global generator after the seed.
        tch::manual_seed(ctx.seed() as i64);
        let image = ImageParam::new(&shape, p.fft, p.decorrelate, p.sd)?;
        let render = Render {
            ctx,
            params: &p,
            objective,
            layers,
            size: shape[2..].to_vec(),
            rng: StdRng::seed_from_u64(ctx.seed()),
        };
        let rendered = render.optimise(&image)?;
        Ok(Attribution::new(rendered.to_kind(inputs.kind())))
    }
}

register_method!(FeatureVisualisation);

struct Render<'a, 'h> {
    ctx: &'a Context<'h>,
    params: &'a Params,
    objective: Objective,
    /// The layers the objective reads, tapped in one forward pass.
    layers: Vec<String>,
    /// The spatial size the model takes: the input's.
    size: Vec<i64>,
    rng: StdRng,
}

impl Render<'_, '_> {
    /// `steps` of Adam on the image's values; the image at the end.
    fn optimise(mut self, image: &ImageParam) -> Result<Tensor> {
        let mut adam = Adam::new(&image.values, self.params.learning_rate, 0.0);
        for step in 1..=self.params.steps {
            self.ctx.check_cancelled()?;
            let loss = self.loss(&image.image())?;
            let grad = Tensor::f_run_backward(&[loss], &[&image.values], false, false)?.remove(0);
            adam.step(&image.values, &grad);
            self.ctx.progress(step, self.params.steps);
        }
        Ok(tch::no_grad(|| image.image()).detach())
    }

    /// The objective's loss for `image`, after the transforms.
    fn loss(&mut self, image: &Tensor) -> Result<Tensor> {
        let x = match self.params.transforms {
            Transforms::Standard => transform::standard(image, &mut self.rng)?,
            Transforms::None => image.shallow_clone(),
        };
        let x = match self.params.preprocess {
            Preprocess::Imagenet => imagenet_normalise(&x),
            Preprocess::None => x,
        };
        let x = transform::resize(&x, &self.size)?;
        let taps: Vec<Tap<'_>> = self.layers.iter().map(|l| Tap::capture(l)).collect();
        let values = self.ctx.layer_values(&x, &taps)?;
        let values: BTreeMap<String, Tensor> = self.layers.iter().cloned().zip(values).collect();
        self.objective.loss(&values)
    }
}

/// The objective the parameters ask for: `objective`, or the channel (or neuron) of `layer`.
fn objective_of(p: &Params) -> Result<Objective> {
    let objective = match (&p.objective, p.channel) {
        (Some(objective), None) if p.neuron.is_none() => objective.clone(),
        (Some(_), _) => bail!(
            "give either `objective` or `channel` (with `neuron`), not both: put the channel \
             into the objective ({{\"sum\": [...]}} combines several)"
        ),
        (None, Some(channel)) => match &p.neuron {
            None => Objective::Channel {
                layer: None,
                channel,
                batch: None,
            },
            Some(position) => Objective::Neuron {
                layer: None,
                channel,
                position: position.clone(),
                batch: None,
            },
        },
        (None, None) => bail!(
            "feature visualisation needs something to excite: give `channel` (a channel of \
             `layer`) or an `objective`"
        ),
    };
    objective.resolve(p.layer.as_deref())
}

/// torchvision's ImageNet normalisation.
fn imagenet_normalise(x: &Tensor) -> Tensor {
    let options = (x.kind(), x.device());
    let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406])
        .to_kind(options.0)
        .to_device(options.1);
    let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225])
        .to_kind(options.0)
        .to_device(options.1);
    let mut shape = vec![1i64, 3];
    shape.extend(std::iter::repeat_n(1, x.dim() - 2));
    (x - mean.view(shape.as_slice())) / std.view(shape.as_slice())
}
