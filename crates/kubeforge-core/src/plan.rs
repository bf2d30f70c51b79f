//! The offline plan: the phases of [`crate::steps::PHASES`] and, per host, the changes their
//! steps make on a host where nothing is in place yet — computed from the same steps that
//! apply runs, against blank facts ([`HostFacts::blank`]), from the inventory alone.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::facts::HostFacts;
use crate::model::{Cluster, HostAddress, Node, PackageSource, Role};
use crate::resources;
use crate::steps::{Ctx, Order, PHASES, Phase};
use crate::values::Values;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub summary: Summary,
    pub phases: Vec<PlanPhase>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub control_planes: usize,
    pub workers: usize,
    pub first_control_plane: String,
    pub kubernetes_version: String,
    /// Where the version comes from: `inventory` (`kubernetes_version`), `bundle` (the offline
    /// bundle's) or `default`.
    pub kubernetes_source: String,
    pub kubeadm_api: String,
    pub control_plane_endpoint: String,
    pub vip: Option<String>,
    pub pod_cidr: String,
    pub service_cidr: String,
    /// The configured pod network (`calico`, `flannel` or `none`).
    pub cni: String,
    /// What apply installs for it ([`crate::cni::describe`]).
    pub pod_network: String,
    pub packages: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanPhase {
    pub name: &'static str,
    pub title: &'static str,
    pub order: Order,
    pub hosts: Vec<HostChanges>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostChanges {
    pub host: String,
    pub changes: Vec<PlannedChange>,
    /// Why the steps could not be computed for this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    pub step: String,
    pub summary: String,
}

/// The changes of `phase` on `node` on a host where nothing is in place yet.
fn host_changes(phase: &dyn Phase, ctx: &Ctx, node: &Node) -> HostChanges {
    let facts = HostFacts::blank(&phase.query(ctx, node));
    match phase.steps(ctx, node, &facts) {
        Ok(steps) => HostChanges {
            host: node.node_name.clone(),
            changes: steps
                .iter()
                .flat_map(|s| resources::changes(s.id, &s.resources, &facts))
                .map(|c| PlannedChange {
                    step: c.step,
                    summary: c.summary,
                })
                .collect(),
            error: None,
        },
        Err(e) => HostChanges {
            host: node.node_name.clone(),
            changes: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

/// Builds the plan of a validated cluster. Deterministic: the same inventory gives the same
/// plan, byte for byte. Phases without hosts are left out, as apply skips them.
pub fn plan(cluster: &Cluster) -> Plan {
    let values = Values::default();
    // Every host bare: where the cluster stands is the same for each, decided once (per host
    // and phase, planning thousands of hosts would take quadratic time).
    let state = crate::bootstrap::decide(cluster, |_| None).ok();
    let ctx = Ctx {
        cluster,
        values: &values,
        offline: true,
        bundle: None,
        facts: None,
        state: state.as_ref(),
    };
    let phases = PHASES
        .iter()
        .map(|phase| {
            let nodes = phase.hosts(cluster);
            let blank: BTreeMap<String, HostFacts> = BTreeMap::new();
            PlanPhase {
                name: phase.name(),
                title: phase.title(),
                order: phase.order(&ctx, &blank),
                hosts: nodes
                    .iter()
                    .map(|n| host_changes(*phase, &ctx, n))
                    .collect(),
            }
        })
        .filter(|p| !p.hosts.is_empty())
        .collect();
    Plan {
        summary: summary(cluster),
        phases,
    }
}

fn summary(cluster: &Cluster) -> Summary {
    let version = cluster.kubernetes;
    let packages = match &cluster.packages {
        PackageSource::Online => {
            "online: Docker's apt repository (containerd.io) and pkgs.k8s.io".to_string()
        }
        PackageSource::Bundle { path } => format!("offline bundle {}", path.display()),
    };
    Summary {
        control_planes: cluster.control_planes().count(),
        workers: cluster.workers().count(),
        first_control_plane: cluster.first_control_plane().node_name.clone(),
        kubernetes_version: version.to_string(),
        kubernetes_source: if cluster.kubernetes_set {
            "inventory"
        } else {
            "default"
        }
        .into(),
        kubeadm_api: version.kubeadm_api().to_string(),
        control_plane_endpoint: cluster.control_plane_endpoint(),
        vip: cluster.vip.map(|v| v.value.to_string()),
        pod_cidr: cluster.pod_cidr().to_string(),
        service_cidr: cluster.service_cidr.value.to_string(),
        cni: cluster.cni.as_str().to_string(),
        pod_network: crate::cni::describe(cluster, None),
        packages,
    }
}

/// Where each node is reached, for the plan's header.
fn address_text(node: &Node) -> String {
    let reached = match &node.address {
        Some(HostAddress::Ip(ip)) => ip.to_string(),
        Some(HostAddress::Name(name)) => name.clone(),
        None if node.node_ip.is_some() => node.name.clone(),
        None => "address from DNS".to_string(),
    };
    match node.node_ip {
        // The cluster uses another address than ssh does (kubespray's `ip`).
        Some(ip) if reached != ip.to_string() => format!("{reached} (ip {ip})"),
        _ => reached,
    }
}

/// Where a phase that one host acts in acts: `, on k8scp01`; nothing when no host has
/// anything to do. `hosts`: each host's name and whether it has changes.
pub fn one_acts<'a>(hosts: impl Iterator<Item = (&'a str, bool)>) -> String {
    let acting: Vec<&str> = hosts.filter(|h| h.1).map(|h| h.0).collect();
    if acting.is_empty() {
        String::new()
    } else {
        format!(", on {}", acting.join(", "))
    }
}

/// Hosts whose items are the same, together: `[(hosts, items)]` in first-seen order.
pub fn group_hosts<'a, T: PartialEq>(hosts: &'a [(&'a str, T)]) -> Vec<(Vec<&'a str>, &'a T)> {
    let mut groups: Vec<(Vec<&str>, &T)> = Vec::new();
    for (host, items) in hosts {
        match groups.iter_mut().find(|(_, other)| *other == items) {
            Some((names, _)) => names.push(host),
            None => groups.push((vec![host], items)),
        }
    }
    groups
}

/// The plan as text. Hosts whose changes are the same are listed together.
pub struct PlanText<'a> {
    pub plan: &'a Plan,
    pub cluster: &'a Cluster,
}

impl fmt::Display for PlanText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.plan.summary;
        writeln!(
            f,
            "Plan (offline: no host was contacted; these are the changes apply makes on hosts where nothing is in place yet)"
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  hosts         {} control-plane, {} worker",
            s.control_planes, s.workers
        )?;
        let width = self
            .cluster
            .nodes
            .iter()
            .map(|n| address_text(n).len() + 2)
            .max()
            .unwrap_or(0)
            .max(17);
        for node in &self.cluster.nodes {
            let role = match node.role {
                Role::ControlPlane if node.first => "control-plane (first: kubeadm init)",
                Role::ControlPlane => "control-plane",
                Role::Worker => "worker",
            };
            writeln!(
                f,
                "    {:<12}{:<width$}{role}",
                node.node_name,
                address_text(node)
            )?;
        }
        let from = match s.kubernetes_source.as_str() {
            "bundle" => ", the bundle's",
            "default" => ", the default",
            _ => "",
        };
        writeln!(
            f,
            "  kubernetes    {} (kubeadm API {}{from})",
            s.kubernetes_version, s.kubeadm_api
        )?;
        writeln!(
            f,
            "  endpoint      {} (HAProxy on each control-plane node, VIP {})",
            s.control_plane_endpoint,
            s.vip.as_deref().unwrap_or("from DNS")
        )?;
        writeln!(f, "  pod network   {}: {}", s.pod_cidr, s.pod_network)?;
        writeln!(f, "  services      {}", s.service_cidr)?;
        writeln!(f, "  packages      {}", s.packages)?;
        let total = self.plan.phases.len();
        for (i, phase) in self.plan.phases.iter().enumerate() {
            writeln!(f)?;
            let order = match phase.order {
                Order::Parallel if phase.hosts.len() > 1 => ", in parallel".to_string(),
                Order::OneAtATime if phase.hosts.len() > 1 => ", one host at a time".to_string(),
                Order::FirstThenRest if phase.hosts.len() > 1 => {
                    ", the first control-plane node first, then the others at once".to_string()
                }
                Order::One => one_acts(
                    phase
                        .hosts
                        .iter()
                        .map(|h| (h.host.as_str(), !h.changes.is_empty())),
                ),
                _ => String::new(),
            };
            writeln!(
                f,
                "phase {}/{total} {}: {}{order}",
                i + 1,
                phase.name,
                phase.title
            )?;
            let items: Vec<(&str, &HostChanges)> =
                phase.hosts.iter().map(|h| (h.host.as_str(), h)).collect();
            // Grouped by what they do, not by name.
            let same =
                |a: &HostChanges, b: &HostChanges| a.changes == b.changes && a.error == b.error;
            let mut groups: Vec<(Vec<&str>, &HostChanges)> = Vec::new();
            for (host, h) in items {
                match groups.iter_mut().find(|(_, other)| same(other, h)) {
                    Some((names, _)) => names.push(host),
                    None => groups.push((vec![host], h)),
                }
            }
            for (hosts, HostChanges { changes, error, .. }) in groups {
                if changes.is_empty() && error.is_none() {
                    writeln!(f, "  {}: nothing to do", hosts.join(", "))?;
                    continue;
                }
                writeln!(f, "  {}", hosts.join(", "))?;
                if let Some(error) = error {
                    writeln!(f, "    error: {error}")?;
                }
                for change in changes.iter() {
                    let mut line = String::new();
                    let _ = write!(line, "    - {}: {}", change.step, change.summary);
                    writeln!(f, "{line}")?;
                }
            }
        }
        Ok(())
    }
}
