//! libtorch's CUDA half, opened on demand: only commands that ask for a `cuda:N` device pay
//! for loading it (it and the CUDA libraries it pulls in cost more start-up time than the rest
//! of libtorch). Its static initialisers register the CUDA kernels and hooks, so it must be
//! loaded before anything asks libtorch about CUDA.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};

/// Where build.rs found libtorch's libraries.
const TORCH_LIB: &str = env!("ESEGETA_TORCH_LIB");

/// Opens libtorch_cuda once (and keeps it open); a torch build without it means no CUDA, which
/// is not an error here: the device count then says 0.
pub fn load() -> Result<()> {
    static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = Path::new(TORCH_LIB).join("libtorch_cuda.so");
            if !path.exists() {
                return Ok(());
            }
            let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
            // SAFETY: a library of the libtorch this binary links, whose initialisers only
            // register CUDA kernels and hooks with it.
            match unsafe { libloading::os::unix::Library::open(Some(&path), flags) } {
                Ok(library) => {
                    // Never unloaded: libtorch keeps pointers into it.
                    std::mem::forget(library);
                    Ok(())
                }
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        })
        .clone()
        .map_err(|e| {
            anyhow!(
                "could not load libtorch's CUDA library ({e}); reinstall torch or use --device cpu"
            )
        })
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    /// Without libtorch_cuda a CUDA tensor fails for want of a CUDA backend; with it loaded, a
    /// machine without a GPU fails for want of a driver or device instead (and one with a GPU
    /// succeeds).
    #[test]
    fn loading_registers_the_cuda_backend() {
        super::load().unwrap();
        if !std::path::Path::new(super::TORCH_LIB)
            .join("libtorch_cuda.so")
            .exists()
        {
            return;
        }
        match Tensor::f_zeros([1], (Kind::Float, Device::Cuda(0))) {
            Ok(_) => {}
            Err(e) => {
                let message = e.to_string();
                assert!(
                    !message.contains("'CUDA' backend"),
                    "CUDA kernels are not registered: {message}"
                );
            }
        }
    }
}
