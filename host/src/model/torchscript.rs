//! TorchScript models (`torch.jit.trace`/`script`, saved as `.pt`/`.ts`): a black box with
//! forward and backward through the input.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use anyhow::{anyhow, bail, Result};
use tch::{CModule, Device, IValue, Kind, Tensor};

use super::frozen::Frozen;
use super::{Model, Output};

pub struct TorchScriptModel {
    module: CModule,
    name: String,
    output: Output,
    /// The batch size the model accepts when it was exported with a fixed one; 0 while unknown.
    fixed_batch: AtomicI64,
    /// The batch size of the first successful forward, known to be accepted.
    accepted_batch: AtomicI64,
    /// Whether images (4-D inputs) go in channels-last, until the model rejects one.
    channels_last: AtomicBool,
    /// The parameters' kind (fp32, or the precision asked for).
    kind: Kind,
    /// The module frozen for inference (`--freeze`), for forward passes without gradients.
    frozen: Option<Frozen>,
    /// Whether `frozen` is used: not once it failed on an input the plain module takes, nor
    /// once the parameters were handed out (randomisation changes them; the frozen copy
    /// would not follow).
    use_frozen: AtomicBool,
}

/// What an output is, in a word, for errors.
fn kind_of(value: &IValue) -> &'static str {
    match value {
        IValue::Tensor(_) => "a tensor",
        IValue::Tuple(_) => "a tuple",
        IValue::GenericList(_) | IValue::TensorList(_) => "a list",
        IValue::GenericDict(_) => "a dict",
        IValue::String(_) => "a string",
        IValue::None => "None",
        _ => "not a tensor",
    }
}

impl TorchScriptModel {
    /// `freeze`: also load a copy frozen for inference (see [`Frozen`]; CPU and fp32 only).
    pub fn load(
        path: &Path,
        device: Device,
        kind: Kind,
        output: Output,
        freeze: bool,
    ) -> Result<Self> {
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            anyhow!(
                "{} is not a TorchScript model libtorch can load ({}). Export it with \
                 torch.jit.trace(model, example).save(path) or torch.jit.script(model).save(path)",
                path.display(),
                first_line(&e.to_string())
            )
        })?;
        module.set_eval();
        if kind != Kind::Float {
            module.to(device, kind, false);
        }
        // TorchScript parameters keep requires_grad in eval mode; methods differentiate with
        // respect to the input only, so don't let autograd record weight gradients.
        for (_, parameter) in module.named_parameters()? {
            let _ = parameter.set_requires_grad(false);
        }
        let frozen = match freeze {
            true => frozen(path, device, kind),
            false => None,
        };
        Ok(TorchScriptModel {
            use_frozen: AtomicBool::new(frozen.is_some()),
            frozen,
            module,
            name: path.display().to_string(),
            output,
            fixed_batch: AtomicI64::new(0),
            accepted_batch: AtomicI64::new(0),
            channels_last: AtomicBool::new(device == Device::Cpu && kind == Kind::Float),
            kind,
        })
    }

    /// On CPU, images go in channels-last (the same values, laid out pixel by pixel):
    /// oneDNN's convolutions then skip reordering them, and the layout carries through the
    /// network. In bench/ a ResNet-18's forward passes (occlusion) took 3.2 s against 3.75 s,
    /// and its gradients at 8 per pass 0.35 s against 0.38 s; 3D volumes gained nothing and
    /// keep the default layout. The output is made contiguous, as callers expect, and so is
    /// the gradient that reaches the caller's input (see [`super::channels_last`]). A model that
    /// cannot take that layout (a `view` of a feature map) gets the default one from the
    /// first input that fails in channels-last and works in the default layout.
    fn forward_once(&self, inputs: &Tensor) -> Result<Tensor> {
        if let Some(out) = self.frozen_forward(inputs) {
            return Ok(out);
        }
        if inputs.dim() == 4 && self.channels_last.load(Ordering::Relaxed) {
            match self.call(&super::channels_last(inputs)?) {
                Ok(out) => return Ok(out.contiguous()),
                Err(e) => tracing::debug!("{e:#}; retrying in the default layout"),
            }
            // The layout's fault only if the default one works (not a wrong shape, say).
            let out = self.call(inputs)?;
            self.channels_last.store(false, Ordering::Relaxed);
            return Ok(out);
        }
        self.call(inputs)
    }

    /// The frozen module's output, where it is loaded and no gradient is asked for; `None`
    /// to run the plain module instead. A failure that the plain module does not share (an
    /// output that is not one tensor, an operation oneDNN lacks) turns the frozen one off.
    fn frozen_forward(&self, inputs: &Tensor) -> Option<Tensor> {
        let frozen = self.frozen.as_ref()?;
        if !self.use_frozen.load(Ordering::Relaxed) || inputs.requires_grad() {
            return None;
        }
        let error = match frozen.forward(&inputs.contiguous()) {
            Ok(out) => return Some(out.contiguous()),
            Err(e) => e,
        };
        if self.call(inputs).is_ok() {
            tracing::info!(
                "{}: the frozen model failed ({error:#}); using the plain one",
                self.name
            );
            self.use_frozen.store(false, Ordering::Relaxed);
        }
        None
    }

    /// The graph executor keeps its optimising mode, although it runs the first calls of each
    /// input shape slower (a ResNet-18's gradient, torch 2.13, 2 threads: 0.16, 0.12, 0.13 s
    /// before settling at 0.06; unoptimised 0.09, then 0.06): unoptimised, UNets hold more
    /// memory at the same speed (a 3D UNet's occlusion 840-930 MiB against 670-730, above
    /// Captum's; a 2D UNet's passes 9% more).
    fn call(&self, inputs: &Tensor) -> Result<Tensor> {
        let out = self
            .module
            .method_is("forward", &[IValue::Tensor(inputs.shallow_clone())])
            .map_err(|e| {
                let error = model_error(&e.to_string());
                // libtorch's Module::to casts every buffer to the new kind, integer ones too.
                let cast = self.kind != Kind::Float
                    && error.contains("tensors used as indices must be long");
                anyhow!(
                    "the model {} rejected an input of shape {:?}: {error}{}",
                    self.name,
                    inputs.size(),
                    if cast {
                        format!(
                            ". This TorchScript model keeps integer buffers (index tables, such \
                             as a Swin's relative_position_index), which libtorch casts to {:?} \
                             with the weights: run it in fp32, or its ONNX export (which keeps \
                             integer tensors as they are) at this precision",
                            self.kind
                        )
                    } else {
                        String::new()
                    }
                )
            })?;
        self.select_output(out)
    }

    /// The output tensor; for a model with several (a tuple or list for deep supervision, a
    /// dict such as HuggingFace's `{"logits": ...}`), the chosen one.
    fn select_output(&self, out: IValue) -> Result<Tensor> {
        let outputs: Vec<(String, IValue)> = match out {
            IValue::Tensor(t) => return Ok(t),
            IValue::Tuple(items) | IValue::GenericList(items) => {
                items.into_iter().map(|v| (String::new(), v)).collect()
            }
            IValue::TensorList(items) => items
                .into_iter()
                .map(|t| (String::new(), IValue::Tensor(t)))
                .collect(),
            IValue::GenericDict(items) => items
                .into_iter()
                .map(|(k, v)| match k {
                    IValue::String(k) => (k, v),
                    other => (format!("{other:?}"), v),
                })
                .collect(),
            other => bail!(
                "the model {} returned {}, not a tensor",
                self.name,
                kind_of(&other)
            ),
        };
        let names: Vec<String> = outputs.iter().map(|(n, _)| n.clone()).collect();
        // A dict of several outputs is a HuggingFace-style model: its default is `logits`.
        let keyed = names.len() > 1 && names.iter().all(|n| !n.is_empty());
        let choice = match &self.output {
            Output::Default if keyed => Output::Name("logits".to_string()),
            other => other.clone(),
        };
        let position = choice.position(&names, &self.name)?;
        match outputs.into_iter().nth(position) {
            Some((_, IValue::Tensor(t))) => Ok(t),
            Some((_, other)) => bail!(
                "output {position} of the model {} is {}, not a tensor; pick a tensor output \
                 with --output-index or --output",
                self.name,
                kind_of(&other)
            ),
            None => unreachable!("position() checked the index"),
        }
    }

    /// Evaluates in chunks of `chunk` examples, padding the last chunk by repeating its final
    /// example (a model exported with a fixed batch size accepts no other).
    fn forward_chunked(&self, inputs: &Tensor, chunk: i64) -> Result<Tensor> {
        let batch = inputs.size()[0];
        let mut outputs = Vec::new();
        let mut start = 0;
        while start < batch {
            let len = chunk.min(batch - start);
            let mut part = inputs.narrow(0, start, len);
            if len < chunk {
                let pad = part.narrow(0, len - 1, 1).expand(
                    [chunk - len]
                        .iter()
                        .chain(&part.size()[1..])
                        .copied()
                        .collect::<Vec<_>>(),
                    false,
                );
                part = Tensor::cat(&[part, pad], 0);
            }
            outputs.push(self.forward_once(&part)?.narrow(0, 0, len));
            start += len;
        }
        Ok(Tensor::cat(&outputs, 0))
    }
}

impl Model for TorchScriptModel {
    fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        let batch = inputs.size()[0];
        let fixed = self.fixed_batch.load(Ordering::Relaxed);
        if fixed > 0 && batch != fixed {
            return self.forward_chunked(inputs, fixed);
        }
        match self.forward_once(inputs) {
            Ok(out) => {
                let _ = self.accepted_batch.compare_exchange(
                    0,
                    batch,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                Ok(out)
            }
            Err(error) => {
                // A batch of another size than one that worked: maybe the model was exported
                // with a fixed batch size. Retry in chunks of the size known to work.
                let accepted = self.accepted_batch.load(Ordering::Relaxed);
                if accepted == 0 || accepted == batch {
                    return Err(error);
                }
                let out = self.forward_chunked(inputs, accepted).map_err(|_| error)?;
                self.fixed_batch.store(accepted, Ordering::Relaxed);
                tracing::info!(
                    "{} accepts only batches of {accepted}; evaluating in chunks",
                    self.name
                );
                Ok(out)
            }
        }
    }

    fn layers(&self) -> Result<Vec<String>> {
        bail!(
            "{} is a TorchScript model, a black box without named layers; export the PyTorch \
             model to ONNX to use layer methods: {}",
            self.name,
            crate::layers::EXPORT_COMMAND
        )
    }

    fn parameters(&self) -> Result<Vec<(String, Tensor)>> {
        self.use_frozen.store(false, Ordering::Relaxed);
        Ok(self.module.named_parameters()?)
    }
}

/// The frozen copy of the model at `path`, or `None` (with a warning saying why).
fn frozen(path: &Path, device: Device, kind: Kind) -> Option<Frozen> {
    if device != Device::Cpu || kind != Kind::Float {
        tracing::warn!(
            "--freeze works on CPU in fp32 only; {} runs unfrozen on {device:?} in {kind:?}",
            path.display()
        );
        return None;
    }
    match Frozen::load(path) {
        Ok(frozen) => {
            tracing::info!(
                "{}: forward passes without gradients run on a copy frozen for inference",
                path.display()
            );
            Some(frozen)
        }
        Err(e) => {
            tracing::warn!("{e:#}; running it unfrozen");
            None
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

/// The model's own error without the TorchScript interpreter's traceback: its last
/// non-empty lines name the failing operation.
fn model_error(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let from = lines
        .iter()
        .rposition(|l| l.contains("Error:"))
        .unwrap_or(lines.len().saturating_sub(1));
    lines[from..].join(" ")
}
