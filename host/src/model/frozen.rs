//! A TorchScript model frozen for inference (`torch.jit.freeze` followed by
//! `torch.jit.optimize_for_inference`, through the C++ shim frozen.cpp that build.rs
//! compiles): batch norms folded into convolutions, which then run through oneDNN. It has no
//! autograd, so it serves only forward passes without gradients, on CPU in fp32.
//!
//! Measured on 2 idle cores (bench/README.md): a ResNet-18's forward passes of 8 images at
//! 224^2 took 0.72 of the plain module's time, a 3D UNet's the same time, and a small CNN
//! without batch norm 1.5 times as long; so it is opt-in (`--freeze`, a config's
//! `model.freeze`).

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;

use anyhow::{anyhow, Result};
use tch::Tensor;

extern "C" {
    fn esegeta_frozen_load(path: *const c_char, err: *mut c_char, err_len: usize) -> *mut c_void;
    fn esegeta_frozen_free(module: *mut c_void);
    fn esegeta_frozen_forward(
        module: *mut c_void,
        input: *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut c_void;
}

/// Owns the frozen `torch::jit::Module`.
pub struct Frozen {
    module: *mut c_void,
}

// SAFETY: a TorchScript module's forward may run from several threads at once (its graph
// executor keeps per-call state); nothing here mutates the module after loading.
unsafe impl Send for Frozen {}
unsafe impl Sync for Frozen {}

const ERR_LEN: usize = 2048;

impl Frozen {
    /// Loads the TorchScript file at `path` again and freezes it.
    pub fn load(path: &Path) -> Result<Frozen> {
        let name = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| anyhow!("{}: the path holds a NUL byte", path.display()))?;
        let mut err = vec![0 as c_char; ERR_LEN];
        // SAFETY: both buffers outlive the call; the shim writes at most ERR_LEN bytes.
        let module = unsafe { esegeta_frozen_load(name.as_ptr(), err.as_mut_ptr(), ERR_LEN) };
        match module.is_null() {
            true => Err(anyhow!(
                "{} could not be frozen for inference: {}",
                path.display(),
                message(&err)
            )),
            false => Ok(Frozen { module }),
        }
    }

    /// The model's output for `inputs`, without gradients.
    pub fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        let mut err = vec![0 as c_char; ERR_LEN];
        // SAFETY: `inputs` is a live tensor handle for the call; the shim only reads it.
        let out = unsafe {
            esegeta_frozen_forward(
                self.module,
                inputs.as_ptr() as *mut c_void,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        match out.is_null() {
            true => Err(anyhow!("{}", message(&err))),
            // SAFETY: a fresh `at::Tensor*` that the shim hands over; tch frees it on drop.
            false => Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) }),
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: the module came from esegeta_frozen_load and is freed once.
        unsafe { esegeta_frozen_free(self.module) }
    }
}

fn message(err: &[c_char]) -> String {
    // SAFETY: the buffer is NUL-terminated (zeroed, and the shim terminates what it writes).
    let text = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("libtorch gave no reason")
        .trim()
        .to_string()
}
