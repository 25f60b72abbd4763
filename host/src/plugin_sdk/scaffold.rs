//! `esegeta plugin new NAME [--dir DIR]`: writes an out-of-tree cargo project (its own
//! workspace) that builds `libesegeta_NAME.so` against esegeta-plugin-api, from the templates
//! in host/templates/plugin/ (kept as real files, embedded here).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The template files: (path in the project, text with `{{...}}` placeholders).
const TEMPLATES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/plugin/Cargo.toml.in"),
    ),
    ("build.rs", include_str!("../../templates/plugin/build.rs")),
    (
        ".gitignore",
        include_str!("../../templates/plugin/gitignore"),
    ),
    (
        "README.md",
        include_str!("../../templates/plugin/README.md.in"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/plugin/src/lib.rs.in"),
    ),
    (
        "src/scaled_gradient.rs",
        include_str!("../../templates/plugin/src/scaled_gradient.rs.in"),
    ),
];

/// Families of the plugins esegeta ships: a new plugin taking one of them would clash.
const TAKEN: &[&str] = &[
    "captum", "cnnvis", "featvis", "metrics", "torchray", "lime", "shap", "testkit", "example",
];

/// What `plugin new` was asked for.
pub struct NewPlugin {
    pub name: String,
    /// Where to write the project (default `./NAME`).
    pub dir: Option<PathBuf>,
    /// The esegeta-plugin-api crate to depend on by path (default: found from the binary).
    pub api_path: Option<PathBuf>,
}

/// Writes the project and returns its folder.
pub fn run(request: &NewPlugin) -> Result<PathBuf> {
    check_name(&request.name)?;
    let dir = request
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&request.name));
    check_empty(&dir)?;
    let api = match &request.api_path {
        Some(path) => Some(api_crate(path).with_context(|| {
            format!(
                "--api-path {} is not the esegeta-plugin-api crate",
                path.display()
            )
        })?),
        None => find_checkout().map(|c| c.join("plugin-api")),
    };
    let (dependency, note, checkout) = match &api {
        Some(api) => (
            format!(
                "esegeta-plugin-api = {{ path = \"{}\" }}",
                toml_string(&api.display().to_string())
            ),
            format!(
                "The project depends on esegeta-plugin-api by path, on the checkout it was made \
                 from ({}), and its Cargo.lock is that checkout's, so it builds with the versions \
                 the host was built with. Once the crate is on crates.io, `esegeta-plugin-api = \
                 \"{}\"` works instead.",
                api.display(),
                env!("CARGO_PKG_VERSION")
            ),
            api.parent().map(Path::to_path_buf),
        ),
        None => (
            format!("esegeta-plugin-api = \"{}\"", env!("CARGO_PKG_VERSION")),
            "The project depends on esegeta-plugin-api by version (no esegeta checkout was \
             found beside this esegeta binary; `esegeta plugin new --api-path DIR` names one)."
                .to_string(),
            None,
        ),
    };
    let checkout_shown = checkout
        .as_ref()
        .map_or("<esegeta checkout>".to_string(), |c| {
            c.display().to_string()
        });
    for (file, template) in TEMPLATES {
        let text = template
            .replace("{{name}}", &request.name)
            .replace("{{api_dependency}}", &dependency)
            .replace("{{api_note}}", &note)
            .replace("{{checkout}}", &checkout_shown);
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the folder {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    // The checkout's lock file pins every dependency to the versions the host was built with
    // (abi_stable's layout checks and tch's libtorch bindings must agree with the host's);
    // cargo drops the entries the plugin does not use.
    if let Some(lock) = checkout
        .map(|c| c.join("Cargo.lock"))
        .filter(|l| l.is_file())
    {
        std::fs::copy(&lock, dir.join("Cargo.lock"))
            .with_context(|| format!("cannot copy {} into {}", lock.display(), dir.display()))?;
    }
    Ok(dir)
}

/// A family name: lower-case snake case, not one esegeta ships.
fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let starts = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || name.ends_with('_')
    {
        bail!(
            "`{name}` cannot name a plugin: its name is its methods' family (`{name}.method`), \
             so use lower-case letters, digits and underscores, starting with a letter (e.g. \
             `acme` or `my_lab`)"
        );
    }
    if TAKEN.contains(&name) {
        bail!(
            "`{name}` is the family of a plugin esegeta already has; pick another name (your \
             organisation's or the method family's)"
        );
    }
    Ok(())
}

fn check_empty(dir: &Path) -> Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            bail!(
                "{} already exists and is not empty; give an empty or new folder with --dir",
                dir.display()
            );
        }
    } else if dir.exists() {
        bail!(
            "{} exists and is not a folder; give a new folder with --dir",
            dir.display()
        );
    }
    Ok(())
}

/// The plugin-api crate at `path` (its folder), made absolute.
fn api_crate(path: &Path) -> Result<PathBuf> {
    let manifest = std::fs::read_to_string(path.join("Cargo.toml"))
        .with_context(|| format!("there is no Cargo.toml in {}", path.display()))?;
    if !manifest.contains("name = \"esegeta-plugin-api\"") {
        bail!("{}/Cargo.toml is another crate's", path.display());
    }
    Ok(path.canonicalize()?)
}

/// The esegeta checkout this binary belongs to: a folder above the binary (target/release/) or
/// the one it was compiled in, holding plugin-api/.
fn find_checkout() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok())
        .and_then(|exe| {
            exe.ancestors()
                .skip(1)
                .find(|d| api_crate(&d.join("plugin-api")).is_ok())
                .map(Path::to_path_buf)
        });
    beside.or_else(|| {
        let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        api_crate(&compiled.join("plugin-api"))
            .ok()
            .and_then(|api| api.parent().map(Path::to_path_buf))
    })
}

/// `s` inside a TOML basic string.
fn toml_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_families() {
        assert!(check_name("acme").is_ok() && check_name("my_lab2").is_ok());
        for bad in ["Acme", "2lab", "a-b", "", "lab_", "captum"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
