//! Where the cluster stands, decided from the facts of every node — never from anything kept
//! on the machine kubeforge runs on: which node the cluster lives on, whether it must be
//! created, which nodes join (after a reset when a join failed half-way), and what stale
//! records of rebuilt nodes the cluster must forget first.
//!
//! The rules:
//! - The cluster lives where the API answers: a control-plane node with the admin kubeconfig
//!   and the cluster's PKI, listed by the API and an etcd member (the first such node in
//!   cluster order leads: credentials and the pod network are made there).
//! - No API answers and no control-plane node holds traces of kubeadm: `kubeadm init` on the
//!   first control-plane node. Traces with kubeforge's init marker are a failed init, reset
//!   and tried again. Any other traces: an error — a second cluster is never made.
//! - A node is a member when the API lists it and it holds its kubeadm files (and, for a
//!   control-plane node, an etcd member of its name). Any other node joins; its leftover files
//!   are reset first, and a Node object or etcd member of its name is removed first.
//! - A node skipped on purpose (`apply --skip`) is left as it is: never joined, never reset,
//!   its Node and etcd member kept. A control-plane node is skipped only while a cluster
//!   answers from another one: without one, a skipped node might be where the cluster lives.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::facts::{EtcdMember, HostFacts};
use crate::model::{Cluster, Node, Role};

/// What happens to one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    /// In the cluster already (or skipped on purpose): left alone.
    Member,
    /// `kubeadm init` here, after a reset when `reset` lists leftovers of a failed init.
    Init { reset: Vec<String> },
    /// `kubeadm join` (as its role says), after a reset when `reset` lists what a failed
    /// join or an earlier cluster left.
    Join { reset: Vec<String> },
}

/// Records of a node the cluster must forget before the node joins again (it was rebuilt or
/// reset): its Node object and, for a control-plane node, its etcd member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cleanup {
    pub node: String,
    pub delete_node: bool,
    pub etcd_member: Option<EtcdMember>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct State {
    /// The control-plane node the cluster is reached from (`None`: no cluster yet).
    pub leader: Option<String>,
    /// Every node of the inventory.
    pub actions: BTreeMap<String, Action>,
    /// Done on the leader before the joins.
    pub cleanups: Vec<Cleanup>,
}

impl State {
    pub fn action(&self, node: &str) -> &Action {
        self.actions.get(node).unwrap_or(&Action::Member)
    }
    /// Nodes still to join, control-plane nodes first.
    pub fn joins(&self) -> impl Iterator<Item = &str> {
        self.actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::Join { .. }))
            .map(|(n, _)| n.as_str())
    }
    /// The node `kubeadm init` runs on, if any.
    pub fn init(&self) -> Option<&str> {
        self.actions
            .iter()
            .find(|(_, a)| matches!(a, Action::Init { .. }))
            .map(|(n, _)| n.as_str())
    }
    /// Where the cluster is, or will be once init ran.
    pub fn home(&self) -> Option<&str> {
        self.leader.as_deref().or(self.init())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error(
        "kubeadm has been at work on {} but no cluster API answers through {endpoint}: kubeforge will not create a second cluster. Bring the control plane back (is the VIP held? do the kube-apiservers run?), or, if that cluster is gone for good, run `kubeforge reset` and apply again",
        describe(.traces)
    )]
    Unreachable {
        endpoint: String,
        traces: Vec<(String, Vec<String>)>,
    },
    #[error(
        "no cluster answers from the control-plane nodes that are not skipped, and {} skipped: it may be where the cluster lives. Skip only workers while no cluster answers, or bring it back",
        .0.join(" and ")
    )]
    SkippedControlPlane(Vec<String>),
}

fn describe(traces: &[(String, Vec<String>)]) -> String {
    traces
        .iter()
        .map(|(node, files)| {
            let shown: Vec<&str> = files.iter().take(3).map(String::as_str).collect();
            let more = files.len().saturating_sub(3);
            if more > 0 {
                format!("{node} ({} and {more} more)", shown.join(", "))
            } else {
                format!("{node} ({})", shown.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// kubeadm's files that only a control plane holds (a worker's join leaves none of them).
pub(crate) fn control_plane_traces(f: &HostFacts) -> bool {
    f.kubeadm.admin_conf || f.kubeadm.etcd_data || !f.kubeadm.manifests.is_empty()
}

/// Whether `node` is in the cluster, as the leader's view and its own facts tell.
fn is_member(node: &Node, f: &HostFacts, leader: &crate::facts::ClusterFacts) -> bool {
    let own = f.cluster.as_ref();
    let listed = leader.node(&node.node_name).is_some()
        || own.is_some_and(|c| c.node(&node.node_name).is_some());
    match node.role {
        Role::ControlPlane => {
            let member = leader.member(&node.node_name).is_some()
                || own.is_some_and(|c| c.member(&node.node_name).is_some());
            listed && member && (f.kubeadm.etcd_data || !f.kubeadm.manifests.is_empty())
        }
        Role::Worker => {
            f.kubeadm.kubelet_conf
                && (f.registered == Some(true) || leader.node(&node.node_name).is_some())
        }
    }
}

/// The node the cluster is reached from: the first control-plane node whose API answered
/// and that is a member itself, with the PKI that certificate keys are made from.
fn leader<'f>(
    cluster: &Cluster,
    facts: &impl Fn(&str) -> Option<&'f HostFacts>,
) -> Option<(&'f HostFacts, String)> {
    cluster.control_planes().find_map(|n| {
        let f = facts(&n.node_name)?;
        reads_live_cluster(&n.node_name, f).then(|| (f, n.node_name.clone()))
    })
}

/// Whether the control-plane node `node` reads a cluster it is a member of, with the PKI that
/// certificate keys are made from: the node the cluster can be reached from.
pub fn reads_live_cluster(node: &str, f: &HostFacts) -> bool {
    f.cluster
        .as_ref()
        .is_some_and(|c| !c.nodes.is_empty() && c.node(node).is_some() && c.member(node).is_some())
        && f.kubeadm.admin_conf
        && f.kubeadm.pki_ca
}

/// Decides from the facts of every node (`facts(name)`; `None`: not known, taken as bare).
pub fn decide<'f>(
    cluster: &Cluster,
    facts: impl Fn(&str) -> Option<&'f HostFacts>,
) -> Result<State, StateError> {
    let blank = HostFacts::default();
    let of = |name: &str| facts(name).unwrap_or(&blank);
    let mut state = State::default();
    let skipped = |name: &str| facts(name).is_some_and(|f| f.skipped);
    let Some((leader_facts, leader)) = leader(cluster, &facts) else {
        let skipped_cps: Vec<String> = cluster
            .control_planes()
            .filter(|n| skipped(&n.node_name))
            .map(|n| n.node_name.clone())
            .collect();
        if !skipped_cps.is_empty() {
            return Err(StateError::SkippedControlPlane(skipped_cps));
        }
        // No cluster answers. Control-plane traces without the init marker belong to a
        // cluster kubeforge cannot reach: never start a second one.
        let foreign: Vec<(String, Vec<String>)> = cluster
            .control_planes()
            .map(|n| (n, of(&n.node_name)))
            .filter(|(_, f)| control_plane_traces(f) && !f.kubeadm.init_started)
            .map(|(n, f)| (n.node_name.clone(), f.kubeadm.traces()))
            .collect();
        if !foreign.is_empty() {
            return Err(StateError::Unreachable {
                endpoint: cluster.control_plane_endpoint(),
                traces: foreign,
            });
        }
        let first = cluster.first_control_plane();
        for n in &cluster.nodes {
            let reset = of(&n.node_name).kubeadm.traces();
            let action = if skipped(&n.node_name) {
                Action::Member
            } else if std::ptr::eq(n, first) {
                Action::Init { reset }
            } else {
                Action::Join { reset }
            };
            state.actions.insert(n.node_name.clone(), action);
        }
        return Ok(state);
    };
    let view = leader_facts
        .cluster
        .as_ref()
        .expect("the leader has cluster facts");
    for n in &cluster.nodes {
        let f = of(&n.node_name);
        let action = if n.node_name == leader || f.skipped || is_member(n, f, view) {
            Action::Member
        } else {
            let etcd_member = match n.role {
                Role::ControlPlane => {
                    let peer = n.ip().map(|ip| format!("https://{ip}:2380"));
                    view.members
                        .iter()
                        .find(|m| {
                            m.name == n.node_name
                                || peer.as_ref().is_some_and(|p| m.peer_urls.contains(p))
                        })
                        .cloned()
                }
                Role::Worker => None,
            };
            let delete_node = view.node(&n.node_name).is_some();
            if delete_node || etcd_member.is_some() {
                state.cleanups.push(Cleanup {
                    node: n.node_name.clone(),
                    delete_node,
                    etcd_member,
                });
            }
            Action::Join {
                reset: f.kubeadm.traces(),
            }
        };
        state.actions.insert(n.node_name.clone(), action);
    }
    state.leader = Some(leader);
    Ok(state)
}

#[cfg(test)]
mod tests;
