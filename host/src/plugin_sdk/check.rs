//! `esegeta plugin check FILE`: the conformance kit for a plugin file. It loads the file with
//! the host's own checks (not a plugin, another ABI or libtorch version, a method id outside
//! its family, duplicate ids), validates each method's parameter schema, then probes each
//! method in a child process on the built-in 2D model (and 3D, where the method takes it):
//! no panic, a map the host can write, seeded runs bit-equal, flat memory, cancellation
//! honoured (probe.rs). One report per method; an error naming the file and the failed methods.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::models;
use super::probe::{self, Report, Step};
use crate::plugins::Registry;

/// The longest one probe may take (a method that hangs without being cancelled ends there).
const PROBE_TIMEOUT: Duration = Duration::from_secs(300);

/// What `plugin check` was asked for.
pub struct CheckRequest {
    pub file: PathBuf,
    /// `ID=JSON`: parameters for a method whose schema requires some without defaults.
    pub params: Vec<String>,
    /// Only these methods (all when empty).
    pub methods: Vec<String>,
    /// The plugin folders given with `--plugins` (other plugins the methods may call).
    pub plugin_dirs: Vec<PathBuf>,
}

/// Runs the kit and prints its report; an error when anything failed.
pub fn run(request: &CheckRequest) -> Result<()> {
    let file = request.file.display().to_string();
    if !request.file.is_file() {
        bail!("plugin check failed for {file}: there is no such file (give the built .so, e.g. target/release/libesegeta_NAME.so)");
    }
    let given = parse_params(&request.params)?;
    let registry = Registry::discover_with(&request.file, &request.plugin_dirs);
    let Some(index) = registry
        .plugins
        .iter()
        .position(|p| same_file(&p.path, &request.file))
    else {
        let why = registry
            .problems
            .iter()
            .find(|p| p.contains(&file))
            .cloned()
            .unwrap_or_else(|| format!("{file} could not be loaded"));
        bail!("plugin check failed for {file}: {why}");
    };
    let plugin = &registry.plugins[index];
    println!(
        "{file}: an esegeta plugin of family `{}` (plugin ABI {}, libtorch {})",
        plugin.family,
        esegeta_plugin_api::ABI_VERSION,
        esegeta_plugin_api::LIBTORCH_VERSION
    );
    let mut failures: Vec<String> = Vec::new();
    // The host's loading problems that concern this file: duplicate ids within it or with
    // the plugins installed beside it.
    for problem in registry.problems.iter().filter(|p| p.contains(&file)) {
        println!("  FAIL  {problem}");
        failures.push(problem.clone());
    }
    let ids: Vec<String> = registry
        .methods
        .iter()
        .filter(|(_, m)| m.plugin == index)
        .map(|(id, _)| id.clone())
        .collect();
    if ids.is_empty() && failures.is_empty() {
        failures.push("it provides no methods (register them with register_method!)".into());
    }
    for id in given
        .keys()
        .chain(&request.methods)
        .filter(|id| !ids.contains(id))
    {
        bail!("{id} is not a method of {file}; it provides {ids:?}");
    }
    let ids: Vec<String> = ids
        .into_iter()
        .filter(|id| request.methods.is_empty() || request.methods.contains(id))
        .collect();
    for id in &ids {
        println!("  {id}");
        let info = &registry.methods[id].info;
        let mut steps = Vec::new();
        steps.extend(family_step(&plugin.family, id));
        let schema_step = schema_step(id, info.params_schema.as_str());
        let schema_ok = schema_step.ok;
        steps.push(schema_step);
        let params = match schema_ok.then(|| probe_params(id, info, given.get(id))) {
            Some(Ok(params)) => Some(params),
            Some(Err(skip)) => {
                steps.push(Step {
                    check: "run".into(),
                    ok: true,
                    detail: format!("not run: {skip}"),
                });
                None
            }
            None => None,
        };
        if let Some(params) = params {
            for dims in [2, 3] {
                steps.extend(probe_case(request, id, dims, &params));
            }
        }
        for step in &steps {
            let status = if step.ok { "ok  " } else { "FAIL" };
            println!("    {status}  {:<16} {}", step.check, step.detail);
            if !step.ok {
                failures.push(format!("{id}: {}: {}", step.check, step.detail));
            }
        }
    }
    if failures.is_empty() {
        println!("{file}: every check passed ({} method(s))", ids.len());
        return Ok(());
    }
    bail!(
        "plugin check failed for {file}:\n  {}",
        failures.join("\n  ")
    )
}

/// `ID=JSON` pairs into parameters per method.
fn parse_params(pairs: &[String]) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for pair in pairs {
        let (id, json) = pair.split_once('=').ok_or_else(|| {
            anyhow!(
                "--params takes METHOD=JSON, e.g. acme.sleep='{{\"seconds\": 1}}'; got `{pair}`"
            )
        })?;
        let value: Value = serde_json::from_str(json)
            .with_context(|| format!("--params {id}=...: not valid JSON: {json}"))?;
        if !value.is_object() {
            bail!("--params {id}=...: the parameters must be a JSON object, got {json}");
        }
        out.insert(id.to_string(), value);
    }
    Ok(out)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A method id is `family.snake_case`, with the plugin's own family.
fn family_step(family: &str, id: &str) -> Option<Step> {
    let (prefix, rest) = id.split_once('.').unwrap_or(("", id));
    let snake = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if prefix == family && snake {
        return None;
    }
    Some(Step {
        check: "id".into(),
        ok: false,
        detail: format!(
            "`{id}` is outside the plugin's family: method ids are `{family}.snake_case` \
             (export_plugin!(\"{family}\") names the family)"
        ),
    })
}

/// The schema is JSON Schema for an object that refuses unknown parameters, each parameter
/// described (descriptions become the GUI's help), and every default valid.
fn schema_step(id: &str, text: &str) -> Step {
    let fail = |detail: String| Step {
        check: "schema".into(),
        ok: false,
        detail,
    };
    let schema: Value = match serde_json::from_str(text) {
        Ok(s) => s,
        Err(e) => return fail(format!("the parameter schema is not JSON: {e}")),
    };
    if let Err(e) = jsonschema::validator_for(&schema) {
        return fail(format!(
            "the parameter schema is not a valid JSON Schema: {e}"
        ));
    }
    if schema["type"] != "object" {
        return fail("the parameters must be an object (a struct deriving JsonSchema)".into());
    }
    if schema["additionalProperties"] != Value::Bool(false) {
        return fail(
            "unknown parameters are not refused: add #[serde(deny_unknown_fields)] to the \
             Params struct"
                .into(),
        );
    }
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let undescribed: Vec<&String> = properties
        .iter()
        .filter(|(_, p)| describe(&schema, p).is_none())
        .map(|(name, _)| name)
        .collect();
    if !undescribed.is_empty() {
        return fail(format!(
            "parameter(s) {undescribed:?} have no description: give each field of Params a doc \
             comment (it becomes the GUI form's help and `esegeta schema {id} --text`)"
        ));
    }
    let mut bad_defaults = Vec::new();
    for (name, property) in &properties {
        if let Some(default) = property.get("default") {
            let mut instance = serde_json::Map::new();
            instance.insert(name.clone(), default.clone());
            let problems = crate::params::validate(&schema, &Value::Object(instance), "params");
            // Other required parameters missing are not this default's fault.
            bad_defaults.extend(
                problems
                    .into_iter()
                    .filter(|p| !p.contains("is a required")),
            );
        }
    }
    if !bad_defaults.is_empty() {
        return fail(format!(
            "defaults that break the schema: {}",
            bad_defaults.join("; ")
        ));
    }
    Step {
        check: "schema".into(),
        ok: true,
        detail: format!(
            "{} parameter(s), each described; unknown ones refused; defaults valid",
            properties.len()
        ),
    }
}

/// A property's description, also through a `$ref` or an `allOf` wrapper around one.
fn describe<'a>(root: &'a Value, property: &'a Value) -> Option<&'a str> {
    if let Some(d) = property.get("description").and_then(Value::as_str) {
        return Some(d);
    }
    let reference = property
        .get("$ref")
        .or_else(|| property.pointer("/allOf/0/$ref"))?
        .as_str()?;
    let target = root.pointer(reference.strip_prefix('#')?)?;
    target.get("description").and_then(Value::as_str)
}

/// The parameters a probe runs with: the user's for this method, plus the built-in model's
/// layer for a method that needs one; an error (a reason to skip) when required parameters
/// are still missing.
fn probe_params(
    id: &str,
    info: &esegeta_plugin_api::MethodInfo,
    given: Option<&Value>,
) -> std::result::Result<Value, String> {
    let schema: Value = serde_json::from_str(info.params_schema.as_str()).unwrap_or_default();
    let mut params = given
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|r| *r != "layer" && params.get(*r).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "it requires {missing:?}, which have no defaults; give them with --params \
             {id}='{{...}}'"
        ));
    }
    if info.needs.layers && params.get("layer").is_none() {
        // Filled in per case by the probe (the 2D and 3D models name different layers).
        params["layer"] = Value::Null;
    }
    Ok(params)
}

/// Runs one probe in a child process and returns its steps, each named by the case.
fn probe_case(request: &CheckRequest, id: &str, dims: usize, params: &Value) -> Vec<Step> {
    let case = models::case(dims);
    let mut params = params.clone();
    if params.get("layer") == Some(&Value::Null) {
        params["layer"] = Value::from(case.layer);
    }
    let label = |check: &str| format!("{dims}D {check}");
    let outcome = spawn_probe(request, id, dims, &params);
    match outcome {
        Ok((report, _)) if report.unsupported.is_some() => vec![Step {
            check: label("run"),
            ok: true,
            detail: format!(
                "not supported by the method (a clean error): {}",
                report.unsupported.unwrap_or_default()
            ),
        }],
        Ok((report, exit)) => {
            let mut steps: Vec<Step> = report
                .steps
                .into_iter()
                .map(|s| Step {
                    check: label(&s.check),
                    ..s
                })
                .collect();
            if let Some(exit) = exit {
                steps.push(Step {
                    check: label("process"),
                    ok: false,
                    detail: exit,
                });
            }
            steps
        }
        Err(e) => vec![Step {
            check: label("process"),
            ok: false,
            detail: format!("{e:#}"),
        }],
    }
}

/// The child's report, and a sentence when it ended badly (a signal, a timeout) after it.
fn spawn_probe(
    request: &CheckRequest,
    id: &str,
    dims: usize,
    params: &Value,
) -> Result<(Report, Option<String>)> {
    let exe = std::env::current_exe().context("cannot find the esegeta binary to run a probe")?;
    let mut cmd = Command::new(exe);
    for dir in &request.plugin_dirs {
        cmd.arg("--plugins").arg(dir);
    }
    cmd.args(["plugin", "check"])
        .arg(&request.file)
        .args(["--probe", id, "--dims", &dims.to_string(), "--probe-params"])
        .arg(params.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("cannot start a probe process")?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > PROBE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let report = out
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(probe::MARKER))
        .and_then(|json| serde_json::from_str::<Report>(json).ok());
    let ending = match status {
        None => Some(format!(
            "the probe ran past {} s and was killed (the method hangs?)",
            PROBE_TIMEOUT.as_secs()
        )),
        Some(s) if s.success() => None,
        Some(s) => Some(died(s, &err)),
    };
    match report {
        Some(report) => Ok((report, ending)),
        None => Err(anyhow!(
            "{}",
            ending.unwrap_or_else(|| format!("the probe gave no report: {}", last_line(&err)))
        )),
    }
}

/// Why a probe process ended badly, in a sentence.
fn died(status: std::process::ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(libc::SIGABRT) => format!(
            "the process aborted (SIGABRT): most likely a panic crossed the plugin boundary, \
             or libtorch aborted; {}",
            last_line(stderr)
        ),
        Some(libc::SIGSEGV) => "the process crashed (SIGSEGV, a segmentation fault in the \
                                plugin or what it called)"
            .to_string(),
        Some(sig) => format!("the process was killed by signal {sig}"),
        None => format!(
            "the probe exited with status {}: {}",
            status.code().unwrap_or(-1),
            last_line(stderr)
        ),
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
        .to_string()
}
