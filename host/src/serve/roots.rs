//! The folders `esegeta serve` may read and write (`--root`), and the check that keeps every
//! path a request names inside them: `..`, absolute paths elsewhere and symbolic links that
//! lead out are refused.

use std::path::{Component, Path, PathBuf};

/// A path refused because it leaves the roots (HTTP 403).
#[derive(Debug)]
pub struct Outside(pub String);

impl std::fmt::Display for Outside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The roots, canonical (links resolved). Relative paths are relative to the first.
#[derive(Clone, Debug)]
pub struct Roots {
    dirs: Vec<PathBuf>,
}

impl Roots {
    /// Each folder must exist; the default is the current folder.
    pub fn new(dirs: &[PathBuf]) -> anyhow::Result<Self> {
        let dirs = if dirs.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            dirs.to_vec()
        };
        let dirs = dirs
            .iter()
            .map(|d| {
                d.canonicalize().map_err(|e| {
                    anyhow::anyhow!(
                        "--root {} is not a folder this server can open: {e}",
                        d.display()
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Roots { dirs })
    }

    /// The first root: the base of relative paths, where the GUI keeps its run configs.
    pub fn base(&self) -> &Path {
        &self.dirs[0]
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// `path` (relative to the first root, or absolute) as a real path inside a root, or why
    /// not. A path that does not exist yet (an output folder) is checked through its nearest
    /// existing ancestor.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, Outside> {
        let given = Path::new(path);
        if given.components().any(|c| c == Component::ParentDir) {
            return Err(Outside(format!(
                "{path} climbs out with `..`; name files inside the served folders"
            )));
        }
        let joined = if given.is_absolute() {
            given.to_path_buf()
        } else {
            self.base().join(given)
        };
        let real = real_path(&joined);
        if self.dirs.iter().any(|root| real.starts_with(root)) {
            Ok(real)
        } else {
            Err(Outside(format!(
                "{path} is outside the folders this server may use ({}); start `esegeta serve` \
                 with --root for its folder",
                self.list()
            )))
        }
    }

    /// How the page shows a real path: relative to the first root, else absolute.
    pub fn display(&self, real: &Path) -> String {
        match real.strip_prefix(self.base()) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => real.display().to_string(),
        }
    }

    fn list(&self) -> String {
        let names: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        names.join(", ")
    }
}

/// The canonical form of `path`: its longest existing ancestor canonicalised (links
/// resolved), with the rest appended as given.
fn real_path(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest
                .iter()
                .rev()
                .fold(real, |p, c: &std::ffi::OsString| p.join(c));
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}
