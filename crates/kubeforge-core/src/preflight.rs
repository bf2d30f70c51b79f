//! Preflight: verdicts on every host from its facts, before any change. Each failed verdict
//! names the host, what was found and the fix; every host is checked and every problem
//! reported at once. Some problems are ones apply itself fixes (swap): those do not stop it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::facts::{FactQuery, HostFacts};
use crate::model::{Cluster, Node, Role};
use crate::version::KubeVersion;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub host: String,
    /// Stable name of the check (`swap`, `cgroup`, `ports`, ...).
    pub check: &'static str,
    pub status: Status,
    /// What was found.
    pub found: String,
    /// How to fix it (for warnings and failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// `apply` fixes this itself (it does not stop apply).
    pub apply_fixes: bool,
}

/// Kubernetes ports on every node, and also on control planes (besides the endpoint port).
const NODE_PORTS: &[(u16, &str)] = &[(10250, "the kubelet")];
const CONTROL_PLANE_PORTS: &[(u16, &str)] = &[
    (6443, "kube-apiserver"),
    (2379, "etcd"),
    (2380, "etcd"),
    (10257, "kube-controller-manager"),
    (10259, "kube-scheduler"),
];
/// Programs that may hold those ports: what kubeforge itself runs there.
const OURS: &[&str] = &[
    "kube-apiserver",
    "etcd",
    "kubelet",
    "kube-controller",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "haproxy",
];

/// kubeadm's own minimums for control-plane nodes.
const MIN_CPUS: u32 = 2;
const MIN_MEMORY_MB: u64 = 1700;
/// Clock offsets from the machine kubeforge runs on.
const CLOCK_WARN_MS: i64 = 500;
const CLOCK_FAIL_MS: i64 = 5000;

/// What preflight needs from `node`: the machine facts, listening ports, swap, and every
/// control-plane name and the VIP's name resolved by the host itself.
pub fn query(cluster: &Cluster, node: &Node) -> FactQuery {
    let _ = node;
    let mut q = FactQuery {
        system: true,
        listening: true,
        ..FactQuery::default()
    };
    q.resolve = names(cluster).into_iter().map(|(name, _)| name).collect();
    q
}

/// The names every host must resolve, and the address each must resolve to (as the machine
/// kubeforge runs on sees them).
fn names(cluster: &Cluster) -> Vec<(String, Option<Ipv4Addr>)> {
    let mut out: Vec<(String, Option<Ipv4Addr>)> = cluster
        .control_planes()
        .map(|n| (crate::dns::fqdn(cluster, &n.name), n.ip()))
        .collect();
    out.push((cluster.vip_name(), cluster.vip.map(|v| v.value)));
    out
}

struct Judge<'a> {
    out: Vec<Verdict>,
    host: &'a str,
}

impl Judge<'_> {
    fn push(&mut self, check: &'static str, status: Status, found: String, fix: Option<String>) {
        self.out.push(Verdict {
            host: self.host.to_string(),
            check,
            status,
            found,
            fix,
            apply_fixes: false,
        });
    }
    fn ok(&mut self, check: &'static str, found: impl Into<String>) {
        self.push(check, Status::Ok, found.into(), None);
    }
    fn warn(&mut self, check: &'static str, found: impl Into<String>, fix: impl Into<String>) {
        self.push(check, Status::Warn, found.into(), Some(fix.into()));
    }
    fn fail(&mut self, check: &'static str, found: impl Into<String>, fix: impl Into<String>) {
        self.push(check, Status::Fail, found.into(), Some(fix.into()));
    }
}

/// The verdicts on every host. `clock_offsets` holds, per host, its clock minus the machine's
/// (milliseconds), measured when the facts came back. `kubernetes`: the run installs
/// Kubernetes (its runtime phase is among those it runs); without, what only the kubelet
/// needs (cgroup v2 from 1.35) warns instead of failing.
pub fn verdicts(
    cluster: &Cluster,
    facts: &BTreeMap<String, HostFacts>,
    clock_offsets: &BTreeMap<String, i64>,
    kubernetes: bool,
) -> Vec<Verdict> {
    let version = cluster.kubernetes;
    let mut all = Vec::new();
    for node in &cluster.nodes {
        let Some(f) = facts.get(&node.node_name) else {
            continue;
        };
        let mut j = Judge {
            out: Vec::new(),
            host: &node.node_name,
        };
        os(&mut j, f);
        resources(&mut j, node, f);
        swap(&mut j, f);
        disk(&mut j, f);
        cgroup(&mut j, f, version, kubernetes);
        clock(&mut j, f, clock_offsets.get(&node.node_name).copied());
        ports(&mut j, cluster, node, f);
        hostname(&mut j, node, f);
        resolution(&mut j, cluster, f);
        all.extend(j.out);
    }
    all.extend(unique_identities(cluster, facts));
    all
}

fn os(j: &mut Judge, f: &HostFacts) {
    let id = f.os.get("ID").map(String::as_str).unwrap_or("");
    let version = f.os.get("VERSION_ID").map(String::as_str).unwrap_or("");
    let pretty =
        f.os.get("PRETTY_NAME")
            .cloned()
            .unwrap_or_else(|| format!("{id} {version}"));
    if id == "debian" && matches!(version, "12" | "13") {
        j.ok("os", pretty);
    } else {
        j.fail(
            "os",
            if pretty.trim().is_empty() {
                "an unknown system (no /etc/os-release)".to_string()
            } else {
                pretty
            },
            "kubeforge installs on Debian 12 (bookworm) or 13 (trixie): reinstall the host with one of them",
        );
    }
    match f.system.arch.as_str() {
        "amd64" | "arm64" => j.ok("architecture", f.system.arch.clone()),
        other => j.fail(
            "architecture",
            if other.is_empty() { "unknown" } else { other }.to_string(),
            "Kubernetes packages exist for amd64 and arm64 only",
        ),
    }
}

fn resources(j: &mut Judge, node: &Node, f: &HostFacts) {
    let s = &f.system;
    let found = format!("{} CPUs, {} MB of memory", s.cpus, s.memory_mb);
    if node.role != Role::ControlPlane {
        j.ok("resources", found);
        return;
    }
    let mut short = Vec::new();
    if s.cpus < MIN_CPUS {
        short.push(format!("at least {MIN_CPUS} CPUs"));
    }
    if s.memory_mb < MIN_MEMORY_MB {
        short.push(format!("at least {MIN_MEMORY_MB} MB of memory"));
    }
    if short.is_empty() {
        j.ok("resources", found);
    } else {
        j.fail(
            "resources",
            found,
            format!(
                "kubeadm requires {} on a control-plane node: give the host more",
                short.join(" and ")
            ),
        );
    }
}

/// The kubelet's default hard eviction threshold for the image file system: below it the
/// node reports DiskPressure, evicts pods and deletes every image no container uses.
const MIN_DISK_AVAILABLE_PERCENT: u64 = 15;

fn disk(j: &mut Judge, f: &HostFacts) {
    let d = &f.system.disk;
    if d.size_mb == 0 {
        return;
    }
    let percent = d.available_mb * 100 / d.size_mb;
    let found = format!(
        "{} MB of {} MB free ({percent}%) on {}",
        d.available_mb, d.size_mb, d.mount
    );
    if percent < MIN_DISK_AVAILABLE_PERCENT {
        j.warn(
            "disk",
            found,
            format!(
                "below {MIN_DISK_AVAILABLE_PERCENT}% free the kubelet reports DiskPressure, evicts pods and deletes images no container uses yet (a pod network's or kube-proxy's, before they start): free space on {}",
                d.mount
            ),
        );
    } else {
        j.ok("disk", found);
    }
}

fn swap(j: &mut Judge, f: &HostFacts) {
    if f.swap.is_active() {
        j.push(
            "swap",
            Status::Fail,
            format!("swap is on ({})", f.swap.active.join(", ")),
            Some(
                "the kubelet refuses to run with swap: apply turns it off, now and at boot (or run swapoff -a and remove it from /etc/fstab)"
                    .into(),
            ),
        );
        if let Some(v) = j.out.last_mut() {
            v.apply_fixes = true;
        }
    } else {
        j.ok("swap", "off");
    }
}

fn cgroup(j: &mut Judge, f: &HostFacts, version: KubeVersion, kubernetes: bool) {
    let fix = "boot the host with cgroup v2 (Debian 12 and 13 use it by default; remove systemd.unified_cgroup_hierarchy=0 from the kernel command line), or install Kubernetes 1.34 or older (kubernetes_version: \"1.34\", or a bundle of it)";
    let refused =
        format!("cgroup v1, and the kubelet of Kubernetes {version} refuses to start on cgroup v1");
    if f.system.cgroup_v2 {
        j.ok("cgroup", "cgroup v2");
    } else if version.facts().requires_cgroup_v2 && kubernetes {
        j.fail("cgroup", refused, fix);
    } else if version.facts().requires_cgroup_v2 {
        j.warn(
            "cgroup",
            format!("{refused} (this run stops before Kubernetes is installed)"),
            fix,
        );
    } else {
        j.warn(
            "cgroup",
            "cgroup v1",
            "cgroup v1 works up to Kubernetes 1.34 only; move to cgroup v2 before upgrading",
        );
    }
}

fn clock(j: &mut Judge, f: &HostFacts, offset: Option<i64>) {
    let in_container = !f.system.container.is_empty() && f.system.container != "none";
    if f.system.time_sync.is_empty() {
        if in_container {
            j.ok(
                "time-sync",
                format!(
                    "a {} container: its clock is its machine's",
                    f.system.container
                ),
            );
        } else {
            j.warn(
                "time-sync",
                "no time synchronisation service runs (systemd-timesyncd, chrony, ntp)",
                "install and start one: apt-get install systemd-timesyncd (certificates and etcd need clocks in step)",
            );
        }
    } else {
        j.ok("time-sync", f.system.time_sync.join(", "));
    }
    let Some(offset) = offset else {
        return;
    };
    let found = format!(
        "its clock is {:.1} s {} the machine kubeforge runs on",
        offset.abs() as f64 / 1000.0,
        if offset < 0 { "behind" } else { "ahead of" }
    );
    if offset.abs() > CLOCK_FAIL_MS {
        j.fail(
            "clock",
            found,
            "set the clock right and keep it synchronised (systemd-timesyncd or chrony)",
        );
    } else if offset.abs() > CLOCK_WARN_MS {
        j.warn(
            "clock",
            found,
            "synchronise the clock (systemd-timesyncd or chrony)",
        );
    } else {
        j.ok("clock", found);
    }
}

fn ports(j: &mut Judge, cluster: &Cluster, node: &Node, f: &HostFacts) {
    let mut wanted: Vec<(u16, String)> = NODE_PORTS
        .iter()
        .map(|(p, who)| (*p, who.to_string()))
        .collect();
    if node.role == Role::ControlPlane {
        wanted.extend(CONTROL_PLANE_PORTS.iter().map(|(p, w)| (*p, w.to_string())));
        wanted.push((cluster.endpoint_port, "HAProxy".to_string()));
    }
    let mut taken = Vec::new();
    for (port, who) in &wanted {
        if let Some(holder) = f.listening.get(port)
            && !OURS.iter().any(|o| holder.starts_with(o))
        {
            let holder = if holder.is_empty() {
                "a program"
            } else {
                holder
            };
            taken.push(format!("{port} (for {who}) is held by {holder}"));
        }
    }
    if taken.is_empty() {
        j.ok(
            "ports",
            format!(
                "{} free or held by what kubeforge runs",
                wanted
                    .iter()
                    .map(|(p, _)| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    } else {
        j.fail(
            "ports",
            format!("port {}", taken.join("; port ")),
            "stop what holds them (ss -ltnp shows it) or move it to other ports",
        );
    }
}

fn hostname(j: &mut Judge, node: &Node, f: &HostFacts) {
    let actual = f.system.hostname.split('.').next().unwrap_or("");
    if actual == node.node_name {
        j.ok("hostname", f.system.hostname.clone());
    } else {
        j.fail(
            "hostname",
            format!(
                "the host calls itself {:?}, the inventory {:?}",
                f.system.hostname, node.node_name
            ),
            format!(
                "run `hostnamectl set-hostname {}` on it, or correct the inventory",
                node.node_name
            ),
        );
    }
}

fn resolution(j: &mut Judge, cluster: &Cluster, f: &HostFacts) {
    let mut wrong = Vec::new();
    for (name, expected) in names(cluster) {
        let got = f.resolved.get(&name).cloned().unwrap_or_default();
        match expected {
            _ if got.is_empty() => wrong.push(format!("{name} does not resolve")),
            Some(ip) if !got.contains(&ip) => wrong.push(format!(
                "{name} resolves to {} (kubeforge sees {ip})",
                got.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => {}
        }
    }
    if wrong.is_empty() {
        j.ok(
            "dns",
            "every control-plane name and the VIP's name resolve as on this machine",
        );
    } else {
        j.fail(
            "dns",
            wrong.join("; "),
            "point the host at the DNS server that holds the cluster's records (/etc/resolv.conf), or fix the records",
        );
    }
}

/// product_uuid (machine-id where the machine has no DMI) and MAC addresses must be unique:
/// cloned hosts confuse Kubernetes and the network.
fn unique_identities(cluster: &Cluster, facts: &BTreeMap<String, HostFacts>) -> Vec<Verdict> {
    let mut out = Vec::new();
    let mut by_id: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut by_mac: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in &cluster.nodes {
        let Some(f) = facts.get(&node.node_name) else {
            continue;
        };
        let id = if f.system.product_uuid.is_empty() {
            format!("machine-id {}", f.system.machine_id)
        } else {
            format!("product_uuid {}", f.system.product_uuid)
        };
        by_id.entry(id).or_default().push(&node.node_name);
        let macs: BTreeSet<&str> = f.system.macs.iter().map(String::as_str).collect();
        for mac in macs {
            by_mac.entry(mac).or_default().push(&node.node_name);
        }
    }
    for (id, hosts) in &by_id {
        for host in hosts {
            let verdict = |status, found: String, fix: Option<String>| Verdict {
                host: host.to_string(),
                check: "identity",
                status,
                found,
                fix,
                apply_fixes: false,
            };
            if hosts.len() > 1 {
                out.push(verdict(
                    Status::Fail,
                    format!("{id} is also that of {}", others(hosts, host)),
                    Some("hosts cloned from one image must each get their own: systemd-machine-id-setup after removing /etc/machine-id, or a new VM UUID".into()),
                ));
            } else {
                out.push(verdict(Status::Ok, format!("{id}, unique"), None));
            }
        }
    }
    for (mac, hosts) in by_mac.iter().filter(|(_, h)| h.len() > 1) {
        for host in hosts {
            out.push(Verdict {
                host: host.to_string(),
                check: "mac",
                status: Status::Fail,
                found: format!("MAC address {mac} is also that of {}", others(hosts, host)),
                fix: Some("give each host its own MAC address".into()),
                apply_fixes: false,
            });
        }
    }
    out
}

fn others(hosts: &[&str], me: &str) -> String {
    hosts
        .iter()
        .filter(|h| **h != me)
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the verdicts let apply go on: no failure it cannot fix itself.
pub fn blocks_apply(verdicts: &[Verdict]) -> bool {
    verdicts
        .iter()
        .any(|v| v.status == Status::Fail && !v.apply_fixes)
}
