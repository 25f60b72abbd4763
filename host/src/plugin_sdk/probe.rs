//! One method of a plugin on one built-in case (2D or 3D), in a child process of `esegeta
//! plugin check` so that a crash, an abort (a panic that crossed the boundary) or a hang costs
//! that probe only. It runs the method through the host's own path (`explain::attribute`: task
//! wrapper, JobHost, the ABI), exactly what `esegeta explain` gives a method, and prints its
//! steps as one JSON line after [`MARKER`].

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Kind, Tensor};

use super::models::{self, Case};
use crate::explain::{attribute, Request};
use crate::io::Input;
use crate::plugins::Registry;
use esegeta_plugin_api::MethodKind;

/// The line prefix of the probe's report on stdout (a plugin may print there too).
pub const MARKER: &str = "esegeta-plugin-check-report: ";

/// After the cancel flag is set, a method must return within this time (it should check
/// `Context::check_cancelled` between batches; one that finishes sooner never needs to).
pub const CANCEL_BOUND: Duration = Duration::from_secs(2);

/// Repeated calls after the warm-up; resident memory may grow by at most [`MEMORY_SLACK_MIB`]
/// over them (allocator caches settle during the warm-up). On the tiny built-in models this
/// catches leaks of about 1 MiB per call or more, not single small maps.
pub const MEMORY_CALLS: usize = 20;
pub const MEMORY_WARMUP: usize = 3;
pub const MEMORY_SLACK_MIB: f64 = 16.0;
/// The memory check stops early after this long (slow methods get fewer calls).
const MEMORY_TIME: Duration = Duration::from_secs(20);

const SEED: u64 = 7;

/// One check's outcome.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Step {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

/// What the probe prints.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Report {
    pub steps: Vec<Step>,
    /// The method cannot run on this case (3D refused by the method): not a failure.
    pub unsupported: Option<String>,
}

static STEPS: Mutex<Vec<Step>> = Mutex::new(Vec::new());

fn record(check: &str, ok: bool, detail: String) {
    let mut steps = STEPS.lock().unwrap_or_else(|p| p.into_inner());
    steps.push(Step {
        check: check.to_string(),
        ok,
        detail,
    });
}

fn print_report(unsupported: Option<String>) {
    let steps = STEPS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let report = Report { steps, unsupported };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{MARKER}{}",
        serde_json::to_string(&report).unwrap_or_default()
    );
    let _ = out.flush();
}

/// Runs the probe of `method` on the case of `dims` dimensions with `params` (defaults plus
/// the kit's layer and the user's `--params`), and prints the report.
pub fn run(registry: &Registry, method: &str, dims: usize, params: &Value) -> Result<()> {
    let case = models::case(dims);
    let provided = registry.method(method)?;
    let kind = provided.info.kind;
    // The host's own check of the parameters, as `explain` and a run config's check do.
    if let Err(e) = crate::params::check(
        method,
        provided.info.params_schema.as_str(),
        params,
        "params",
    ) {
        record(
            "params",
            false,
            format!("its parameters {params} do not pass its own schema: {e:#}"),
        );
        print_report(None);
        return Ok(());
    }
    let dir = tempdir(method, dims)?;
    let outcome = probe(registry, method, kind, case, params, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Ok(()) => print_report(None),
        Err(Unsupported(reason)) => print_report(Some(reason)),
    }
    Ok(())
}

/// The method refused the case with an error (3D): reported, not failed.
struct Unsupported(String);

fn probe(
    registry: &Registry,
    method: &str,
    kind: MethodKind,
    case: &Case,
    params: &Value,
    dir: &Path,
) -> std::result::Result<(), Unsupported> {
    let three_d = case.input_shape.len() == 5;
    let model = match case.model(dir) {
        Ok(m) => m,
        Err(e) => {
            record(
                "model",
                false,
                format!("the built-in model did not load: {e:#}"),
            );
            return Ok(());
        }
    };
    let inputs = case.input();
    let request = |seed| Request {
        method,
        params,
        target: case.target,
        task: case.task,
        wrapper: case.wrapper,
        region: None,
        fixed_mask: false,
        seed,
        memory_budget: 1 << 30,
        base_dir: dir.to_path_buf(),
        progress: None,
        segments: None,
    };
    let not_cancelled = AtomicBool::new(false);
    let call = |seed| {
        attribute(
            registry,
            model.as_ref(),
            &inputs,
            &request(seed),
            &not_cancelled,
        )
    };

    // 1. Runs with its defaults, returns a map the host can write.
    let started = Instant::now();
    let first = call(SEED);
    let seconds = started.elapsed().as_secs_f64();
    let map = match first {
        Ok((map, _)) => map,
        Err(e) => {
            let message = format!("{e:#}");
            if message.contains("the method panicked") {
                record(
                    "run",
                    false,
                    format!("it panicked (caught at the boundary by export_plugin!): {message}"),
                );
                return Ok(());
            }
            if three_d {
                return Err(Unsupported(message));
            }
            record(
                "run",
                false,
                format!(
                    "it failed on the {} {}: {message} (give parameters that suit a small \
                     model with --params METHOD=JSON)",
                    case.name,
                    case.shape_text()
                ),
            );
            return Ok(());
        }
    };
    record(
        "run",
        true,
        format!(
            "{} {}: a map {:?} in {seconds:.2} s",
            case.name,
            case.shape_text(),
            map.size()
        ),
    );
    let (ok, detail) = writable(&map, &inputs, kind, dir);
    record("map", ok, detail);

    // 2. A seed makes runs repeatable.
    match call(SEED) {
        Ok((again, _)) => {
            let same = again.size() == map.size()
                && again.kind() == map.kind()
                && bits_equal(&again, &map);
            let detail = if same {
                format!("two runs with seed {SEED} gave bit-equal maps")
            } else {
                format!(
                    "two runs with seed {SEED} gave different maps (max |difference| {}); draw \
                     every random number from ctx.seed()",
                    max_difference(&again, &map)
                )
            };
            record("seed", same, detail);
        }
        Err(e) => record("seed", false, format!("the second run failed: {e:#}")),
    }

    // 3. Resident memory stays flat over repeated calls.
    let mut calls = 0;
    let mut before = resident_mib();
    let memory_started = Instant::now();
    let mut failed = None;
    for i in 0..MEMORY_WARMUP + MEMORY_CALLS {
        if i == MEMORY_WARMUP {
            before = resident_mib();
        }
        if let Err(e) = call(SEED) {
            failed = Some(format!("{e:#}"));
            break;
        }
        if i >= MEMORY_WARMUP {
            calls += 1;
        }
        if memory_started.elapsed() > MEMORY_TIME && calls >= 3 {
            break;
        }
    }
    let growth = resident_mib() - before;
    match failed {
        Some(e) => record("memory", false, format!("a repeated call failed: {e}")),
        None => record(
            "memory",
            growth <= MEMORY_SLACK_MIB,
            format!(
                "resident memory grew {growth:.1} MiB over {calls} calls (allowed \
                 {MEMORY_SLACK_MIB} MiB after {MEMORY_WARMUP} warm-up calls)"
            ),
        ),
    }

    // 4. Cancellation is honoured within a bound (last: a method that hangs ends the probe).
    cancellation(seconds, || {
        let cancelled = AtomicBool::new(false);
        let done = AtomicBool::new(false);
        let (flag, done_ref) = (&cancelled, &done);
        std::thread::scope(|scope| {
            let delay = Duration::from_secs_f64((seconds / 4.0).clamp(0.001, 0.25));
            scope.spawn(move || watchdog(flag, done_ref, delay));
            let set_at = Instant::now() + delay;
            let out = attribute(
                registry,
                model.as_ref(),
                &inputs,
                &request(SEED),
                &cancelled,
            );
            done.store(true, Ordering::SeqCst);
            (
                out.is_ok(),
                Instant::now().saturating_duration_since(set_at),
            )
        })
    });
    Ok(())
}

/// Records the cancellation step from `(finished, time after the flag was set)`.
fn cancellation(seconds: f64, run: impl FnOnce() -> (bool, Duration)) {
    let (finished, after) = run();
    let detail = if finished && after.is_zero() {
        format!("it finished before the cancel flag was set (its first run took {seconds:.2} s)")
    } else if finished {
        format!(
            "it finished {:.2} s after the cancel flag was set (bound {} s)",
            after.as_secs_f64(),
            CANCEL_BOUND.as_secs()
        )
    } else {
        format!(
            "it stopped with an error {:.2} s after the cancel flag was set (bound {} s)",
            after.as_secs_f64(),
            CANCEL_BOUND.as_secs()
        )
    };
    record("cancellation", after <= CANCEL_BOUND, detail);
}

/// Sets the cancel flag after `delay`; if the method has not returned `CANCEL_BOUND` later,
/// reports the failure and ends the probe (the method's thread cannot be stopped otherwise).
fn watchdog(flag: &AtomicBool, done: &AtomicBool, delay: Duration) {
    std::thread::sleep(delay);
    flag.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + CANCEL_BOUND + Duration::from_millis(500);
    while Instant::now() < deadline {
        if done.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    record(
        "cancellation",
        false,
        format!(
            "it was still running {} s after the cancel flag was set: call \
             ctx.check_cancelled()? between batches or steps",
            CANCEL_BOUND.as_secs_f64() + 0.5
        ),
    );
    print_report(None);
    // SAFETY: ends the process at once; the method's thread is still inside the plugin.
    unsafe { libc::_exit(0) }
}

/// Whether the host can write `map`: a float tensor with the batch first, finite; an
/// attribution on the input's grid also as NIfTI (and a 2D one as PNG).
fn writable(map: &Tensor, inputs: &Tensor, kind: MethodKind, dir: &Path) -> (bool, String) {
    let size = map.size();
    let batch = inputs.size()[0];
    if !map.defined() || size.is_empty() || size[0] != batch {
        return (
            false,
            format!(
                "the map's shape {size:?} does not start with the batch size {batch}: maps are \
                 [B, ...] (attributions [B, C, ...the input's spatial dims], metrics [B])"
            ),
        );
    }
    if !matches!(
        map.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    ) {
        return (
            false,
            format!(
                "the map is {:?}; return a floating-point tensor",
                map.kind()
            ),
        );
    }
    let finite = map.to_kind(Kind::Float).isfinite().all().int64_value(&[]) == 1;
    if !finite {
        return (false, "the map holds NaN or infinite values".to_string());
    }
    let on_grid = size.len() == inputs.dim() && size[2..] == inputs.size()[2..];
    if kind == MethodKind::Attribution && !on_grid {
        return (
            false,
            format!(
                "an attribution's map lies on the input's grid, [B, C or 1, {:?}], but it is \
                 {size:?}; declare MethodKind::LayerAttribution or Explanation for other maps",
                &inputs.size()[2..]
            ),
        );
    }
    let input = Input {
        tensor: inputs.shallow_clone(),
        nifti: None,
    };
    // NIfTI takes one example's volume (the host writes a batch's maps one file each).
    let mut formats = vec![("npy", map.shallow_clone())];
    if on_grid && inputs.dim() == 5 {
        formats.push(("nii.gz", map.narrow(0, 0, 1)));
    }
    if on_grid && inputs.dim() == 4 {
        formats.push(("png", map.shallow_clone()));
    }
    for (format, map) in &formats {
        let out = dir.join(format!("map.{format}"));
        let written =
            crate::io::write_map_files(map, &input, &out, crate::config::PngChannels::Sum);
        if let Err(e) = written {
            return (
                false,
                format!("the host cannot write it as {format}: {e:#}"),
            );
        }
    }
    let names: Vec<&str> = formats.iter().map(|(f, _)| *f).collect();
    (true, format!("written as {}", names.join(", ")))
}

fn bits_equal(a: &Tensor, b: &Tensor) -> bool {
    let a = a.detach().to_device(tch::Device::Cpu).contiguous();
    let b = b.detach().to_device(tch::Device::Cpu).contiguous();
    // NaN == NaN bit for bit counts as equal; compare the raw values' bytes.
    let bytes = |t: &Tensor| {
        let mut v = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut v, t.numel());
        v
    };
    bytes(&a) == bytes(&b)
}

fn max_difference(a: &Tensor, b: &Tensor) -> String {
    if a.size() != b.size() {
        return format!("shapes {:?} and {:?}", a.size(), b.size());
    }
    let d = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[]);
    format!("{d:e}")
}

/// This process's resident memory, from /proc/self/statm (resident pages).
fn resident_mib() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    pages * page / (1024.0 * 1024.0)
}

fn tempdir(method: &str, dims: usize) -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "esegeta-plugin-check-{}-{method}-{dims}d",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
