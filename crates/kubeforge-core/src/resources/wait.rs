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
    /// This control-plane node is in the cluster, as the API tells through its admin
    /// kubeconfig: listed as a node, its etcd member healthy, its kube-apiserver answering on
    /// `address:6443`.
    ControlPlaneUp { node: String, address: String },
    /// The API knows this node (asked with its own kubelet credentials).
    Registered(String),
    /// This node runs `version` (`v1.28.8`) after an upgrade: its kubelet reports it and the
    /// node is Ready; for a control-plane node also its kube-apiserver, controller-manager and
    /// scheduler pods run the version's images and are ready, its etcd member is healthy, and
    /// the API answers through the endpoint (asked with the admin kubeconfig); a worker asks
    /// with its kubelet's credentials.
    Upgraded {
        node: String,
        version: String,
        control_plane: bool,
    },
    /// This control-plane node's static pods (etcd and the three of [`VERSIONED_STATIC_PODS`])
    /// run from manifests marked with `stamp` ([`RENEWED`]): each listed, running and ready;
    /// its etcd member healthy; the API answering through the endpoint.
    Restarted { node: String, stamp: String },
}

/// The annotation of a static pod's manifest that restarts it to load renewed certificates:
/// the renewal's stamp (its mirror pod carries it too).
pub const RENEWED: &str = "kubeforge.io/certificates-renewed";

/// The static pods of a control-plane node that load its certificates.
pub const CERTIFICATE_PODS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// The control plane's static pods whose image follows the Kubernetes version.
pub const VERSIONED_STATIC_PODS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

impl Condition {
    pub fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        match self {
            Condition::UnitRunning(unit) => {
                q.units.insert(unit.clone());
            }
            Condition::PortListening(_) => q.listening = true,
            Condition::ControlPlaneUp { address, .. } => {
                q.cluster = true;
                q.probes.insert((address.clone(), 6443));
            }
            Condition::Registered(node) => q.registered = Some(node.clone()),
            Condition::Restarted { .. } => q.cluster = true,
            Condition::Upgraded {
                node,
                control_plane,
                ..
            } => {
                if *control_plane {
                    q.cluster = true;
                } else {
                    q.registered = Some(node.clone());
                }
            }
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
            Condition::ControlPlaneUp { node, address } => {
                let mut missing = Vec::new();
                match facts.cluster.as_ref() {
                    None => {
                        missing.push("the API cannot be asked (no admin kubeconfig yet)".into())
                    }
                    Some(c) => {
                        if c.node(node).is_none() {
                            missing.push(format!("the API does not list {node}"));
                        }
                        missing.extend(c.member_problem(node).map(|p| p.text()));
                    }
                }
                if facts.probes.get(&(address.clone(), 6443)) != Some(&true) {
                    missing.push(format!("kube-apiserver does not answer on {address}:6443"));
                }
                missing
            }
            Condition::Registered(node) => {
                if facts.registered == Some(true) {
                    Vec::new()
                } else {
                    vec![format!("the API does not know {node} yet")]
                }
            }
            Condition::Upgraded {
                node,
                version,
                control_plane,
            } => upgraded_missing(facts, node, version, *control_plane),
            Condition::Restarted { node, stamp } => restarted_missing(facts, node, stamp),
        }
    }
}

/// What [`Condition::Upgraded`] still misses.
fn upgraded_missing(
    facts: &HostFacts,
    node: &str,
    version: &str,
    control_plane: bool,
) -> Vec<String> {
    let mut missing = Vec::new();
    let cluster = facts.cluster.as_ref();
    let status = if control_plane {
        cluster.and_then(|c| c.node(node))
    } else {
        facts.own_node.as_ref()
    };
    match status {
        None => missing.push(format!("the API does not list {node}")),
        Some(s) => {
            if s.kubelet_version != version {
                missing.push(format!("its kubelet reports {}", s.kubelet_version));
            }
            if s.ready != Some(true) {
                missing.push(format!("{node} is not Ready"));
            }
        }
    }
    if !control_plane {
        return missing;
    }
    let Some(c) = cluster else {
        missing.push("the API cannot be asked (no admin kubeconfig)".into());
        return missing;
    };
    for component in VERSIONED_STATIC_PODS {
        let name = format!("{component}-{node}");
        match c.pods.iter().find(|p| p.name == name) {
            None => missing.push(format!("the API does not list {name}")),
            Some(p) if !p.images.iter().any(|i| i.ends_with(&format!(":{version}"))) => {
                missing.push(format!("{name} runs {}", p.images.join(", ")))
            }
            Some(p) if !p.ready => missing.push(format!("{name} is not ready")),
            Some(_) => {}
        }
    }
    missing.extend(control_plane_missing(c, node));
    missing
}

/// What [`Condition::Restarted`] still misses.
fn restarted_missing(facts: &HostFacts, node: &str, stamp: &str) -> Vec<String> {
    let Some(c) = facts.cluster.as_ref() else {
        return vec!["the API cannot be asked (no admin kubeconfig)".into()];
    };
    let mut missing = Vec::new();
    for component in CERTIFICATE_PODS {
        let name = format!("{component}-{node}");
        match c.pods.iter().find(|p| p.name == name) {
            None => missing.push(format!("the API does not list {name}")),
            Some(p) if p.marks.get(RENEWED).map(String::as_str) != Some(stamp) => {
                missing.push(format!("{name} has not restarted yet"))
            }
            Some(p) if p.phase != "Running" || !p.ready => {
                missing.push(format!("{name} is not ready"))
            }
            Some(_) => {}
        }
    }
    missing.extend(control_plane_missing(c, node));
    missing
}

/// A control-plane node's etcd member and the API, as the cluster's facts tell.
fn control_plane_missing(c: &crate::facts::cluster::ClusterFacts, node: &str) -> Vec<String> {
    let mut missing: Vec<String> = c
        .member_problem(node)
        .map(|p| p.text())
        .into_iter()
        .collect();
    if !c.api_ready() {
        missing.push(format!(
            "the API does not answer through the endpoint ({})",
            c.readyz
        ));
    }
    missing
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
    /// The cluster is whole, as the API on control-plane node `on` tells: every node Ready
    /// (with a pod network) or at least registered (without one), each of `daemonsets`
    /// (kube-proxy's and the pod network's) rolled out with a ready pod on every node, the
    /// control plane's static pods running and ready on every control-plane node, one healthy etcd
    /// member per control-plane node, and `/readyz` answered through the endpoint.
    ///
    /// A node turns Ready as soon as the pod network's init container has copied its CNI
    /// configuration, before the network's daemon runs: hence the DaemonSets. A static pod
    /// counts when the API lists it Running and Ready, or, while the API does not list it,
    /// when its node's container runtime runs it: a kubelet that joined has the API list its
    /// static pods (mirror pods) only once it has seen its own Node, up to a minute or two
    /// later.
    Ready {
        on: String,
        nodes: Vec<String>,
        control_planes: Vec<String>,
        network: bool,
        /// `(namespace, name)` of each DaemonSet that must run a ready pod on every node.
        daemonsets: Vec<(String, String)>,
        /// Nodes skipped on purpose (`apply --skip`): not judged. Their etcd members are not
        /// strangers, and each DaemonSet may lack a ready pod on each of them.
        skipped: Vec<String>,
    },
}

/// The static pods kubeadm runs on every control-plane node.
pub const CONTROL_PLANE_PODS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

impl ClusterCondition {
    /// What to ask `host`, one of the phase's hosts.
    pub fn query(&self, host: &str) -> FactQuery {
        let mut q = FactQuery::default();
        match self {
            ClusterCondition::VipHeld { vip, port } => {
                q.probes.insert((vip.to_string(), *port));
            }
            ClusterCondition::Ready {
                on, control_planes, ..
            } => {
                q.cluster = host == on;
                q.static_pods = control_planes.iter().any(|c| c == host);
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
            ClusterCondition::Ready {
                on,
                nodes,
                control_planes,
                network,
                daemonsets,
                skipped,
            } => {
                let Some(c) = facts.get(on).and_then(|f| f.cluster.as_ref()) else {
                    return vec![format!("{on} has no admin kubeconfig to ask the API with")];
                };
                let runs = |node: &str, pod: &str| {
                    facts
                        .get(node)
                        .and_then(|f| f.static_pods.as_ref())
                        .is_some_and(|running| running.contains(pod))
                };
                let mut missing = ready_missing(c, nodes, control_planes, skipped, *network, &runs);
                missing.extend(daemonsets_missing(
                    c,
                    nodes.len() as u64,
                    skipped.len() as u64,
                    daemonsets,
                ));
                missing
            }
        }
    }
}

/// What keeps the cluster from being whole, per node.
fn ready_missing(
    c: &crate::facts::ClusterFacts,
    nodes: &[String],
    control_planes: &[String],
    skipped: &[String],
    network: bool,
    runs: &dyn Fn(&str, &str) -> bool,
) -> Vec<String> {
    let mut missing = Vec::new();
    if !c.api_ready() {
        let said = if c.readyz.is_empty() {
            "no answer".to_string()
        } else {
            c.readyz.chars().take(120).collect()
        };
        missing.push(format!("the API's /readyz through the endpoint: {said}"));
    }
    for name in nodes {
        match c.node(name) {
            None => missing.push(format!("{name}: not registered")),
            Some(n) if network && n.ready != Some(true) => {
                let why = if n.message.is_empty() {
                    "not Ready".to_string()
                } else {
                    format!("not Ready ({})", n.message)
                };
                missing.push(format!("{name}: {why}{}", pressure(n)));
            }
            Some(_) => {}
        }
    }
    for name in control_planes {
        let down: Vec<&str> = CONTROL_PLANE_PODS
            .iter()
            .filter(|pod| {
                // Listed: running and ready, as the API says; not listed yet: its node's
                // container runtime runs it.
                let listed = c.pods.iter().find(|p| p.name == format!("{pod}-{name}"));
                match listed {
                    Some(p) => p.phase != "Running" || !p.ready,
                    None => !runs(name, pod),
                }
            })
            .copied()
            .collect();
        if !down.is_empty() {
            missing.push(format!("{name}: {} not running and ready", down.join(", ")));
        }
        let members: Vec<&crate::facts::EtcdMember> =
            c.members.iter().filter(|m| m.name == *name).collect();
        match members.as_slice() {
            [] => missing.push(format!("{name}: no etcd member")),
            [m] if m.learner => missing.push(format!(
                "{name}: its etcd member is a learner, not promoted yet (its join did not finish)"
            )),
            [m] if !c.member_healthy(m) => {
                missing.push(format!("{name}: its etcd member is not healthy"))
            }
            [_] => {}
            more => missing.push(format!("{name}: {} etcd members", more.len())),
        }
    }
    let strangers: Vec<&str> = c
        .members
        .iter()
        .filter(|m| !control_planes.contains(&m.name) && !skipped.contains(&m.name))
        .map(|m| {
            if m.name.is_empty() {
                "an unstarted member"
            } else {
                m.name.as_str()
            }
        })
        .collect();
    if !strangers.is_empty() {
        missing.push(format!(
            "etcd has members of no control-plane node: {}",
            strangers.join(", ")
        ));
    }
    missing
}

/// DaemonSets not yet rolled out with a ready pod on each of `nodes` nodes, as
/// `kubectl rollout status` judges: the controller has seen the latest spec, and every pod it
/// schedules (at least one per node) runs the current template and is ready.
fn daemonsets_missing(
    c: &crate::facts::ClusterFacts,
    nodes: u64,
    skipped: u64,
    daemonsets: &[(String, String)],
) -> Vec<String> {
    let mut missing = Vec::new();
    for (namespace, name) in daemonsets {
        let Some(d) = c.daemonset(namespace, name) else {
            missing.push(format!("DaemonSet {namespace}/{name}: not created yet"));
            continue;
        };
        // Pods on skipped nodes are not waited for.
        let of = d.desired.max(nodes).saturating_sub(skipped).max(nodes);
        if !d.observed {
            missing.push(format!(
                "DaemonSet {namespace}/{name}: its latest change is not rolled out yet"
            ));
        } else if d.updated < of {
            missing.push(format!(
                "DaemonSet {namespace}/{name}: {} of {of} pods run its current template",
                d.updated
            ));
        } else if d.ready < of {
            missing.push(format!(
                "DaemonSet {namespace}/{name}: {} of {of} pods ready",
                d.ready
            ));
        }
    }
    missing
}

/// A [`ClusterCondition`] to wait for after a phase, with its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle {
    pub what: String,
    pub condition: ClusterCondition,
    pub deadline: Duration,
}

/// What a node's pressure conditions mean for the cluster, for the message of a wait; empty
/// when none holds.
fn pressure(n: &crate::facts::NodeStatus) -> String {
    if n.pressure.is_empty() {
        return String::new();
    }
    let mut text = format!("; {}", n.pressure.join(", "));
    if n.pressure.iter().any(|p| p == "DiskPressure") {
        text.push_str(
            ": the kubelet evicts pods and deletes images no container uses (with a bundle, the pod network's and kube-proxy's cannot be pulled again); free disk space on the node, then run apply again: it imports what is missing",
        );
    }
    text
}
