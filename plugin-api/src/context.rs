//! [`Context`]: the host's services as a method sees them, in plain Rust types.

use abi_stable::std_types::{ROption, RResult, RSlice, RStr};
use anyhow::{anyhow, bail, Result};
use tch::{Kind, Tensor};

use crate::abi::{HostRef, LayerTap, LogLevel, RuleBackward, RunRequest};
use crate::method::Attribution;
use crate::tensor::TensorRef;

/// A kind of pass through the model, for the memory one example holds in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Forward only, without gradients (perturbation methods, scores).
    Forward,
    /// Forward and backward to the input (gradient and path methods, and anything that
    /// explains a batch with one of them).
    Gradient,
}

impl Pass {
    /// Memory per byte of input that one example needs in the model. Measured (bench/, peak
    /// resident memory against batch size, fp32 on CPU): a ResNet-18 on 224x224 needs about
    /// 40 MiB per example for forward and backward (70 times its input: 387, 528 and 880 MiB
    /// at 4, 8 and 16 examples), the 3D UNets of bench/ and configs/vessels 120-270 MiB per
    /// 64^3 example (120-270 times), and a forward without gradients holds roughly half of
    /// that. One factor per pass cannot fit both: it errs towards the UNets, whose memory
    /// grows fastest, and gives the ResNet half the batch it could take (its integrated
    /// gradients: 2.45 s at 4 per pass, 2.25 s at 8-10). The host cannot measure a model's
    /// memory per example instead: libtorch keeps no statistics of its CPU allocations, and
    /// glibc's count covers only the main thread's arena, where a run's workers do not
    /// allocate. (Factors of 16 and 8 let a 1 GiB budget put 64 volumes in one forward, 5-7 GB.)
    pub fn bytes_per_input_byte(self) -> u64 {
        match self {
            Pass::Forward => 64,
            Pass::Gradient => 128,
        }
    }
}

/// What a running method can ask of the host. Borrowed for the duration of one call.
pub struct Context<'a> {
    host: HostRef<'a>,
}

impl<'a> Context<'a> {
    pub fn new(host: HostRef<'a>) -> Self {
        Context { host }
    }

    /// Scores `[B, K]` of the wrapped model, with autograd history back to `inputs`.
    pub fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        into_result(self.host.forward(TensorRef::new(inputs))).map(|t| t.into_tensor())
    }

    /// The `target` column of the scores, `[B]`.
    pub fn target_scores(&self, inputs: &Tensor, target: i64) -> Result<Tensor> {
        select_target(&self.forward(inputs)?, target)
    }

    /// Gradient of the `target` score of each example with respect to `inputs` (same shape).
    pub fn gradient(&self, inputs: &Tensor, target: i64) -> Result<Tensor> {
        let inputs = inputs.detach().set_requires_grad(true);
        let scores = self.target_scores(&inputs, target)?;
        let grads = Tensor::f_run_backward(&[scores.sum(Kind::Float)], &[&inputs], false, false)?;
        Ok(grads.into_iter().next().expect("one gradient per input"))
    }

    /// The `target` scores without autograd history, for perturbation methods.
    pub fn evaluate(&self, inputs: &Tensor, target: i64) -> Result<Tensor> {
        tch::no_grad(|| self.target_scores(inputs, target))
    }

    /// [`Context::evaluate`] for inputs that each differ from `base` (`[1, ...]`) only in a
    /// small region, such as occluded copies of it: the host may recompute only what the
    /// differences reach (exact incremental evaluation on graph models).
    pub fn evaluate_near(&self, base: &Tensor, inputs: &Tensor, target: i64) -> Result<Tensor> {
        let scores = tch::no_grad(|| {
            into_result(
                self.host
                    .forward_near(TensorRef::new(base), TensorRef::new(inputs)),
            )
        })?;
        select_target(&scores.into_tensor(), target)
    }

    pub fn load_tensor(&self, path: &str) -> Result<Tensor> {
        into_result(self.host.load_tensor(RStr::from_str(path))).map(|t| t.into_tensor())
    }

    /// How many examples of `bytes_per_example` fit in the memory budget (at least 1).
    pub fn batch_size_hint(&self, bytes_per_example: u64) -> usize {
        self.host.batch_size_hint(bytes_per_example).max(1) as usize
    }

    /// How many examples like those of `inputs` (`[B, ...]`, float32) to put through the model
    /// in one `pass`, from the memory the host allows (at least 1).
    pub fn examples_per_pass(&self, inputs: &Tensor, pass: Pass) -> usize {
        let example = inputs.numel() as u64 / batch_of(inputs) as u64;
        self.batch_size_hint(example * 4 * pass.bytes_per_input_byte())
    }

    /// How many copies of the whole batch `inputs` (perturbed, noisy, or points on a path) to
    /// put through the model in one `pass` (at least 1).
    pub fn copies_per_pass(&self, inputs: &Tensor, pass: Pass) -> usize {
        (self.examples_per_pass(inputs, pass) / batch_of(inputs)).max(1)
    }

    pub fn progress(&self, done: usize, total: usize) {
        self.host.progress(done as u64, total as u64)
    }

    /// Fails when the job has been cancelled (timeout, Ctrl-C); call it between batches.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.host.is_cancelled() {
            bail!("the job was cancelled");
        }
        Ok(())
    }

    pub fn log(&self, level: LogLevel, message: &str) {
        self.host.log(level, RStr::from_str(message))
    }

    pub fn seed(&self) -> u64 {
        self.host.seed()
    }

    /// Scores `[B, K]` with the outputs of `taps`' layers captured, or replaced where a tap
    /// carries a tensor; returns the scores and, per tap, the layer output the graph used.
    pub fn forward_taps(&self, inputs: &Tensor, taps: &[Tap<'_>]) -> Result<(Tensor, Vec<Tensor>)> {
        let taps: Vec<LayerTap<'_>> = taps.iter().map(layer_tap).collect();
        let out = into_result(
            self.host
                .forward_taps(TensorRef::new(inputs), RSlice::from_slice(&taps)),
        )?;
        let layers = out.layers.into_iter().map(|h| h.into_tensor()).collect();
        Ok((out.scores.into_tensor(), layers))
    }

    /// Per tap, the layer's value for `inputs` (with autograd history), from a forward pass
    /// that stops at the last tap: cheaper than [`Context::forward_taps`] when no score is
    /// needed (objectives of a layer). Taps only capture here; a replacement is an error.
    pub fn layer_values(&self, inputs: &Tensor, taps: &[Tap<'_>]) -> Result<Vec<Tensor>> {
        let taps: Vec<LayerTap<'_>> = taps.iter().map(layer_tap).collect();
        let out = into_result(
            self.host
                .layer_values(TensorRef::new(inputs), RSlice::from_slice(&taps)),
        )?;
        Ok(out.into_iter().map(|h| h.into_tensor()).collect())
    }

    /// The `target` column of tapped scores, checked like [`Context::target_scores`].
    pub fn target_scores_taps(
        &self,
        inputs: &Tensor,
        target: i64,
        taps: &[Tap<'_>],
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (scores, layers) = self.forward_taps(inputs, taps)?;
        Ok((select_target(&scores, target)?, layers))
    }

    /// The output of `layer` at `inputs` and the gradient of each example's `target` score
    /// with respect to it: `(gradient, activation)`.
    pub fn layer_gradient(
        &self,
        inputs: &Tensor,
        target: i64,
        layer: &str,
    ) -> Result<(Tensor, Tensor)> {
        self.tap_gradient(inputs, target, Tap::capture(layer))
    }

    /// [`Context::layer_gradient`] at the value `tap` captures (a layer's output or input).
    pub fn tap_gradient(
        &self,
        inputs: &Tensor,
        target: i64,
        tap: Tap<'_>,
    ) -> Result<(Tensor, Tensor)> {
        // Graph weights need no gradient, so without this the layer's value has no history.
        let inputs = inputs.detach().set_requires_grad(true);
        let (scores, mut layers) = self.target_scores_taps(&inputs, target, &[tap])?;
        let activation = layers.remove(0);
        if let Some(grad) = gradient_at(&scores, &activation)? {
            return Ok((grad, activation.detach()));
        }
        // A fixed-batch model runs in chunks and hands back their concatenation, a copy the
        // scores do not depend on: run again with the layer replaced by that copy. (On a
        // layer's input this counts only the layer's own reads of it.)
        let value = activation.detach().set_requires_grad(true);
        let replace = Tap::replace(tap.layer, &value).at_input(tap.at_input);
        let (scores, _) = self.target_scores_taps(&inputs, target, &[replace])?;
        match gradient_at(&scores, &value)? {
            Some(grad) => Ok((grad, value.detach())),
            None => bail!(
                "the target score does not depend on the {} of layer `{}`, so it has no \
                 gradient there; pick a layer on the path to the output (`esegeta layers \
                 MODEL` lists them in execution order)",
                if tap.at_input { "input" } else { "output" },
                tap.layer
            ),
        }
    }

    /// A backward pass from the `target` score with the rules of `composite` (a JSON
    /// composite; see the host's rules module), returning the relevance at the input and,
    /// when `layer` is given, at that layer's output (or input, with `tap.at_input`) with the
    /// value itself. A tap's replacement is ignored here.
    pub fn backward_rules(
        &self,
        inputs: &Tensor,
        target: i64,
        composite: &serde_json::Value,
        layer: Option<Tap<'_>>,
    ) -> Result<RuleGradients> {
        self.rule_pass(inputs, target, composite, layer, None)
    }

    /// [`Context::backward_rules`] started at `tap`'s value with the gradient `seed` (shaped
    /// like that value) instead of at a target score: the rules' map of a function of the
    /// layer, such as the guided backpropagation of one filter's activation.
    pub fn backward_rules_from(
        &self,
        inputs: &Tensor,
        composite: &serde_json::Value,
        tap: Tap<'_>,
        seed: &Tensor,
    ) -> Result<RuleGradients> {
        self.rule_pass(inputs, 0, composite, Some(tap), Some(seed))
    }

    fn rule_pass(
        &self,
        inputs: &Tensor,
        target: i64,
        composite: &serde_json::Value,
        layer: Option<Tap<'_>>,
        seed: Option<&Tensor>,
    ) -> Result<RuleGradients> {
        let composite_json = composite.to_string();
        let request = RuleBackward {
            inputs: TensorRef::new(inputs),
            target,
            composite_json: RStr::from_str(&composite_json),
            layer: layer.as_ref().map(|t| RStr::from_str(t.layer)).into(),
            at_layer_input: layer.is_some_and(|t| t.at_input),
            layer_seed: seed.map(TensorRef::new).into(),
        };
        let out = into_result(self.host.backward_rules(request))?;
        let take = |h: ROption<crate::TensorHandle>| h.into_option().map(|h| h.into_tensor());
        Ok(RuleGradients {
            inputs: out.inputs.into_tensor(),
            layer: take(out.layer),
            layer_output: take(out.layer_output),
        })
    }

    /// The patch grid feeding `tap`'s value at `inputs` (see [`crate::abi::Host::patch_grid`]):
    /// the spatial size of the patch embedding's output, empty when there is none.
    pub fn patch_grid(
        &self,
        inputs: &Tensor,
        tap: Tap<'_>,
        behind_transpose: bool,
    ) -> Result<Vec<i64>> {
        let grid = into_result(self.host.patch_grid(
            TensorRef::new(inputs),
            RStr::from_str(tap.layer),
            tap.at_input,
            behind_transpose,
        ))?;
        Ok(grid.into_vec())
    }

    /// Superpixels or supervoxels of each example of `inputs` by the segmentation `spec`
    /// (`{"algorithm": "slic", ...params}`): labels `[B, ...spatial]`, int64.
    pub fn segment(&self, inputs: &Tensor, spec: &serde_json::Value) -> Result<Tensor> {
        let spec_json = spec.to_string();
        into_result(
            self.host
                .segment(TensorRef::new(inputs), RStr::from_str(&spec_json)),
        )
        .map(|t| t.into_tensor())
    }

    pub fn layers(&self) -> Result<Vec<String>> {
        into_result(self.host.layers()).map(|v| v.into_iter().map(|s| s.into_string()).collect())
    }

    /// Runs another method on the same wrapped model.
    pub fn explain(
        &self,
        method_id: &str,
        params: &serde_json::Value,
        inputs: &Tensor,
        target: i64,
    ) -> Result<Attribution> {
        let params_json = params.to_string();
        let request = RunRequest {
            method_id: RStr::from_str(method_id),
            params_json: RStr::from_str(&params_json),
            inputs: TensorRef::new(inputs),
            target,
        };
        let out = into_result(self.host.explain(request))?;
        let extras = serde_json::from_str(out.extras_json.as_str())?;
        Ok(Attribution {
            map: out.attribution.into_tensor(),
            extras,
        })
    }
}

/// `d sum(scores) / d value`, or `None` when the scores do not depend on `value`.
fn gradient_at(scores: &Tensor, value: &Tensor) -> Result<Option<Tensor>> {
    let grads = Tensor::f_run_backward(&[scores.sum(Kind::Float)], &[value], false, false)?;
    let grad = grads.into_iter().next().expect("one gradient");
    Ok(grad.defined().then_some(grad))
}

/// The batch size of `[B, ...]`, at least 1.
fn batch_of(inputs: &Tensor) -> usize {
    inputs.size().first().copied().unwrap_or(1).max(1) as usize
}

fn into_result<T>(r: RResult<T, abi_stable::std_types::RString>) -> Result<T> {
    r.into_result().map_err(|e| anyhow!(e.into_string()))
}

/// The `target` column `[B]` of scores `[B, K]`, with an error naming the valid targets.
fn select_target(scores: &Tensor, target: i64) -> Result<Tensor> {
    let columns = scores.size().get(1).copied().unwrap_or(0);
    if scores.dim() != 2 || target < 0 || target >= columns {
        bail!(
            "target {target} is outside the model's score columns (scores have shape {:?}; \
                 valid targets are 0..{})",
            scores.size(),
            columns.max(1) - 1
        );
    }
    Ok(scores.select(1, target))
}

/// One layer tap: capture the layer's output, or replace it with a tensor of the same shape;
/// [`Tap::at_input`] moves the tap to the layer's input.
#[derive(Clone, Copy)]
pub struct Tap<'a> {
    pub layer: &'a str,
    pub replace: Option<&'a Tensor>,
    /// The layer's input (Captum's `attribute_to_layer_input`) rather than its output.
    pub at_input: bool,
}

impl<'a> Tap<'a> {
    pub fn capture(layer: &'a str) -> Self {
        Tap {
            layer,
            replace: None,
            at_input: false,
        }
    }

    pub fn replace(layer: &'a str, value: &'a Tensor) -> Self {
        Tap {
            layer,
            replace: Some(value),
            at_input: false,
        }
    }

    /// The same tap on the layer's input when `yes` (see [`LayerTap::at_input`]).
    pub fn at_input(mut self, yes: bool) -> Self {
        self.at_input = yes;
        self
    }
}

/// Relevance (or modified gradient) from [`Context::backward_rules`].
pub struct RuleGradients {
    /// At the input, same shape as the inputs.
    pub inputs: Tensor,
    /// At the requested layer's output.
    pub layer: Option<Tensor>,
    /// The requested layer's output.
    pub layer_output: Option<Tensor>,
}

/// A tap as it crosses the boundary.
fn layer_tap<'a>(t: &Tap<'a>) -> LayerTap<'a> {
    LayerTap {
        layer: RStr::from_str(t.layer),
        replace: t.replace.map(TensorRef::new).into(),
        at_input: t.at_input,
    }
}
