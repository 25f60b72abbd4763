//! ONNX tensors (initializers, Constant values) as libtorch tensors, with their bytes read
//! from the proto itself or from an external data file beside the model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use tch::{Kind, Tensor};

use super::proto::{data_type as dt, TensorProto, DATA_LOCATION_EXTERNAL};

/// Reads tensors of one model; external data files are read once and kept while loading.
pub struct TensorReader {
    model_path: PathBuf,
    files: Mutex<HashMap<PathBuf, std::sync::Arc<Vec<u8>>>>,
}

impl TensorReader {
    pub fn new(model_path: &Path) -> Self {
        TensorReader {
            model_path: model_path.to_path_buf(),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// The tensor on the CPU with its ONNX dtype.
    pub fn read(&self, proto: &TensorProto) -> Result<Tensor> {
        let kind = kind_of(proto.data_type).with_context(|| {
            format!(
                "the tensor `{}` has an element type esegeta cannot read",
                proto.name
            )
        })?;
        let numel: i64 = proto.dims.iter().product();
        if proto.dims.iter().any(|&d| d < 0) {
            bail!(
                "the tensor `{}` has a negative dimension {:?}",
                proto.name,
                proto.dims
            );
        }
        let bytes = if proto.data_location == DATA_LOCATION_EXTERNAL {
            self.external_bytes(proto)?
        } else if !proto.raw_data.is_empty() || numel == 0 {
            proto.raw_data.clone()
        } else {
            typed_bytes(proto, kind)?
        };
        let expected = numel as usize * kind.elt_size_in_bytes();
        if bytes.len() != expected {
            bail!(
                "the tensor `{}` of shape {:?} should hold {expected} bytes but holds {}; the \
                 model file or its external data file is damaged",
                proto.name,
                proto.dims,
                bytes.len()
            );
        }
        Ok(Tensor::f_from_data_size(&bytes, &proto.dims, kind)?)
    }

    fn external_bytes(&self, proto: &TensorProto) -> Result<Vec<u8>> {
        let entry = |key: &str| {
            proto
                .external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.as_str())
        };
        let location = entry("location").ok_or_else(|| {
            anyhow!(
                "the tensor `{}` is stored externally but names no file (external_data has no \
                 `location`)",
                proto.name
            )
        })?;
        let offset: usize = entry("offset").unwrap_or("0").parse().with_context(|| {
            format!("the tensor `{}` has a bad external data offset", proto.name)
        })?;
        let folder = self.model_path.parent().unwrap_or(Path::new("."));
        let path = folder.join(location);
        let data = self.file(&path, &proto.name)?;
        let length: usize = match entry("length") {
            Some(l) => l.parse().with_context(|| {
                format!("the tensor `{}` has a bad external data length", proto.name)
            })?,
            None => data.len().saturating_sub(offset),
        };
        data.get(offset..offset + length)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                anyhow!(
                    "the external data file {} is too short for the tensor `{}` (bytes {offset} \
                     to {} of {}); it does not belong to this model or is truncated",
                    path.display(),
                    proto.name,
                    offset + length,
                    data.len()
                )
            })
    }

    fn file(&self, path: &Path, tensor: &str) -> Result<std::sync::Arc<Vec<u8>>> {
        let mut files = self.files.lock().expect("no panics while holding the lock");
        if let Some(data) = files.get(path) {
            return Ok(data.clone());
        }
        let data = std::fs::read(path).map_err(|e| {
            anyhow!(
                "the model {} keeps its weights (tensor `{tensor}`) in the external data file \
                 {}, which cannot be read ({e}); keep the data file the exporter wrote beside \
                 the .onnx file, under the same name",
                self.model_path.display(),
                path.display()
            )
        })?;
        let data = std::sync::Arc::new(data);
        files.insert(path.to_path_buf(), data.clone());
        Ok(data)
    }
}

/// The libtorch kind of an ONNX element type.
pub fn kind_of(data_type: i32) -> Result<Kind> {
    Ok(match data_type {
        dt::FLOAT => Kind::Float,
        dt::UINT8 => Kind::Uint8,
        dt::INT8 => Kind::Int8,
        dt::INT16 => Kind::Int16,
        dt::INT32 => Kind::Int,
        dt::INT64 => Kind::Int64,
        dt::BOOL => Kind::Bool,
        dt::FLOAT16 => Kind::Half,
        dt::DOUBLE => Kind::Double,
        dt::BFLOAT16 => Kind::BFloat16,
        other => bail!(
            "ONNX element type {other} is not supported (float, double, float16, bfloat16, \
             int8/16/32/64, uint8 and bool are)"
        ),
    })
}

/// The little-endian bytes of a tensor stored in the proto's typed fields.
fn typed_bytes(proto: &TensorProto, kind: Kind) -> Result<Vec<u8>> {
    let ints32 = || -> Vec<i32> { proto.int32_data.clone() };
    Ok(match kind {
        Kind::Float => proto
            .float_data
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        Kind::Double => proto
            .double_data
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        Kind::Int64 => proto
            .int64_data
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        Kind::Int => ints32().iter().flat_map(|v| v.to_le_bytes()).collect(),
        // float16/bfloat16 keep their bit patterns in int32_data.
        Kind::Int16 | Kind::Half | Kind::BFloat16 => ints32()
            .iter()
            .flat_map(|&v| (v as u16).to_le_bytes())
            .collect(),
        Kind::Int8 | Kind::Uint8 | Kind::Bool => ints32().iter().map(|&v| v as u8).collect(),
        other => bail!("no typed storage for {other:?}"),
    })
}
