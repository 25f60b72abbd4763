//! `lime.lime_image`: lime 0.2.0.1's `LimeImageExplainer(kernel_width, feature_selection,
//! random_state).explain_instance(image, classifier_fn, labels=(target,), top_labels=None,
//! ...)` as lime computes it. The image is cut into segments (quickshift by default); each
//! sample switches segments off (they take `hide_color`, by default each segment's mean
//! colour); the target's score of every sample, weighted by a kernel of its cosine distance to
//! the unperturbed sample, is fitted by a ridge regression on the segments lime_base's feature
//! selection keeps. The map gives every element its segment's coefficient; the extras carry
//! the intercept, R^2 (`score`), `local_pred`, the weights per segment, and the top segments
//! of lime's `get_image_and_mask`. Volumes (supervoxels) and every task wrapper work alike.

use anyhow::{bail, ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Pass,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::distances::{self, DistanceMetric};
use crate::samples::{self, Rows};
use crate::segments::{ExampleSegments, SegmentationFn, Segments};
use crate::surrogate::{Explanation, FeatureSelection, Neighbourhood};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The segments (lime's `segmentation_fn`): `{"algorithm": "quickshift" | "slic" |
    /// "felzenszwalb", ...scikit-image's parameters}` computed by the host on the input the
    /// method explains, or a file of integer labels. Default lime's, quickshift with
    /// `kernel_size` 4, `max_dist` 200, `ratio` 0.2 (2D; a one-channel image is made RGB for
    /// it, as lime's `gray2rgb`), and SLIC with scikit-image's defaults on volumes.
    #[serde(default)]
    #[schemars(with = "Option<SegmentationFn>")]
    pub segmentation_fn: Option<Value>,
    /// Samples (lime's default 1000). With `samples`, its row count (and a different value is
    /// refused).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub num_samples: Option<usize>,
    /// Perturbed inputs evaluated in one forward pass. Default: as many as the memory budget
    /// allows (lime's is 10; the explanation is the same).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub batch_size: Option<usize>,
    /// What a switched-off segment takes: a value, one value per channel, or null (lime's
    /// default None) for each segment's own mean colour.
    #[serde(default)]
    pub hide_color: Option<HideColor>,
    /// Width of lime's kernel `sqrt(exp(-d^2 / kernel_width^2))` (lime's default 0.25).
    #[serde(default = "default_kernel_width")]
    pub kernel_width: f64,
    /// Distance of each sample's 0/1 row to the first (unperturbed) one, scikit-learn's
    /// metric names: `cosine` (lime's default), `euclidean`, `manhattan`.
    #[serde(default)]
    pub distance_metric: DistanceMetric,
    /// lime_base's feature selection: `auto` (forward selection for `num_features` up to 6,
    /// else highest weights), `none`, `forward_selection`, `highest_weights`, `lasso_path`.
    #[serde(default)]
    pub feature_selection: FeatureSelection,
    /// The most segments in the explanation (lime's default 100000: all of them).
    #[serde(default = "default_num_features")]
    #[schemars(range(min = 1))]
    pub num_features: usize,
    /// Seed of the samples, below 2^32: the samples are those of
    /// `LimeImageExplainer(random_state=random_seed)` (NumPy's legacy stream, drawn as lime
    /// draws it), so with the same segments the explanation is lime's. Default: the run's
    /// seed (`--seed`).
    #[serde(default)]
    pub random_seed: Option<u64>,
    /// A file (`.npy`) of the samples to use instead of random ones: `[num_samples,
    /// segments]` of 0 and 1, one column per segment in the order of the segment labels; the
    /// distances are measured to its first row (lime's is all ones).
    #[serde(default)]
    pub samples: Option<String>,
    /// What the map holds: `weights` (each element its segment's coefficient), `mask` (lime's
    /// `get_image_and_mask` mask, set by `mask`: 1 on the chosen segments, -1 on negative ones
    /// when neither `positive_only` nor `negative_only`, else 0) or `segments` (the labels).
    #[serde(default)]
    pub output: Output,
    /// The settings of lime's `get_image_and_mask`, for the extras' `mask_segments` and
    /// `"output": "mask"`.
    #[serde(default)]
    pub mask: MaskParams,
}

/// A switched-off segment's value.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(untagged)]
pub enum HideColor {
    /// The same value in every channel.
    Value(f64),
    /// One value per channel.
    PerChannel(Vec<f64>),
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    #[default]
    Weights,
    Mask,
    Segments,
}

/// `get_image_and_mask(label, positive_only, negative_only, num_features, min_weight)`.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct MaskParams {
    /// Only segments with a positive weight (lime's default true).
    #[serde(default = "yes")]
    pub positive_only: bool,
    /// Only segments with a negative weight (lime's default false).
    #[serde(default)]
    pub negative_only: bool,
    /// How many segments (lime's default 5).
    #[serde(default = "default_mask_features")]
    pub num_features: usize,
    /// Segments whose |weight| is below this are left out (lime's default 0).
    #[serde(default)]
    pub min_weight: f64,
}

impl Default for MaskParams {
    fn default() -> Self {
        MaskParams {
            positive_only: true,
            negative_only: false,
            num_features: default_mask_features(),
            min_weight: 0.0,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_kernel_width() -> f64 {
    0.25
}
fn default_num_features() -> usize {
    100_000
}
fn default_mask_features() -> usize {
    5
}

pub struct LimeImage;

impl Method for LimeImage {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "lime.lime_image",
            title: "LIME (image)",
            summary: "lime's image explainer: superpixels (quickshift) or supervoxels switched \
                      off at random, a ridge regression of the target score on them weighted by \
                      a cosine kernel; each element gets its segment's coefficient.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "Ribeiro, Singh & Guestrin, \"Why Should I Trust You?\": Explaining the \
                        Predictions of Any Classifier, KDD 2016; lime 0.2.0.1, \
                        lime_image.LimeImageExplainer, https://github.com/marcotcr/lime",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        check(&p)?;
        let seed = p.random_seed.unwrap_or_else(|| ctx.seed());
        let seed = u32::try_from(seed).map_err(|_| {
            anyhow::anyhow!(
                "`random_seed` is {seed}; NumPy's RandomState (lime's) takes seeds below 2^32"
            )
        })?;
        let segments = Segments::new(ctx, p.segmentation_fn.as_ref(), inputs)?;
        // Everything a user can get wrong is checked for every example before the model runs.
        let batch = inputs.size()[0];
        let mut plans = Vec::new();
        for e in 0..batch {
            let seg = segments.example(e)?;
            let rows = match &p.samples {
                Some(path) => samples::from_file(ctx, path, seg.labels.len(), p.num_samples)?,
                None => samples::random(seed, p.num_samples.unwrap_or(1000), seg.labels.len()),
            };
            let example = inputs.narrow(0, e, 1);
            let hidden = hidden(&example, &seg, p.hide_color.as_ref())?;
            plans.push((example, seg, rows, hidden));
        }
        let per_pass = match p.batch_size {
            Some(n) => n,
            None => ctx.examples_per_pass(&inputs.narrow(0, 0, 1), Pass::Forward),
        };
        let passes: usize = plans
            .iter()
            .map(|(_, _, r, _)| r.count.div_ceil(per_pass))
            .sum();
        let mut done = 0;
        let (mut maps, mut records) = (Vec::new(), Vec::new());
        for (example, seg, rows, hidden) in &plans {
            let scores = evaluate(ctx, target, (example, hidden), seg, rows, per_pass, |n| {
                done += n;
                ctx.progress(done, passes);
            })?;
            let features = seg.labels.len();
            let distances = distances::to_first(&rows.values, features, p.distance_metric);
            let weights = distances::kernel(&distances, p.kernel_width);
            let neighbourhood = Neighbourhood {
                rows: &rows.values,
                features,
                scores: &scores,
                weights: &weights,
            };
            let explanation = neighbourhood.explain(p.num_features, p.feature_selection)?;
            let chosen = mask_segments(&explanation, &p.mask);
            let per_segment = match p.output {
                Output::Weights => {
                    let mut w = vec![0.0; features];
                    explanation.weights.iter().for_each(|&(f, v)| w[f] = v);
                    w
                }
                Output::Mask => {
                    let mut m = vec![0.0; features];
                    chosen.iter().for_each(|&(f, v)| m[f] = v);
                    m
                }
                Output::Segments => seg.labels.iter().map(|&l| l as f64).collect(),
            };
            maps.push(spread(&per_segment, seg, example));
            records.push(Record {
                explanation,
                chosen,
                labels: seg.labels.clone(),
                prediction: scores[0],
                samples: rows.count,
            });
        }
        let map = Tensor::f_cat(&maps, 0)?.to_kind(inputs.kind());
        Ok(extras(Attribution::new(map), &records, &segments, &p))
    }
}

register_method!(LimeImage);

fn check(p: &Params) -> Result<()> {
    ensure!(
        p.kernel_width > 0.0 && p.kernel_width.is_finite(),
        "`kernel_width` must be a finite number above 0 (it is {})",
        p.kernel_width
    );
    ensure!(p.num_features >= 1, "`num_features` must be at least 1");
    ensure!(
        p.num_samples != Some(0) && p.batch_size != Some(0),
        "`num_samples` and `batch_size` must be at least 1"
    );
    ensure!(
        !(p.mask.positive_only && p.mask.negative_only),
        "`mask`: `positive_only` and `negative_only` cannot both be true (lime refuses it too); \
         set `positive_only` to false to show the negative segments"
    );
    ensure!(
        p.mask.min_weight.is_finite(),
        "`mask.min_weight` must be a finite number"
    );
    match &p.hide_color {
        Some(HideColor::Value(v)) if !v.is_finite() => {
            bail!("`hide_color` must be a finite number (it is {v})")
        }
        Some(HideColor::PerChannel(v)) if v.iter().any(|x| !x.is_finite()) => {
            bail!("`hide_color` must hold finite numbers (it is {v:?})")
        }
        _ => Ok(()),
    }
}

/// The image a switched-off segment takes its values from, `[C, N]` (N: the spatial
/// elements): lime's `fudged_image`.
fn hidden(example: &Tensor, seg: &ExampleSegments, hide: Option<&HideColor>) -> Result<Tensor> {
    let channels = example.size()[1];
    let flat = example.reshape([channels, -1]).to_kind(Kind::Double);
    let n = flat.size()[1];
    let device = example.device();
    Ok(match hide {
        None => {
            // Each segment's mean, channel by channel.
            let count = seg.labels.len() as i64;
            let column = seg.column.to_device(device);
            let sums = Tensor::zeros([channels, count], (Kind::Double, device))
                .index_add(1, &column, &flat);
            let sizes = Tensor::zeros([count], (Kind::Double, device)).index_add(
                0,
                &column,
                &Tensor::ones([n], (Kind::Double, device)),
            );
            (sums / sizes).index_select(1, &column)
        }
        Some(HideColor::Value(v)) => flat.full_like(*v),
        Some(HideColor::PerChannel(values)) => {
            ensure!(
                values.len() as i64 == channels,
                "`hide_color` has {} values, but the input has {channels} channels: give one \
                 value, or one per channel",
                values.len()
            );
            Tensor::from_slice(values)
                .to_device(device)
                .view([channels, 1])
                .expand([channels, n], false)
                .contiguous()
        }
    }
    .to_kind(example.kind()))
}

/// The target's score of every sample, `per_pass` perturbed inputs at a time; `progress(n)`
/// after each pass.
fn evaluate(
    ctx: &Context<'_>,
    target: i64,
    (example, hidden): (&Tensor, &Tensor),
    seg: &ExampleSegments,
    rows: &Rows,
    per_pass: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<f64>> {
    let size = example.size();
    let (channels, features) = (size[1], seg.labels.len());
    let device = example.device();
    let image = example.reshape([channels, -1]);
    let column = seg.column.to_device(device);
    let mut scores = Vec::with_capacity(rows.count);
    for start in (0..rows.count).step_by(per_pass) {
        ctx.check_cancelled()?;
        let end = (start + per_pass).min(rows.count);
        let chunk = &rows.values[start * features..end * features];
        let on = Tensor::from_slice(chunk)
            .view([(end - start) as i64, features as i64])
            .to_device(device)
            .gt(0.5);
        // [n, 1, N]: whether each element's segment is on in each sample.
        let keep = on.index_select(1, &column).unsqueeze(1);
        let mut shape = size.clone();
        shape[0] = (end - start) as i64;
        let perturbed = image.where_self(&keep, hidden).view(shape.as_slice());
        let s = ctx
            .evaluate(&perturbed, target)?
            .to_kind(Kind::Double)
            .to_device(Device::Cpu);
        scores.extend(Vec::<f64>::try_from(&s.reshape([-1]))?);
        progress(1);
    }
    Ok(scores)
}

/// Every element gets its segment's value: `[1, C, ...spatial]` like the example.
fn spread(per_segment: &[f64], seg: &ExampleSegments, example: &Tensor) -> Tensor {
    let size = example.size();
    let values = Tensor::from_slice(per_segment).to_device(example.device());
    values
        .index_select(0, &seg.column.to_device(example.device()))
        .view([1, 1, -1])
        .expand([1, size[1], -1], false)
        .reshape(size.as_slice())
}

/// The segments lime's `get_image_and_mask` marks, each with its mask value (1, or -1 for a
/// negative one when neither `positive_only` nor `negative_only`), as feature indices.
fn mask_segments(explanation: &Explanation, m: &MaskParams) -> Vec<(usize, f64)> {
    let exp = &explanation.weights;
    if m.positive_only || m.negative_only {
        exp.iter()
            .filter(|(_, w)| {
                if m.positive_only {
                    *w > 0.0 && *w > m.min_weight
                } else {
                    *w < 0.0 && w.abs() > m.min_weight
                }
            })
            .take(m.num_features)
            .map(|&(f, _)| (f, 1.0))
            .collect()
    } else {
        exp.iter()
            .take(m.num_features)
            .filter(|(_, w)| w.abs() >= m.min_weight)
            .map(|&(f, w)| (f, if w < 0.0 { -1.0 } else { 1.0 }))
            .collect()
    }
}

/// One example's results, for the extras.
struct Record {
    explanation: Explanation,
    chosen: Vec<(usize, f64)>,
    labels: Vec<i64>,
    prediction: f64,
    samples: usize,
}

/// The extras, one entry per example: lime's `intercept`, `score`, `local_pred` and
/// `local_exp` (`segment_weights`: [label, weight] by decreasing |weight|), the mask's
/// segments, and how the segments were made.
fn extras(map: Attribution, records: &[Record], segments: &Segments, p: &Params) -> Attribution {
    let each = |f: &dyn Fn(&Record) -> Value| Value::Array(records.iter().map(f).collect());
    let selection = match (p.feature_selection, p.num_features <= 6) {
        (FeatureSelection::Auto, true) => FeatureSelection::ForwardSelection,
        (FeatureSelection::Auto, false) => FeatureSelection::HighestWeights,
        (other, _) => other,
    };
    map.with_extra("intercept", each(&|r| json!(r.explanation.intercept)))
        .with_extra("score", each(&|r| json!(r.explanation.score)))
        .with_extra("local_pred", each(&|r| json!(r.explanation.local_pred)))
        .with_extra("prediction", each(&|r| json!(r.prediction)))
        .with_extra(
            "segment_weights",
            each(&|r| {
                let pairs = r.explanation.weights.iter();
                json!(pairs
                    .map(|&(f, w)| json!([r.labels[f], w]))
                    .collect::<Vec<_>>())
            }),
        )
        .with_extra(
            "mask_segments",
            each(&|r| {
                json!(r
                    .chosen
                    .iter()
                    .map(|&(f, v)| json!([r.labels[f], v]))
                    .collect::<Vec<_>>())
            }),
        )
        .with_extra("num_segments", each(&|r| json!(r.labels.len())))
        .with_extra("num_samples", each(&|r| json!(r.samples)))
        .with_extra("segmentation", segments.description.clone())
        .with_extra("feature_selection", json!(selection))
}
