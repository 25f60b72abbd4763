//! Models: anything that maps an input batch to an output tensor with autograd.

mod cuda;
mod frozen;
mod onnx;
mod torchscript;

/// The graph view of ONNX models (nodes, layers, hooks), from the executor's crate.
pub use esegeta_onnx::graph_model as graph;

use std::path::Path;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

pub use esegeta_onnx::OnnxModel;
pub use torchscript::TorchScriptModel;

/// A loaded model on one device.
pub trait Model {
    /// The raw model output for `inputs` `[B, ...]` (before any task wrapper), with autograd
    /// history when gradients are enabled.
    fn forward(&self, inputs: &Tensor) -> Result<Tensor>;

    /// Layer names, for methods that need them; TorchScript models have none.
    fn layers(&self) -> Result<Vec<String>>;

    /// Whether layer taps and backward rules are available.
    fn is_graph(&self) -> bool {
        self.graph().is_some()
    }

    /// The model as a graph, for layer taps and backward rules; `None` for black boxes.
    fn graph(&self) -> Option<&dyn graph::GraphModel> {
        None
    }

    /// The trainable parameters by name (`enc.conv.weight`), sharing storage with the model,
    /// so that cascading randomisation can re-initialise them in place.
    fn parameters(&self) -> Result<Vec<(String, Tensor)>>;
}

/// Which output of a model with several to explain: by position (a tuple's, a list's, a
/// dict's in its order, an ONNX graph's), or by name (a dict's key, an ONNX output's name).
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// None chosen: the first of a tuple or an ONNX graph's (deep supervision puts the full
    /// resolution first); of a dict, `logits` or its only entry, else an error listing them.
    Default,
    Index(usize),
    Name(String),
}

impl Output {
    /// `--output NAME` when given, else `--output-index N`, else the default.
    pub fn of(name: Option<&str>, index: Option<usize>) -> Output {
        match (name, index) {
            (Some(name), _) => Output::Name(name.to_string()),
            (None, Some(index)) => Output::Index(index),
            (None, None) => Output::Default,
        }
    }

    /// The position of this output among `names` (the model's outputs, in order; empty names
    /// for unnamed ones), or an error that lists what is there.
    pub fn position(&self, names: &[String], model: &str) -> Result<usize> {
        let found = match self {
            Output::Default => (!names.is_empty()).then_some(0),
            Output::Index(i) => (*i < names.len()).then_some(*i),
            Output::Name(name) => names.iter().position(|n| n == name),
        };
        found.ok_or_else(|| {
            let listed: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| match n.is_empty() {
                    true => format!("{i}"),
                    false => format!("{i}: `{n}`"),
                })
                .collect();
            anyhow::anyhow!(
                "the model {model} has no {}: its {} output(s) are {}; pick one with \
                 --output-index N or --output NAME (a config's model.output_index or \
                 model.output)",
                match self {
                    Output::Default => "outputs".to_string(),
                    Output::Index(i) => format!("output {i}"),
                    Output::Name(n) => format!("output named `{n}`"),
                },
                names.len(),
                listed.join(", ")
            )
        })
    }
}

/// Loads the model at `path` by its extension, on `device` with parameters of `kind`
/// (float for fp32; half or bfloat16 for reduced precision), explaining output `output_index`.
pub fn load(
    path: &Path,
    device: Device,
    kind: Kind,
    output_index: usize,
) -> Result<Box<dyn Model>> {
    load_output(path, device, kind, &Output::Index(output_index))
}

/// [`load`] with the output to explain chosen by position or by name.
pub fn load_output(
    path: &Path,
    device: Device,
    kind: Kind,
    output: &Output,
) -> Result<Box<dyn Model>> {
    load_frozen(path, device, kind, output, false)
}

/// [`load_output`]; with `freeze`, a TorchScript model also gets a copy frozen for inference
/// for its forward passes without gradients (`--freeze`, see frozen.rs).
pub fn load_frozen(
    path: &Path,
    device: Device,
    kind: Kind,
    output: &Output,
    freeze: bool,
) -> Result<Box<dyn Model>> {
    if !path.exists() {
        bail!(
            "the model file {} does not exist; check the path given to --model",
            path.display()
        );
    }
    match extension(path).as_str() {
        "pt" | "ts" | "pth" => Ok(Box::new(TorchScriptModel::load(
            path,
            device,
            kind,
            output.clone(),
            freeze,
        )?)),
        "onnx" => {
            if freeze {
                tracing::warn!(
                    "--freeze applies to TorchScript models; the ONNX model {} runs as it is",
                    path.display()
                );
            }
            Ok(Box::new(onnx::load(path, device, kind, output)?))
        }
        other => bail!(
            "{}: unknown model format `.{other}`; esegeta loads TorchScript (.pt, .ts) and ONNX (.onnx)",
            path.display()
        ),
    }
}

/// The device named by `--device`: `cpu` or `cuda:N`, checked against what this machine has.
pub fn parse_device(name: &str) -> Result<Device> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let Some(index) = name
        .strip_prefix("cuda:")
        .or(if name == "cuda" { Some("0") } else { None })
    else {
        bail!("unknown device `{name}`; use `cpu` or `cuda:N`");
    };
    let Ok(index) = index.parse::<usize>() else {
        bail!("unknown device `{name}`; use `cpu` or `cuda:N` with N a GPU index");
    };
    cuda::load()?;
    let count = tch::Cuda::device_count() as usize;
    if index >= count {
        bail!(
            "device `{name}` is not available: this machine has {count} CUDA device(s){}",
            if count == 0 { "; use --device cpu" } else { "" }
        );
    }
    Ok(Device::Cuda(index))
}

/// The lower-cased extension, with `.nii.gz` as `nii.gz`.
pub fn extension(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".nii.gz") {
        return "nii.gz".to_string();
    }
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// `images` `[N, C, H, W]` laid out channels-last. Where they need a gradient, through
/// `index_select` over every channel: its backward scatters into a fresh tensor of the default
/// layout, so the gradient reaching the caller's input comes back contiguous, as without the
/// change (a plain layout change would send it back channels-last, and plugins `view` it).
pub fn channels_last(images: &Tensor) -> Result<Tensor> {
    let images = match images.requires_grad() {
        true => {
            let every = Tensor::f_arange(images.size()[1], (Kind::Int64, images.device()))?;
            images.f_index_select(1, &every)?
        }
        false => images.shallow_clone(),
    };
    Ok(images
        .f_permute([0, 2, 3, 1])?
        .f_contiguous()?
        .f_permute([0, 3, 1, 2])?)
}
