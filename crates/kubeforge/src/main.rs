//! The `kubeforge` command: a thin layer over the library crates.

mod args;
mod backup;
mod bundle;
mod certs;
mod check;
mod cli;
mod converge;
mod files;
mod kubeconfig;
mod load;
mod output;
mod plan;
mod progress;
mod remote;
mod reset;
mod resolve;
mod restore;
mod status;
mod upgrade;

fn main() -> std::process::ExitCode {
    cli::main()
}
