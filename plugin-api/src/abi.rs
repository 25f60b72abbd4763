//! The `#[repr(C)]` types that cross the boundary between the host and a plugin cdylib.
//!
//! abi_stable checks their layout when a plugin is loaded. [`ABI_VERSION`] is bumped whenever
//! the meaning of a call changes without its layout changing, and the host refuses a plugin
//! whose number differs. New host services are added after `explain` in [`Host`] (a prefix
//! type), so older plugins keep working against a newer host.

// abi_stable's sabi_trait expands to impls inside a const block.
#![allow(non_local_definitions)]

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use abi_stable::{declare_root_module_statics, package_version_strings, sabi_trait, StableAbi};

use crate::tensor::{TensorHandle, TensorRef};

pub use crate::export::{panic_message, plugin_methods, plugin_run};

/// The plugin ABI version this crate defines.
pub const ABI_VERSION: u32 = 5;

/// The libtorch version this crate (and so every plugin built with it) links against.
pub const LIBTORCH_VERSION: &str = env!("ESEGETA_LIBTORCH_VERSION");

/// What kind of output a method produces.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodKind {
    /// A map over the input.
    Attribution,
    /// A map over a layer's output.
    LayerAttribution,
    /// An explanation that is not a per-element map (feature visualisation, ...).
    Explanation,
    /// A score of another method's attribution.
    Metric,
}

/// What a method needs from the model; the host refuses a model that cannot provide it.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default)]
pub struct Needs {
    pub gradients: bool,
    pub layers: bool,
    pub backward_rules: bool,
}

/// Everything the host knows about a method before running it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct MethodInfo {
    /// `family.snake_case`, e.g. `captum.integrated_gradients`.
    pub id: RString,
    pub title: RString,
    pub summary: RString,
    pub kind: MethodKind,
    pub needs: Needs,
    /// JSON Schema (draft 2020-12, from schemars) of the method's parameters.
    pub params_schema: RString,
    /// The paper that defines the method.
    pub reference: RString,
}

#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
}

/// One method call: explain `target` of the wrapped model at `inputs`.
#[repr(C)]
#[derive(StableAbi)]
pub struct RunRequest<'a> {
    pub method_id: RStr<'a>,
    /// The method's parameters as a JSON object, already checked against its schema.
    pub params_json: RStr<'a>,
    pub inputs: TensorRef<'a>,
    pub target: i64,
}

/// What a method returns: the attribution and a JSON object of extras (convergence delta, ...).
#[repr(C)]
#[derive(StableAbi)]
pub struct RunOutput {
    pub attribution: TensorHandle,
    pub extras_json: RString,
}

/// One layer of a tapped forward pass: its output (or input) is captured, or replaced by
/// `replace`.
#[repr(C)]
#[derive(StableAbi)]
pub struct LayerTap<'a> {
    /// The layer's module path (`enc.conv`), as the model's layer list names it.
    pub layer: RStr<'a>,
    /// A tensor the graph uses instead of the tapped value (same shape).
    pub replace: ROption<TensorRef<'a>>,
    /// Tap the layer's input instead of its output (Captum's `attribute_to_layer_input`): the
    /// value its first node reads. Captured, it is that value as every consumer sees it (so a
    /// gradient with respect to it counts all of them); replaced, only the layer's own nodes
    /// read the replacement, as a PyTorch forward pre-hook does.
    pub at_input: bool,
}

/// The scores of a tapped forward pass and, per tap, the layer output the graph used; all with
/// autograd history.
#[repr(C)]
#[derive(StableAbi)]
pub struct TappedForward {
    pub scores: TensorHandle,
    pub layers: RVec<TensorHandle>,
}

/// A backward pass with a rule per node (guided backprop, DeepLift rescale, LRP, ...).
#[repr(C)]
#[derive(StableAbi)]
pub struct RuleBackward<'a> {
    pub inputs: TensorRef<'a>,
    pub target: i64,
    /// The composite as JSON: which rule applies to which nodes (see the host's rules module).
    pub composite_json: RStr<'a>,
    /// Also return the relevance/gradient at this layer's output, and the layer's output.
    pub layer: ROption<RStr<'a>>,
    /// Take the layer's input instead of its output.
    pub at_layer_input: bool,
    /// Start the backward pass at `layer` with this gradient (shaped like the layer's value)
    /// instead of at the target score: the rules then explain a function of the layer, such
    /// as one filter's summed activation. Needs `layer`; `target` is then unused.
    pub layer_seed: ROption<TensorRef<'a>>,
}

/// What [`Host::backward_rules`] returns: the relevance/modified gradient at the input and,
/// when a layer was asked for, at that layer's output together with the output itself.
#[repr(C)]
#[derive(StableAbi)]
pub struct RuleGradients {
    pub inputs: TensorHandle,
    pub layer: ROption<TensorHandle>,
    pub layer_output: ROption<TensorHandle>,
}

/// The services the host offers a running method. Implemented by the host; a plugin uses it
/// through [`crate::Context`].
#[sabi_trait]
pub trait Host {
    /// The wrapped model's scores `[B, K]` for `inputs` `[B, ...]`, with autograd history.
    fn forward(&self, inputs: TensorRef<'_>) -> RResult<TensorHandle, RString>;

    /// Loads a tensor from a file named in the parameters (npy, NIfTI, PNG), relative paths
    /// resolved the way the host resolves the input's.
    fn load_tensor(&self, path: RStr<'_>) -> RResult<TensorHandle, RString>;

    /// How many items of `bytes_per_item` fit in the memory budget (at least 1; on CPU fewer,
    /// where bigger batches buy little: the host's `CPU_BYTES_PER_PASS`).
    fn batch_size_hint(&self, bytes_per_item: u64) -> u64;

    fn progress(&self, done: u64, total: u64);

    fn is_cancelled(&self) -> bool;

    fn log(&self, level: LogLevel, message: RStr<'_>);

    /// The job's seed; a method that samples must draw from it so that runs repeat.
    fn seed(&self) -> u64;

    /// The model's layer names; an error on models that are black boxes (TorchScript).
    fn layers(&self) -> RResult<RVec<RString>, RString>;

    /// Runs another method on the same wrapped model (metrics explain through this).
    #[sabi(last_prefix_field)]
    fn explain(&self, request: RunRequest<'_>) -> RResult<RunOutput, RString>;

    /// The wrapped model's scores with layer taps (graph models only).
    fn forward_taps(
        &self,
        inputs: TensorRef<'_>,
        taps: RSlice<'_, LayerTap<'_>>,
    ) -> RResult<TappedForward, RString>;

    /// A backward pass from the `target` score with a rule per node (graph models only).
    fn backward_rules(&self, request: RuleBackward<'_>) -> RResult<RuleGradients, RString>;

    /// The wrapped model's scores `[B, K]` for `inputs`, examples that each differ from `base`
    /// (`[1, ...]`) in a small region, without autograd history. On graph models the host
    /// evaluates them incrementally from `base`'s recorded activations (exact); elsewhere as
    /// `forward` does.
    fn forward_near(
        &self,
        base: TensorRef<'_>,
        inputs: TensorRef<'_>,
    ) -> RResult<TensorHandle, RString>;

    /// Superpixels or supervoxels of each example of `inputs` (`[B, C, ...spatial]`) by the
    /// segmentation `spec_json` (`{"algorithm": "slic", ...params}`, scikit-image's names):
    /// labels `[B, ...spatial]`, int64.
    fn segment(&self, inputs: TensorRef<'_>, spec_json: RStr<'_>)
        -> RResult<TensorHandle, RString>;

    /// The patch grid of a vision transformer's layer: the spatial size, at `inputs`, of the
    /// output of the patch embedding that feeds `layer`'s output (its input with `at_input`),
    /// the last convolution upstream whose kernel equals its stride (above 1) and that pads
    /// nothing; empty when there is none. With `behind_transpose` the answer is empty without
    /// a forward pass unless a Transpose lies upstream too (a value channels-last).
    fn patch_grid(
        &self,
        inputs: TensorRef<'_>,
        layer: RStr<'_>,
        at_input: bool,
        behind_transpose: bool,
    ) -> RResult<RVec<i64>, RString>;

    /// Per tap, the layer's value for `inputs`, with autograd history, from a forward pass
    /// that stops once the last tap is captured (graph models only; taps only capture, so
    /// `replace` must be none). The nodes after the taps, and their backward, never run.
    fn layer_values(
        &self,
        inputs: TensorRef<'_>,
        taps: RSlice<'_, LayerTap<'_>>,
    ) -> RResult<RVec<TensorHandle>, RString>;
}

/// The host's handle as a plugin receives it.
pub type HostRef<'a> = Host_TO<'a, abi_stable::sabi_types::RRef<'a, ()>>;

/// The root module every plugin cdylib exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRef)))]
#[sabi(missing_field(panic))]
pub struct Plugin {
    pub abi_version: u32,
    pub libtorch_version: RStr<'static>,
    pub family: RStr<'static>,
    pub methods: extern "C" fn() -> RResult<RVec<MethodInfo>, RString>,
    #[sabi(last_prefix_field)]
    pub run: extern "C" fn(RunRequest<'_>, HostRef<'_>) -> RResult<RunOutput, RString>,
}

impl RootModule for PluginRef {
    declare_root_module_statics! {PluginRef}
    const BASE_NAME: &'static str = "esegeta_plugin";
    const NAME: &'static str = "esegeta_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
