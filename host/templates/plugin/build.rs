//! Lets the plugin (and its tests) find libtorch without LD_LIBRARY_PATH: an rpath to the
//! torch install the build used, the one the host runs on.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
