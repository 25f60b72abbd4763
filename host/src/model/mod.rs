//! Models: anything that maps an input batch to an output tensor with autograd.

mod cuda;
pub mod graph;
pub mod onnx;
mod torchscript;

use std::path::Path;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

pub use onnx::OnnxModel;
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

/// Loads the model at `path` by its extension, on `device` with parameters of `kind`
/// (float for fp32; half or bfloat16 for reduced precision).
pub fn load(
    path: &Path,
    device: Device,
    kind: Kind,
    output_index: usize,
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
            output_index,
        )?)),
        "onnx" => Ok(Box::new(OnnxModel::load(path, device, kind, output_index)?)),
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
