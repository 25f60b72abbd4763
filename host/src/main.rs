//! `esegeta`: the command-line entry point.

fn main() {
    keep_freed_memory();
    std::process::exit(esegeta::cli::main());
}

/// Methods run the same model many times, each pass allocating and freeing the same large
/// activation buffers. glibc returns big freed blocks to the kernel (anything mmapped above
/// its mmap threshold, and the heap's top above its trim threshold), so the next pass
/// page-faults all of them in again, zero-filled: in bench/ that was a quarter to a third of
/// the time of a 64^3 UNet's feature ablation (15.2-15.7 s, 11.2-11.8 s with these settings)
/// and integrated gradients (24 s, 16 s), and a sixth of a ResNet-18's (3.0 s, 2.5 s).
/// Blocks up to 1 GiB now come from the heap, which keeps what is freed. Peak memory grows
/// somewhat (freed blocks of other sizes are not always reusable), which the CPU batch cap in
/// host_services.rs more than pays back. `ESEGETA_DEFAULT_MALLOC=1` keeps glibc's defaults,
/// for measuring.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread starts.
    unsafe {
        if std::env::var_os("ESEGETA_DEFAULT_MALLOC").is_none() {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
}
