//! What every request handler shares: the token, the roots, the plugins, the runs.

use std::path::PathBuf;
use std::sync::Arc;

use super::roots::Roots;
use super::runs::Runs;
use crate::plugins::Registry;

#[derive(Clone)]
pub struct AppState {
    pub token: Arc<String>,
    pub roots: Arc<Roots>,
    pub registry: Arc<Registry>,
    /// `--plugins` folders, passed on to the `esegeta run` of each run.
    pub plugin_dirs: Arc<Vec<PathBuf>>,
    pub runs: Arc<Runs>,
    /// This binary, which runs each config.
    pub exe: PathBuf,
}
