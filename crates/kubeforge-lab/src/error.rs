//! Errors of the lab, each saying what went wrong and how to fix it.

use std::path::PathBuf;

use ipnet::Ipv4Net;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "`kubeforge lab` must run as root (it creates a bridge, mounts, cgroups and containers); \
         run it again with sudo"
    )]
    NotRoot,

    #[error("`kubeforge lab` needs Linux (systemd-nspawn, Linux bridges, overlayfs)")]
    NotLinux,

    #[error(
        "program `{program}` was not found in PATH; install it with `apt-get install {package}`"
    )]
    MissingProgram { program: String, package: String },

    #[error(
        "subnet {subnet} is already in use on this machine ({what}); choose a free private \
         subnet with --subnet, e.g. --subnet {suggestion}"
    )]
    SubnetTaken {
        subnet: Ipv4Net,
        what: String,
        suggestion: String,
    },

    #[error("`{command}` failed ({status}){stderr}")]
    Command {
        command: String,
        status: String,
        /// Tail of the command's standard error, already indented, or empty.
        stderr: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("no lab in {dir} (no state file); start one with `kubeforge lab up`")]
    NotUp { dir: PathBuf },

    #[error("no host `{name}` in this lab; its hosts are: {known}")]
    UnknownHost { name: String, known: String },

    #[error("{0}")]
    Invalid(String),

    #[error("timed out: {0}")]
    Timeout(String),

    #[error(
        "`kubeforge lab down` could not undo everything; fix what is named and run it again:{}",
        .0.iter().map(|e| format!("\n  - {e}")).collect::<String>()
    )]
    Teardown(Vec<String>),
}

impl LabError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Adds a context message to I/O errors.
pub trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, LabError>;
}

impl<T> IoContext<T> for Result<T, std::io::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, LabError> {
        self.map_err(|source| LabError::io(context(), source))
    }
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;
