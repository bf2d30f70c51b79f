//! The `kubeforge` command: a thin layer over the library crates.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
