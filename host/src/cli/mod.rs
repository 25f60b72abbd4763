//! The command line: `esegeta explain | layers | methods | schema | run | check | serve | merge |
//! report | plugin new | plugin check`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::config::check::InvalidConfig;
use crate::plugins::Registry;

mod explain_args;
use crate::run::plan::Shard;
use crate::run::JobsFailed;
use explain_args::{run_explain, ExplainArgs};

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

/// A model and, optionally, an input to run through it (`layers`, `doctor`).
#[derive(clap::Args)]
struct ModelArgs {
    /// The model (.onnx, or .pt where a black box will do).
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
}

impl ModelArgs {
    fn output(&self) -> crate::model::Output {
        crate::model::Output::of(self.output.as_deref(), self.output_index)
    }
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
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Says what esegeta can do with a model before running a method: loads it each way it can
    /// (the file and its sibling .onnx/.pt export), runs an input through each, tries a
    /// gradient, and lists which method families run and why not; exits non-zero when only
    /// black-box methods can.
    Doctor {
        #[command(flatten)]
        model: ModelArgs,
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
    /// Plugins of your own: `plugin new NAME` scaffolds an out-of-tree plugin project,
    /// `plugin check FILE` is the conformance kit for a built plugin (docs/plugins.md).
    Plugin {
        #[command(subcommand)]
        command: crate::plugin_sdk::PluginCommand,
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

/// 3: the config did not validate; 4: some jobs failed or timed out; 5: the run was stopped
/// (SIGTERM, Ctrl-C); 1: anything else.
fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<InvalidConfig>().is_some() {
        3
    } else if e.downcast_ref::<JobsFailed>().is_some() {
        4
    } else if e.downcast_ref::<crate::run::cancel::RunStopped>().is_some() {
        5
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
    // The plugin commands load what they need themselves (check: the file first).
    let command = match cli.command {
        Command::Plugin { command } => return crate::plugin_sdk::run(command, &cli.plugins),
        other => other,
    };
    let registry = Registry::discover(&cli.plugins);
    for problem in &registry.problems {
        tracing::warn!("{problem}");
        eprintln!("warning: {problem}");
    }
    match command {
        Command::Explain(args) => run_explain(&registry, args),
        Command::Segment(args) => crate::segment::command::run(args),
        Command::Doctor { model, save_output } => {
            let request = crate::doctor::Request {
                model: &model.model,
                input: model.input.as_deref(),
                output: model.output(),
                device: crate::model::parse_device(&model.device)?,
                save_output: save_output.as_deref(),
            };
            print!("{}", crate::doctor::run(&request)?);
            Ok(())
        }
        Command::Layers { model: m } => {
            let device = crate::model::parse_device(&m.device)?;
            print!(
                "{}",
                crate::layers::table(&m.model, m.input.as_deref(), &m.output(), device)?
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
            crate::run::cancel::install();
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
        Command::Plugin { command } => crate::plugin_sdk::run(command, &cli.plugins),
        Command::Schema {
            id: None,
            write_dir,
            ..
        } => write_schemas(&registry, &write_dir.unwrap_or_default()),
    }
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
