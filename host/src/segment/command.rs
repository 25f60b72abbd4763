//! `esegeta segment`: the superpixels or supervoxels of one input file, written as a label map
//! on its grid (`.npy` int64, `.nii.gz` with the source's affine, 16-bit `.png`). The file is
//! segmented as read, without a run's preprocessing (as LIME segments the raw image), so the
//! labels can be passed to any method as its `feature_mask` file.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::spec::{Spec, ALGORITHMS};
use crate::io::labels::{check_labels_output, write_labels};

#[derive(clap::Args)]
pub struct SegmentArgs {
    /// The input: .npy (with its batch dimension), .nii/.nii.gz, .png/.jpg.
    #[arg(long)]
    pub input: PathBuf,
    /// slic, felzenszwalb or quickshift (scikit-image 0.26's algorithms).
    #[arg(long)]
    pub algorithm: String,
    /// The algorithm's parameters as a JSON object with scikit-image's names, e.g.
    /// '{"n_segments": 50, "compactness": 10}' (the README lists them and their defaults).
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// Where to write the labels; the extension picks the format (.npy, .nii.gz, .png).
    /// Repeat it for several formats.
    #[arg(long, required = true)]
    pub out: Vec<PathBuf>,
}

/// Runs `esegeta segment`.
pub fn run(args: SegmentArgs) -> Result<()> {
    for out in &args.out {
        check_labels_output(out)?;
    }
    let params: Value = serde_json::from_str(&args.params)
        .with_context(|| format!("--params is not valid JSON: {}", args.params))?;
    let Value::Object(params) = params else {
        bail!(
            "--params must be a JSON object of the algorithm's parameters, such as \
             '{{\"n_segments\": 50}}'; got {}",
            args.params
        );
    };
    if params.contains_key("algorithm") {
        bail!(
            "--params names an `algorithm`; give it with --algorithm ({})",
            ALGORITHMS.join(", ")
        );
    }
    let spec = Spec::from_parts(&args.algorithm, params, std::path::Path::new(""))?;
    let input = crate::io::load_input(&args.input)?;
    if input.tensor.size().first() != Some(&1) {
        bail!(
            "{} holds a batch of {:?} examples; esegeta segment takes one example ([1, C, ...])",
            args.input.display(),
            input.tensor.size().first()
        );
    }
    let labels = super::segment(&input.tensor, &spec)?;
    let count = {
        let (unique, _) = labels.internal_unique(true, false);
        unique.size()[0]
    };
    for out in &args.out {
        write_labels(&labels, &input, out)?;
    }
    println!(
        "{count} segment(s) on the grid {:?}; wrote {}",
        &labels.size()[1..],
        args.out
            .iter()
            .map(|o| o.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
