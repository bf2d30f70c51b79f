//! kubeforge's engine: reaches hosts through a [`transport::Transport`] (the system `ssh`, or a scripted
//! fake), gathers their facts, runs the phases of the pure core's
//! [`kubeforge_core::steps::PHASES`], and reports (plan) or makes (apply) their changes.
//!
//! Hosts of a phase run in parallel, up to a limit, or one at a time when the phase says so; a
//! phase waits for the one before it; a failure lets the other hosts finish the phase and stops
//! the run there.

pub mod fake;
pub mod log;
pub mod run;
pub mod ssh;
pub mod transport;
pub mod upload;

pub use run::{HostError, Mode, Options, PhaseInfo, Report, Reporter, gather, run};
pub use ssh::{SshTarget, SshTransport};
pub use transport::{Holder, Transport, TransportError};
