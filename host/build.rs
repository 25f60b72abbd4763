//! Links the binary so that it runs without LD_LIBRARY_PATH and sees CUDA when torch has it.
use std::path::Path;

fn main() {
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // The linker's --as-needed would drop libtorch_cuda (nothing references it by symbol), and
    // without it loaded CUDA is never available at run time.
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
