//! schemas/ holds every method's parameter schema as the plugins publish it; this fails when
//! a method's parameters changed without `make schemas`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn schemas_folder_is_up_to_date() {
    let fresh = scratch("schemas");
    let (ok, _, stderr) = run(esegeta().arg("schema").arg("--write-dir").arg(&fresh));
    assert!(ok, "{stderr}");
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let mut fresh_files = read_dir(&fresh.join("methods"));
    let mut committed_files = read_dir(&committed.join("methods"));
    fresh_files.extend(read_dir(&fresh));
    committed_files.extend(read_dir(&committed));
    let (fresh, committed) = (fresh_files, committed_files);
    assert_eq!(
        fresh.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "schemas/ lists other methods than the plugins provide; run `make schemas`"
    );
    for (name, text) in &fresh {
        assert_eq!(
            text, &committed[name],
            "schemas/.../{name} is stale; run `make schemas`"
        );
    }
}

fn run_config_schema() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/run-config.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn example(name: &str) -> serde_json::Value {
    esegeta::config::read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_run_config_schema_checks_whole_configs_including_method_parameters() {
    let validator = jsonschema::validator_for(&run_config_schema()).unwrap();
    for name in [
        "classification-2d.json",
        "segmentation-3d-patched.json",
        "multi-device.json",
        "demo-vessels.json",
    ] {
        let errors: Vec<String> = validator
            .iter_errors(&example(name))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    let mut bad = example("segmentation-3d-patched.json");
    bad["methods"][1]["params"]["n_steps"] = serde_json::json!("fifty");
    bad["methods"][0]["id"] = serde_json::json!("captum.salency");
    let paths: Vec<String> = validator
        .iter_errors(&bad)
        .map(|e| e.instance_path().to_string())
        .collect();
    assert!(
        paths.contains(&"/methods/1/params/n_steps".to_string()),
        "{paths:?}"
    );
    assert!(paths.contains(&"/methods/0/id".to_string()), "{paths:?}");
}

#[test]
fn the_cpu_example_configs_pass_esegeta_check() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    for name in [
        "classification-2d.json",
        "segmentation-3d-patched.json",
        "vessels-3d.json",
        "demo-vessels.json",
    ] {
        let (ok, stdout, stderr) = run(esegeta().arg("check").arg(configs.join(name)));
        assert!(ok && stdout.contains("is valid"), "{name}: {stderr}");
    }
}

/// The DS6 study: ONNX vessel models with the rule-based methods (guided backprop,
/// deconvolution) beside saliency, their metrics and randomisation.
#[test]
fn the_study_config_validates() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ds6-study.json");
    let (ok, stdout, stderr) = run(esegeta().arg("check").arg(&config));
    assert!(ok && stdout.contains("is valid"), "{stderr}");
}

/// Every choice the GUI's run screen offers in a `<select data-path="...">` (web/src/index.html)
/// is a value the run config accepts there: the page's hand-written options cannot drift from
/// the schema (the isolation list once offered a `thread` that no config accepts).
#[test]
fn the_gui_offers_only_values_the_run_config_accepts() {
    let validator = jsonschema::validator_for(&run_config_schema()).unwrap();
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/src/index.html"),
    )
    .unwrap();
    let mut checked = 0;
    for select in page.split("<select").skip(1) {
        let select = select.split("</select>").next().unwrap();
        let Some(path) = attribute(select, "data-path") else {
            continue;
        };
        for option in select.split("<option").skip(1) {
            let value = attribute(option, "value").unwrap_or_default();
            if value.is_empty() {
                continue; // "(default)": the key is left out
            }
            let mut config = example("classification-2d.json");
            let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
            if parent == "execution.patching" {
                // Patching's other keys come with a window size, which it requires.
                config["execution"]["patching"] = serde_json::json!({"size": [4, 4]});
            }
            let mut at = &mut config;
            for part in parent.split('.').filter(|p| !p.is_empty()) {
                at = at
                    .as_object_mut()
                    .unwrap()
                    .entry(part)
                    .or_insert(serde_json::json!({}));
            }
            at[key] = serde_json::json!(value);
            let errors: Vec<String> = validator
                .iter_errors(&config)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{path} = {value:?}: {errors:?}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} options found in index.html");
}

/// The value of `name="..."` in an HTML tag's text.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    tag[start..].split('"').next()
}
