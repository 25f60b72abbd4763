//! The plugin SDK's commands: `esegeta plugin new` (scaffold.rs: an out-of-tree plugin
//! project) and `esegeta plugin check` (check.rs and probe.rs: the conformance kit, on the
//! built-in models of models.rs).

pub mod check;
mod models;
pub mod probe;
pub mod scaffold;

use std::path::PathBuf;

use anyhow::{Context, Result};

/// `esegeta plugin ...`.
#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// Writes an out-of-tree plugin project (its own cargo workspace) that builds
    /// libesegeta_NAME.so against esegeta-plugin-api, with one example method, its test and
    /// a README with the commands to build, test and load it.
    New {
        /// The plugin's name, which is its methods' family (`NAME.method`): snake case.
        name: String,
        /// Where to write the project (default: ./NAME); it must be new or empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The esegeta-plugin-api crate to depend on by path (default: the plugin-api/ of the
        /// esegeta checkout this binary was built in).
        #[arg(long, value_name = "DIR")]
        api_path: Option<PathBuf>,
    },
    /// The conformance kit: loads a plugin file with the host's checks, validates each
    /// method's schema and runs each method on a built-in 2D model (and 3D where the method
    /// takes it) checking for panics, the map's shape, seeded repeatability, flat memory and
    /// cancellation; a report per method, a non-zero exit on any failure.
    Check {
        /// The plugin file (libesegeta_NAME.so).
        file: PathBuf,
        /// Parameters for a method that requires some without defaults: METHOD=JSON
        /// (repeatable), e.g. --params acme.sleep='{"seconds": 1}'.
        #[arg(long = "params", value_name = "METHOD=JSON")]
        params: Vec<String>,
        /// Check only this method (repeatable; default: every method of the file).
        #[arg(long = "method", value_name = "ID")]
        methods: Vec<String>,
        /// Internal: probe this one method (the kit runs each probe in a child process).
        #[arg(long, hide = true, requires = "dims")]
        probe: Option<String>,
        #[arg(long, hide = true)]
        dims: Option<usize>,
        #[arg(long, hide = true, default_value = "{}")]
        probe_params: String,
    },
}

/// Runs `esegeta plugin ...`; `plugin_dirs` are the `--plugins` folders.
pub fn run(command: PluginCommand, plugin_dirs: &[PathBuf]) -> Result<()> {
    match command {
        PluginCommand::New {
            name,
            dir,
            api_path,
        } => {
            let dir = scaffold::run(&scaffold::NewPlugin {
                name: name.clone(),
                dir,
                api_path,
            })?;
            println!(
                "wrote the plugin project {} (methods {name}.*); build it with the commands in \
                 {}",
                dir.display(),
                dir.join("README.md").display()
            );
            Ok(())
        }
        PluginCommand::Check {
            file,
            probe: Some(method),
            dims,
            probe_params,
            ..
        } => {
            let registry = crate::plugins::Registry::discover_with(&file, plugin_dirs);
            let params = serde_json::from_str(&probe_params).context("--probe-params")?;
            probe::run(&registry, &method, dims.unwrap_or(2), &params)
        }
        PluginCommand::Check {
            file,
            params,
            methods,
            ..
        } => check::run(&check::CheckRequest {
            file,
            params,
            methods,
            plugin_dirs: plugin_dirs.to_vec(),
        }),
    }
}
