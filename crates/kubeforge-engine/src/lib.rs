//! kubeforge's engine: reaches hosts through a [`transport::Transport`], gathers their facts,
//! computes each phase's changes with the pure core, and prints (plan) or runs (apply) them.
//!
//! Hosts of a phase run in parallel, up to a limit; a phase waits for the one before it; a
//! failure lets the other hosts finish the phase and stops the run there.

pub mod fake;
pub mod log;
pub mod run;
pub mod transport;

pub use run::{HostError, Mode, Options, Report, Reporter, run};
pub use transport::{LocalTransport, SshTarget, SshTransport, Transport, TransportError};
