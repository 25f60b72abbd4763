//! The command line: `esegeta explain | layers | methods | schema | run | check | serve | merge |
//! report`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::config::check::InvalidConfig;
use crate::config::{ChannelOrder, ChannelStats, Normalize, Preprocessing, WholeNormalize};
use crate::explain::{explain, Job};
use crate::flags::{Channels, Size};
use crate::patch::PatchSpec;
use crate::plugins::Registry;
use crate::run::plan::Shard;
use crate::run::JobsFailed;
use crate::task::{TaskKind, WrapperKind};

/// Memory a method may use to batch its evaluations, unless configured.
const DEFAULT_MEMORY_BUDGET: u64 = 1 << 30;

#[derive(Parser)]
#[command(
    name = "esegeta",
    version,
    about = "Explains image deep-learning models."
)]
struct Cli {
    /// Also load plugins from this folder (before ESEGETA_PLUGIN_PATH and the binary's folder).
    #[arg(long = "plugins", global = true, value_name = "DIR")]
    plugins: Vec<PathBuf>,

    /// Log level: error, warn, info, debug or trace (RUST_LOG works too).
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one method on one input and writes the map (.npy, .nii.gz or .png by extension).
    Explain(ExplainArgs),
    /// Superpixels or supervoxels of one input (SLIC, Felzenszwalb, quickshift, as
    /// scikit-image's): a label map on its grid, usable as any method's feature_mask.
    Segment(crate::segment::command::SegmentArgs),
    /// Lists an ONNX model's layers (PyTorch module paths) with the op type of each, and with
    /// an input, the shape of each layer's output.
    Layers {
        /// The model (.onnx).
        model: PathBuf,
        /// An input (.npy, .nii/.nii.gz, .png/.jpg) to show output shapes.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Which output of a model with several (deep supervision) the graph returns.
        #[arg(long)]
        output_index: Option<usize>,
        /// The output by name instead (a dict output's key, an ONNX output's name).
        #[arg(long, conflicts_with = "output_index")]
        output: Option<String>,
        /// cpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Says what esegeta can do with a model before running a method: loads it each way it can
    /// (the file and its sibling .onnx/.pt export), runs an input through each, tries a
    /// gradient, and lists which method families run and why not; exits non-zero when only
    /// black-box methods can.
    Doctor {
        /// The model (.onnx or .pt).
        model: PathBuf,
        /// An input (.npy, .nii/.nii.gz, .png/.jpg) to run through the model.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Which output of a model with several (deep supervision).
        #[arg(long)]
        output_index: Option<usize>,
        /// The output by name instead (a dict output's key, an ONNX output's name).
        #[arg(long, conflicts_with = "output_index")]
        output: Option<String>,
        /// cpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Write the model's raw output for the input here (.npy), to compare with PyTorch.
        #[arg(long)]
        save_output: Option<PathBuf>,
    },
    /// Lists the methods of every loaded plugin.
    Methods {
        /// Print JSON (with each method's parameter schema) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Runs a config: every input x method x target, on the configured devices and workers.
    Run {
        /// The run config (JSON; comments allowed).
        config: PathBuf,
        /// Print the run's progress as JSON lines on stdout (planned, job_started, progress,
        /// job_finished), instead of the progress bar and the job lines.
        #[arg(long)]
        events: bool,
        /// Run the share i/n of the jobs (0-based), for job arrays; `esegeta merge` joins them.
        #[arg(long)]
        shard: Option<Shard>,
    },
    /// Checks a config against its schema and the plugins without running it, then runs its
    /// first input through each model once (targets against the score columns, input sizes
    /// against fixed-size exports), and prints how many jobs it plans.
    Check {
        /// The run config (JSON; comments allowed).
        config: PathBuf,
        /// Skip the dry run through the models (only the config and its files are checked).
        #[arg(long)]
        no_model: bool,
    },
    /// The web GUI: serves forms for run configs, runs them with live progress and shows the
    /// results, at the URL it prints (with its access token).
    Serve {
        /// The port (0: any free one).
        #[arg(long, default_value_t = 8765)]
        port: u16,
        /// A folder the GUI may read models and inputs from and write runs into; repeat it for
        /// several (default: the current folder). Relative paths are relative to the first.
        #[arg(long = "root", value_name = "DIR")]
        roots: Vec<PathBuf>,
        /// The address to listen on; 0.0.0.0 opens it to the network (the token still guards it).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Use this access token instead of a random one (ESEGETA_TOKEN works too).
        #[arg(long, env = "ESEGETA_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Joins the manifests of a sharded run's folder into its results.json.
    Merge {
        /// The run's output folder.
        folder: PathBuf,
    },
    /// Rebuilds a run folder's report.html (and tables/*.csv) from its results.json and maps.
    Report {
        /// The run's output folder.
        folder: PathBuf,
    },
    /// Runs one planned job of a config and prints its record (the worker of isolation: process).
    #[command(hide = true)]
    Job {
        /// The run config.
        config: PathBuf,
        /// The planned job's id.
        #[arg(long)]
        id: String,
        /// The device slot to run it on: cpu or cuda:N.
        #[arg(long)]
        device: String,
        /// libtorch's intra-op thread count.
        #[arg(long)]
        threads: Option<i32>,
    },
    /// Prints one method's parameter JSON Schema (or with --text, a table of its parameters),
    /// or writes every method's into a folder.
    Schema {
        /// The method id, e.g. captum.integrated_gradients.
        #[arg(required_unless_present = "write_dir")]
        id: Option<String>,
        /// Print a table of the parameters (name, type, default, description) instead of the
        /// JSON Schema; nested groups read `noise_tunnel.nt_type`.
        #[arg(long, conflicts_with = "write_dir")]
        text: bool,
        /// Write `methods/<id>.json` for every method, and `run-config.json` (the run config's
        /// schema with every method's parameters embedded), into this folder (how schemas/ is
        /// made).
        #[arg(long, conflicts_with = "id")]
        write_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ExplainArgs {
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
    /// Which output of a model with several (deep supervision) to explain.
    #[arg(long)]
    output_index: Option<usize>,
    /// The output to explain by name instead: a dict output's key (HuggingFace's `logits`) or
    /// an ONNX output's name.
    #[arg(long, conflicts_with = "output_index")]
    output: Option<String>,
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
pub fn main() -> i32 {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    init_logging(&cli.log_level, run_log(&cli));
    // Every panic is caught below and reported as an error; keep the default hook's
    // backtrace noise out of the user's terminal.
    std::panic::set_hook(Box::new(|info| tracing::debug!("{info}")));
    let result = std::panic::catch_unwind(|| run(cli)).unwrap_or_else(|p| {
        Err(anyhow::anyhow!(
            "internal error, a bug in esegeta: {}. Please report it with the command you ran",
            esegeta_plugin_api::panic_message(&p)
        ))
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

/// `esegeta methods | head -1`: a reader that stops early ends the process as it ends `cat`'s
/// (SIGPIPE, status 141 in the shell), instead of `println!` panicking on the broken pipe.
/// Rust ignores SIGPIPE by default; this restores the default action.
fn quiet_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: resets one signal's disposition, before any other thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// 3: the config did not validate; 4: some jobs failed or timed out; 1: anything else.
fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<InvalidConfig>().is_some() {
        3
    } else if e.downcast_ref::<JobsFailed>().is_some() {
        4
    } else {
        1
    }
}

/// `run.log` in the run's output folder, when the command is a run whose config names one.
fn run_log(cli: &Cli) -> Option<PathBuf> {
    let Command::Run { config, .. } = &cli.command else {
        return None;
    };
    let raw = crate::config::read(config).ok()?;
    let folder = config
        .parent()?
        .join(raw.pointer("/output/folder")?.as_str()?);
    std::fs::create_dir_all(&folder).ok()?;
    Some(folder.join("run.log"))
}

/// Console logging at `level` (or RUST_LOG); with a log file, everything at debug there too.
fn init_logging(level: &str, file: Option<PathBuf>) {
    use tracing_subscriber::{fmt, prelude::*, EnvFilter};
    let console_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colour codes only for a person at a terminal, never into a pipe or a log file.
    let console = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_filter(console_filter);
    let file_layer = file
        .and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        })
        .map(|f| {
            fmt::layer()
                .with_writer(std::sync::Mutex::new(f))
                .with_ansi(false)
                .with_filter(EnvFilter::new("debug"))
        });
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(file_layer)
        .try_init();
}

fn run(cli: Cli) -> Result<()> {
    let registry = Registry::discover(&cli.plugins);
    for problem in &registry.problems {
        tracing::warn!("{problem}");
        eprintln!("warning: {problem}");
    }
    match cli.command {
        Command::Explain(args) => run_explain(&registry, args),
        Command::Segment(args) => crate::segment::command::run(args),
        Command::Doctor {
            model,
            input,
            output_index,
            output,
            device,
            save_output,
        } => {
            let request = crate::doctor::Request {
                model: &model,
                input: input.as_deref(),
                output: crate::model::Output::of(output.as_deref(), output_index),
                device: crate::model::parse_device(&device)?,
                save_output: save_output.as_deref(),
            };
            print!("{}", crate::doctor::run(&request)?);
            Ok(())
        }
        Command::Layers {
            model,
            input,
            output_index,
            output,
            device,
        } => {
            let device = crate::model::parse_device(&device)?;
            let output = crate::model::Output::of(output.as_deref(), output_index);
            print!(
                "{}",
                crate::layers::table(&model, input.as_deref(), &output, device)?
            );
            Ok(())
        }
        Command::Methods { json } => {
            print_methods(&registry, json);
            Ok(())
        }
        Command::Run {
            config,
            shard,
            events,
        } => {
            let loaded = crate::config::check(&config, &registry)?;
            let events = crate::run::events::Events::new(events);
            let summary = crate::run::run(&registry, &loaded, shard, &cli.plugins, &events)?;
            println!(
                "{} job(s) done ({} finished by an earlier run); manifest: {}",
                summary.done,
                summary.resumed,
                summary.manifest.display()
            );
            Ok(())
        }
        Command::Check { config, no_model } => {
            let loaded = crate::config::check_with(&config, &registry, !no_model)?;
            let randomised = crate::run::plan::randomised_methods(&loaded, &registry);
            let jobs = crate::run::plan::plan(&loaded, &randomised)?;
            println!(
                "{} is valid: {} job(s) planned",
                config.display(),
                jobs.len()
            );
            Ok(())
        }
        Command::Serve {
            port,
            roots,
            host,
            token,
        } => crate::serve::serve(
            registry,
            crate::serve::Options {
                host,
                port,
                roots,
                plugin_dirs: cli.plugins.clone(),
                token,
            },
        ),
        Command::Merge { folder } => {
            let merged = crate::run::merge(&folder)?;
            println!(
                "merged {} job(s) into {}",
                merged.jobs.len(),
                folder.join("results.json").display()
            );
            Ok(())
        }
        Command::Report { folder } => {
            let path = crate::report::write(&folder)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Command::Job {
            config,
            id,
            device,
            threads,
        } => {
            if let Some(n) = threads {
                tch::set_num_threads(n);
            }
            let loaded = crate::config::check_with(&config, &registry, false)?;
            let record = crate::run::worker::run_job_here(&registry, &loaded, &id, &device)?;
            println!("{}", serde_json::to_string(&record)?);
            Ok(())
        }
        Command::Schema {
            id: Some(id), text, ..
        } => {
            let schema = registry.method(&id)?.info.params_schema.as_str();
            if text {
                print!("{}", crate::schema_text::table(&id, schema)?);
            } else {
                println!("{schema}");
            }
            Ok(())
        }
        Command::Schema {
            id: None,
            write_dir,
            ..
        } => write_schemas(&registry, &write_dir.unwrap_or_default()),
    }
}

fn run_explain(registry: &Registry, args: ExplainArgs) -> Result<()> {
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
        output: crate::model::Output::of(args.output.as_deref(), args.output_index),
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

fn write_schemas(registry: &Registry, dir: &std::path::Path) -> Result<()> {
    for (id, method) in &registry.methods {
        let path = dir.join("methods").join(format!("{id}.json"));
        let text = format!("{}\n", method.info.params_schema);
        crate::io::write_atomically(&path, |tmp| Ok(std::fs::write(tmp, &text)?))?;
    }
    let run_config =
        serde_json::to_string_pretty(&crate::config::schema_with_methods(registry)?)? + "\n";
    crate::io::write_atomically(&dir.join("run-config.json"), |tmp| {
        Ok(std::fs::write(tmp, &run_config)?)
    })?;
    println!(
        "wrote {} method schemas and run-config.json into {}",
        registry.methods.len(),
        dir.display()
    );
    Ok(())
}

/// Every method as `esegeta methods --json` prints it (and `GET /api/methods` answers).
pub fn methods_json(registry: &Registry) -> Vec<Value> {
    registry
            .methods
            .values()
            .map(|m| {
                let i = &m.info;
                json!({
                    "id": i.id.as_str(),
                    "title": i.title.as_str(),
                    "summary": i.summary.as_str(),
                    "kind": format!("{:?}", i.kind).to_lowercase(),
                    "needs": {"gradients": i.needs.gradients, "layers": i.needs.layers, "backward_rules": i.needs.backward_rules},
                    "params_schema": serde_json::from_str::<Value>(i.params_schema.as_str()).unwrap_or(Value::Null),
                    "reference": i.reference.as_str(),
                    "plugin": registry.plugins[m.plugin].path.display().to_string(),
                })
            })
            .collect()
}

fn print_methods(registry: &Registry, as_json: bool) {
    if as_json {
        let list = methods_json(registry);
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return;
    }
    println!("{:<36} {:<18} {:<26} title", "id", "kind", "needs");
    for m in registry.methods.values() {
        let i = &m.info;
        let needs: Vec<&str> = [
            (i.needs.gradients, "gradients"),
            (i.needs.layers, "layers"),
            (i.needs.backward_rules, "rules"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        let needs = if needs.is_empty() {
            "forward only".to_string()
        } else {
            needs.join(", ")
        };
        println!(
            "{:<36} {:<18} {:<26} {}",
            i.id,
            format!("{:?}", i.kind).to_lowercase(),
            needs,
            i.title
        );
    }
}
