//! The model zoo's quick share: real torchvision and MONAI architectures (a ResNet, a ViT, a
//! video R3D, MONAI's SegResNet and UNETR) exported by tools/export_model.py's own functions,
//! loaded by esegeta on both backends, forward within 1e-5 of PyTorch's scale, saliency and
//! Grad-CAM within 1e-3 of Captum's (or, for saliency, as close to a float64 gradient as
//! Captum's own float32 map is), and esegeta's fp64 saliency within 1e-5 of PyTorch's float64
//! gradient. tools/make_zoo.py does the work and exits non-zero on a row that fails; `make zoo` runs every architecture and writes docs/models.md.
//!
//! It needs torchvision, MONAI and Captum in the torch virtualenv (`.ci/run` installs them
//! from tools/requirements-zoo.txt); without them it is skipped with a note, unless
//! ESEGETA_REQUIRE_ZOO=1 (CI) makes that a failure.

mod common;

use std::process::Command;

use common::*;

fn python() -> Command {
    let venv = std::env::var_os("VIRTUAL_ENV").map(std::path::PathBuf::from);
    Command::new(venv.map_or("python3".into(), |v| v.join("bin").join("python")))
}

fn zoo_packages_installed() -> bool {
    let check = python()
        .args(["-c", "import torchvision, monai, captum, onnxscript"])
        .output();
    check.is_ok_and(|o| o.status.success())
}

#[test]
fn quick_zoo_architectures_load_and_explain_as_pytorch_and_captum_do() {
    if !zoo_packages_installed() {
        assert!(
            std::env::var("ESEGETA_REQUIRE_ZOO").as_deref() != Ok("1"),
            "ESEGETA_REQUIRE_ZOO=1 but torchvision, monai, captum or onnxscript is missing: \
             pip install -r tools/requirements-zoo.txt"
        );
        eprintln!("skipped: pip install -r tools/requirements-zoo.txt to run the zoo");
        return;
    }
    let root = fixtures().join("../..");
    let out = scratch("zoo");
    let mut cmd = python();
    cmd.arg(root.join("tools/make_zoo.py"))
        .arg("--quick")
        .arg("--out")
        .arg(&out);
    let (ok, stdout, stderr) = run(&mut cmd);
    let tail: String = stderr.lines().rev().take(30).collect::<Vec<_>>().join("\n");
    assert!(ok, "the zoo failed:\n{stdout}\n{tail}");
    assert!(stdout.contains("every row ok"), "{stdout}");
}
