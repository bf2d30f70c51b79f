//! A systemd unit enabled at boot and (unless it is started by something else, as kubeadm
//! starts the kubelet) running now, and picking up changed files.

use crate::facts::{FactQuery, HostFacts};
use crate::shell::quote;

use super::{Change, Notify, Pending, stamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub unit: String,
    /// Start it now if it does not run (`false`: only enable it).
    pub start: bool,
}

impl Service {
    pub fn running(unit: &str) -> Self {
        Service {
            unit: unit.to_string(),
            start: true,
        }
    }

    pub fn enabled(unit: &str) -> Self {
        Service {
            unit: unit.to_string(),
            start: false,
        }
    }

    pub(super) fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        q.units.insert(self.unit.clone());
        q
    }

    pub(super) fn changes(
        &self,
        step: &str,
        facts: &HostFacts,
        pending: &mut Pending,
    ) -> Vec<Change> {
        let unit = self.unit.as_str();
        let u = quote(unit);
        let fact = facts.unit(unit);
        // Its unit file may have just changed: systemd reads it before anything else.
        let mut out: Vec<Change> = pending.take_daemon_reload(step).into_iter().collect();
        if fact.is_some_and(|f| f.is_masked()) {
            out.push(Change::command(
                step,
                format!("unmask {unit}"),
                format!("systemctl unmask -q {u}"),
            ));
        }
        if !fact.is_some_and(|f| f.is_enabled()) {
            out.push(Change::command(
                step,
                format!("enable {unit}"),
                format!("systemctl enable -q {u}"),
            ));
        }
        let notified = pending.take(unit);
        if !self.start {
            return out;
        }
        let running = fact.is_some_and(|f| f.is_running());
        match (running, notified) {
            (true, Some((how, why))) => out.push(notify_change(step, unit, how, &why)),
            (true, None) => {}
            (false, _) => {
                let state = fact
                    .map(|f| f.state())
                    .filter(|s| !s.is_empty() && s != "inactive");
                let (verb, why) = match state {
                    Some(s) => ("restart", format!(" (it is {s})")),
                    None => ("start", String::new()),
                };
                out.push(Change::command(
                    step,
                    format!("{verb} {unit}{why}"),
                    format!("systemctl {verb} {u} && {}", stamp(unit)),
                ));
            }
        }
        out
    }
}

/// Reloads or restarts a running unit so that it reads a changed file.
pub(super) fn notify_change(step: &str, unit: &str, how: Notify, why: &str) -> Change {
    let verb = match how {
        Notify::Reload => "reload",
        // (A daemon-reload is never pending for a unit: Pending keeps it apart.)
        Notify::Restart | Notify::DaemonReload => "restart",
    };
    Change::command(
        step,
        format!("{verb} {unit} ({why})"),
        format!("systemctl {verb} {} && {}", quote(unit), stamp(unit)),
    )
}
