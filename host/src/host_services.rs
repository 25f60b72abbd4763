//! The Host handle a running method receives: the wrapped model's forward, tensor loading,
//! the memory budget, progress, cancellation, logging, the seed, and `explain`.
//!
//! Every entry catches panics (tch panics on some libtorch errors): a panic must not unwind
//! through the plugin's frames.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use anyhow::Result;
use esegeta_plugin_api::abi::{
    Host, HostRef, Host_TO, LayerTap, RuleBackward, RuleGradients, RunOutput, RunRequest,
    TappedForward,
};
use esegeta_plugin_api::{panic_message, LogLevel, TensorHandle, TensorRef};

use crate::model::graph::{GraphModel, Recorded};
use crate::model::Model;
use crate::plugins::Registry;
use crate::rules::{self, Composite};
use crate::taps::{self, Tap};
use crate::task::TaskWrapper;

/// One job's view of the host.
pub struct JobHost<'a> {
    pub model: &'a dyn Model,
    pub wrapper: &'a TaskWrapper,
    pub registry: &'a Registry,
    /// Relative paths in parameters are resolved against this folder.
    pub base_dir: PathBuf,
    pub seed: u64,
    /// Bytes a method may use for batching its evaluations.
    pub memory_budget: u64,
    pub cancelled: &'a AtomicBool,
    /// Where the method's progress goes (a run's progress bar); the log otherwise.
    pub progress: Option<&'a Progress<'a>>,
    /// Where the model runs: on CPU, batches are capped (see [`CPU_EXAMPLES_PER_PASS`]).
    pub device: tch::Device,
    /// The recorded forward pass of the last base input of `forward_near`.
    pub near: Mutex<Option<NearBase>>,
}

/// The most examples a method should put through the model in one pass on CPU, whatever the
/// memory budget allows. There batching buys little and costs memory; measured in bench/
/// (2 cores, with main.rs's allocator settings): integrated gradients on a ResNet-18 ran
/// 2.75 s at 4 examples per pass against 2.57 s at 8 or 16 (362 against 517-757 MiB), on a
/// 64^3 UNet 15.6 s against 14.6 s at 2 and 16.6 s at 8 (1268 against 808-2324 MiB); the
/// perturbation forwards of both ran fastest 4 at a time.
pub const CPU_EXAMPLES_PER_PASS: u64 = 4;

/// A base input of incremental evaluation and its recorded forward pass (`None` where the
/// model cannot evaluate incrementally).
pub struct NearBase {
    base: tch::Tensor,
    recorded: Option<Recorded>,
    choice: Choice,
    /// Whether the log has said how far perturbations stay local (once per base).
    logged: bool,
}

/// How batches near a base are evaluated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Choice {
    /// Not timed yet: the first batch that differs from the base runs both ways.
    Undecided,
    Incremental,
    /// A full pass was faster (small models, where bookkeeping outweighs what it saves).
    Full,
}

fn choose(incremental: Duration, full: Duration) -> Choice {
    if incremental < full {
        Choice::Incremental
    } else {
        Choice::Full
    }
}

/// Receives a method's progress: steps done of the total.
pub type Progress<'a> = dyn Fn(u64, u64) + Sync + 'a;

impl<'a> JobHost<'a> {
    /// The handle passed through the ABI; borrows `self`.
    pub fn handle(&self) -> HostRef<'_> {
        Host_TO::from_ptr(self, TD_Opaque)
    }

    /// Scores `[B, K]` of the wrapped model.
    pub fn scores(&self, inputs: &tch::Tensor) -> Result<tch::Tensor> {
        self.wrapper.scores(&self.model.forward(inputs)?)
    }

    /// Scores of `inputs` near `base`: incrementally on graph models, from `base`'s recorded
    /// forward pass (kept for the next call with the same base), where the first batch that
    /// differs from `base` ran faster that way than in full, or `always`.
    pub fn scores_near(
        &self,
        base: &tch::Tensor,
        inputs: &tch::Tensor,
        always: bool,
    ) -> Result<tch::Tensor> {
        let Some(graph) = self.model.graph() else {
            return self.scores(inputs);
        };
        let mut cache = self.near.lock().unwrap_or_else(|e| e.into_inner());
        let cached = cache.as_ref().is_some_and(|c| same_tensor(&c.base, base));
        if !cached {
            *cache = Some(NearBase {
                base: base.shallow_clone(),
                recorded: tch::no_grad(|| graph.record(base))?,
                choice: if always {
                    Choice::Incremental
                } else {
                    Choice::Undecided
                },
                logged: false,
            });
        }
        let near = cache.as_mut().expect("just filled");
        let (Some(recorded), false) = (&near.recorded, near.choice == Choice::Full) else {
            return self.scores(inputs);
        };
        let started = Instant::now();
        let (output, reach) = tch::no_grad(|| forward_near(graph, recorded, inputs))?;
        let incremental = started.elapsed();
        tracing::debug!(
            "incremental evaluation of {} examples: {:.0}% of a full evaluation's outputs",
            inputs.size()[0],
            100.0 * reach.computed_share
        );
        if !near.logged && !same_tensor(inputs, base) {
            if near.choice == Choice::Undecided {
                let started = Instant::now();
                let _ = tch::no_grad(|| self.model.forward(inputs))?;
                near.choice = choose(incremental, started.elapsed());
            }
            near.logged = true;
            log_reach(graph, &reach, near.choice);
        }
        self.wrapper.scores(&output)
    }

    /// Runs a method of any loaded plugin on this job's model.
    pub fn run(&self, request: RunRequest<'_>) -> Result<RunOutput> {
        self.registry.run(request, self.handle())
    }
}

impl Host for JobHost<'_> {
    fn forward(&self, inputs: TensorRef<'_>) -> RResult<TensorHandle, RString> {
        guarded(|| self.scores(&inputs.to_tensor()).map(TensorHandle::new))
    }

    fn load_tensor(&self, path: RStr<'_>) -> RResult<TensorHandle, RString> {
        guarded(|| {
            let path = self.base_dir.join(path.as_str());
            crate::io::load_tensor(&path).map(TensorHandle::new)
        })
    }

    fn batch_size_hint(&self, bytes_per_item: u64) -> u64 {
        let budget = (self.memory_budget / bytes_per_item.max(1)).clamp(1, 1 << 16);
        match self.device {
            tch::Device::Cpu => budget.min(CPU_EXAMPLES_PER_PASS),
            _ => budget,
        }
    }

    fn progress(&self, done: u64, total: u64) {
        match self.progress {
            Some(report) => report(done, total),
            None => tracing::debug!("progress {done}/{total}"),
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        match level {
            LogLevel::Debug => tracing::debug!("{message}"),
            LogLevel::Info => tracing::info!("{message}"),
            LogLevel::Warn => tracing::warn!("{message}"),
        }
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn layers(&self) -> RResult<RVec<RString>, RString> {
        guarded(|| {
            Ok(self
                .model
                .layers()?
                .into_iter()
                .map(RString::from)
                .collect())
        })
    }

    fn explain(&self, request: RunRequest<'_>) -> RResult<RunOutput, RString> {
        guarded(|| self.run(request))
    }

    fn forward_taps(
        &self,
        inputs: TensorRef<'_>,
        taps: RSlice<'_, LayerTap<'_>>,
    ) -> RResult<TappedForward, RString> {
        guarded(|| {
            let taps: Vec<Tap> = taps
                .iter()
                .map(|t| Tap {
                    layer: t.layer.to_string(),
                    replace: t.replace.as_ref().map(|r| r.to_tensor()).into_option(),
                    at_input: t.at_input,
                })
                .collect();
            let (scores, layers) =
                taps::forward_taps(self.model, self.wrapper, &inputs.to_tensor(), &taps)?;
            Ok(TappedForward {
                scores: TensorHandle::new(scores),
                layers: layers.into_iter().map(TensorHandle::new).collect(),
            })
        })
    }

    fn forward_near(
        &self,
        base: TensorRef<'_>,
        inputs: TensorRef<'_>,
        always: bool,
    ) -> RResult<TensorHandle, RString> {
        guarded(|| {
            self.scores_near(&base.to_tensor(), &inputs.to_tensor(), always)
                .map(TensorHandle::new)
        })
    }

    fn backward_rules(&self, request: RuleBackward<'_>) -> RResult<RuleGradients, RString> {
        guarded(|| {
            let graph = taps::graph_of(self.model, "a rule-based method")?;
            let composite = Composite::parse(request.composite_json.as_str())?;
            let layer = match request.layer.into_option() {
                Some(name) => Some(taps::site(graph, name.as_str(), request.at_layer_input)?),
                None => None,
            };
            let inputs = request.inputs.to_tensor();
            let out = tch::with_grad(|| {
                rules::backward(
                    graph,
                    self.wrapper,
                    &inputs,
                    request.target,
                    &composite,
                    layer,
                )
            })?;
            let (layer, layer_output) = match out.layer {
                Some((g, a)) => (
                    ROption::RSome(TensorHandle::new(g)),
                    ROption::RSome(TensorHandle::new(a)),
                ),
                None => (ROption::RNone, ROption::RNone),
            };
            Ok(RuleGradients {
                inputs: TensorHandle::new(out.inputs),
                layer,
                layer_output,
            })
        })
    }
}

/// Incremental evaluation of `inputs`, on CPU one example at a time: each example's boxes are
/// its own, so batching buys little there, and where the change reaches a whole layer the rest
/// of the graph would hold every copy at once. In bench/ (2 cores), one at a time against four:
/// a 64^3 UNet's occlusion took 3.6 s and 540 MiB against 4.4 s and 1134 MiB, its feature
/// ablation 5.2 s against 5.7 s; a ResNet-18's occlusion 2.5 s against 2.1 s.
fn forward_near(
    graph: &dyn GraphModel,
    recorded: &Recorded,
    inputs: &tch::Tensor,
) -> Result<(tch::Tensor, crate::model::graph::Reach)> {
    if inputs.device() != tch::Device::Cpu {
        return graph.forward_near(recorded, inputs);
    }
    let (mut outputs, mut reach) = (Vec::new(), crate::model::graph::Reach::default());
    for example in inputs.split(1, 0) {
        let (output, r) = graph.forward_near(recorded, &example)?;
        outputs.push(output);
        reach.whole_from = reach.whole_from.or(r.whole_from);
        reach.computed_share += r.computed_share / inputs.size()[0] as f64;
    }
    Ok((tch::Tensor::f_cat(&outputs, 0)?, reach))
}

fn same_tensor(a: &tch::Tensor, b: &tch::Tensor) -> bool {
    a.size() == b.size() && a.kind() == b.kind() && a.device() == b.device() && a.equal(b)
}

/// Says how far perturbations stayed local, and what was chosen, once per base input.
fn log_reach(graph: &dyn GraphModel, reach: &crate::model::graph::Reach, choice: Choice) {
    let share = 100.0 * reach.computed_share;
    if choice == Choice::Full {
        tracing::info!(
            "incremental evaluation ({share:.0}% of a full evaluation's outputs computed) was              slower than a full pass on the first perturbed batch; evaluating in full"
        );
        return;
    }
    match reach.whole_from {
        Some(index) => {
            let node = graph.node(index);
            tracing::info!(
                "incremental evaluation: nodes before `{}` ({}, layer `{}`) recompute only what \
                 a perturbation reaches; there it reaches the whole value, so the rest of the \
                 graph runs in full ({share:.0}% of a full evaluation's outputs computed)",
                node.name,
                node.op_type,
                node.layer
            )
        }
        None => tracing::info!(
            "incremental evaluation: perturbations stay local up to the output ({share:.0}% of \
             a full evaluation's outputs computed)"
        ),
    }
}

fn guarded<T>(f: impl FnOnce() -> Result<T>) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(format!("{e:#}").into()),
        Err(p) => RResult::RErr(format!("the host failed: {}", panic_message(&p)).into()),
    }
}
