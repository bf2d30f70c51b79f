//! The `kubeforge` command: a thin layer over the library crates.

mod check;
mod cli;
mod load;
mod output;
mod plan;
mod resolve;

fn main() -> std::process::ExitCode {
    cli::main()
}
