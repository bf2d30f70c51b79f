//! The `kubeforge lab` command line.

use std::process::ExitCode;

/// Rehearse a cluster on throwaway local Debian hosts (Linux, root).
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Show the lab's hosts and services.
    Status,
}

/// Runs a lab command and returns the process exit code.
pub fn run(args: LabArgs) -> ExitCode {
    match args.command {
        LabCommand::Status => ExitCode::SUCCESS,
    }
}
