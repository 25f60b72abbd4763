//! Records the version of the libtorch this crate is compiled against, so that the host can
//! refuse plugins built against another one (at::Tensor's layout is only stable within a version).
use std::path::Path;

fn main() {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    let version = libtorch_version(Path::new(&lib)).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ESEGETA_LIBTORCH_VERSION={version}");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // This crate's own test binaries find libtorch without LD_LIBRARY_PATH.
    if !lib.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}

/// A pip install keeps `torch/version.py` beside `torch/lib`; a libtorch zip has `build-version`.
fn libtorch_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        let line = text.lines().find(|l| l.starts_with("__version__"))?;
        return Some(line.split(['\'', '"']).nth(1)?.to_string());
    }
    let text = std::fs::read_to_string(root.join("build-version")).ok()?;
    Some(text.trim().to_string())
}
