//! `esegeta doctor`: what esegeta can do with a model, before any method runs. It loads the
//! model each way it can (the file given and its sibling export: `model.onnx` and `model.pt`),
//! runs an input through each, tries a gradient, and says which method families will run
//! (black-box, gradient, layer, rule-based) and why not where not; for a graph, the
//! activations the ReLU rules act on and the layers with their shapes. Captum users learn
//! of an unsupported layer from a wrong map; this says so first.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::model::Model;

/// What `esegeta doctor` was asked.
pub struct Request<'a> {
    pub model: &'a Path,
    pub input: Option<&'a Path>,
    pub output: crate::model::Output,
    pub device: Device,
    /// Write the given model's raw output for the input here (.npy), for export checks.
    pub save_output: Option<&'a Path>,
}

/// What one export can do.
struct Findings {
    gradients: bool,
    graph: bool,
    output: Option<Tensor>,
}

/// The report, and an error when nothing but black-box methods can run on any export.
pub fn run(request: &Request<'_>) -> Result<String> {
    let mut report = String::new();
    let input = match request.input {
        Some(path) => Some(
            crate::io::load_input(path)?
                .tensor
                .to_device(request.device),
        ),
        None => None,
    };
    let mut best = (false, false);
    let mut outputs: Vec<(PathBuf, Tensor)> = Vec::new();
    for path in exports(request.model) {
        let findings = examine(&path, request, input.as_ref(), &mut report);
        best = (best.0 || findings.gradients, best.1 || findings.graph);
        if let Some(output) = findings.output {
            if path == request.model {
                if let Some(out) = request.save_output {
                    output.write_npy(out)?;
                    let _ = writeln!(report, "  wrote its output to {}", out.display());
                }
            }
            outputs.push((path, output));
        }
    }
    if let [(a, x), (b, y)] = outputs.as_slice() {
        let _ = writeln!(report, "{}", agreement(a, x, b, y));
    }
    if input.is_some() && !best.0 {
        bail!(
            "{report}only black-box methods (occlusion, feature ablation, Shapley sampling, \
             LIME, RISE) can run on {}: no export of it has gradients",
            request.model.display()
        );
    }
    Ok(report)
}

/// The file given and, when it exists, its export in the other format.
fn exports(model: &Path) -> Vec<PathBuf> {
    let other = match model.extension().and_then(|e| e.to_str()) {
        Some("onnx") => Some(model.with_extension("pt")),
        Some("pt") | Some("ts") => Some(model.with_extension("onnx")),
        _ => None,
    };
    let mut all = vec![model.to_path_buf()];
    all.extend(other.filter(|p| p.is_file()));
    all
}

fn examine(path: &Path, r: &Request<'_>, input: Option<&Tensor>, report: &mut String) -> Findings {
    let mut findings = Findings {
        gradients: false,
        graph: false,
        output: None,
    };
    let model = match crate::model::load_output(path, r.device, Kind::Float, &r.output) {
        Ok(model) => model,
        Err(e) => {
            let _ = writeln!(report, "{}: does not load: {e:#}", path.display());
            return findings;
        }
    };
    findings.graph = model.is_graph();
    let _ = writeln!(report, "{}: {}", path.display(), describe(model.as_ref()));
    let Some(x) = input else {
        let _ = writeln!(report, "  (give --input to run it and try its gradient)");
        return findings;
    };
    match tch::no_grad(|| model.forward(x)) {
        Ok(out) => {
            let _ = writeln!(report, "  forward: output {:?}", out.size());
            findings.output = Some(out);
        }
        Err(e) => {
            let _ = writeln!(report, "  forward fails, so no method can run: {e:#}");
            return findings;
        }
    }
    match gradient(model.as_ref(), x) {
        Ok(()) => findings.gradients = true,
        Err(e) => {
            let e = crate::torch_errors::plain(&format!("{e:#}"));
            let _ = writeln!(report, "  gradient fails: {e}");
        }
    }
    families(model.as_ref(), findings.gradients, report);
    if let Some(graph) = model.graph() {
        match crate::layers::rows_of(graph, Some(x), path) {
            Ok(rows) => {
                let table = crate::layers::format_rows(&rows, true);
                let _ = writeln!(report, "  layers:");
                for line in table.lines() {
                    let _ = writeln!(report, "    {line}");
                }
            }
            Err(e) => {
                let _ = writeln!(report, "  layers: {e:#}");
            }
        }
    }
    findings
}

fn describe(model: &dyn Model) -> String {
    match model.graph() {
        None => "TorchScript, a black box without named layers".to_string(),
        Some(graph) => format!(
            "ONNX graph of {} nodes and {} layers, {} batch",
            graph.node_count(),
            graph.layer_list().len(),
            match graph.fixed_batch() {
                Some(n) => format!("a fixed {n}-example"),
                None => "a dynamic".to_string(),
            }
        ),
    }
}

/// The gradient of the output's sum with respect to the input.
fn gradient(model: &dyn Model, x: &Tensor) -> Result<()> {
    tch::with_grad(|| {
        let x = x.detach().to_kind(Kind::Float).set_requires_grad(true);
        let out = model.forward(&x)?;
        let grads = Tensor::f_run_backward(&[out.sum(Kind::Float)], &[&x], false, false)?;
        if !grads[0].defined() {
            bail!("the output does not depend on the input through autograd");
        }
        Ok(())
    })
}

/// Which method families run, with the reason where one does not.
fn families(model: &dyn Model, gradients: bool, report: &mut String) {
    let no_graph = "needs the ONNX export (tools/export_model.py writes it)";
    let no_grad = "needs gradients (see above)";
    let mut line = |family: &str, verdict: Result<(), &str>| {
        let _ = match verdict {
            Ok(()) => writeln!(report, "  {family}: run"),
            Err(why) => writeln!(report, "  {family}: do not run: {why}"),
        };
    };
    line(
        "black-box methods (occlusion, ablation, Shapley, LIME, RISE)",
        Ok(()),
    );
    line(
        "gradient methods (saliency, integrated gradients, SmoothGrad, ...)",
        if gradients { Ok(()) } else { Err(no_grad) },
    );
    let graph = model.graph();
    let layer = match (graph.is_some(), gradients) {
        (false, _) => Err(no_graph),
        (true, false) => Err(no_grad),
        (true, true) => Ok(()),
    };
    line("layer methods (GradCAM, layer attributions, CAMs)", layer);
    line(
        "rule-based methods (guided backprop, DeepLift, LRP, excitation backprop)",
        layer,
    );
    if let Some(graph) = graph {
        let census = crate::rules::activations(graph);
        let list: Vec<String> = census.iter().map(|(op, n)| format!("{op} x{n}")).collect();
        let relu = census.get("Relu").copied().unwrap_or(0);
        let total: usize = census.values().sum();
        let _ =
            writeln!(
            report,
            "  activations: {}; the ReLU rules (guided backprop, deconvnet, DeepLift's rescale) \
             act on {relu} of {total}{}",
            if list.is_empty() { "none".to_string() } else { list.join(", ") },
            if relu < total { ", the others pass plain gradients as in Captum" } else { "" }
        );
    }
}

/// How far the two exports' outputs are apart, relative to their scale.
fn agreement(a: &Path, x: &Tensor, b: &Path, y: &Tensor) -> String {
    if x.size() != y.size() {
        return format!(
            "the exports disagree: {} gives shape {:?}, {} gives {:?}",
            a.display(),
            x.size(),
            b.display(),
            y.size()
        );
    }
    let diff = (x - y).abs().max().double_value(&[]);
    let scale = y.abs().max().double_value(&[]);
    format!(
        "the exports agree to max|diff| {diff:.2e} (output scale {scale:.2e}){}",
        if diff <= 1e-4 * scale + 1e-5 {
            ""
        } else {
            ": they DIFFER, re-export the model"
        }
    )
}
