//! Links the binary so that it runs without LD_LIBRARY_PATH, tells it where libtorch's
//! libraries are, so that it can load CUDA's part on demand (host/src/model/cuda.rs), and
//! builds the GUI's page (web/, with npm) into `$OUT_DIR/web`, which host/src/serve/assets.rs
//! embeds in the binary; compiles the C++ shim that freezes TorchScript models for inference
//! (host/src/model/frozen.cpp) against libtorch's headers.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    build_page();
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // libtorch_cuda is not linked: loading it and its CUDA libraries at start-up tripled the
    // binary's start time (about 0.16 s of CPU and 0.4 s of page faults on a 2-core machine)
    // for every command, CPU-only ones included. It is opened when a CUDA device is asked for.
    println!("cargo:rustc-env=ESEGETA_TORCH_LIB={lib}");
    build_frozen_shim(Path::new(&lib));
}

/// frozen.cpp, against the headers beside libtorch's libraries (`<torch>/include`, as torch's
/// wheel and the libtorch archive lay them out) and with libtorch's C++ ABI, as torch-sys
/// builds its own C++ (`LIBTORCH_CXX11_ABI`, default 1).
fn build_frozen_shim(lib: &Path) {
    let source = "src/model/frozen.cpp";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let include = lib.parent().unwrap_or(lib).join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        // libtorch's headers warn by the hundred under -Wall; none of it is ours.
        .warnings(false)
        .flag_if_supported("-w")
        .file(source)
        .compile("esegeta_frozen");
}

/// `npm ci` (when the lock file is newer than what is installed) and `npm run build`, again
/// whenever web/'s sources change. Without npm the binary gets a page that says how to get
/// the real one, unless ESEGETA_REQUIRE_WEB is set (CI), where that is an error.
fn build_page() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let web = manifest.join("../web");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("web");
    for watched in ["src", "package.json", "package-lock.json", "build.mjs"] {
        println!("cargo:rerun-if-changed={}", web.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=ESEGETA_REQUIRE_WEB");
    println!("cargo:rerun-if-changed=build.rs");
    let _ = std::fs::create_dir_all(&out);
    if let Err(problem) = npm_build(&web, &out) {
        if std::env::var_os("ESEGETA_REQUIRE_WEB").is_some() {
            panic!("cannot build the GUI's page: {problem}");
        }
        println!(
            "cargo:warning=the GUI's page was not built ({problem}); `esegeta serve` will say so"
        );
    }
}

fn npm_build(web: &Path, out: &Path) -> Result<(), String> {
    let installed = web.join("node_modules/.package-lock.json");
    if newer(&web.join("package-lock.json"), &installed) {
        npm(web, &["ci", "--no-audit", "--no-fund"])?;
    }
    npm(web, &["run", "build", "--", &out.display().to_string()])
}

fn npm(web: &Path, args: &[&str]) -> Result<(), String> {
    let status = Command::new("npm")
        .args(args)
        .current_dir(web)
        .status()
        .map_err(|e| format!("cannot run npm: {e}; install Node.js 18 or newer with npm"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!(
            "`npm {}` in web/ failed ({status})",
            args.join(" ")
        )),
    }
}

/// Whether `a` was changed after `b` (or `b` is missing).
fn newer(a: &Path, b: &Path) -> bool {
    let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (time(a), time(b)) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}
