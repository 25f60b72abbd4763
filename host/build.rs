//! Links the binary so that it runs without LD_LIBRARY_PATH, and tells it where libtorch's
//! libraries are, so that it can load CUDA's part on demand (host/src/model/cuda.rs).

fn main() {
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // libtorch_cuda is not linked: loading it and its CUDA libraries at start-up tripled the
    // binary's start time (about 0.16 s of CPU and 0.4 s of page faults on a 2-core machine)
    // for every command, CPU-only ones included. It is opened when a CUDA device is asked for.
    println!("cargo:rustc-env=ESEGETA_TORCH_LIB={lib}");
}
