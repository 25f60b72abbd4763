//! The Host handle a running method receives: the wrapped model's forward (also with layer
//! taps, with backward rules, and near a base input), a layer's patch grid, tensor loading,
//! the memory budget, progress, cancellation, logging, the seed, and `explain`.
//!
//! Every entry catches panics (tch panics on some libtorch errors): a panic must not unwind
//! through the plugin's frames.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use anyhow::Result;
use esegeta_plugin_api::abi::{
    Host, HostRef, Host_TO, LayerTap, RuleBackward, RuleGradients, RunOutput, RunRequest,
    TappedForward,
};
use esegeta_plugin_api::{panic_message, LogLevel, TensorHandle, TensorRef};

use crate::model::Model;
use crate::near::NearCache;
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
    /// Where the labels of the method's segmentations go (see [`Segments`]).
    pub segments: Option<&'a Segments>,
    /// Where the model runs: on CPU, batches are capped (see [`CPU_BYTES_PER_PASS`]).
    pub device: tch::Device,
    /// The float kind of the model and of the job's inputs. Inputs a method passes in another
    /// float kind (an optimiser's float32 image in an fp64 or fp16 job) are cast to it, with
    /// autograd through the cast, so every method runs at every precision.
    pub kind: tch::Kind,
    /// The recorded forward pass of the last base input of `forward_near`.
    pub near: NearCache,
    /// What the host noticed that makes the map mean less than its name (each sentence once),
    /// for the job's `warnings`.
    pub warnings: std::sync::Mutex<Vec<String>>,
}

impl JobHost<'_> {
    fn warn(&self, sentence: String) {
        let mut warnings = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
        if !warnings.contains(&sentence) {
            tracing::warn!("{sentence}");
            warnings.push(sentence);
        }
    }
}

/// The most bytes of activations (a method's own estimate, as passed to `batch_size_hint`) one
/// pass through the model should hold on CPU, whatever the memory budget allows: there batching
/// buys little and costs memory. Measured in bench/ on 2 idle cores, with main.rs's allocator
/// settings: forward passes of a ResNet-18 (37 MiB estimated per example) ran 3.9 s at 4 per
/// pass, 3.7 s at 8; its integrated gradients (74 MiB) 2.6 s at 4, 8 or 16 (368, 506 and 850
/// MiB). On a 64^3 UNet, integrated gradients (128 MiB) took 16.4 s at 2 and 16.3 s at 4 (708
/// against 1252 MiB), and occlusion (64 MiB) peaked at 984 MiB at 5 per pass, above Captum's 872,
/// against 776 at 4. 300 MiB gives 8 and 4 for the ResNet, 4 and 2 for the UNet.
pub const CPU_BYTES_PER_PASS: u64 = 300 << 20;

/// The labels (`[B, ...spatial]`, int64) of the last segmentation the host made for a method
/// through `Host::segment`: the superpixels or supervoxels its map is made of.
pub type Segments = std::sync::Mutex<Option<tch::Tensor>>;

/// Receives a method's progress: steps done of the total.
pub type Progress<'a> = dyn Fn(u64, u64) + Sync + 'a;

impl<'a> JobHost<'a> {
    /// The handle passed through the ABI; borrows `self`.
    pub fn handle(&self) -> HostRef<'_> {
        Host_TO::from_ptr(self, TD_Opaque)
    }

    /// Scores `[B, K]` of the wrapped model.
    pub fn scores(&self, inputs: &tch::Tensor) -> Result<tch::Tensor> {
        let inputs = self.model_input(inputs);
        self.wrapper.scores(&self.model.forward(&inputs)?)
    }

    /// Scores of `inputs`, examples near `base` (see [`crate::near`]).
    pub fn scores_near(&self, base: &tch::Tensor, inputs: &tch::Tensor) -> Result<tch::Tensor> {
        let Some(graph) = self.model.graph() else {
            return self.scores(inputs);
        };
        let (base, inputs) = (self.model_input(base), self.model_input(inputs));
        let output = self.near.output(self.model, graph, &base, &inputs)?;
        self.wrapper.scores(&output)
    }

    /// `t` in the model's float kind (see [`JobHost::kind`]); integer tensors as they are.
    fn model_input(&self, t: &tch::Tensor) -> tch::Tensor {
        if t.is_floating_point() && t.kind() != self.kind {
            t.to_kind(self.kind)
        } else {
            t.shallow_clone()
        }
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
            tch::Device::Cpu => budget.min((CPU_BYTES_PER_PASS / bytes_per_item.max(1)).max(1)),
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
            let taps = host_taps(taps);
            let inputs = self.model_input(&inputs.to_tensor());
            let (scores, layers) = taps::forward_taps(self.model, self.wrapper, &inputs, &taps)?;
            Ok(TappedForward {
                scores: TensorHandle::new(scores),
                layers: layers.into_iter().map(TensorHandle::new).collect(),
            })
        })
    }

    fn layer_values(
        &self,
        inputs: TensorRef<'_>,
        taps: RSlice<'_, LayerTap<'_>>,
    ) -> RResult<RVec<TensorHandle>, RString> {
        guarded(|| {
            let inputs = self.model_input(&inputs.to_tensor());
            let values = taps::layer_values(self.model, &inputs, &host_taps(taps))?;
            Ok(values.into_iter().map(TensorHandle::new).collect())
        })
    }

    fn forward_near(
        &self,
        base: TensorRef<'_>,
        inputs: TensorRef<'_>,
    ) -> RResult<TensorHandle, RString> {
        guarded(|| {
            self.scores_near(&base.to_tensor(), &inputs.to_tensor())
                .map(TensorHandle::new)
        })
    }

    fn segment(
        &self,
        inputs: TensorRef<'_>,
        spec_json: RStr<'_>,
    ) -> RResult<TensorHandle, RString> {
        guarded(|| {
            let spec: serde_json::Value = serde_json::from_str(spec_json.as_str())?;
            let labels = crate::segment::segment_json(&inputs.to_tensor(), &spec, &self.base_dir)?;
            if let Some(sink) = self.segments {
                *sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(labels.shallow_clone());
            }
            Ok(TensorHandle::new(labels))
        })
    }

    fn patch_grid(
        &self,
        inputs: TensorRef<'_>,
        layer: RStr<'_>,
        at_input: bool,
        behind_transpose: bool,
    ) -> RResult<RVec<i64>, RString> {
        guarded(|| {
            let graph = taps::graph_of(self.model, "a layer method")?;
            let inputs = self.model_input(&inputs.to_tensor());
            crate::patch_grid::patch_grid(graph, &inputs, &layer, at_input, behind_transpose)
                .map(RVec::from)
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
            let inputs = self.model_input(&request.inputs.to_tensor());
            let seed = request.layer_seed.into_option().map(|t| t.to_tensor());
            let start = match &seed {
                Some(seed) => rules::Start::Layer(seed),
                None => rules::Start::Target(request.target),
            };
            let out = tch::with_grad(|| {
                rules::backward(graph, self.wrapper, &inputs, start, &composite, layer)
            })?;
            if let Some(sentence) = out.coverage_warning {
                self.warn(sentence);
            }
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

fn guarded<T>(f: impl FnOnce() -> Result<T>) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(format!("{e:#}").into()),
        Err(p) => RResult::RErr(format!("the host failed: {}", panic_message(&p)).into()),
    }
}

/// The host's form of the taps a plugin sent.
fn host_taps(taps: RSlice<'_, LayerTap<'_>>) -> Vec<Tap> {
    taps.iter()
        .map(|t| Tap {
            layer: t.layer.to_string(),
            replace: t.replace.as_ref().map(|r| r.to_tensor()).into_option(),
            at_input: t.at_input,
        })
        .collect()
}
