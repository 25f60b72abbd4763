//! The segments lime perturbs: lime's `segmentation_fn`, here a segmentation the host computes
//! (quickshift, SLIC, Felzenszwalb as scikit-image's, the same names and parameters as lime's
//! `SegmentationAlgorithm`) or a file of labels. The default is lime's: quickshift with
//! `kernel_size=4, max_dist=200, ratio=0.2` on 2D images, and SLIC with scikit-image's
//! defaults on volumes (lime takes no volumes; quickshift is 2D only).

use anyhow::{anyhow, bail, ensure, Result};
use esegeta_plugin_api::segmentation::SegmentationSpec;
use esegeta_plugin_api::Context;
use schemars::JsonSchema;
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

/// What `segmentation_fn` takes (its schema; the value is read by [`Segments::new`]).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SegmentationFn {
    /// A file (npy, NIfTI, PNG) of integer labels on the input's grid: `[...spatial]` or
    /// `[1, ...spatial]` for every example, `[B, ...spatial]` for one each.
    File(String),
    /// `{"algorithm": "quickshift" | "slic" | "felzenszwalb", ...scikit-image's parameters}`,
    /// as lime's `SegmentationAlgorithm(algo_type, **params)`; also taken wrapped as
    /// `{"segmentation": {...}}`, as `feature_mask`s take it.
    Algorithm(SegmentationSpec),
}

/// One example's segments.
pub struct ExampleSegments {
    /// Each element's segment as a column of the samples, `[N]` (N: the spatial elements),
    /// int64: the segment's rank among the example's distinct labels (lime's columns are the
    /// labels themselves, which quickshift numbers from 0 without gaps).
    pub column: Tensor,
    /// The label of each column, ascending.
    pub labels: Vec<i64>,
}

pub struct Segments {
    /// `[1 or B, ...spatial]`, int64.
    labels: Tensor,
    /// How the segments were made, for the extras: the algorithm and its parameters, or the
    /// file.
    pub description: Value,
}

impl Segments {
    /// The segments of every example of `inputs` (`[B, C, ...spatial]`).
    pub fn new(ctx: &Context<'_>, spec: Option<&Value>, inputs: &Tensor) -> Result<Self> {
        let size = inputs.size();
        ensure!(
            size.len() >= 3,
            "lime.lime_image needs an input of shape [B, C, ...spatial]; this one has shape \
             {size:?}"
        );
        match spec {
            Some(Value::String(path)) => Self::from_file(ctx, path, inputs),
            Some(Value::Object(object)) => {
                let inner = match object.get("segmentation") {
                    Some(Value::Object(inner)) if object.len() == 1 => inner.clone(),
                    Some(_) => bail!(
                        "`segmentation_fn`: `segmentation` must be an object \
                         {{\"algorithm\": ..., params}} and the only key"
                    ),
                    None => object.clone(),
                };
                Self::computed(ctx, Value::Object(inner), inputs)
            }
            Some(other) => bail!(
                "`segmentation_fn` must be a file of labels or {{\"algorithm\": \"quickshift\" | \
                 \"slic\" | \"felzenszwalb\", ...params}}, not {other}"
            ),
            None if size.len() == 4 => Self::computed(
                ctx,
                json!({"algorithm": "quickshift", "kernel_size": 4, "max_dist": 200, "ratio": 0.2}),
                inputs,
            ),
            None if size.len() == 5 => Self::computed(ctx, json!({"algorithm": "slic"}), inputs),
            None => bail!(
                "lime.lime_image segments 2D images and 3D volumes ([B, C, H, W] or [B, C, D, \
                 H, W]) itself; this input has shape {size:?}: give `segmentation_fn` a file of \
                 labels"
            ),
        }
    }

    fn computed(ctx: &Context<'_>, spec: Value, inputs: &Tensor) -> Result<Self> {
        let algorithm = spec.get("algorithm");
        match algorithm.and_then(Value::as_str) {
            Some("quickshift" | "slic" | "felzenszwalb") => {}
            Some(other) => bail!(
                "`segmentation_fn`: unknown segmentation algorithm `{other}`; lime's are \
                 quickshift, slic and felzenszwalb"
            ),
            None => bail!(
                "`segmentation_fn` needs an `algorithm` (quickshift, slic or felzenszwalb), as \
                 lime's SegmentationAlgorithm; it has {}",
                algorithm.map_or("none".to_string(), Value::to_string)
            ),
        }
        // lime makes a one-channel image RGB (`gray2rgb`) before segmenting it; the model
        // still sees the image as it is.
        let size = inputs.size();
        let image = if size.len() == 4 && size[1] == 1 {
            inputs.repeat([1, 3, 1, 1])
        } else {
            inputs.shallow_clone()
        };
        let labels = ctx
            .segment(&image, &spec)
            .map_err(|e| anyhow!("`segmentation_fn` ({spec}): {e:#}"))?;
        Ok(Segments {
            labels,
            description: spec,
        })
    }

    fn from_file(ctx: &Context<'_>, path: &str, inputs: &Tensor) -> Result<Self> {
        let size = inputs.size();
        let spatial = &size[2..];
        let per_example: i64 = spatial.iter().product();
        let loaded = ctx
            .load_tensor(path)
            .map_err(|e| anyhow!("`segmentation_fn` ({path}): {e:#}"))?
            .to_device(Device::Cpu)
            .to_kind(Kind::Double);
        let count = if loaded.numel() as i64 == per_example {
            1
        } else if loaded.numel() as i64 == per_example * size[0] {
            size[0]
        } else {
            bail!(
                "`segmentation_fn` ({path}) has shape {:?}, which does not match the input's \
                 grid {spatial:?} (give labels of shape {spatial:?}, [1, ...] or [{}, ...])",
                loaded.size(),
                size[0]
            );
        };
        let whole = loaded.eq_tensor(&loaded.round()).all().int64_value(&[]) == 1;
        ensure!(
            whole && loaded.isfinite().all().int64_value(&[]) == 1,
            "`segmentation_fn` ({path}) holds values that are not integers: labels must be \
             integers, one per segment"
        );
        let mut shape = vec![count];
        shape.extend_from_slice(spatial);
        Ok(Segments {
            labels: loaded.to_kind(Kind::Int64).view(shape.as_slice()),
            description: Value::String(path.to_string()),
        })
    }

    /// Example `e`'s segments.
    pub fn example(&self, e: i64) -> Result<ExampleSegments> {
        let shared = self.labels.size()[0] == 1;
        let labels = self.labels.get(if shared { 0 } else { e }).reshape([-1]);
        let (unique, inverse, _) = labels.f_unique_dim(0, true, true, false)?;
        let ids = Vec::<i64>::try_from(&unique)?;
        ensure!(!ids.is_empty(), "the segmentation has no segments");
        Ok(ExampleSegments {
            column: inverse.to_kind(Kind::Int64),
            labels: ids,
        })
    }
}
