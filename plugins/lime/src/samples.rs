//! The 0/1 rows lime perturbs the image by (1: the segment keeps the image, 0: it takes the
//! hidden colour): lime's own (`random_state.randint(0, 2, num_samples * n_features)`, the first
//! row set to ones, `LimeImageExplainer.data_labels`), or the rows of a file.

use anyhow::{anyhow, bail, ensure, Result};
use esegeta_plugin_api::Context;
use tch::{Device, Kind};

use esegeta_plugin_api::numpy_random::RandomState;

/// `num_samples x features` rows, row-major, in float64.
pub struct Rows {
    pub values: Vec<f64>,
    pub count: usize,
}

/// lime's samples for `LimeImageExplainer(random_state=seed)`: NumPy's legacy stream.
pub fn random(seed: u32, num_samples: usize, features: usize) -> Rows {
    let mut rng = RandomState::new(seed);
    let mut values: Vec<f64> = (0..num_samples * features)
        .map(|_| rng.randint(2) as f64)
        .collect();
    values[..features].iter_mut().for_each(|v| *v = 1.0);
    Rows {
        values,
        count: num_samples,
    }
}

/// The rows of the `.npy` (or other tensor) file `path`, `[num_samples, features]` of 0 and 1,
/// checked against the segment count; `num_samples`, when given, must be its row count.
pub fn from_file(
    ctx: &Context<'_>,
    path: &str,
    features: usize,
    num_samples: Option<usize>,
) -> Result<Rows> {
    let t = ctx
        .load_tensor(path)
        .map_err(|e| anyhow!("`samples` ({path}): {e:#}"))?
        .to_device(Device::Cpu)
        .to_kind(Kind::Double);
    let size = t.size();
    ensure!(
        size.len() == 2 && size[0] >= 1,
        "`samples` ({path}) has shape {size:?}; it must be a matrix [num_samples, segments] of \
         0 and 1, one row per sample"
    );
    let (count, columns) = (size[0] as usize, size[1] as usize);
    if columns != features {
        bail!(
            "`samples` ({path}) has {columns} columns, but the segmentation has {features} \
             segments: give one column per segment (in the order of the segment labels)"
        );
    }
    if let Some(n) = num_samples {
        ensure!(
            n == count,
            "`num_samples` is {n} but `samples` ({path}) has {count} rows; leave `num_samples` \
             out to use every row"
        );
    }
    let values = Vec::<f64>::try_from(&t.reshape([-1]))?;
    if let Some(bad) = values.iter().find(|v| **v != 0.0 && **v != 1.0) {
        bail!("`samples` ({path}) holds {bad}; every entry must be 0 or 1");
    }
    Ok(Rows { values, count })
}
