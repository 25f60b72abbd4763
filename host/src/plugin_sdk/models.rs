//! The conformance kit's built-in models and inputs, embedded in the binary so that `esegeta
//! plugin check` needs no files: the ONNX exports of tools/make_layer_fixtures.py's
//! `Classifier2d` (conv-relu-maxpool-conv-relu-avgpool-linear, [B, 3, 8, 8] -> [B, 3]) and
//! `Segmenter3d` (a tiny 3D UNet, [B, 1, 8, 8, 8] -> [B, 2, 8, 8, 8]), run by the host's own
//! ONNX importer, so layer, neuron and rule-based methods run on them too.

use std::path::Path;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::model::{Model, OnnxModel};
use crate::task::{TaskKind, WrapperKind};

/// One built-in case: a model, an input, how its output becomes scores, and a layer.
pub struct Case {
    pub name: &'static str,
    onnx: &'static [u8],
    data: &'static [u8],
    pub input_shape: &'static [i64],
    pub task: TaskKind,
    pub wrapper: Option<WrapperKind>,
    /// The layer given to methods that need one (`--layer`).
    pub layer: &'static str,
    pub target: i64,
}

pub const CLASSIFIER_2D: Case = Case {
    name: "2D classifier",
    onnx: include_bytes!("../../../tests/fixtures/layers/classifier2d.onnx"),
    data: include_bytes!("../../../tests/fixtures/layers/classifier2d.onnx.data"),
    input_shape: &[2, 3, 8, 8],
    task: TaskKind::Classification,
    wrapper: None,
    layer: "conv2",
    target: 1,
};

pub const SEGMENTER_3D: Case = Case {
    name: "3D segmenter (argmax wrapper)",
    onnx: include_bytes!("../../../tests/fixtures/layers/segmenter3d.onnx"),
    data: include_bytes!("../../../tests/fixtures/layers/segmenter3d.onnx.data"),
    input_shape: &[2, 1, 8, 8, 8],
    task: TaskKind::Segmentation,
    wrapper: Some(WrapperKind::Argmax),
    layer: "mid",
    target: 1,
};

/// The case for `dims` spatial dimensions (2 or 3).
pub fn case(dims: usize) -> &'static Case {
    if dims == 3 {
        &SEGMENTER_3D
    } else {
        &CLASSIFIER_2D
    }
}

impl Case {
    /// Writes the model into `dir` (the exporter's file name: the graph names its data file)
    /// and loads it with the host's importer.
    pub fn model(&self, dir: &Path) -> Result<Box<dyn Model>> {
        let stem = if self.input_shape.len() == 5 {
            "segmenter3d"
        } else {
            "classifier2d"
        };
        let onnx = dir.join(format!("{stem}.onnx"));
        std::fs::write(&onnx, self.onnx)
            .and_then(|_| std::fs::write(dir.join(format!("{stem}.onnx.data")), self.data))
            .with_context(|| format!("cannot write the built-in model into {}", dir.display()))?;
        Ok(Box::new(OnnxModel::load(
            &onnx,
            Device::Cpu,
            Kind::Float,
            0,
        )?))
    }

    /// A fixed batch of two in [0, 1) (methods that need a batch, such as feature permutation,
    /// run too): the same values on every run and machine (no RNG).
    pub fn input(&self) -> Tensor {
        let n: i64 = self.input_shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1009) as f32) / 1009.0)
            .collect();
        Tensor::from_slice(&values).reshape(self.input_shape)
    }

    /// `[2, 3, 8, 8]`, for messages.
    pub fn shape_text(&self) -> String {
        format!("{:?}", self.input_shape)
    }
}
