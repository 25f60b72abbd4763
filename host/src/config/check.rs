//! Checking a run config before any job starts: its shape against the generated schema, then
//! each method's parameters against the schema its plugin publishes, then what only the host
//! can know (method ids, files, devices). Every problem is reported at once, by JSON path.

use std::fmt;
use std::path::Path;

use esegeta_plugin_api::{MethodKind, Needs};
use serde_json::{json, Value};

use super::{Loaded, RunConfig};
use crate::plugins::Registry;
use crate::suggest::did_you_mean;
use crate::task::TaskKind;

/// A config that did not validate: one line per problem.
#[derive(Debug)]
pub struct InvalidConfig {
    pub path: String,
    pub problems: Vec<String>,
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the config {} is not valid:\n  {}",
            self.path,
            self.problems.join("\n  ")
        )
    }
}

impl std::error::Error for InvalidConfig {}

/// Reads and checks the config at `path` against the loaded plugins, then runs its first
/// input through each model (see [`check_with`]).
pub fn check(path: &Path, registry: &Registry) -> anyhow::Result<Loaded> {
    check_with(path, registry, true)
}

/// [`check`]; with `dry_run` false, without loading the models to run the first input
/// through them (`check --no-model`, and each job's child process, whose run checked it).
pub fn check_with(path: &Path, registry: &Registry, dry_run: bool) -> anyhow::Result<Loaded> {
    let invalid = |problems| InvalidConfig {
        path: path.display().to_string(),
        problems,
    };
    let raw = super::read(path).map_err(|e| invalid(vec![format!("{e:#}")]))?;
    let schema = serde_json::to_value(schemars::schema_for!(RunConfig))?;
    let structural = crate::params::validate(&schema, &raw, "");
    // With the refused values taken out, the rest of the config is still checked in this pass.
    let (usable, taken_out) = match structural.is_empty() {
        true => (raw.clone(), Vec::new()),
        false => super::prune::without_invalid(&schema, &raw),
    };
    let config: RunConfig = match serde_json::from_value(usable) {
        Ok(config) => config,
        Err(_) if !structural.is_empty() => return Err(invalid(structural).into()),
        Err(e) => return Err(invalid(vec![e.to_string()]).into()),
    };
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let loaded = Loaded {
        config,
        raw,
        base_dir,
        path: path.to_path_buf(),
    };
    let mut problems = structural;
    problems.extend(
        semantic_problems(&loaded, registry)
            .into_iter()
            .filter(|p| !taken_out.iter().any(|t| super::prune::is_under(p, t))),
    );
    if dry_run {
        dry_run_unless_blocked(&loaded, &mut problems);
    }
    if !problems.is_empty() {
        return Err(invalid(problems).into());
    }
    Ok(loaded)
}

/// The config paths whose problems make a dry run meaningless: it would fail on them again, or
/// run a model with settings the user did not mean. Problems elsewhere (methods) do not stop it.
const DRY_RUN_NEEDS: &[&str] = &["model", "models", "inputs", "preprocessing", "execution"];

fn dry_run_unless_blocked(loaded: &Loaded, problems: &mut Vec<String>) {
    let blocking: Vec<&str> = DRY_RUN_NEEDS
        .iter()
        .copied()
        .filter(|at| problems.iter().any(|p| super::prune::is_under(p, at)))
        .collect();
    if blocking.is_empty() {
        problems.extend(super::dry_run::problems(loaded));
    } else {
        problems.push(format!(
            "(the dry run of the first input through the models, which checks targets and input \
             shapes, runs once the problems under {} are fixed)",
            blocking.join(", ")
        ));
    }
}

fn semantic_problems(loaded: &Loaded, registry: &Registry) -> Vec<String> {
    let config = &loaded.config;
    let mut problems = Vec::new();
    model_problems(loaded, &mut problems);
    for (i, input) in config.inputs.iter().enumerate() {
        if let Err(e) = super::super::run::plan::expand(loaded, &input.path) {
            problems.push(format!("inputs[{i}].path: {e:#}"));
        }
        let mask_wrapper = config
            .model_list()
            .iter()
            .any(|m| m.wrapper == Some(crate::task::WrapperKind::Mask));
        if input.mask.is_some() && !mask_wrapper {
            problems.push(format!(
                "inputs[{i}].mask: a region is for the `mask` wrapper; set model.wrapper to \"mask\" or drop it (metrics take their ground truth as a `mask` parameter)"
            ));
        }
        if input.mask.is_none() && mask_wrapper {
            problems.push(format!(
                "inputs[{i}].mask: the `mask` wrapper needs a region file for every input"
            ));
        }
        if let Some(truth) = &input.ground_truth {
            if let Ok(files) = super::super::run::plan::expand(loaded, &input.path) {
                for file in files {
                    let stem = super::super::run::plan::file_stem(&file);
                    let path = loaded.resolve(truth.replace("{stem}", &stem));
                    if !path.is_file() {
                        problems.push(format!(
                            "inputs[{i}].ground_truth: {} (for {}) does not exist",
                            path.display(),
                            file.display()
                        ));
                        break;
                    }
                }
            }
        }
        if let Some(mask) = &input.mask {
            if !loaded.resolve(mask).is_file() {
                problems.push(format!(
                    "inputs[{i}].mask: {} does not exist",
                    loaded.resolve(mask).display()
                ));
            }
        }
    }
    for (i, device) in config.execution.devices.iter().enumerate() {
        if let Err(e) = crate::model::parse_device(device) {
            problems.push(format!("execution.devices[{i}]: {e:#}"));
        }
    }
    method_problems(loaded, registry, &mut problems);
    graph_problems(loaded, registry, &mut problems);
    randomisation_problems(loaded, registry, &mut problems);
    problems
}

/// Whether a method takes a ground-truth `mask` parameter (the localisation metrics).
pub fn takes_mask(provided: &crate::plugins::Provided) -> bool {
    serde_json::from_str::<Value>(provided.info.params_schema.as_str())
        .ok()
        .is_some_and(|s| s.pointer("/properties/mask").is_some())
}

/// A metric's `explained` method must exist and make a map over the input; and a metric
/// scored against a ground-truth mask cannot follow a crop, resize or patching of the input
/// (the mask is not resampled with it), so that combination is refused.
fn metric_problems(
    loaded: &Loaded,
    registry: &Registry,
    method: &super::MethodSpec,
    at: &str,
    params: &Value,
    problems: &mut Vec<String>,
) {
    if let Some(id) = params.pointer("/explained/method").and_then(Value::as_str) {
        match registry.methods.get(id) {
            None => {
                let hint = did_you_mean(id, registry.methods.keys().map(String::as_str));
                problems.push(format!(
                    "{at}.params.explained.method: unknown method `{id}`.{hint}"
                ));
            }
            Some(p) if p.info.kind != MethodKind::Attribution => problems.push(format!(
                "{at}.params.explained.method: `{id}` is a {} method; a metric scores a map over \
                 the input, so explain with an attribution method (saliency, integrated \
                 gradients, ...)",
                format!("{:?}", p.info.kind).to_lowercase()
            )),
            Some(_) => {}
        }
    }
    if params.get("mask").is_none() {
        return;
    }
    let config = &loaded.config;
    let patched = config.execution.patching.is_some() || method.patching.is_some();
    let reshaped = config.preprocessing.crop.is_some() || config.preprocessing.resize.is_some();
    if patched || reshaped {
        problems.push(format!(
            "{at}: a metric with a ground-truth mask cannot run on {} inputs: the mask is not              resampled with them. Drop {} for this run, or score the metric in a run without it",
            if patched { "patched" } else { "cropped or resized" },
            if patched { "`patching`" } else { "preprocessing.crop/resize" }
        ));
    }
}

/// The methods `randomisation.methods` names exist and make maps over the input.
fn randomisation_problems(loaded: &Loaded, registry: &Registry, problems: &mut Vec<String>) {
    let Some(spec) = loaded.config.randomisation.as_ref() else {
        return;
    };
    let labels: Vec<String> = loaded
        .config
        .model_list()
        .iter()
        .map(|m| m.label())
        .collect();
    for (i, label) in spec.models.iter().flatten().enumerate() {
        if !labels.contains(label) {
            let hint = did_you_mean(label, labels.iter().map(String::as_str));
            problems.push(format!(
                "randomisation.models[{i}]: no model is labelled `{label}`; use a model's `name` (else its file stem).{hint}"
            ));
        }
    }
    let Some(names) = spec.methods.as_ref() else {
        return;
    };
    let methods = &loaded.config.methods;
    for (i, name) in names.iter().enumerate() {
        let at = format!("randomisation.methods[{i}]");
        let Some(method) = methods.iter().find(|m| m.name() == name) else {
            let hint = did_you_mean(name, methods.iter().map(|m| m.name()));
            problems.push(format!(
                "{at}: no method is named `{name}`; name an entry of `methods` (its `name`, else its id).{hint}"
            ));
            continue;
        };
        let kind = registry.methods.get(&method.id).map(|p| p.info.kind);
        if matches!(kind, Some(MethodKind::Metric | MethodKind::Explanation)) {
            problems.push(format!(
                "{at}: `{name}` ({}) makes no map over the input to compare across randomisation stages; randomise the method it explains instead",
                method.id
            ));
        }
    }
}

/// `model` or `models`, each model's file and wrapper, and distinct labels.
fn model_problems(loaded: &Loaded, problems: &mut Vec<String>) {
    let config = &loaded.config;
    let (prefix, list): (&dyn Fn(usize) -> String, _) = match (&config.model, &config.models) {
        (Some(_), Some(_)) => {
            problems.push(
                "model: give either `model` (one model) or `models` (a list), not both".into(),
            );
            return;
        }
        (None, None) => {
            problems.push(
                "model: missing; give `model` (one model) or `models` (a list of models)".into(),
            );
            return;
        }
        (Some(_), None) => (&|_| "model".to_string(), config.model_list()),
        (None, Some(_)) => (&|i| format!("models[{i}]"), config.model_list()),
    };
    let mut labels: Vec<String> = Vec::new();
    for (i, model) in list.iter().enumerate() {
        let at = prefix(i);
        if !loaded.resolve(&model.path).is_file() {
            problems.push(format!(
                "{at}.path: {} does not exist",
                loaded.resolve(&model.path).display()
            ));
        }
        if model.task == TaskKind::Classification && model.wrapper.is_some() {
            problems.push(format!(
                "{at}.wrapper: wrappers are for segmentation; set {at}.task to \"segmentation\""
            ));
        }
        let label = model.label();
        if label.is_empty() || label.contains(['/', '\\']) {
            problems.push(format!(
                "{at}.name: `{label}` cannot label output folders; use letters, digits, `-`, `_` or `.`"
            ));
        }
        if labels.contains(&label) {
            problems.push(format!(
                "{at}.name: two models are labelled `{label}`; give each a distinct `name`"
            ));
        }
        labels.push(label);
    }
}

fn method_problems(loaded: &Loaded, registry: &Registry, problems: &mut Vec<String>) {
    let mut names = Vec::new();
    for (i, method) in loaded.config.methods.iter().enumerate() {
        let at = format!("methods[{i}]");
        if names.contains(&method.name()) {
            problems.push(format!(
                "{at}: `{}` appears twice; give each entry a distinct `name`",
                method.name()
            ));
        }
        names.push(method.name());
        let Some(provided) = registry.methods.get(&method.id) else {
            let hint = did_you_mean(&method.id, registry.methods.keys().map(String::as_str));
            problems.push(format!("{at}.id: unknown method `{}`.{hint}", method.id));
            continue;
        };
        let mut params = method.params.clone();
        if let Some(layer) = &method.layer {
            if !provided.info.needs.layers {
                problems.push(format!(
                    "{at}.layer: {} is not a layer method; drop `layer`",
                    method.id
                ));
            } else if let Value::Object(map) = &mut params {
                map.insert("layer".into(), json!(layer));
            }
        }
        let every_input_has_truth = loaded
            .config
            .inputs
            .iter()
            .all(|i| i.ground_truth.is_some());
        if let Value::Object(map) = &mut params {
            if every_input_has_truth && takes_mask(provided) && !map.contains_key("mask") {
                // Given per input at run time (checked with the inputs).
                map.insert("mask".into(), json!("inputs[].ground_truth"));
            }
        }
        if provided.info.kind == MethodKind::Metric {
            metric_problems(loaded, registry, method, &at, &params, problems);
        }
        let schema = provided.info.params_schema.as_str();
        problems.extend(crate::params::problems(
            &method.id,
            schema,
            &params,
            &format!("{at}.params"),
        ));
        if let Some(device) = &method.device {
            if let Err(e) = crate::model::parse_device(device) {
                problems.push(format!("{at}.device: {e:#}"));
            }
        }
    }
}

/// What each model itself must offer: a graph for methods that need layers or backward rules,
/// and the layers that layer methods name. Loads a model only when such a method is asked.
fn graph_problems(loaded: &Loaded, registry: &Registry, problems: &mut Vec<String>) {
    let config = &loaded.config;
    let needy: Vec<(usize, &str, Needs)> = config
        .methods
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let needs = registry.methods.get(&m.id)?.info.needs;
            (needs.layers || needs.backward_rules).then_some((i, m.id.as_str(), needs))
        })
        .collect();
    if needy.is_empty() {
        return;
    }
    for (_, at, path, model) in existing_models(loaded) {
        model_graph_problems(loaded, &needy, &at, &path, &model.output(), problems);
    }
}

/// Each model whose file exists: its index, config path (`model`, `models[i]`), file and
/// settings.
pub(super) fn existing_models(
    loaded: &Loaded,
) -> Vec<(usize, String, std::path::PathBuf, &super::ModelConfig)> {
    let several = loaded.config.models.is_some();
    let list = loaded.config.model_list();
    list.into_iter()
        .enumerate()
        .map(|(m, model)| {
            let at = if several {
                format!("models[{m}]")
            } else {
                "model".to_string()
            };
            (m, at, loaded.resolve(&model.path), model)
        })
        .filter(|(_, _, path, _)| path.is_file())
        .collect()
}

/// The problems of one model file with the methods in `needy` (index, id, needs).
fn model_graph_problems(
    loaded: &Loaded,
    needy: &[(usize, &str, Needs)],
    at: &str,
    path: &std::path::Path,
    output: &crate::model::Output,
    problems: &mut Vec<String>,
) {
    let model = match crate::model::load_output(path, tch::Device::Cpu, tch::Kind::Float, output) {
        Ok(m) => m,
        Err(e) => return problems.push(format!("{at}.path: {e:#}")),
    };
    let Some(graph) = model.graph() else {
        for (i, id, needs) in needy {
            problems.push(format!(
                "methods[{i}]: {id} needs {} but {} ({at}) is a TorchScript model, a black box; \
                 export it to ONNX (tools/export_model.py) and point {at}.path at the .onnx file",
                if needs.layers {
                    "named layers"
                } else {
                    "backward rules"
                },
                path.display()
            ));
        }
        return;
    };
    warn_of_activations(graph, needy, at);
    let names: Vec<&str> = graph.layer_list().iter().map(|l| l.name.as_str()).collect();
    for (i, _, _) in needy {
        let method = &loaded.config.methods[*i];
        let (where_, layer) = match (&method.layer, method.params.get("layer")) {
            (Some(l), _) => (format!("methods[{i}].layer"), l.as_str()),
            (None, Some(Value::String(l))) => (format!("methods[{i}].params.layer"), l.as_str()),
            _ => continue,
        };
        if !names.contains(&layer) {
            problems.push(format!(
                "{where_}: the model {} has no layer `{layer}`.{} `esegeta layers {}` lists them.",
                path.display(),
                did_you_mean(layer, names.iter().copied()),
                path.display()
            ));
        }
    }
}

/// A backward rule acts only on the op types it is defined for (Captum's guided backprop and
/// deconvolution on ReLU; DeepLift's rescale on ReLU, ELU, Sigmoid, Tanh), and other
/// activations pass plain gradients, as Captum's module hooks do: said before the run when the
/// model has activations other than ReLU, as each job's manifest entry says it after.
fn warn_of_activations(
    graph: &dyn crate::model::graph::GraphModel,
    needy: &[(usize, &str, Needs)],
    at: &str,
) {
    let census = crate::rules::activations(graph);
    if census.keys().all(|op| op == "Relu") {
        return;
    }
    let list: Vec<String> = census.iter().map(|(op, n)| format!("{op} x{n}")).collect();
    for (i, id, _) in needy.iter().filter(|(_, _, n)| n.backward_rules) {
        tracing::warn!(
            "methods[{i}] ({id}) runs backward rules on {at}, whose activations are {}: a rule \
             acts only on the op types it is defined for and the others pass plain gradients \
             (each job's manifest entry gives the count of activations its rule acted on)",
            list.join(", ")
        );
    }
}

/// The run config's JSON Schema with each loaded method's parameter schema embedded, so that
/// one schema checks a whole config (editors, the GUI's forms).
pub fn schema_with_methods(registry: &Registry) -> anyhow::Result<Value> {
    let mut schema = serde_json::to_value(schemars::schema_for!(RunConfig))?;
    let mut by_id = Vec::new();
    for (id, method) in &registry.methods {
        let mut params: Value = serde_json::from_str(method.info.params_schema.as_str())?;
        if let Value::Object(map) = &mut params {
            map.remove("$schema");
            // Its own resource, so that its internal `#/$defs/...` references stay its own.
            map.insert("$id".into(), json!(format!("urn:esegeta:method:{id}")));
            // In a run config a metric's `mask` may come from inputs[].ground_truth instead
            // (`check` still requires one or the other).
            if let Some(Value::Array(required)) = map.get_mut("required") {
                required.retain(|r| r != "mask");
            }
        }
        by_id.push(json!({
            "if": {"properties": {"id": {"const": id}}, "required": ["id"]},
            "then": {"properties": {"params": params}}
        }));
    }
    let ids: Vec<&String> = registry.methods.keys().collect();
    let spec = schema
        .pointer_mut("/$defs/MethodSpec")
        .ok_or_else(|| anyhow::anyhow!("no MethodSpec in the schema"))?;
    spec["properties"]["id"]["enum"] = json!(ids);
    spec["allOf"] = json!(by_id);
    Ok(schema)
}
