//! Finding and loading method plugins, and the registry of the methods they provide.
//!
//! Plugins are searched in `--plugins` folders, then `ESEGETA_PLUGIN_PATH` (colon-separated),
//! then the folder beside the `esegeta` binary (where only `libesegeta_*` files are taken,
//! since that folder holds other libraries too). A file that fails to load is reported and
//! skipped; the other plugins still load. On a duplicate method id the first plugin wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use anyhow::{anyhow, bail, Result};
use esegeta_plugin_api::abi::{HostRef, PluginRef, RunOutput, RunRequest};
use esegeta_plugin_api::{MethodInfo, ABI_VERSION, LIBTORCH_VERSION};

use crate::suggest::did_you_mean;

/// One loaded plugin file.
pub struct Plugin {
    pub path: PathBuf,
    pub family: String,
    module: PluginRef,
}

/// A method and the plugin that provides it.
pub struct Provided {
    pub info: MethodInfo,
    pub plugin: usize,
}

/// All loaded plugins and their methods, plus what went wrong while loading.
#[derive(Default)]
pub struct Registry {
    pub plugins: Vec<Plugin>,
    pub methods: BTreeMap<String, Provided>,
    /// One sentence per file that was skipped or method that was ignored.
    pub problems: Vec<String>,
}

impl Registry {
    /// Loads every plugin found in `extra_dirs`, `ESEGETA_PLUGIN_PATH` and beside the binary.
    pub fn discover(extra_dirs: &[PathBuf]) -> Self {
        let mut registry = Registry::default();
        registry.discover_into(extra_dirs, Vec::new());
        registry
    }

    /// Loads `first`, then every other plugin [`Registry::discover`] finds: `first` wins any
    /// duplicate id, and a clash with an installed plugin is reported naming both files (what
    /// `esegeta plugin check` needs).
    pub fn discover_with(first: &Path, extra_dirs: &[PathBuf]) -> Self {
        let mut registry = Registry::default();
        registry.add(first);
        let seen = vec![first.canonicalize().unwrap_or(first.to_path_buf())];
        registry.discover_into(extra_dirs, seen);
        registry
    }

    fn discover_into(&mut self, extra_dirs: &[PathBuf], mut seen: Vec<PathBuf>) {
        let registry = self;
        for (dir, only_ours) in search_dirs(extra_dirs) {
            for path in plugin_files(&dir, only_ours) {
                let canonical = path.canonicalize().unwrap_or(path.clone());
                if !seen.contains(&canonical) {
                    seen.push(canonical);
                    registry.add(&path);
                }
            }
        }
    }

    /// Loads one plugin file; a failure is recorded in `problems`.
    pub fn add(&mut self, path: &Path) {
        match load(path) {
            Ok(plugin) => self.add_methods(plugin),
            Err(e) => self.problems.push(format!("{e:#}")),
        }
    }

    fn add_methods(&mut self, plugin: Plugin) {
        let methods = match (plugin.module.methods())().into_result() {
            Ok(methods) => methods,
            Err(e) => {
                self.problems.push(format!(
                    "{}: listing its methods failed: {e}",
                    plugin.path.display()
                ));
                return;
            }
        };
        let index = self.plugins.len();
        for info in methods {
            let id = info.id.to_string();
            if let Some(existing) = self.methods.get(&id) {
                self.problems.push(format!(
                    "{} provides method `{id}`, which {} already provides; the first one is used. \
                     Remove one of the two files (or rename the method in one of them)",
                    plugin.path.display(),
                    self.plugins[existing.plugin].path.display()
                ));
                continue;
            }
            self.methods.insert(
                id,
                Provided {
                    info,
                    plugin: index,
                },
            );
        }
        self.plugins.push(plugin);
    }

    /// The method `id`, or an error suggesting the nearest ids.
    pub fn method(&self, id: &str) -> Result<&Provided> {
        self.methods.get(id).ok_or_else(|| {
            let hint = did_you_mean(id, self.methods.keys().map(String::as_str));
            let available = if self.methods.is_empty() {
                " No plugin is loaded: build them (`make build`) or point --plugins or \
                 ESEGETA_PLUGIN_PATH at their folder."
                    .to_string()
            } else {
                " `esegeta methods` lists them.".to_string()
            };
            anyhow!("unknown method `{id}`.{hint}{available}")
        })
    }

    /// Runs `request` in the plugin that provides its method.
    pub fn run(&self, request: RunRequest<'_>, host: HostRef<'_>) -> Result<RunOutput> {
        let provided = self.method(request.method_id.as_str())?;
        let plugin = &self.plugins[provided.plugin];
        (plugin.module.run())(request, host)
            .into_result()
            .map_err(|e| anyhow!(crate::torch_errors::plain(e.as_str())))
    }
}

fn search_dirs(extra_dirs: &[PathBuf]) -> Vec<(PathBuf, bool)> {
    let mut dirs: Vec<(PathBuf, bool)> = extra_dirs.iter().map(|d| (d.clone(), false)).collect();
    if let Some(path) = std::env::var_os("ESEGETA_PLUGIN_PATH") {
        dirs.extend(
            std::env::split_paths(&path)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|d| (d, false)),
        );
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push((dir, true));
    }
    dirs
}

/// Shared libraries in `dir`, sorted by name; beside the binary only `libesegeta_*` ones.
fn plugin_files(dir: &Path, only_ours: bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let prefix = format!("{}esegeta_", std::env::consts::DLL_PREFIX);
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(std::env::consts::DLL_EXTENSION))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !only_ours || name.starts_with(&prefix)
        })
        .collect();
    files.sort();
    files
}

/// Loads and checks one plugin file.
fn load(path: &Path) -> Result<Plugin> {
    let file = path.display();
    let header = lib_header_from_path(path).map_err(|e| not_a_plugin(path, e))?;
    let module = header
        .init_root_module::<PluginRef>()
        .map_err(|e| match e {
            LibraryError::AbiInstability(_) | LibraryError::IncompatibleVersionNumber { .. } => {
                anyhow!(
            "{file} was built against an incompatible esegeta plugin API (its types differ \
             from this host's, ABI version {ABI_VERSION}); rebuild the plugin against this \
             version of esegeta-plugin-api"
        )
            }
            other => not_a_plugin(path, other),
        })?;
    let abi = module.abi_version();
    if abi != ABI_VERSION {
        bail!(
            "{file} was built for esegeta plugin ABI version {abi}, but this host speaks version \
             {ABI_VERSION}; rebuild the plugin against the esegeta-plugin-api of this esegeta"
        );
    }
    let torch = module.libtorch_version().to_string();
    if base_version(&torch) != base_version(LIBTORCH_VERSION) {
        bail!(
            "{file} was built against libtorch {torch}, but this host runs libtorch \
             {LIBTORCH_VERSION}; tensors cannot cross between them. Rebuild the plugin with \
             the same torch install (LIBTORCH_USE_PYTORCH=1 with torch=={})",
            base_version(LIBTORCH_VERSION)
        );
    }
    Ok(Plugin {
        path: path.to_path_buf(),
        family: module.family().to_string(),
        module,
    })
}

fn not_a_plugin(path: &Path, e: LibraryError) -> anyhow::Error {
    let detail = e.to_string();
    let detail = detail.lines().next().unwrap_or("").trim();
    anyhow!(
        "{} is not an esegeta plugin ({detail}); remove it from the plugin folder or build it \
         with esegeta_plugin_api::export_plugin!",
        path.display()
    )
}

/// `2.13.0` of `2.13.0+cu130`: builds of one release share at::Tensor's layout.
fn base_version(v: &str) -> &str {
    v.split('+').next().unwrap_or(v)
}
