//! `kubeforge status`: the cluster's health judged from its hosts' facts (one round trip per
//! host), and everything wrong with it named. Pure: the facts, the hosts that did not answer,
//! what `plan` would change and the time come in; a [`Status`] comes out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::facts::HostFacts;
use crate::facts::cluster::ClusterFacts;
use crate::model::{Cluster, Role};
use crate::version::Date;

/// A certificate expiring within this many days is a problem (kubeadm's are valid for 365).
pub const CERT_WARN_DAYS: i64 = 30;

/// The cluster as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Nothing is wrong: `problems` is empty.
    pub healthy: bool,
    pub nodes: Vec<NodeRow>,
    /// The control-plane node whose view of the cluster (API, etcd) is shown.
    pub seen_from: Option<String>,
    pub etcd: Vec<MemberRow>,
    pub vip: Vip,
    pub haproxy: Vec<HaproxyRow>,
    pub certificates: Vec<CertRow>,
    /// What `plan` would change (`None`: unknown, as when a host did not answer).
    pub plan_changes: Option<usize>,
    /// Everything wrong, each naming its host or member and what to do.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    pub name: String,
    pub role: &'static str,
    /// The host answered over SSH.
    pub reachable: bool,
    /// The API lists this node.
    pub registered: bool,
    pub kubelet_version: String,
    /// `None`: unknown (the API did not say, or was not read).
    pub ready: Option<bool>,
    pub cordoned: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    pub name: String,
    pub id: String,
    pub healthy: bool,
    pub leader: bool,
    pub learner: bool,
    /// It is a control-plane host of the inventory.
    pub in_inventory: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vip {
    pub address: String,
    /// The control-plane nodes that hold it (one when all is well).
    pub holders: Vec<String>,
}

/// One control-plane node's HAProxy: each kube-apiserver server and its state.
#[derive(Debug, Clone, Serialize)]
pub struct HaproxyRow {
    pub host: String,
    /// `None`: its admin socket did not answer.
    pub servers: Option<BTreeMap<String, &'static str>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertRow {
    pub host: String,
    pub path: String,
    /// `None`: not a readable certificate.
    pub expires: Option<String>,
    /// Its `notAfter` in seconds since 1970 (UTC).
    pub not_after: Option<i64>,
    pub days_left: Option<i64>,
}

/// Judges the cluster. `unreachable`: the hosts that did not answer, with why; `now`: seconds
/// since 1970 (UTC).
pub fn assess(
    cluster: &Cluster,
    facts: &BTreeMap<String, HostFacts>,
    unreachable: &BTreeMap<String, String>,
    plan_changes: Option<usize>,
    now: i64,
) -> Status {
    let mut problems = Vec::new();
    for (host, why) in unreachable {
        problems.push(format!("{host}: does not answer over SSH ({why})"));
    }
    let (seen_from, api) = view(cluster, facts);
    match (&seen_from, api) {
        (None, _) => problems.push(
            "no control-plane node could read the cluster (no admin kubeconfig, or no kubectl): is it built? `kubeforge apply`".into(),
        ),
        (Some(node), Some(api)) if !api.api_ready() => problems.push(format!(
            "the API does not answer ready through the control-plane endpoint, asked from {node}: {}",
            if api.readyz.is_empty() { "no answer" } else { &api.readyz }
        )),
        _ => {}
    }
    let nodes = nodes(cluster, facts, api, &mut problems);
    let etcd = etcd(cluster, api, &mut problems);
    let vip = vip(cluster, facts, &mut problems);
    let haproxy = haproxy(cluster, facts, &mut problems);
    let certificates = certificates(cluster, facts, now, &mut problems);
    match plan_changes {
        Some(0) => {}
        Some(n) => problems.push(format!(
            "plan would make {n} change{}: `kubeforge plan` shows them, `kubeforge apply` makes them",
            if n == 1 { "" } else { "s" }
        )),
        None => {}
    }
    Status {
        healthy: problems.is_empty(),
        nodes,
        seen_from,
        etcd,
        vip,
        haproxy,
        certificates,
        plan_changes,
        problems,
    }
}

/// The first control-plane node (inventory order) whose API answered ready, else the first
/// that could read the cluster at all.
fn view<'f>(
    cluster: &Cluster,
    facts: &'f BTreeMap<String, HostFacts>,
) -> (Option<String>, Option<&'f ClusterFacts>) {
    let read: Vec<(&String, &ClusterFacts)> = cluster
        .control_planes()
        .filter_map(|n| {
            let f = facts.get(&n.node_name)?.cluster.as_ref()?;
            Some((&n.node_name, f))
        })
        .collect();
    read.iter()
        .find(|(_, f)| f.api_ready())
        .or_else(|| read.first())
        .map_or((None, None), |(n, f)| (Some(n.to_string()), Some(*f)))
}

fn nodes(
    cluster: &Cluster,
    facts: &BTreeMap<String, HostFacts>,
    api: Option<&ClusterFacts>,
    problems: &mut Vec<String>,
) -> Vec<NodeRow> {
    let mut rows = Vec::new();
    for node in &cluster.nodes {
        let listed = api.and_then(|a| a.node(&node.node_name));
        let row = NodeRow {
            name: node.node_name.clone(),
            role: match node.role {
                Role::ControlPlane => "control-plane",
                Role::Worker => "worker",
            },
            reachable: facts.contains_key(&node.node_name),
            registered: listed.is_some(),
            kubelet_version: listed
                .map(|n| n.kubelet_version.clone())
                .unwrap_or_default(),
            ready: listed.and_then(|n| n.ready),
            cordoned: listed.is_some_and(|n| n.unschedulable),
        };
        if let (Some(api), None) = (api, listed)
            && api.api_ready()
        {
            problems.push(format!(
                "{}: not a node of the cluster: `kubeforge apply` joins it",
                node.node_name
            ));
        }
        if let Some(n) = listed {
            if n.ready != Some(true) {
                problems.push(format!(
                    "{}: not Ready{}",
                    n.name,
                    if n.message.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", n.message)
                    }
                ));
            }
            if let Some(version) = n.annotations.get(crate::steps::upgrade::CORDONED) {
                problems.push(format!(
                    "{}: left cordoned by an upgrade to {version} that did not finish: `kubeforge upgrade` completes it",
                    n.name
                ));
            }
        }
        rows.push(row);
    }
    for n in api.map(|a| a.nodes.as_slice()).unwrap_or_default() {
        if !cluster.nodes.iter().any(|c| c.node_name == n.name) {
            problems.push(format!(
                "{}: a node of the cluster that the inventory does not list",
                n.name
            ));
        }
    }
    rows
}

fn etcd(
    cluster: &Cluster,
    api: Option<&ClusterFacts>,
    problems: &mut Vec<String>,
) -> Vec<MemberRow> {
    let Some(api) = api else {
        return Vec::new();
    };
    if api.members.is_empty() {
        if api.api_ready() {
            problems.push("etcd's members could not be read (etcdctl in the etcd pod)".into());
        }
        return Vec::new();
    }
    let rows: Vec<MemberRow> = api
        .members
        .iter()
        .map(|m| MemberRow {
            name: m.name.clone(),
            id: m.id.clone(),
            healthy: api.member_healthy(m),
            leader: api.leader.as_deref() == Some(m.id.as_str()),
            learner: m.learner,
            in_inventory: cluster.control_planes().any(|n| n.node_name == m.name),
        })
        .collect();
    for m in &rows {
        let name = if m.name.is_empty() {
            "(unstarted)"
        } else {
            &m.name
        };
        if !m.in_inventory {
            problems.push(format!(
                "etcd member {name} ({}) matches no control-plane host of the inventory: a removed or foreign member; while it is there, quorum counts it",
                m.id
            ));
        }
        if !m.healthy {
            problems.push(format!("etcd member {name} ({}) is not healthy", m.id));
        }
        if m.learner {
            problems.push(format!(
                "etcd member {name} is still a learner (a join that did not finish)"
            ));
        }
    }
    for cp in cluster.control_planes() {
        if !rows.iter().any(|m| m.name == cp.node_name) {
            problems.push(format!(
                "{}: no etcd member of its own: `kubeforge apply` joins it",
                cp.node_name
            ));
        }
    }
    if api.leader.is_some() && !rows.iter().any(|m| m.leader) {
        problems.push("etcd's leader is not one of its listed members".into());
    }
    let (healthy, voters) = api.quorum();
    if healthy <= voters / 2 {
        problems.push(format!(
            "etcd has lost quorum: {healthy} of {voters} voting members healthy, {} needed",
            voters / 2 + 1
        ));
    }
    rows
}

fn vip(cluster: &Cluster, facts: &BTreeMap<String, HostFacts>, problems: &mut Vec<String>) -> Vip {
    let address = cluster.vip.map(|v| v.value.to_string()).unwrap_or_default();
    let holders: Vec<String> = cluster
        .control_planes()
        .filter(|n| {
            cluster
                .vip
                .zip(facts.get(&n.node_name))
                .is_some_and(|(vip, f)| f.interface_of(vip.value).is_some())
        })
        .map(|n| n.node_name.clone())
        .collect();
    match holders.len() {
        0 => problems.push(format!(
            "no control-plane node holds the VIP {address}: keepalived's state is in `journalctl -u keepalived` on each"
        )),
        1 => {}
        _ => problems.push(format!(
            "more than one node holds the VIP {address}: {} (VRRP adverts do not reach each other)",
            holders.join(", ")
        )),
    }
    Vip { address, holders }
}

fn haproxy(
    cluster: &Cluster,
    facts: &BTreeMap<String, HostFacts>,
    problems: &mut Vec<String>,
) -> Vec<HaproxyRow> {
    let mut rows = Vec::new();
    for cp in cluster.control_planes() {
        let Some(f) = facts.get(&cp.node_name) else {
            continue;
        };
        let servers = f.haproxy.as_ref().map(|servers| {
            servers
                .iter()
                .map(|(name, b)| {
                    let state = if b.maint {
                        "maintenance"
                    } else if b.up {
                        "up"
                    } else {
                        "down"
                    };
                    (name.clone(), state)
                })
                .collect::<BTreeMap<_, _>>()
        });
        match &servers {
            None => problems.push(format!(
                "{}: HAProxy's admin socket does not answer (is haproxy running?)",
                cp.node_name
            )),
            Some(servers) => {
                for (name, state) in servers.iter().filter(|(_, s)| **s != "up") {
                    problems.push(format!(
                        "{}: HAProxy sees kube-apiserver {name} {state}",
                        cp.node_name
                    ));
                }
            }
        }
        rows.push(HaproxyRow {
            host: cp.node_name.clone(),
            servers,
        });
    }
    rows
}

fn certificates(
    cluster: &Cluster,
    facts: &BTreeMap<String, HostFacts>,
    now: i64,
    problems: &mut Vec<String>,
) -> Vec<CertRow> {
    let mut rows = Vec::new();
    for cp in cluster.control_planes() {
        let Some(certs) = facts.get(&cp.node_name).and_then(|f| f.certs.as_ref()) else {
            continue;
        };
        let certs = match certs {
            Ok(certs) => certs,
            Err(why) => {
                problems.push(format!(
                    "{}: certificate expiry cannot be read: {why}",
                    cp.node_name
                ));
                continue;
            }
        };
        for c in certs {
            let days_left = c.not_after.map(|t| (t - now).div_euclid(86_400));
            match days_left {
                None => problems.push(format!(
                    "{}: {} is not a readable certificate",
                    cp.node_name, c.path
                )),
                Some(d) if d < 0 => problems.push(format!(
                    "{}: {} has expired: renew the cluster's certificates (`kubeadm certs renew all` on each control-plane node, then restart its static pods; an upgrade renews them too)",
                    cp.node_name, c.path
                )),
                Some(d) if d < CERT_WARN_DAYS => problems.push(format!(
                    "{}: {} expires in {d} day{} (under {CERT_WARN_DAYS}): renew the cluster's certificates (`kubeadm certs renew all` on each control-plane node, then restart its static pods; an upgrade renews them too)",
                    cp.node_name,
                    c.path,
                    if d == 1 { "" } else { "s" }
                )),
                _ => {}
            }
            rows.push(CertRow {
                host: cp.node_name.clone(),
                path: c.path.clone(),
                expires: c
                    .not_after
                    .map(|t| Date::from_unix_days(t.div_euclid(86_400)).to_string()),
                not_after: c.not_after,
                days_left,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests;
