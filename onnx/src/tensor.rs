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
        if proto.dims.iter().any(|&d| d < 0) {
            bail!(
                "the tensor `{}` has a negative dimension {:?}",
                proto.name,
                proto.dims
            );
        }
        let numel = element_count(proto, kind)?;
        let bytes = if proto.data_location == DATA_LOCATION_EXTERNAL {
            self.external_bytes(proto)?
        } else if !proto.raw_data.is_empty() || numel == 0 {
            proto.raw_data.clone()
        } else {
            typed_bytes(proto, kind)?
        };
        let expected = numel * kind.elt_size_in_bytes();
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
        let path = confined(folder, location, &proto.name)?;
        let data = self.file(&path, &proto.name)?;
        let length: usize = match entry("length") {
            Some(l) => l.parse().with_context(|| {
                format!("the tensor `{}` has a bad external data length", proto.name)
            })?,
            None => data.len().saturating_sub(offset),
        };
        let end = offset.checked_add(length).unwrap_or(usize::MAX);
        data.get(offset..end).map(<[u8]>::to_vec).ok_or_else(|| {
            anyhow!(
                "the external data file {} is too short for the tensor `{}` (bytes {offset} \
                     to {} of {}); it does not belong to this model or is truncated",
                path.display(),
                proto.name,
                end,
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

/// The number of elements of `proto`, refused when its bytes could not even be counted.
fn element_count(proto: &TensorProto, kind: Kind) -> Result<usize> {
    proto
        .dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
        .and_then(|n| n.checked_mul(kind.elt_size_in_bytes()).map(|_| n))
        .ok_or_else(|| {
            anyhow!(
                "the tensor `{}` declares the shape {:?}, whose size overflows; the model file \
                 is damaged or hostile",
                proto.name,
                proto.dims
            )
        })
}

/// The external data file `location` of tensor `tensor`, which must lie inside the model's
/// `folder`: a model from elsewhere must not read other files (an absolute path, `..`, or a
/// symbolic link that leads out of the folder), as ONNX's own loader refuses them.
pub fn confined(folder: &Path, location: &str, tensor: &str) -> Result<PathBuf> {
    use std::path::Component;
    let relative = Path::new(location);
    let escapes = relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if location.is_empty() || escapes {
        bail!(
            "the tensor `{tensor}` names the external data file `{location}`, which is not a \
             plain file name inside the model's folder (absolute paths and `..` are refused, \
             so that a model cannot read other files); keep the data file beside the .onnx \
             file and name it relative to it"
        );
    }
    let path = folder.join(relative);
    if let (Ok(real), Ok(real_folder)) = (path.canonicalize(), folder.canonicalize()) {
        if !real.starts_with(&real_folder) {
            bail!(
                "the tensor `{tensor}` names the external data file `{location}`, a link to {} \
                 outside the model's folder {}; refused, so that a model cannot read other \
                 files: copy the data file itself beside the .onnx file",
                real.display(),
                real_folder.display()
            );
        }
    }
    Ok(path)
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

#[cfg(test)]
mod tests {
    use super::super::proto::StringStringEntryProto;
    use super::*;

    /// A float tensor of `dims` stored in the external file `location`.
    fn external(dims: &[i64], location: &str, extra: &[(&str, &str)]) -> TensorProto {
        let entry = |k: &str, v: &str| StringStringEntryProto {
            key: k.into(),
            value: v.into(),
        };
        let mut external_data = vec![entry("location", location)];
        external_data.extend(extra.iter().map(|(k, v)| entry(k, v)));
        TensorProto {
            dims: dims.to_vec(),
            data_type: dt::FLOAT,
            name: "w".into(),
            external_data,
            data_location: DATA_LOCATION_EXTERNAL,
            ..Default::default()
        }
    }

    #[test]
    fn external_data_outside_the_models_folder_or_past_its_end_is_refused() {
        let root = std::env::temp_dir().join(format!("esegeta-hostile-{}", std::process::id()));
        let folder = root.join("model");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(root.join("secret.bin"), [7u8; 16]).unwrap();
        std::fs::write(folder.join("model.onnx.data"), [0u8; 16]).unwrap();
        std::os::unix::fs::symlink(root.join("secret.bin"), folder.join("link.data")).unwrap();
        let reader = TensorReader::new(&folder.join("model.onnx"));
        let refused = |proto: TensorProto, words: &[&str]| {
            let e = format!("{:#}", reader.read(&proto).unwrap_err());
            for w in words {
                assert!(e.contains(w), "{w:?} missing from: {e}");
            }
        };
        let secret = root.join("secret.bin").display().to_string();
        refused(
            external(&[4], &secret, &[]),
            &["tensor `w`", "absolute paths"],
        );
        refused(
            external(&[4], "../secret.bin", &[]),
            &["`../secret.bin`", "`..`"],
        );
        refused(
            external(&[4], "link.data", &[]),
            &["a link to", "outside the model's folder"],
        );
        refused(
            external(
                &[4],
                "model.onnx.data",
                &[("offset", "8"), ("length", "16")],
            ),
            &["too short for the tensor `w`"],
        );
        // 16 bytes are 4 floats, not 8.
        refused(
            external(&[8], "model.onnx.data", &[]),
            &["should hold 32 bytes but holds 16"],
        );
        refused(
            external(&[1 << 40, 1 << 40], "model.onnx.data", &[]),
            &["overflows"],
        );
        // The same file named plainly is read.
        let ok = reader
            .read(&external(&[4], "./model.onnx.data", &[]))
            .unwrap();
        assert_eq!(ok.size(), [4]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
