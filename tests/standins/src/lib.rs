//! Test stand-ins for `kubeadm`, `kubelet` and `kubectl`.
//!
//! They simulate a cluster across the hosts of the kubeforge lab: every host acts on its own
//! file system (prefixed with `KUBEFORGE_STANDIN_ROOT` in tests) and all hosts share one state
//! directory, the simulated etcd and API objects. They are strict about flags and configuration
//! fields and fail where the real programs fail, so that kubeforge's end-to-end tests can run
//! without downloading Kubernetes. They prove nothing about compatibility with the real programs.

// The stand-ins are command-line programs: like the real ones, they print to stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod api;
pub mod bundle;
pub mod env;
pub mod flags;
pub mod kubeadm;
pub mod kubectl;
pub mod kubelet;
pub mod net;
pub mod pki;
pub mod preflight;
pub mod state;
pub mod util;
pub mod yaml;

/// The Kubernetes version the stand-ins report, unless `KUBEFORGE_STANDIN_VERSION` says another.
pub const VERSION: &str = "v1.34.2";
/// The first line of every stand-in's `--help`.
pub const HELP_FIRST_LINE: &str = "kubeforge test stand-in";

/// An I/O error as Go prints it (`no such file or directory`).
pub fn util_io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}
