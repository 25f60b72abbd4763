//! [`Spec`]: which algorithm and its parameters, from the JSON object a `feature_mask` or
//! `esegeta segment --algorithm A --params JSON` gives, with errors that name the parameter.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::felzenszwalb::{felzenszwalb, FelzenszwalbParams};
use super::quickshift::{quickshift, QuickshiftParams};
use super::slic::{slic, SlicParams};
use super::Image;

/// The algorithms, by the names the spec takes.
pub const ALGORITHMS: [&str; 3] = ["slic", "felzenszwalb", "quickshift"];

#[derive(Clone, Debug)]
pub enum Spec {
    /// With the ROI file's path resolved.
    Slic(SlicParams, Option<PathBuf>),
    Felzenszwalb(FelzenszwalbParams),
    Quickshift(QuickshiftParams),
}

pub(crate) fn yes() -> bool {
    true
}

impl Spec {
    /// `{"algorithm": "slic", "n_segments": 50, ...}`; paths relative to `base_dir`.
    pub fn parse(spec: &Value, base_dir: &Path) -> Result<Self> {
        let Some(object) = spec.as_object() else {
            bail!(
                "a segmentation spec must be a JSON object such as {{\"algorithm\": \"slic\", \
                 \"n_segments\": 100}}; this one is {spec}"
            );
        };
        let mut params = object.clone();
        let algorithm = match params.remove("algorithm") {
            Some(Value::String(a)) => a,
            Some(other) => bail!("the segmentation's `algorithm` must be a name, not {other}"),
            None => bail!(
                "the segmentation spec names no `algorithm`; give one of {}",
                ALGORITHMS.join(", ")
            ),
        };
        Self::from_parts(&algorithm, params, base_dir)
    }

    /// The algorithm named `algorithm` with the parameters `params`.
    pub fn from_parts(
        algorithm: &str,
        params: Map<String, Value>,
        base_dir: &Path,
    ) -> Result<Self> {
        Ok(match algorithm {
            "slic" => {
                let p: SlicParams = typed(algorithm, params)?;
                p.check()?;
                let mask = p.mask.as_ref().map(|m| base_dir.join(m));
                Spec::Slic(p, mask)
            }
            "felzenszwalb" => Spec::Felzenszwalb(typed(algorithm, params)?),
            "quickshift" => Spec::Quickshift(typed(algorithm, params)?),
            other => bail!(
                "unknown segmentation algorithm `{other}`; esegeta has {}",
                ALGORITHMS.join(", ")
            ),
        })
    }

    /// The labels of one example, raster order over its spatial grid.
    pub fn run(&self, image: &Image) -> Result<Vec<i64>> {
        match self {
            Spec::Slic(p, mask) => {
                let roi = mask.as_deref().map(|m| load_mask(m, image)).transpose()?;
                slic(image, p, roi.as_deref())
            }
            Spec::Felzenszwalb(p) => felzenszwalb(image, p),
            Spec::Quickshift(p) => quickshift(image, p),
        }
    }
}

/// The parameters as `T`, serde's complaint (unknown field, wrong type) prefixed by where.
fn typed<T: DeserializeOwned>(algorithm: &str, params: Map<String, Value>) -> Result<T> {
    serde_json::from_value(Value::Object(params)).map_err(|e| {
        anyhow::anyhow!(
            "the {algorithm} segmentation's parameters are wrong: {e} (`esegeta segment --help` \
             and the README list them)"
        )
    })
}

/// The ROI in `path`, true where non-zero, on `image`'s spatial grid.
fn load_mask(path: &Path, image: &Image) -> Result<Vec<bool>> {
    let t = crate::io::load_tensor(path)
        .with_context(|| format!("cannot read the slic `mask` {}", path.display()))?;
    let values = Vec::<f32>::try_from(t.to_kind(tch::Kind::Float).flatten(0, -1))?;
    let size = t.size();
    let spatial: Vec<i64> = size.iter().copied().filter(|&d| d != 1).collect();
    let want: Vec<i64> = image
        .dims
        .iter()
        .map(|&d| d as i64)
        .filter(|&d| d != 1)
        .collect();
    ensure!(
        values.len() == image.pixels() && spatial == want,
        "the slic `mask` {} has shape {size:?}, which is not the input's spatial grid {:?}; \
         give an ROI on that grid",
        path.display(),
        &image.dims[usize::from(image.is_2d)..]
    );
    let mask: Vec<bool> = values.iter().map(|&v| v != 0.0).collect();
    ensure!(
        mask.iter().any(|&m| m),
        "the slic `mask` {} selects nothing (it is zero everywhere); give an ROI with at least \
         one non-zero element",
        path.display()
    );
    Ok(mask)
}
