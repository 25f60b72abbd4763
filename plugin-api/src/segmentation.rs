//! [`FeatureMaskSpec`]: what a `feature_mask` parameter takes: a file of integer labels, or a
//! segmentation the host computes on the method's input (superpixels, supervoxels) through
//! [`crate::Context::segment`].

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A file of labels, or `{"segmentation": {"algorithm": "slic", ...params}}`.
#[derive(Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum FeatureMaskSpec {
    /// A file (npy, NIfTI, PNG) of integer labels over the input.
    File(String),
    /// Superpixels or supervoxels of the input the method explains (after the run's
    /// preprocessing), computed by the host.
    Segmentation(Segmentation),
}

/// `{"segmentation": {...}}`.
#[derive(Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Segmentation {
    pub segmentation: SegmentationSpec,
}

/// The algorithm and its parameters, with scikit-image's names and defaults (`esegeta
/// segment` takes the same; the README lists them). The host checks the parameters.
#[derive(Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct SegmentationSpec {
    pub algorithm: Algorithm,
    /// The algorithm's parameters, e.g. `n_segments`, `compactness` (slic), `scale`
    /// (felzenszwalb), `kernel_size` (quickshift).
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

#[derive(Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// SLIC superpixels (2D) and supervoxels (3D).
    Slic,
    /// Felzenszwalb's graph-based segmentation (2D).
    Felzenszwalb,
    /// Quick shift (2D).
    Quickshift,
}

impl SegmentationSpec {
    /// The spec as one JSON object, `{"algorithm": ..., params}`, as the host reads it.
    pub fn to_json(&self) -> Value {
        let mut object = self.params.clone();
        let name = match self.algorithm {
            Algorithm::Slic => "slic",
            Algorithm::Felzenszwalb => "felzenszwalb",
            Algorithm::Quickshift => "quickshift",
        };
        object.insert("algorithm".into(), Value::String(name.into()));
        Value::Object(object)
    }
}
