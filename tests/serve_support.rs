//! Shared by the GUI's tests (serve_api.rs, serve_browser.rs): a root folder with the demo
//! model and inputs copied in, an `esegeta serve` on a free port over it, and an HTTP agent.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const TOKEN: &str = "test-token-0123456789";

/// A running `esegeta serve`; stopped when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub root: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A fresh root under target/ holding `demo/` (the 2D lesion classifier and its scan) and
/// `vessels/` (the vessel UNet's ONNX export and one 64^3 angiogram).
pub fn demo_root(name: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&root);
    for (from, to) in [
        (
            "configs/demo/lesion_classifier.pt",
            "demo/lesion_classifier.pt",
        ),
        (
            "configs/demo/scan_with_lesion.png",
            "demo/scan_with_lesion.png",
        ),
        ("configs/vessels/models/unet.onnx", "vessels/unet.onnx"),
        (
            "configs/vessels/models/unet.onnx.data",
            "vessels/unet.onnx.data",
        ),
        (
            "configs/vessels/vessels_00.nii.gz",
            "vessels/vessels_00.nii.gz",
        ),
    ] {
        let target = root.join(to);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(from), &target).unwrap();
    }
    root.canonicalize().unwrap()
}

/// Starts `esegeta serve --port 0 --root ROOT` and waits for the URL it prints.
pub fn serve(root: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_esegeta"))
        .args(["serve", "--port", "0", "--root"])
        .arg(root)
        .env("ESEGETA_TOKEN", TOKEN)
        .env_remove("ESEGETA_PLUGIN_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("esegeta serve starts");
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    // Keep reading what it prints, so that it never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("esegeta serve printed no URL: {line:?}"))
        .to_string();
    assert!(url.ends_with(&format!("/?token={TOKEN}")), "{url}");
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "binds 127.0.0.1 by default: {url}"
    );
    let base = url.split("/?").next().unwrap().to_string();
    Server {
        child,
        base,
        root: root.to_path_buf(),
    }
}

/// An agent that hands every status back instead of failing on 4xx.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// The 2D demo: the lesion classifier's saliency and integrated gradients (`n_steps` given).
pub fn demo_2d(n_steps: serde_json::Value, folder: &str) -> serde_json::Value {
    serde_json::json!({
        "model": {"path": "demo/lesion_classifier.pt", "task": "classification"},
        "inputs": [{"path": "demo/scan_with_lesion.png", "targets": [1]}],
        "methods": [
            {"id": "captum.saliency"},
            {"id": "captum.integrated_gradients", "params": {"n_steps": n_steps}}
        ],
        "output": {"folder": folder, "formats": ["npy", "png"]}
    })
}
