//! [`Context`]: the host's services as a method sees them, in plain Rust types.

use abi_stable::std_types::{RResult, RStr};
use anyhow::{anyhow, bail, Result};
use tch::{Kind, Tensor};

use crate::abi::{HostRef, LogLevel, RunRequest};
use crate::method::Attribution;
use crate::tensor::TensorRef;

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
        let scores = self.forward(inputs)?;
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

    pub fn load_tensor(&self, path: &str) -> Result<Tensor> {
        into_result(self.host.load_tensor(RStr::from_str(path))).map(|t| t.into_tensor())
    }

    /// How many examples of `bytes_per_example` fit in the memory budget (at least 1).
    pub fn batch_size_hint(&self, bytes_per_example: u64) -> usize {
        self.host.batch_size_hint(bytes_per_example).max(1) as usize
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

fn into_result<T>(r: RResult<T, abi_stable::std_types::RString>) -> Result<T> {
    r.into_result().map_err(|e| anyhow!(e.into_string()))
}
