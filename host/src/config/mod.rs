//! The run config: one JSON file (comments allowed) describing the model, the inputs, the
//! methods and how to execute and write them. `check` validates it against its schema and the
//! plugins' parameter schemas, every error at once, before any job starts.

pub mod check;
mod dry_run;
mod prune;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use check::{check, check_with, schema_with_methods};

use crate::patch::PatchSpec;
use crate::task::{TaskKind, WrapperKind};

#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The model to explain; or give `models` to compare several.
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// Several models, each explained with every method (jobs = inputs x models x methods x
    /// targets); each needs a distinct `name`, which labels its outputs.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub models: Option<Vec<ModelConfig>>,
    /// The inputs; each path may be a glob (`scans/*.nii.gz`).
    #[schemars(length(min = 1))]
    pub inputs: Vec<InputSpec>,
    #[serde(default)]
    pub preprocessing: Preprocessing,
    /// The methods to run on every input and target.
    #[schemars(length(min = 1))]
    pub methods: Vec<MethodSpec>,
    #[serde(default)]
    pub execution: Execution,
    pub output: OutputConfig,
    /// Cascading model-parameter randomisation (Adebayo et al., 2018): the chosen methods are
    /// re-run as the model's layers are re-initialised from the output end.
    #[serde(default)]
    pub randomisation: Option<Randomisation>,
}

impl RunConfig {
    /// The models of the run, from `models` or the single `model`.
    pub fn model_list(&self) -> Vec<&ModelConfig> {
        match (&self.models, &self.model) {
            (Some(list), _) => list.iter().collect(),
            (None, Some(one)) => vec![one],
            (None, None) => Vec::new(),
        }
    }
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// TorchScript (.pt, .ts) or ONNX (.onnx, with its .onnx.data beside it) file, relative to
    /// the config's folder.
    pub path: PathBuf,
    /// The label of this model's outputs, jobs and report columns. Default: the file stem.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "classification")]
    pub task: TaskKind,
    /// How a segmentation output becomes class scores (default argmax).
    #[serde(default)]
    pub wrapper: Option<WrapperKind>,
    /// `fixed`: the argmax/threshold mask is computed once on the unperturbed input.
    #[serde(default)]
    pub mask_mode: MaskMode,
    /// Which output of a model with several (deep supervision) to explain.
    #[serde(default)]
    pub output_index: Option<usize>,
    /// The output to explain by name instead: a dict output's key (HuggingFace's `logits`) or
    /// an ONNX output's name.
    #[serde(default)]
    pub output: Option<String>,
    /// A TorchScript model's forward passes without gradients run on a copy frozen for
    /// inference (`esegeta explain --freeze`): CPU and fp32 only, maps within about 1e-6 of
    /// their scale; pays on batch-normed CNNs. Default false.
    #[serde(default)]
    pub freeze: bool,
}

impl ModelConfig {
    /// The output to explain: `output` by name when given, else `output_index`.
    pub fn output(&self) -> crate::model::Output {
        crate::model::Output::of(self.output.as_deref(), self.output_index)
    }

    /// The label its outputs and jobs go by: `name`, else the file stem.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let file = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        file.rsplit_once('.')
            .map(|(stem, _)| stem.to_string())
            .unwrap_or(file)
    }
}

fn classification() -> TaskKind {
    TaskKind::Classification
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MaskMode {
    #[default]
    Dynamic,
    Fixed,
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// A file (.npy, .nii, .nii.gz, .png, .jpg) or a glob matching several.
    pub path: String,
    /// The score columns to explain.
    #[schemars(length(min = 1))]
    pub targets: Vec<i64>,
    /// The region of the `mask` wrapper (ground truth or ROI), npy or NIfTI.
    #[serde(default)]
    pub mask: Option<PathBuf>,
    /// This input's ground-truth region (npy or NIfTI, on the input's grid): given to every
    /// metric that takes a `mask` and does not set one, so one metric entry scores each
    /// input against its own truth. With a glob, `{stem}` stands for each file's name
    /// without extension (`truth/{stem}_mask.nii.gz`).
    #[serde(default)]
    pub ground_truth: Option<String>,
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Randomisation {
    /// Off keeps the section in the config without running it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `layer`: one stage per module owning parameters (`dec.conv2`); `block`: one per
    /// top-level module (`dec`).
    #[serde(default)]
    pub granularity: Granularity,
    /// The names of the methods to re-run at every stage (default: every attribution method).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// The labels of the models to randomise (default: every model).
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Seed of the re-initialisation (default: the run's seed).
    #[serde(default)]
    pub seed: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    #[default]
    Layer,
    Block,
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    /// Centre crop of the spatial dims to this size (2D `[H, W]`, 3D `[i, j, k]`). Maps are
    /// padded back onto the input's grid with zeros.
    #[serde(default)]
    pub crop: Option<Vec<i64>>,
    /// Linear resize of the (cropped) spatial dims to this size. Maps are resized back onto
    /// the input's grid, for display and overlay (resizing does not preserve their sums).
    #[serde(default)]
    pub resize: Option<Vec<i64>>,
    /// Intensity normalisation of each input before the model sees it: `"none"`, `"minmax"`,
    /// `"zscore"`, or per channel `{"mean": [...], "std": [...]}`.
    #[serde(default)]
    pub normalize: Normalize,
    /// Channel order of 2D images as the model expects it.
    #[serde(default)]
    pub channel_order: ChannelOrder,
}

/// Intensity normalisation: `"none"`, `"minmax"` or `"zscore"` over the whole input, or
/// `{"mean": [...], "std": [...]}` per channel.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Normalize {
    /// One statistic over the whole input.
    Whole(WholeNormalize),
    /// Per channel, as torchvision's `Normalize` (`(x - mean[c]) / std[c]`).
    Channels(ChannelStats),
}

impl Default for Normalize {
    fn default() -> Self {
        Normalize::Whole(WholeNormalize::None)
    }
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WholeNormalize {
    /// The values as loaded.
    #[default]
    None,
    /// Scaled to [0, 1] by the input's minimum and maximum.
    Minmax,
    /// Zero mean, unit standard deviation.
    Zscore,
}

/// A model's training statistics, one value per input channel in the order the model takes
/// them (after `channel_order`), e.g. ImageNet's `{"mean": [0.485, 0.456, 0.406], "std":
/// [0.229, 0.224, 0.225]}` for images loaded in [0, 1].
#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelStats {
    /// Subtracted from each channel.
    #[schemars(length(min = 1))]
    pub mean: Vec<f64>,
    /// Each channel is divided by its value after the mean is subtracted; every value > 0.
    #[schemars(length(min = 1), extend("items" = {"type": "number", "exclusiveMinimum": 0.0}))]
    pub std: Vec<f64>,
}

#[derive(
    Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct MethodSpec {
    /// The method id, e.g. `captum.integrated_gradients` (`esegeta methods` lists them).
    pub id: String,
    /// Names this entry's outputs; needed when one method appears twice. Default: the id.
    #[serde(default)]
    pub name: Option<String>,
    /// The method's parameters (Captum's keyword names); checked against its schema.
    #[serde(default = "empty_object")]
    pub params: Value,
    /// The layer of a layer method.
    #[serde(default)]
    pub layer: Option<String>,
    /// Overrides of the execution settings for this method.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub precision: Option<Precision>,
    #[serde(default)]
    pub patching: Option<PatchSpec>,
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub timeout_s: Option<f64>,
    #[serde(default)]
    pub outputs: Option<Vec<Format>>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl MethodSpec {
    /// The name its outputs and jobs go by.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// float32, PyTorch's and Captum's default.
    #[default]
    Fp32,
    /// bfloat16 (model and input cast), falling back to fp32 when the map holds NaN or inf.
    Bf16,
    /// float16 (autocast on CUDA, cast elsewhere), with the same fallback.
    Fp16,
    /// float64: slower, and the reference that tells float32 rounding from error. A map that
    /// moves between fp32 and fp64 is sensitive to rounding there (a ReLU input near zero).
    Fp64,
}

impl Precision {
    /// bf16 and fp16, whose maps are checked for NaN and inf and recomputed in fp32.
    pub fn is_reduced(self) -> bool {
        matches!(self, Precision::Bf16 | Precision::Fp16)
    }
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Jobs run in worker threads of this process; timeouts cancel cooperatively.
    #[default]
    None,
    /// Each job runs in a child `esegeta` process, killed at its deadline; a crash or hang
    /// costs that job only.
    Process,
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    /// Device slots: `cpu`, `cuda:N`.
    #[serde(default = "cpu")]
    #[schemars(length(min = 1))]
    pub devices: Vec<String>,
    /// Workers (each with its own model copy) per device.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub workers_per_device: usize,
    #[serde(default)]
    pub precision: Precision,
    /// Sliding-window patching, for models trained on patches or volumes too large for memory.
    #[serde(default)]
    pub patching: Option<PatchSpec>,
    /// Seconds a job may take; none by default.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub timeout_s: Option<f64>,
    #[serde(default)]
    pub isolation: Isolation,
    /// Memory a method may use to batch its model evaluations, in MiB.
    #[serde(default = "default_budget")]
    #[schemars(range(min = 1))]
    pub memory_budget_mb: u64,
    /// Seed of sampling methods; the same seed repeats a run.
    #[serde(default)]
    pub seed: u64,
}

fn cpu() -> Vec<String> {
    vec!["cpu".to_string()]
}

fn one() -> usize {
    1
}

fn default_budget() -> u64 {
    1024
}

impl Default for Execution {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every execution setting has a default")
    }
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// The run's folder, relative to the config's folder.
    pub folder: PathBuf,
    /// Formats of each map; default npy and png, plus nii.gz for NIfTI inputs.
    #[serde(default)]
    pub formats: Option<Vec<Format>>,
    /// How a PNG shows a map with several channels (an RGB input's attribution, a layer's
    /// channels): `sum` adds them (the default), `max-abs` keeps each pixel's value of largest
    /// magnitude with its sign, `each` writes one PNG per channel (`<stem>_c0.png`, ...), all
    /// on one colour scale. The PNG's caption says which.
    #[serde(default)]
    pub png_channels: PngChannels,
}

/// How a PNG combines a map's channels into the one plane it draws.
#[derive(
    Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum PngChannels {
    /// The sum over channels.
    #[default]
    Sum,
    /// Per pixel, the channel value of largest magnitude, with its sign.
    MaxAbs,
    /// One PNG per channel, on one colour scale.
    Each,
}

#[derive(
    Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum Format {
    #[serde(rename = "npy")]
    Npy,
    #[serde(rename = "nii.gz")]
    NiiGz,
    #[serde(rename = "png")]
    Png,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Npy => "npy",
            Format::NiiGz => "nii.gz",
            Format::Png => "png",
        }
    }
}

/// A config as read from disk, with the folder its relative paths are relative to.
pub struct Loaded {
    pub config: RunConfig,
    pub raw: Value,
    pub base_dir: PathBuf,
    pub path: PathBuf,
}

impl Loaded {
    /// `path` relative to the config's folder, with `.` and `..` resolved lexically (so that
    /// messages and the manifest show `out/run`, not `configs/../out/run`).
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        use std::path::Component;
        let mut out = PathBuf::new();
        for part in self.base_dir.join(path).components() {
            match part {
                Component::CurDir => {}
                Component::ParentDir
                    if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
                {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    }

    pub fn output_folder(&self) -> PathBuf {
        self.resolve(&self.config.output.folder)
    }
}

/// Reads the JSON (comments stripped) without checking it; see [`check`].
pub fn read(path: &Path) -> Result<Value> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the config {}", path.display()))?;
    let reader = json_comments::StripComments::new(std::io::BufReader::new(file));
    serde_json::from_reader(reader).with_context(|| format!("{} is not valid JSON", path.display()))
}
