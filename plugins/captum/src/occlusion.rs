//! Occlusion (Zeiler & Fergus, 2014): a window slides over the input, replacing what it covers
//! with a baseline; each element gets the mean drop in the target score over the windows that
//! covered it, as Captum's `Occlusion`.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::perturbation::{ablate, per_eval, Perturbed, Plan, Weighting};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Shape of the occluding window, one size per input dimension after the batch dimension
    /// (e.g. `[3, 15, 15]` for a `[B, 3, H, W]` image, `[1, 4, 4, 4]` for a `[B, 1, D, H, W]`
    /// volume).
    #[schemars(length(min = 1), inner(range(min = 1)))]
    pub sliding_window_shapes: Vec<i64>,
    /// Step between window positions: one per input dimension after the batch dimension, or one
    /// number for all of them. Default 1.
    #[serde(default)]
    pub strides: Strides,
    /// What occluded elements are replaced with: a number, or a file with a tensor that
    /// broadcasts to the input. Default 0.
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// Window positions evaluated together in one forward pass.
    /// Default: as many as the memory budget allows (Captum's is 1). The map equals the
    /// unbatched one up to float rounding, except through a segmentation wrapper whose
    /// dynamic mask is near-tied (an argmax gap around 1e-6): batched kernels can flip a few
    /// masked voxels there, so give 1, or a fixed mask (`--fixed-mask`, `mask_mode: fixed`),
    /// to reproduce Captum exactly.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub perturbations_per_eval: Option<usize>,
    /// Evaluate the perturbed copies incrementally when the model is an ONNX graph: each
    /// layer recomputes only the part of its output the perturbation reaches, from the
    /// unperturbed input's recorded activations, and the rest of the graph runs in full where
    /// the reach covers a whole layer (the log says where). Exact: the same map as full
    /// evaluation up to float rounding (and the near-tied masks of `perturbations_per_eval`);
    /// false evaluates every copy in full, which is faster on tiny models. Default true.
    #[serde(default = "crate::yes")]
    pub incremental: bool,
}

/// Captum's `strides`: one step for every dimension, or one per dimension.
#[derive(Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Strides {
    /// The same step along every dimension.
    All(#[schemars(range(min = 1))] i64),
    /// One step per input dimension after the batch dimension.
    PerDim(#[schemars(inner(range(min = 1)))] Vec<i64>),
}

impl Default for Strides {
    fn default() -> Self {
        Strides::All(1)
    }
}

pub struct Occlusion;

impl Method for Occlusion {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.occlusion",
            title: "Occlusion",
            summary: "Mean drop in the target score when a sliding window over each element is \
                      replaced by a baseline.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, \
                        ECCV 2014, arXiv:1311.2901",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let grid = WindowGrid::new(&inputs.size()[1..], &p.sliding_window_shapes, &p.strides)?;
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let map = ablate(
            ctx,
            inputs,
            target,
            grid.count(),
            Plan {
                per_eval: per_eval(ctx, p.perturbations_per_eval, inputs)?,
                weighting: Weighting::MeanOverCoverage,
                incremental: p.incremental,
            },
            |i| {
                let mask = grid.mask(i, inputs);
                Ok(Perturbed {
                    input: baselines.where_self(&mask, inputs),
                    mask,
                })
            },
        )?;
        Ok(Attribution::new(map))
    }
}

register_method!(Occlusion);

/// The window positions along each non-batch dimension.
struct WindowGrid {
    sizes: Vec<i64>,
    window: Vec<i64>,
    strides: Vec<i64>,
    /// Positions per dimension: `ceil((size - window) / stride) + 1`, as Captum counts them.
    /// When the stride does not divide `size - window`, the last window starts past
    /// `size - window` and is cut off at the edge (Captum pads with a negative amount).
    shifts: Vec<i64>,
}

impl WindowGrid {
    fn new(sizes: &[i64], window: &[i64], strides: &Strides) -> Result<Self> {
        let n = sizes.len();
        ensure!(
            window.len() == n,
            "sliding_window_shapes has {} sizes, but the input has {n} dimensions after the batch \
             dimension (shape {sizes:?}); give one window size per dimension",
            window.len()
        );
        let strides = match strides {
            Strides::All(s) => {
                ensure!(*s >= 1, "strides is {s}; strides must be at least 1");
                vec![*s; n]
            }
            Strides::PerDim(v) => v.clone(),
        };
        ensure!(
            strides.len() == n,
            "strides has {} values, but the input has {n} dimensions after the batch dimension \
             (shape {sizes:?}); give one stride per dimension, or a single number",
            strides.len()
        );
        let mut shifts = Vec::with_capacity(n);
        for d in 0..n {
            shifts.push(shift_count(d, sizes[d], window[d], strides[d])?);
        }
        Ok(WindowGrid {
            sizes: sizes.to_vec(),
            window: window.to_vec(),
            strides,
            shifts,
        })
    }

    fn count(&self) -> usize {
        self.shifts.iter().product::<i64>() as usize
    }

    /// The mask of window `index` (bool, `[1, ...]`). The first dimension's position varies
    /// fastest, as in Captum's numbering.
    fn mask(&self, index: usize, like: &Tensor) -> Tensor {
        let mut shape = like.size();
        shape[0] = 1;
        let mask = Tensor::zeros(shape.as_slice(), (Kind::Bool, like.device()));
        let mut region = mask.shallow_clone();
        let mut rest = index as i64;
        for d in 0..self.sizes.len() {
            let start = (rest % self.shifts[d]) * self.strides[d];
            rest /= self.shifts[d];
            let len = self.window[d].min(self.sizes[d] - start);
            region = region.narrow(d as i64 + 1, start, len);
        }
        let _ = region.fill_(1);
        mask
    }
}

fn shift_count(d: usize, size: i64, window: i64, stride: i64) -> Result<i64> {
    ensure!(
        window >= 1,
        "sliding_window_shapes[{d}] is {window}; window sizes must be at least 1"
    );
    ensure!(
        stride >= 1,
        "strides[{d}] is {stride}; strides must be at least 1"
    );
    ensure!(
        window <= size,
        "sliding_window_shapes[{d}] is {window}, larger than the input's size {size} along that \
         dimension (dimension {} of the input, counting the batch as 0); use a window of at most {size}",
        d + 1
    );
    let room = size - window;
    ensure!(
        room == 0 || stride <= window,
        "strides[{d}] is {stride}, larger than the window size {window} along that dimension, \
         so some elements would never be occluded; use a stride of at most {window}"
    );
    Ok((room + stride - 1) / stride + 1)
}
