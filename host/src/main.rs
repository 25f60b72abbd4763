//! `esegeta`: the command-line entry point.

fn main() {
    std::process::exit(esegeta::cli::main());
}
