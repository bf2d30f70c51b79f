//! Waiting, with a deadline, until a condition holds on a host (a unit runs, a port listens):
//! the engine gathers the condition's facts until it holds, showing how long it has waited.

use std::time::Duration;

use crate::facts::{FactQuery, HostFacts};

use super::{Action, Change};

/// What is waited for; each reads facts and says what is still missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The unit is running (not activating, not failed).
    UnitRunning(String),
    /// Something listens on this TCP port.
    PortListening(u16),
}

impl Condition {
    pub fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        match self {
            Condition::UnitRunning(unit) => {
                q.units.insert(unit.clone());
            }
            Condition::PortListening(_) => q.listening = true,
        }
        q
    }

    /// What is still missing; empty when the condition holds.
    pub fn missing(&self, facts: &HostFacts) -> Vec<String> {
        match self {
            Condition::UnitRunning(unit) => match facts.unit(unit) {
                Some(u) if u.is_running() => Vec::new(),
                Some(u) => vec![format!("{unit} is {}", u.state())],
                None => vec![format!("{unit} is unknown")],
            },
            Condition::PortListening(port) => {
                if facts.listening.contains_key(port) {
                    Vec::new()
                } else {
                    vec![format!("nothing listens on port {port}")]
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// What is waited for, in a few words (`HAProxy listens on 8443`).
    pub what: String,
    pub condition: Condition,
    pub deadline: Duration,
}

impl Wait {
    pub fn new(what: impl Into<String>, condition: Condition, deadline: Duration) -> Self {
        Wait {
            what: what.into(),
            condition,
            deadline,
        }
    }

    pub(super) fn query(&self) -> FactQuery {
        self.condition.query()
    }

    pub(super) fn changes(&self, step: &str, facts: &HostFacts) -> Vec<Change> {
        if self.condition.missing(facts).is_empty() {
            return Vec::new();
        }
        vec![Change {
            action: Action::Wait(self.clone()),
            ..Change::command(step, format!("wait until {}", self.what), String::new())
        }]
    }
}

/// A condition over the facts of every host of a phase, which holds once the phase's work has
/// settled across the cluster (the VIP on exactly one node): checked after the phase, waited
/// for in apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterCondition {
    /// Exactly one host holds `vip`, and `vip:port` accepts connections.
    VipHeld { vip: std::net::Ipv4Addr, port: u16 },
}

impl ClusterCondition {
    /// What to ask each host of the phase.
    pub fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        match self {
            ClusterCondition::VipHeld { vip, port } => {
                q.probes.insert((vip.to_string(), *port));
            }
        }
        q
    }

    /// What is still missing; empty when the condition holds.
    pub fn missing(&self, facts: &std::collections::BTreeMap<String, HostFacts>) -> Vec<String> {
        match self {
            ClusterCondition::VipHeld { vip, port } => {
                let holders: Vec<&str> = facts
                    .iter()
                    .filter(|(_, f)| f.addresses.iter().any(|a| a.ip == *vip))
                    .map(|(h, _)| h.as_str())
                    .collect();
                let mut missing = Vec::new();
                match holders.len() {
                    0 => missing.push(format!("no control-plane node holds the VIP {vip} yet")),
                    1 => {}
                    _ => missing.push(format!(
                        "{} hold the VIP {vip} at once",
                        holders.join(" and ")
                    )),
                }
                let answered = facts
                    .values()
                    .any(|f| f.probes.get(&(vip.to_string(), *port)) == Some(&true));
                if !answered {
                    missing.push(format!("nothing answers on {vip}:{port}"));
                }
                missing
            }
        }
    }
}

/// A [`ClusterCondition`] to wait for after a phase, with its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle {
    pub what: String,
    pub condition: ClusterCondition,
    pub deadline: Duration,
}
