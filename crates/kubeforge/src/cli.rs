//! Argument parsing and dispatch.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kubeforge", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rehearse a cluster on throwaway local Debian hosts (Linux, root).
    Lab(kubeforge_lab::cli::LabArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lab(args) => kubeforge_lab::cli::run(args),
    }
}
