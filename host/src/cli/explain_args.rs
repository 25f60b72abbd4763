//! `esegeta explain`: its flags, and the run of one method on one input they describe.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::DEFAULT_MEMORY_BUDGET;
use crate::config::{ChannelOrder, ChannelStats, Normalize, Preprocessing, WholeNormalize};
use crate::explain::{explain, Job};
use crate::flags::{Channels, Size};
use crate::patch::PatchSpec;
use crate::plugins::Registry;
use crate::task::{TaskKind, WrapperKind};

#[derive(clap::Args)]
pub(super) struct ExplainArgs {
    /// The model: TorchScript (.pt, .ts) or ONNX (.onnx, with its .onnx.data beside it).
    #[arg(long)]
    model: PathBuf,
    /// The input: .npy (with its batch dimension), .nii/.nii.gz, .png/.jpg.
    #[arg(long)]
    input: PathBuf,
    /// The method id, e.g. captum.integrated_gradients (`esegeta methods` lists them).
    #[arg(long)]
    method: String,
    /// The method's parameters as a JSON object, with Captum's keyword names
    /// (`esegeta schema ID --text` lists them).
    #[arg(long, default_value = "{}")]
    params: String,
    /// The score column to explain (class index).
    #[arg(long, default_value_t = 0)]
    target: i64,
    /// What the model's output is: classification ([B, K] scores) or segmentation
    /// ([B, K, ...spatial] maps, made scores by --wrapper). Default: segmentation with
    /// --wrapper or --mask, else classification.
    #[arg(long, value_enum)]
    task: Option<TaskKind>,
    /// How a segmentation output becomes class scores (default argmax); implies
    /// --task segmentation.
    #[arg(long, value_enum)]
    wrapper: Option<WrapperKind>,
    /// The region (npy or NIfTI, on the input's grid) of the `mask` wrapper; implies
    /// --task segmentation.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Compute the segmentation mask once on the unperturbed input instead of on every
    /// perturbed one.
    #[arg(long)]
    fixed_mask: bool,
    /// The layer of a layer method (`esegeta layers MODEL` lists them).
    #[arg(long)]
    layer: Option<String>,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// fp32, or fp64 for a float64 reference that tells float32 rounding from error (reduced
    /// precision is a run's `execution.precision`, with its fp32 fallback).
    #[arg(long, value_parser = ["fp32", "fp64"], default_value = "fp32")]
    precision: String,
    /// Which output of a model with several (deep supervision) to explain.
    #[arg(long)]
    output_index: Option<usize>,
    /// The output to explain by name instead: a dict output's key (HuggingFace's `logits`) or
    /// an ONNX output's name.
    #[arg(long, conflicts_with = "output_index")]
    output: Option<String>,
    /// Run a TorchScript model's forward passes that need no gradient (occlusion, LIME, RISE,
    /// the partition explainer...) on a copy frozen for inference (torch.jit.freeze and
    /// optimize_for_inference: batch norms folded, oneDNN convolutions). CPU and fp32 only;
    /// maps agree within about 1e-6 of their scale. Pays on batch-normed CNNs (a ResNet-18's
    /// passes 0.72 of the time), not on small ones: measure (bench/README.md).
    #[arg(long)]
    freeze: bool,
    /// Seed of sampling methods (noise tunnel, permutations); the same seed repeats a run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Centre crop of the spatial dims, H,W or D1,D2,D3 (as a config's preprocessing.crop);
    /// the map is padded back onto the input's grid with zeros.
    #[arg(long, value_name = "H,W[,D]")]
    crop: Option<Size>,
    /// Linear resize of the (cropped) spatial dims, H,W or D1,D2,D3 (as a config's
    /// preprocessing.resize), e.g. to a fixed-size model's input; the map is resized back.
    #[arg(long, value_name = "H,W[,D]")]
    resize: Option<Size>,
    /// Intensity normalisation over the whole input: none, minmax (to [0, 1]) or zscore.
    #[arg(long, value_parser = ["none", "minmax", "zscore"], conflicts_with = "mean")]
    normalize: Option<String>,
    /// Per-channel means subtracted before the model sees the input, one per channel, e.g.
    /// ImageNet's 0.485,0.456,0.406; needs --std.
    #[arg(long, value_name = "M1,M2,...", requires = "std")]
    mean: Option<Channels>,
    /// Per-channel standard deviations (each > 0) the channels are divided by, e.g.
    /// ImageNet's 0.229,0.224,0.225; needs --mean.
    #[arg(long, value_name = "S1,S2,...", requires = "mean")]
    std: Option<Channels>,
    /// Channel order of a 2D image as the model expects it (rgb or bgr).
    #[arg(long, value_enum, default_value = "rgb")]
    channel_order: ChannelOrder,
    /// Sliding-window patching (as a config's execution.patching): the window size, 64 for
    /// every spatial dimension or 96x96x64 for each, then optionally ,OVERLAP in [0, 1)
    /// (default 0.25), e.g. 96x96x64,0.5.
    #[arg(long, value_name = "SIZE[,OVERLAP]", value_parser = crate::flags::patch)]
    patch: Option<PatchSpec>,
    /// Where to write the map; the extension picks the format (.npy, .nii.gz, .png). Repeat
    /// it for several formats: --out map.npy --out map.png.
    #[arg(long, required = true)]
    out: Vec<PathBuf>,
    /// How a PNG shows a map of several channels: sum them, keep the value of largest
    /// magnitude (max-abs), or write one PNG per channel (each: `<stem>_c0.png`, ...).
    #[arg(long, value_enum, default_value = "sum")]
    png_channels: crate::config::PngChannels,
    /// libtorch's intra-op thread count (default: libtorch's own choice, the physical cores).
    #[arg(long)]
    threads: Option<i32>,
    /// Print the method's wall time and the process's peak resident memory as a JSON line
    /// (`timing: {...}`), for benchmarks.
    #[arg(long)]
    timing: bool,
    /// Run the method this many times on the loaded model; `--timing` then also reports the
    /// median of the runs after the first (`warm_s`), and still the first run's peak memory.
    /// The map written is the last run's.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    repeat: u16,
}

impl ExplainArgs {
    /// `--task`, else segmentation when a segmentation flag says so.
    fn task(&self) -> TaskKind {
        self.task
            .unwrap_or(if self.wrapper.is_some() || self.mask.is_some() {
                TaskKind::Segmentation
            } else {
                TaskKind::Classification
            })
    }

    fn preprocessing(&self) -> Preprocessing {
        let normalize = match (&self.mean, &self.std, self.normalize.as_deref()) {
            (Some(mean), Some(std), _) => Normalize::Channels(ChannelStats {
                mean: mean.0.clone(),
                std: std.0.clone(),
            }),
            (_, _, Some("minmax")) => Normalize::Whole(WholeNormalize::Minmax),
            (_, _, Some("zscore")) => Normalize::Whole(WholeNormalize::Zscore),
            _ => Normalize::Whole(WholeNormalize::None),
        };
        Preprocessing {
            crop: self.crop.as_ref().map(|s| s.0.clone()),
            resize: self.resize.as_ref().map(|s| s.0.clone()),
            normalize,
            channel_order: self.channel_order,
        }
    }
}

/// Runs the command line; returns the process exit code.
pub(super) fn run_explain(registry: &Registry, args: ExplainArgs) -> Result<()> {
    for out in &args.out {
        crate::io::check_output(out)?;
    }
    if let Some(n) = args.threads {
        anyhow::ensure!(n >= 1, "--threads must be at least 1, got {n}");
        tch::set_num_threads(n);
    }
    let params: Value = serde_json::from_str(&args.params)
        .with_context(|| format!("--params is not valid JSON: {}", args.params))?;
    let job = Job {
        task: args.task(),
        preprocessing: args.preprocessing(),
        patching: args.patch,
        model: args.model,
        input: args.input,
        method: args.method,
        params,
        target: args.target,
        wrapper: args.wrapper,
        mask: args.mask,
        fixed_mask: args.fixed_mask,
        layer: args.layer,
        device: crate::model::parse_device(&args.device)?,
        kind: if args.precision == "fp64" {
            tch::Kind::Double
        } else {
            tch::Kind::Float
        },
        output: crate::model::Output::of(args.output.as_deref(), args.output_index),
        freeze: args.freeze,
        seed: args.seed,
        memory_budget: DEFAULT_MEMORY_BUDGET,
        repeats: args.repeat.into(),
    };
    let done = explain(registry, &job)?;
    for out in &args.out {
        let files =
            crate::io::write_map_files(&done.attribution, &done.input, out, args.png_channels)?;
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        println!(
            "wrote {} (shape {:?}{})",
            names.join(", "),
            done.attribution.size(),
            if files.len() > 1 {
                "; one PNG per example and channel drawn"
            } else {
                ""
            }
        );
    }
    if done.attribution.dim() == 1 {
        // A metric: one score per example.
        let scores = Vec::<f32>::try_from(done.attribution.to_kind(tch::Kind::Float))?;
        println!("scores: {scores:?}");
    }
    if done.extras.as_object().is_some_and(|m| !m.is_empty()) {
        println!("extras: {}", done.extras);
    }
    if args.timing {
        let mut timing = json!({
            "method_s": done.method_seconds,
            "peak_rss_mib": done.peak_rss_mib,
            "threads": tch::get_num_threads(),
        });
        if let Some(warm) = done.warm_seconds {
            timing["warm_s"] = json!(warm);
        }
        println!("timing: {timing}");
    }
    Ok(())
}
