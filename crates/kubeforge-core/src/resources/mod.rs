//! Resources: what a host should have, each compared with the host's facts to give the changes
//! that would make it so. A change is data: a description, a diff for files, and the exact
//! shell script (plus stdin payload) that applies it — or a wait the engine carries out.
//!
//! Each kind of resource computes its own changes in its own module. Files tell the services
//! that read them through [`Pending`]: a service resource later in the step reloads or
//! restarts once, and a unit with no service resource of its own is handled at the end.

use std::time::Duration;

use serde::Serialize;

use crate::facts::{FactQuery, HostFacts};
use crate::shell::quote;

mod apt;
mod command;
mod file;
mod module;
mod packages;
mod service;
mod swap;
mod sysctl;
mod upload;
mod wait;

pub use crate::facts::Probe;
pub use apt::{AptRepository, Keyring};
pub use command::{Capture, Command, Guard, Parse};
pub use file::File;
pub use module::Module;
pub use packages::{Package, Packages};
pub use service::Service;
pub use swap::SwapOff;
pub use sysctl::Sysctl;
pub use upload::{Upload, UploadSource, megabytes};
pub use wait::{
    CERTIFICATE_PODS, ClusterCondition, Condition, RENEWED, Settle, VERSIONED_STATIC_PODS, Wait,
};

#[cfg(test)]
mod tests;

/// What a host should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Packages(Packages),
    File(File),
    Sysctl(Sysctl),
    Service(Service),
    SwapOff(SwapOff),
    Module(Module),
    AptRepository(AptRepository),
    Command(Command),
    Wait(Wait),
    Upload(Upload),
}

impl Resource {
    /// The facts this resource is compared against.
    pub fn query(&self) -> FactQuery {
        match self {
            Resource::Packages(r) => r.query(),
            Resource::File(r) => r.query(),
            Resource::Sysctl(r) => r.query(),
            Resource::Service(r) => r.query(),
            Resource::SwapOff(r) => r.query(),
            Resource::Module(r) => r.query(),
            Resource::AptRepository(r) => r.query(),
            Resource::Command(r) => r.query(),
            Resource::Wait(r) => r.query(),
            Resource::Upload(r) => r.query(),
        }
    }

    fn changes(&self, step: &str, facts: &HostFacts, pending: &mut Pending) -> Vec<Change> {
        match self {
            Resource::Packages(r) => r.changes(step, facts),
            Resource::File(r) => r.changes(step, facts, pending),
            Resource::Sysctl(r) => r.changes(step, facts),
            Resource::Service(r) => r.changes(step, facts, pending),
            Resource::SwapOff(r) => r.changes(step, facts),
            Resource::Module(r) => r.changes(step, facts),
            Resource::AptRepository(r) => r.changes(step, facts),
            Resource::Command(r) => r.changes(step, facts),
            Resource::Wait(r) => r.changes(step, facts),
            Resource::Upload(r) => r.changes(step, facts, pending),
        }
    }
}

/// How the engine carries a change out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the script (with its payload on stdin), within `timeout`; read the captured values
    /// from its standard output.
    Script {
        timeout: Duration,
        captures: Vec<Capture>,
    },
    /// Gather the condition's facts until it holds or the deadline passes.
    Wait(Wait),
}

/// Time a script may take unless its resource says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// One change on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The step it belongs to (`kernel`, `haproxy`, ...).
    pub step: String,
    /// What changes, in a few words.
    pub summary: String,
    /// For files: a unified diff of the current content against the new one, secrets masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The shell script that makes the change (run as root with `sh -c`). Never holds a
    /// secret: secrets travel in the payload.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub script: String,
    /// Bytes the script reads on stdin (file contents; may hold secrets, never shown).
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// A file of this machine the script reads on stdin after the payload, compressed and
    /// preceded by its compressed length on a line of its own.
    #[serde(skip)]
    pub upload: Option<UploadSource>,
    #[serde(skip)]
    pub action: Action,
}

impl Change {
    /// A change that is just a command.
    pub fn command(step: &str, summary: impl Into<String>, script: impl Into<String>) -> Self {
        Change {
            step: step.to_string(),
            summary: summary.into(),
            diff: None,
            script: script.into(),
            payload: Vec::new(),
            upload: None,
            action: Action::Script {
                timeout: DEFAULT_TIMEOUT,
                captures: Vec::new(),
            },
        }
    }

    pub fn with_timeout(mut self, limit: Duration) -> Self {
        if let Action::Script { timeout, .. } = &mut self.action {
            *timeout = limit;
        }
        self
    }

    pub fn is_wait(&self) -> bool {
        matches!(self.action, Action::Wait(_))
    }
}

/// What a unit must do because a file it reads changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// Reload (re-read configuration without stopping: HAProxy, keepalived).
    Reload,
    /// Restart.
    Restart,
    /// A unit file changed: systemd must read its units again (the unit name is empty).
    DaemonReload,
}

/// Units that must pick up changed files, collected while a step's resources are compared.
#[derive(Debug, Default)]
pub struct Pending {
    units: Vec<(String, Notify, String)>,
    /// Unit files changed and systemd has not read them yet (why).
    daemon_reload: Option<String>,
}

impl Pending {
    pub fn notify(&mut self, unit: &str, how: Notify, why: String) {
        if how == Notify::DaemonReload {
            self.daemon_reload.get_or_insert(why);
            return;
        }
        match self.units.iter_mut().find(|(u, _, _)| u == unit) {
            // A restart covers a reload.
            Some(entry) => {
                if how == Notify::Restart {
                    entry.1 = Notify::Restart;
                }
            }
            None => self.units.push((unit.to_string(), how, why)),
        }
    }

    /// Takes a pending `systemctl daemon-reload`, as a change, if any.
    pub fn take_daemon_reload(&mut self, step: &str) -> Option<Change> {
        self.daemon_reload.take().map(|why| {
            Change::command(
                step,
                format!("reload systemd's unit files ({why})"),
                "systemctl daemon-reload",
            )
        })
    }

    /// Takes the notification for `unit`, if any.
    pub fn take(&mut self, unit: &str) -> Option<(Notify, String)> {
        let i = self.units.iter().position(|(u, _, _)| u == unit)?;
        let (_, how, why) = self.units.remove(i);
        Some((how, why))
    }
}

/// Where kubeforge notes that it restarted or reloaded a unit (see
/// [`HostFacts::unit_loaded_at`]): a reload leaves no trace in systemd's timestamps.
pub fn stamp(unit: &str) -> String {
    format!(
        "mkdir -p {dir} && touch {dir}/{u}",
        dir = crate::facts::STAMP_DIR,
        u = quote(unit)
    )
}

/// The changes that bring a host from its facts to the resources. Empty when it is there.
pub fn changes(step: &str, resources: &[Resource], facts: &HostFacts) -> Vec<Change> {
    let mut pending = Pending::default();
    let mut out: Vec<Change> = resources
        .iter()
        .flat_map(|r| r.changes(step, facts, &mut pending))
        .collect();
    out.extend(pending.take_daemon_reload(step));
    // Units told to pick up a changed file that have no service resource of their own:
    // only running ones (a stopped unit reads its file when it starts).
    for (unit, how, why) in pending.units {
        if facts.unit(&unit).is_some_and(|u| u.is_running()) {
            out.push(service::notify_change(step, &unit, how, &why));
        }
    }
    out
}

/// Every fact the resources need.
pub fn query(resources: &[Resource]) -> FactQuery {
    let mut q = FactQuery::default();
    for r in resources {
        q.merge(&r.query());
    }
    q
}

/// Waits (up to 5 minutes) while another apt or dpkg runs: one left running by a run that was
/// killed, or the host's own unattended upgrades. dpkg itself cannot wait for its lock.
pub const WAIT_FOR_PACKAGE_MANAGERS: &str = "i=0; while pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done";

/// A unified diff from `old` to `new` with the file's path in the headers.
pub fn unified_diff(path: &str, old: Option<&str>, new: &str) -> String {
    let old_text = old.unwrap_or("");
    let diff = similar::TextDiff::from_lines(old_text, new);
    let old_name = if old.is_some() {
        format!("a{path}")
    } else {
        "/dev/null".to_string()
    };
    diff.unified_diff()
        .context_radius(3)
        .header(&old_name, &format!("b{path}"))
        .to_string()
}

/// Joins names for a summary: `a b c`.
fn words<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().collect::<Vec<_>>().join(" ")
}
