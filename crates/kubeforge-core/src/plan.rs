//! The cluster plan: the ordered phases that apply runs, and the steps of each on each host.
//!
//! This is the offline plan, computed from the inventory alone: what apply does on hosts where
//! nothing is in place yet. Phases run one after another; within a phase, hosts run in
//! parallel unless the phase is serial (control-plane joins, one etcd member at a time).

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::model::{Cluster, HostAddress, Node, PackageSource, Role};
use crate::steps;

/// Calico release installed through the Tigera operator.
pub const CALICO_VERSION: &str = "v3.29.1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub summary: Summary,
    pub phases: Vec<Phase>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub control_planes: usize,
    pub workers: usize,
    pub first_control_plane: String,
    pub kubernetes_version: String,
    pub kubeadm_api: String,
    pub control_plane_endpoint: String,
    pub vip: Option<String>,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub calico: String,
    pub encapsulation: String,
    pub packages: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Every host of the phase at once.
    Parallel,
    /// One host after another, in the order listed.
    Serial,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub title: &'static str,
    pub order: Order,
    pub hosts: Vec<HostSteps>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSteps {
    pub host: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub id: &'static str,
    pub description: String,
}

fn step(id: &'static str, description: impl Into<String>) -> Step {
    Step {
        id,
        description: description.into(),
    }
}

/// Builds the plan of a validated cluster. Deterministic: the same inventory gives the same
/// plan, byte for byte.
pub fn plan(cluster: &Cluster) -> Plan {
    let version = cluster.kubernetes;
    let endpoint = cluster.control_plane_endpoint();
    let first = cluster.first_control_plane();
    let control_planes: Vec<&Node> = cluster.control_planes().collect();
    let workers: Vec<&Node> = cluster.workers().collect();
    let packages = match &cluster.packages {
        PackageSource::Online => {
            "online: Docker's apt repository (containerd.io) and pkgs.k8s.io".to_string()
        }
        PackageSource::Bundle { path } => format!("offline bundle {}", path.display()),
    };
    let vip = cluster.vip.map(|v| v.value.to_string());
    let vip_text = vip
        .clone()
        .unwrap_or_else(|| format!("the address of {}", cluster.vip_name()));
    let backends = control_planes
        .iter()
        .map(|n| format!("{}:6443", n.node_name))
        .collect::<Vec<_>>()
        .join(", ");

    let runtime_source = match &cluster.packages {
        PackageSource::Online => {
            "Docker's apt repository (download.docker.com, signed-by keyring)".to_string()
        }
        PackageSource::Bundle { .. } => "the offline bundle".to_string(),
    };
    let kube_source = match &cluster.packages {
        PackageSource::Online => format!("{} (signed-by keyring)", version.apt_repository()),
        PackageSource::Bundle { .. } => "the offline bundle".to_string(),
    };
    let prepare = vec![
        step(
            "facts",
            "gather facts: Debian release, packages, swap, sysctls, cgroup version, clock sync, free ports",
        ),
        step(
            "swap",
            "turn swap off now and at boot (kubelet refuses to run with swap)",
        ),
        step(
            "kernel",
            format!(
                "load overlay and br_netfilter at boot; sysctl {}",
                steps::SYSCTLS
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        step(
            "base-packages",
            format!("install apt packages: {}", steps::BASE_PACKAGES.join(" ")),
        ),
        step(
            "containerd",
            format!(
                "install containerd.io from {runtime_source}; write /etc/containerd/config.toml with SystemdCgroup = true and the pause image kubeadm expects; restart containerd"
            ),
        ),
        step(
            "kubernetes-packages",
            format!(
                "install kubeadm, kubelet, kubectl {version} from {kube_source}; apt-mark hold them"
            ),
        ),
    ];
    let mut phases = vec![Phase {
        name: "prepare",
        title: "prepare every node",
        order: Order::Parallel,
        hosts: cluster
            .nodes
            .iter()
            .map(|n| HostSteps {
                host: n.node_name.clone(),
                steps: prepare.clone(),
            })
            .collect(),
    }];

    phases.push(Phase {
        name: "load-balancer",
        title: "keepalived and HAProxy on every control-plane node",
        order: Order::Parallel,
        hosts: control_planes
            .iter()
            .map(|n| {
                let priority = 150u32.saturating_sub(n.number.unwrap_or(50));
                HostSteps {
                    host: n.node_name.clone(),
                    steps: vec![
                        step("haproxy", format!("install haproxy; write /etc/haproxy/haproxy.cfg: listen on *:{} and balance TCP across {backends} with /healthz checks; reload haproxy", cluster.endpoint_port)),
                        step("keepalived", format!("install keepalived; write /etc/keepalived/keepalived.conf: VRRP instance for VIP {vip_text}, priority {priority}, vrrp_garp_master_refresh; write /etc/keepalived/check_apiserver.sh (fails unless https://127.0.0.1:{}/healthz answers 200); restart keepalived", cluster.endpoint_port)),
                    ],
                }
            })
            .collect(),
    });

    phases.push(Phase {
        name: "init",
        title: "create the cluster on the first control-plane node",
        order: Order::Serial,
        hosts: vec![HostSteps {
            host: first.node_name.clone(),
            steps: vec![
                step("kubeadm-config", format!("write /etc/kubernetes/kubeadm-init.yaml ({}: InitConfiguration and ClusterConfiguration with controlPlaneEndpoint {endpoint}, podSubnet {}, serviceSubnet {}, kubernetesVersion {version})", version.kubeadm_api(), cluster.pod_cidr(), cluster.service_cidr.value)),
                step("kubeadm-init", "run kubeadm init --config /etc/kubernetes/kubeadm-init.yaml --upload-certs (only where /etc/kubernetes/admin.conf does not exist yet)"),
                step("wait-api", format!("wait until https://{endpoint}/healthz answers through HAProxy and the VIP")),
            ],
        }],
    });

    let join_cp: Vec<HostSteps> = control_planes
        .iter()
        .filter(|n| !n.first)
        .map(|n| HostSteps {
            host: n.node_name.clone(),
            steps: vec![
                step("join-credentials", format!("on {}: create a fresh bootstrap token (24 h) and upload the certificates under a fresh certificate key (kubeadm init phase upload-certs --upload-certs; 2 h)", first.node_name)),
                step("kubeadm-join", format!("write /etc/kubernetes/kubeadm-join.yaml (JoinConfiguration, controlPlane.certificateKey) and run kubeadm join {endpoint} --config (only where the node is not yet a member)")),
                step("wait-etcd", "wait until the new etcd member is healthy before the next control-plane node joins"),
            ],
        })
        .collect();
    if !join_cp.is_empty() {
        phases.push(Phase {
            name: "join-control-planes",
            title: "join the other control-plane nodes",
            order: Order::Serial,
            hosts: join_cp,
        });
    }
    if !workers.is_empty() {
        phases.push(Phase {
            name: "join-workers",
            title: "join the workers",
            order: Order::Parallel,
            hosts: workers
                .iter()
                .map(|n| HostSteps {
                    host: n.node_name.clone(),
                    steps: vec![
                        step("join-credentials", format!("on {}: create a fresh bootstrap token (24 h)", first.node_name)),
                        step("kubeadm-join", format!("write /etc/kubernetes/kubeadm-join.yaml (JoinConfiguration) and run kubeadm join {endpoint} --config (only where the node is not yet a member)")),
                    ],
                })
                .collect(),
        });
    }
    let encapsulation = calico_encapsulation(&cluster.encapsulation);
    phases.push(Phase {
        name: "cni",
        title: "install Calico",
        order: Order::Serial,
        hosts: vec![HostSteps {
            host: first.node_name.clone(),
            steps: vec![
                step(
                    "calico-operator",
                    format!("apply the Tigera operator for Calico {CALICO_VERSION}"),
                ),
                step(
                    "calico-installation",
                    format!(
                        "apply the Installation: IP pool {} with {encapsulation} encapsulation",
                        cluster.pod_cidr()
                    ),
                ),
                step("wait-nodes", "wait until every node is Ready"),
            ],
        }],
    });
    phases.push(Phase {
        name: "kubeconfigs",
        title: "kubectl for root and the SSH user on every control-plane node",
        order: Order::Parallel,
        hosts: control_planes
            .iter()
            .map(|n| {
                let user = n.ssh.user.clone().or_else(|| cluster.ssh.user.clone());
                let mut steps = vec![step(
                    "kubeconfig",
                    match user.as_deref() {
                        Some("root") => "copy /etc/kubernetes/admin.conf to /root/.kube/config (0600)".to_string(),
                        Some(user) => format!("copy /etc/kubernetes/admin.conf to /root/.kube/config and ~{user}/.kube/config (0600, owned by each user)"),
                        None => "copy /etc/kubernetes/admin.conf to /root/.kube/config and the SSH user's ~/.kube/config (0600, owned by each user)".to_string(),
                    },
                )];
                if cluster.control_plane_workloads {
                    steps.push(step("untaint", "remove the node-role.kubernetes.io/control-plane:NoSchedule taint"));
                }
                HostSteps {
                    host: n.node_name.clone(),
                    steps,
                }
            })
            .collect(),
    });

    Plan {
        summary: Summary {
            control_planes: control_planes.len(),
            workers: workers.len(),
            first_control_plane: first.node_name.clone(),
            kubernetes_version: version.to_string(),
            kubeadm_api: version.kubeadm_api().to_string(),
            control_plane_endpoint: endpoint,
            vip,
            pod_cidr: cluster.pod_cidr().to_string(),
            service_cidr: cluster.service_cidr.value.to_string(),
            calico: CALICO_VERSION.to_string(),
            encapsulation,
            packages,
        },
        phases,
    }
}

/// Calico's name for an encapsulation (`VXLANCrossSubnet`).
pub fn calico_encapsulation(name: &str) -> String {
    match name {
        "vxlan" => "VXLAN",
        "ipip" => "IPIP",
        "vxlan-cross-subnet" => "VXLANCrossSubnet",
        "ipip-cross-subnet" => "IPIPCrossSubnet",
        _ => "None",
    }
    .to_string()
}

/// Where each node is reached, for the plan's header.
fn address_text(node: &Node) -> String {
    match &node.address {
        Some(HostAddress::Ip(ip)) => ip.to_string(),
        Some(HostAddress::Name(name)) => name.clone(),
        None => "address from DNS".to_string(),
    }
}

/// The plan as text. Hosts whose steps are the same are listed together.
pub struct PlanText<'a> {
    pub plan: &'a Plan,
    pub cluster: &'a Cluster,
}

impl fmt::Display for PlanText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.plan.summary;
        writeln!(
            f,
            "Plan (offline: no host was contacted; these are the steps apply runs on hosts where nothing is in place yet)"
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  hosts         {} control-plane, {} worker",
            s.control_planes, s.workers
        )?;
        for node in &self.cluster.nodes {
            let role = match node.role {
                Role::ControlPlane if node.first => "control-plane (first: kubeadm init)",
                Role::ControlPlane => "control-plane",
                Role::Worker => "worker",
            };
            writeln!(
                f,
                "    {:<12}{:<17}{role}",
                node.node_name,
                address_text(node)
            )?;
        }
        writeln!(
            f,
            "  kubernetes    {} (kubeadm API {})",
            s.kubernetes_version, s.kubeadm_api
        )?;
        writeln!(
            f,
            "  endpoint      {} (HAProxy on each control-plane node, VIP {})",
            s.control_plane_endpoint,
            s.vip.as_deref().unwrap_or("from DNS")
        )?;
        writeln!(
            f,
            "  pod network   {} (Calico {}, {})",
            s.pod_cidr, s.calico, s.encapsulation
        )?;
        writeln!(f, "  services      {}", s.service_cidr)?;
        writeln!(f, "  packages      {}", s.packages)?;
        let total = self.plan.phases.len();
        for (i, phase) in self.plan.phases.iter().enumerate() {
            writeln!(f)?;
            let order = match phase.order {
                Order::Parallel if phase.hosts.len() > 1 => ", in parallel",
                Order::Serial if phase.hosts.len() > 1 => ", one host at a time",
                _ => "",
            };
            writeln!(
                f,
                "phase {}/{total} {}: {}{order}",
                i + 1,
                phase.name,
                phase.title
            )?;
            let mut groups: Vec<(Vec<&str>, &Vec<Step>)> = Vec::new();
            for host in &phase.hosts {
                match groups.iter_mut().find(|(_, steps)| **steps == host.steps) {
                    Some((hosts, _)) if phase.order == Order::Parallel => hosts.push(&host.host),
                    _ => groups.push((vec![&host.host], &host.steps)),
                }
            }
            for (hosts, steps) in groups {
                writeln!(f, "  {}", hosts.join(", "))?;
                for step in steps {
                    let mut line = String::new();
                    let _ = write!(line, "    - {}: {}", step.id, step.description);
                    writeln!(f, "{line}")?;
                }
            }
        }
        Ok(())
    }
}
