//! `.npy` files: any numeric dtype, byte order or memory order in; float32 out.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use npyz::half::f16;
use npyz::{DType, NpyFile, Order, TypeChar};
use tch::Tensor;

use super::write_atomically;

/// Reads a `.npy` as a float32 tensor of the stored shape.
pub fn read(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let npy = NpyFile::new(&bytes[..])
        .map_err(|e| anyhow!("{} is not a valid .npy file: {e}", path.display()))?;
    let shape: Vec<i64> = npy.shape().iter().map(|&d| d as i64).collect();
    let order = npy.order();
    let DType::Plain(ty) = npy.dtype() else {
        bail!(
            "{} holds a structured or nested dtype; esegeta reads numeric arrays",
            path.display()
        );
    };
    // The header is the file's word only: what it promises must be in the file before
    // anything of that size is allocated.
    let declared = super::declared_values(npy.shape(), path)?;
    let needed = declared.saturating_mul(ty.size_field());
    if needed > bytes.len() as u64 {
        bail!(
            "{} is truncated or damaged: its header declares {declared} values of {} bytes \
             ({needed} bytes), but the file holds {} bytes",
            path.display(),
            ty.size_field(),
            bytes.len()
        );
    }
    let values = as_f32(npy, ty.type_char(), ty.size_field())
        .with_context(|| format!("{} is not a valid .npy file", path.display()))?;
    let expected: i64 = shape.iter().product();
    if values.len() as i64 != expected {
        bail!(
            "{} is truncated: its header promises {expected} values",
            path.display()
        );
    }
    let tensor = match order {
        Order::C => Tensor::from_slice(&values).view(shape.as_slice()),
        Order::Fortran => {
            let reversed: Vec<i64> = shape.iter().rev().copied().collect();
            let dims: Vec<i64> = (0..shape.len() as i64).rev().collect();
            Tensor::from_slice(&values)
                .view(reversed.as_slice())
                .permute(dims.as_slice())
                .contiguous()
        }
    };
    Ok(tensor)
}

/// The values converted to f32, whatever numeric dtype the file stores.
fn as_f32(npy: NpyFile<&[u8]>, kind: TypeChar, size: u64) -> Result<Vec<f32>> {
    use TypeChar::*;
    match (kind, size) {
        (Float, 2) => convert(npy, |v: f16| v.to_f32()),
        (Float, 4) => convert(npy, |v: f32| v),
        (Float, 8) => convert(npy, |v: f64| v as f32),
        (Int, 1) => convert(npy, |v: i8| v as f32),
        (Int, 2) => convert(npy, |v: i16| v as f32),
        (Int, 4) => convert(npy, |v: i32| v as f32),
        (Int, 8) => convert(npy, |v: i64| v as f32),
        (Uint, 1) => convert(npy, |v: u8| v as f32),
        (Uint, 2) => convert(npy, |v: u16| v as f32),
        (Uint, 4) => convert(npy, |v: u32| v as f32),
        (Uint, 8) => convert(npy, |v: u64| v as f32),
        (Bool, 1) => convert(npy, |v: bool| v as u8 as f32),
        (other, size) => {
            bail!("it holds dtype {other:?}{size}; esegeta reads float, int, uint and bool arrays")
        }
    }
}

fn convert<T: npyz::Deserialize>(npy: NpyFile<&[u8]>, f: impl Fn(T) -> f32) -> Result<Vec<f32>> {
    Ok(npy.into_vec::<T>()?.into_iter().map(f).collect())
}

/// Writes a float32 CPU tensor as `.npy`.
pub fn write(map: &Tensor, out: &Path) -> Result<()> {
    write_atomically(out, |tmp| {
        map.write_npy(tmp)
            .with_context(|| format!("cannot write {}", out.display()))
    })
}
