//! ONNX models as the host's [`Model`]: the executor lives in its own crate (`esegeta-onnx`);
//! this adapter picks the output to explain and answers the host's questions of a model.

use std::path::Path;

use anyhow::Result;
use esegeta_onnx::graph_model::GraphModel;
use esegeta_onnx::OnnxModel;
use tch::{Device, Kind, Tensor};

use super::{Model, Output};

/// Loads the ONNX model at `path`, explaining `output` (by position or by name).
pub fn load(path: &Path, device: Device, kind: Kind, output: &Output) -> Result<OnnxModel> {
    OnnxModel::load_output(path, device, kind, |names, model| {
        output.position(names, model)
    })
}

impl Model for OnnxModel {
    fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        OnnxModel::forward(self, inputs)
    }

    fn layers(&self) -> Result<Vec<String>> {
        Ok(self.layer_names())
    }

    fn graph(&self) -> Option<&dyn GraphModel> {
        Some(self)
    }

    fn parameters(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(OnnxModel::parameters(self))
    }
}
