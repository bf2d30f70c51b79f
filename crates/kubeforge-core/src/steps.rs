//! Steps: what each phase of apply wants on each host, as resources rendered from the
//! templates in `templates/`. Pure: the cluster model, cluster-wide inputs and the host's facts
//! in, resources out.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use minijinja::{Environment, context};
use serde::Serialize;

use crate::facts::{FactQuery, HostFacts};
use crate::model::{Cluster, Node, Role};
use crate::resources::Resource;

/// Packages every node needs before anything Kubernetes-specific.
pub const BASE_PACKAGES: &[&str] = &[
    "ca-certificates",
    "curl",
    "gnupg",
    "iptables",
    "conntrack",
    "socat",
    "ebtables",
    "ethtool",
];

/// Kernel parameters Kubernetes networking needs.
pub const SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
];

pub const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";

/// Values the whole cluster shares, settled before any host's steps are computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInputs {
    pub vip: Ipv4Addr,
    /// VRRP password shared by the control-plane nodes (a secret: never printed).
    pub vrrp_secret: String,
    /// Every node's address.
    pub addresses: BTreeMap<String, Ipv4Addr>,
}

/// A phase of apply: its hosts run in parallel; the next phase waits for this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseDef {
    pub name: &'static str,
    pub title: &'static str,
    pub hosts: Vec<String>,
}

/// The phases apply runs, in order.
pub fn phases(cluster: &Cluster) -> Vec<PhaseDef> {
    vec![
        PhaseDef {
            name: "prepare",
            title: "prepare every node",
            hosts: cluster.nodes.iter().map(|n| n.node_name.clone()).collect(),
        },
        PhaseDef {
            name: "load-balancer",
            title: "keepalived and HAProxy on every control-plane node",
            hosts: cluster
                .control_planes()
                .map(|n| n.node_name.clone())
                .collect(),
        },
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: &'static str,
    pub resources: Vec<Resource>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("{node} has no network interface with its address {address}")]
    NoInterface { node: String, address: Ipv4Addr },
    #[error("the address of {node} is not known (no address in the inventory, and DNS gave none)")]
    NoAddress { node: String },
    #[error("template {name}: {message}")]
    Template { name: &'static str, message: String },
}

fn render(
    name: &'static str,
    source: &'static str,
    ctx: minijinja::Value,
) -> Result<String, StepError> {
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template(name, source)
        .and_then(|_| env.get_template(name)?.render(ctx))
        .map_err(|e| StepError::Template {
            name,
            message: e.to_string(),
        })
}

/// The facts a phase needs from a host (known before its facts are).
pub fn query(cluster: &Cluster, inputs: &ClusterInputs, phase: &str, node: &Node) -> FactQuery {
    let mut q = FactQuery::default();
    // Rendered against empty facts: the paths, units and packages do not depend on them.
    for step in steps(cluster, inputs, phase, node, &HostFacts::default(), true).unwrap_or_default()
    {
        for r in &step.resources {
            q.merge(&r.query());
        }
    }
    if phase == "load-balancer" {
        q.files.insert(KEEPALIVED_CONF.to_string());
    }
    q
}

/// The steps of `phase` on `node`, given its facts.
pub fn host_steps(
    cluster: &Cluster,
    inputs: &ClusterInputs,
    phase: &str,
    node: &Node,
    facts: &HostFacts,
) -> Result<Vec<Step>, StepError> {
    steps(cluster, inputs, phase, node, facts, false)
}

fn steps(
    cluster: &Cluster,
    inputs: &ClusterInputs,
    phase: &str,
    node: &Node,
    facts: &HostFacts,
    for_query: bool,
) -> Result<Vec<Step>, StepError> {
    match phase {
        "prepare" => prepare(),
        "load-balancer" if node.role == Role::ControlPlane => {
            load_balancer(cluster, inputs, node, facts, for_query)
        }
        _ => Ok(Vec::new()),
    }
}

fn prepare() -> Result<Vec<Step>, StepError> {
    let sysctls: Vec<_> = SYSCTLS
        .iter()
        .map(|(k, v)| context! { key => k, value => v })
        .collect();
    let mut kernel = vec![
        Resource::file(
            "/etc/modules-load.d/kubernetes.conf",
            include_str!("../templates/modules-kubernetes.conf").to_string(),
            0o644,
        ),
        Resource::file(
            "/etc/sysctl.d/90-kubernetes.conf",
            render(
                "sysctl-kubernetes.conf",
                include_str!("../templates/sysctl-kubernetes.conf"),
                context! { sysctls },
            )?,
            0o644,
        ),
    ];
    kernel.extend(SYSCTLS.iter().map(|(k, v)| Resource::Sysctl {
        key: k.to_string(),
        value: v.to_string(),
    }));
    Ok(vec![
        Step {
            id: "swap",
            resources: vec![Resource::SwapOff],
        },
        Step {
            id: "kernel",
            resources: kernel,
        },
        Step {
            id: "base-packages",
            resources: vec![Resource::Packages {
                names: BASE_PACKAGES.iter().map(|s| s.to_string()).collect(),
                hold: false,
            }],
        },
    ])
}

fn load_balancer(
    cluster: &Cluster,
    inputs: &ClusterInputs,
    node: &Node,
    facts: &HostFacts,
    for_query: bool,
) -> Result<Vec<Step>, StepError> {
    let address = *inputs
        .addresses
        .get(&node.node_name)
        .ok_or_else(|| StepError::NoAddress {
            node: node.node_name.clone(),
        })?;
    let (interface, prefix) = match facts.interface_of(address) {
        Some(a) => (a.interface.clone(), a.prefix),
        None if for_query => ("-".to_string(), 32),
        None => {
            return Err(StepError::NoInterface {
                node: node.node_name.clone(),
                address,
            });
        }
    };
    let control_planes: Vec<&Node> = cluster.control_planes().collect();
    let mut servers = Vec::new();
    let mut peers = Vec::new();
    for cp in &control_planes {
        let ip = inputs
            .addresses
            .get(&cp.node_name)
            .ok_or_else(|| StepError::NoAddress {
                node: cp.node_name.clone(),
            })?;
        servers.push(context! { name => cp.node_name, address => ip.to_string() });
        if cp.node_name != node.node_name {
            peers.push(ip.to_string());
        }
    }
    let haproxy = render(
        "haproxy.cfg",
        include_str!("../templates/haproxy.cfg"),
        context! { endpoint_port => cluster.endpoint_port, servers },
    )?;
    // The first control-plane node gets the highest priority, so the VIP settles there.
    let priority = 150u32.saturating_sub(node.number.unwrap_or(50)).max(1);
    let keepalived = render(
        "keepalived.conf",
        include_str!("../templates/keepalived.conf"),
        context! {
            node => node.node_name,
            vip => inputs.vip.to_string(),
            prefix => prefix,
            interface => interface,
            router_id => router_id(inputs.vip),
            priority => priority,
            auth_pass => inputs.vrrp_secret,
            address => address.to_string(),
            peers => peers,
        },
    )?;
    let check = render(
        "check_apiserver.sh",
        include_str!("../templates/check_apiserver.sh"),
        context! { endpoint_port => cluster.endpoint_port },
    )?;
    Ok(vec![
        Step {
            id: "haproxy",
            resources: vec![
                Resource::Packages {
                    names: vec!["haproxy".into()],
                    hold: false,
                },
                Resource::File {
                    path: "/etc/haproxy/haproxy.cfg".into(),
                    content: haproxy,
                    mode: 0o644,
                    owner: "root".into(),
                    group: "root".into(),
                    secrets: Vec::new(),
                    restart: vec!["haproxy.service".into()],
                },
                Resource::Service {
                    unit: "haproxy.service".into(),
                },
            ],
        },
        Step {
            id: "keepalived",
            resources: vec![
                Resource::Packages {
                    names: vec!["keepalived".into()],
                    hold: false,
                },
                Resource::file("/etc/keepalived/check_apiserver.sh", check, 0o755),
                Resource::File {
                    path: KEEPALIVED_CONF.into(),
                    content: keepalived,
                    mode: 0o600,
                    owner: "root".into(),
                    group: "root".into(),
                    secrets: vec![inputs.vrrp_secret.clone()],
                    restart: vec!["keepalived.service".into()],
                },
                Resource::Service {
                    unit: "keepalived.service".into(),
                },
            ],
        },
    ])
}

/// VRRP router id from the VIP, so that clusters on one network with different VIPs differ.
pub fn router_id(vip: Ipv4Addr) -> u8 {
    vip.octets()[3].max(1)
}

/// The VRRP password a keepalived.conf written earlier holds, to keep it across runs.
pub fn vrrp_secret_in(facts: &HostFacts) -> Option<String> {
    let content = facts.file(KEEPALIVED_CONF)?.content.as_ref()?;
    let text = String::from_utf8_lossy(content);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("auth_pass"))
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty() && v.len() <= 8 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}
