//! Checking a run config before any job starts: its shape against the generated schema, then
//! each method's parameters against the schema its plugin publishes, then what only the host
//! can know (method ids, files, devices). Every problem is reported at once, by JSON path.

use std::fmt;
use std::path::Path;

use esegeta_plugin_api::MethodKind;
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

/// Reads and checks the config at `path` against the loaded plugins.
pub fn check(path: &Path, registry: &Registry) -> anyhow::Result<Loaded> {
    let invalid = |problems| InvalidConfig {
        path: path.display().to_string(),
        problems,
    };
    let raw = super::read(path).map_err(|e| invalid(vec![format!("{e:#}")]))?;
    let schema = serde_json::to_value(schemars::schema_for!(RunConfig))?;
    let problems = crate::params::validate(&schema, &raw, "");
    if !problems.is_empty() {
        return Err(invalid(problems).into());
    }
    let config: RunConfig =
        serde_json::from_value(raw.clone()).map_err(|e| invalid(vec![e.to_string()]))?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let loaded = Loaded {
        config,
        raw,
        base_dir,
        path: path.to_path_buf(),
    };
    let problems = semantic_problems(&loaded, registry);
    if !problems.is_empty() {
        return Err(invalid(problems).into());
    }
    Ok(loaded)
}

fn semantic_problems(loaded: &Loaded, registry: &Registry) -> Vec<String> {
    let config = &loaded.config;
    let mut problems = Vec::new();
    if !loaded.resolve(&config.model.path).is_file() {
        problems.push(format!(
            "model.path: {} does not exist",
            loaded.resolve(&config.model.path).display()
        ));
    }
    if config.model.task == TaskKind::Classification && config.model.wrapper.is_some() {
        problems.push(
            "model.wrapper: wrappers are for segmentation; set model.task to \"segmentation\""
                .into(),
        );
    }
    for (i, input) in config.inputs.iter().enumerate() {
        if let Err(e) = super::super::run::plan::expand(loaded, &input.path) {
            problems.push(format!("inputs[{i}].path: {e:#}"));
        }
        let mask_wrapper = config.model.wrapper == Some(crate::task::WrapperKind::Mask);
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
    model_problems(loaded, registry, &mut problems);
    problems
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
            if provided.info.kind != MethodKind::LayerAttribution {
                problems.push(format!(
                    "{at}.layer: {} is not a layer method; drop `layer`",
                    method.id
                ));
            } else if let Value::Object(map) = &mut params {
                map.insert("layer".into(), json!(layer));
            }
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

/// What the model itself must offer: a graph for methods that need layers or backward rules,
/// and the layers that layer methods name. Loads the model only when such a method is asked.
fn model_problems(loaded: &Loaded, registry: &Registry, problems: &mut Vec<String>) {
    let config = &loaded.config;
    let needy: Vec<(usize, &str, bool)> = config
        .methods
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let needs = registry.methods.get(&m.id)?.info.needs;
            (needs.layers || needs.backward_rules).then_some((i, m.id.as_str(), needs.layers))
        })
        .collect();
    let path = loaded.resolve(&config.model.path);
    if needy.is_empty() || !path.is_file() {
        return;
    }
    let model = match crate::model::load(
        &path,
        tch::Device::Cpu,
        tch::Kind::Float,
        config.model.output_index,
    ) {
        Ok(m) => m,
        Err(e) => return problems.push(format!("model.path: {e:#}")),
    };
    let Some(graph) = model.graph() else {
        for (i, id, layers) in needy {
            problems.push(format!(
                "methods[{i}]: {id} needs {} but {} is a TorchScript model, a black box; export \
                 it to ONNX (tools/export_model.py) and point model.path at the .onnx file",
                if layers {
                    "named layers"
                } else {
                    "backward rules"
                },
                path.display()
            ));
        }
        return;
    };
    let names: Vec<&str> = graph.layer_list().iter().map(|l| l.name.as_str()).collect();
    for (i, _, _) in needy {
        let method = &config.methods[i];
        let (at, layer) = match (&method.layer, method.params.get("layer")) {
            (Some(l), _) => (format!("methods[{i}].layer"), l.as_str()),
            (None, Some(Value::String(l))) => (format!("methods[{i}].params.layer"), l.as_str()),
            _ => continue,
        };
        if !names.contains(&layer) {
            problems.push(format!(
                "{at}: the model has no layer `{layer}`.{} `esegeta layers {}` lists them.",
                did_you_mean(layer, names.iter().copied()),
                path.display()
            ));
        }
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
