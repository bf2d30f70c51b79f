//! kubeadm's configuration files: the InitConfiguration, ClusterConfiguration and
//! KubeletConfiguration of `kubeadm init`, and the JoinConfiguration of `kubeadm join`, rendered
//! from one template per kubeadm API version (`templates/kubeadm-v1beta3.yaml` for 1.28 to
//! 1.30, `templates/kubeadm-v1beta4.yaml` from 1.31).
//!
//! Pure: the cluster model, the node, the exact version the installed kubeadm reports and the
//! images in; YAML text out. Never a feature gate: kubeadm refuses gates it does not know, and
//! its gates come and go between minors.
//!
//! Secrets (the bootstrap token, the certificate key) only ever go into the contents of these
//! files, which reach kubeadm on standard input, never on a command line. Each sits on a line of
//! its own (`token:`, `certificateKey:`), where [`crate::mask`] hides it in diffs and output.
//! Every string is written as a YAML double-quoted scalar, so that nothing is misread: an
//! all-digit certificate key stays a string, and so does a plan's placeholder.

use std::fmt;

use minijinja::context;

use crate::bundle::{self, Bundle};
use crate::facts::HostFacts;
use crate::model::{Cluster, Node, Role};
use crate::steps::{self, Ctx, StepError, render};
use crate::version::{DEFAULT_IMAGE_REPOSITORY, KubeVersion, V1BETA3};

/// containerd's CRI socket, as kubeadm and the kubelet are told it.
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
/// The port every kube-apiserver binds (HAProxy's endpoint port fronts them).
pub const API_SERVER_PORT: u16 = 6443;
/// The phase of `kubeadm init` that installs CoreDNS.
pub const COREDNS_PHASE: &str = "addon/coredns";
/// The preflight check that pulls (or finds) every image kubeadm needs.
pub const IMAGE_PULL_CHECK: &str = "ImagePull";

/// A kubeadm configuration API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `kubeadm.k8s.io/v1beta3`: Kubernetes 1.28 to 1.30; extra arguments are maps.
    V1beta3,
    /// `kubeadm.k8s.io/v1beta4`: from 1.31; extra arguments are lists of name and value.
    V1beta4,
}

impl Api {
    /// The API of a Kubernetes minor, from the version table.
    pub fn of(version: KubeVersion) -> Api {
        if version.kubeadm_api() == V1BETA3 {
            Api::V1beta3
        } else {
            Api::V1beta4
        }
    }

    /// `kubeadm.k8s.io/v1beta3` or `kubeadm.k8s.io/v1beta4`.
    pub fn api_version(self) -> &'static str {
        match self {
            Api::V1beta3 => crate::version::V1BETA3,
            Api::V1beta4 => crate::version::V1BETA4,
        }
    }

    fn template(self) -> (&'static str, &'static str) {
        match self {
            Api::V1beta3 => (
                "kubeadm-v1beta3.yaml",
                include_str!("../../templates/kubeadm-v1beta3.yaml"),
            ),
            Api::V1beta4 => (
                "kubeadm-v1beta4.yaml",
                include_str!("../../templates/kubeadm-v1beta4.yaml"),
            ),
        }
    }
}

/// Where kubeadm's images come from and what is missing there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// `imageRepository`: registry.k8s.io unless a mirror is used.
    pub repository: String,
    /// `etcd.local.imageTag`: only when an offline bundle holds another etcd than kubeadm's
    /// default.
    pub etcd_tag: Option<String>,
    /// Images kubeadm needs that are not there (an offline bundle without CoreDNS): the
    /// `ImagePull` preflight check is then ignored, and CoreDNS's addon skipped when it is the
    /// one missing.
    pub missing: Vec<String>,
}

impl Images {
    /// kubeadm's defaults, pulled from registry.k8s.io.
    pub fn online() -> Images {
        Images {
            repository: DEFAULT_IMAGE_REPOSITORY.to_string(),
            etcd_tag: None,
            missing: Vec::new(),
        }
    }

    /// An offline bundle's images: its etcd tag, and what it lacks.
    pub fn of_bundle(bundle: &Bundle) -> Images {
        Images {
            repository: DEFAULT_IMAGE_REPOSITORY.to_string(),
            etcd_tag: bundle.etcd_tag.clone(),
            missing: bundle.missing_images.clone(),
        }
    }

    fn coredns_missing(&self) -> bool {
        self.missing.iter().any(|i| bundle::is_coredns(i))
    }
}

impl Default for Images {
    fn default() -> Self {
        Images::online()
    }
}

/// What the configuration of one node is made from.
#[derive(Debug, Clone)]
pub struct NodeConfig<'a> {
    pub cluster: &'a Cluster,
    pub node: &'a Node,
    /// The node's address: `localAPIEndpoint.advertiseAddress` and the kubelet's `node-ip`.
    pub advertise_address: String,
    /// The exact version, as the installed kubeadm reports it (`v1.28.7`): `kubernetesVersion`,
    /// and what chooses the API.
    pub kubernetes_version: String,
    pub images: Images,
    /// Planning from the inventory alone (as [`Ctx::offline`]): addresses that only DNS knows
    /// become placeholders in the certificate's names instead of errors.
    pub offline: bool,
}

impl<'a> NodeConfig<'a> {
    /// A node's configuration as a phase sees it: its address, the bundle's images if any.
    pub fn new(
        ctx: &Ctx<'a>,
        node: &'a Node,
        kubernetes_version: impl Into<String>,
    ) -> Result<NodeConfig<'a>, StepError> {
        Ok(NodeConfig {
            cluster: ctx.cluster,
            node,
            advertise_address: ctx.ip(node)?,
            kubernetes_version: kubernetes_version.into(),
            images: ctx.bundle.map_or_else(Images::online, Images::of_bundle),
            offline: ctx.offline,
        })
    }

    /// The API of the exact version (of the inventory's when the version is not one, as a
    /// plan's placeholder).
    pub fn api(&self) -> Api {
        Api::of(KubeVersion::parse_any(&self.kubernetes_version).unwrap_or(self.cluster.kubernetes))
    }
}

/// What a join needs to find and trust the cluster. Never on a command line; its `Debug` shows
/// neither the token nor the key.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinSecrets {
    /// A bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub token: String,
    /// The CA's public key pin, `sha256:<64 hex digits>` (not secret).
    pub ca_cert_hash: String,
    /// The key of the uploaded certificates (64 hex digits): control-plane joins only.
    pub certificate_key: Option<String>,
}

impl fmt::Debug for JoinSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSecrets")
            .field("token", &crate::mask::MASK)
            .field("ca_cert_hash", &self.ca_cert_hash)
            .field(
                "certificate_key",
                &self.certificate_key.as_ref().map(|_| crate::mask::MASK),
            )
            .finish()
    }
}

/// `kubeadm init`'s configuration for the first control-plane node: InitConfiguration,
/// ClusterConfiguration and KubeletConfiguration. No token and no certificate key: kubeadm
/// makes them (and is told not to print them).
pub fn init_config(cfg: &NodeConfig) -> Result<String, StepError> {
    let mut skip_phases = Vec::new();
    if cfg.images.coredns_missing() {
        skip_phases.push(quote(COREDNS_PHASE));
    }
    let cert_sans: Vec<String> = cert_sans(cfg)?.iter().map(|s| quote(s)).collect();
    let c = cfg.cluster;
    let (name, source) = cfg.api().template();
    render(
        name,
        source,
        context! {
            join => false,
            control_plane => true,
            advertise_address => quote(&cfg.advertise_address),
            bind_port => API_SERVER_PORT,
            node_name => quote(&cfg.node.node_name),
            cri_socket => quote(CRI_SOCKET),
            no_taints => c.control_plane_workloads,
            ignore_preflight_errors => ignore_preflight_errors(cfg, true),
            skip_phases => skip_phases,
            kubernetes_version => quote(&cfg.kubernetes_version),
            control_plane_endpoint => quote(&c.control_plane_endpoint()),
            image_repository => quote(&cfg.images.repository),
            pod_subnet => quote(&c.pod_cidr().to_string()),
            service_subnet => quote(&c.service_cidr.value.to_string()),
            cert_sans => cert_sans,
            etcd_tag => cfg.images.etcd_tag.as_deref().map(quote),
        },
    )
}

/// `kubeadm join`'s configuration: a JoinConfiguration, with `controlPlane` (and the
/// certificate key) for control-plane nodes.
pub fn join_config(cfg: &NodeConfig, secrets: &JoinSecrets) -> Result<String, StepError> {
    let control_plane = cfg.node.role == Role::ControlPlane;
    let c = cfg.cluster;
    let (name, source) = cfg.api().template();
    render(
        name,
        source,
        context! {
            join => true,
            control_plane => control_plane,
            control_plane_endpoint => quote(&c.control_plane_endpoint()),
            token => quote(&secrets.token),
            ca_cert_hash => quote(&secrets.ca_cert_hash),
            certificate_key => secrets
                .certificate_key
                .as_deref()
                .filter(|_| control_plane)
                .map(quote),
            advertise_address => quote(&cfg.advertise_address),
            bind_port => API_SERVER_PORT,
            node_name => quote(&cfg.node.node_name),
            cri_socket => quote(CRI_SOCKET),
            no_taints => control_plane && c.control_plane_workloads,
            ignore_preflight_errors => ignore_preflight_errors(cfg, control_plane),
            skip_phases => Vec::<String>::new(),
        },
    )
}

/// The names and addresses of the API server's certificate besides kubeadm's own (the node's
/// name and address, the `kubernetes` service names, the endpoint's host): the VIP, the
/// endpoint's name (and the VIP record alone, for resolvers that search the domain), and every
/// control-plane node's name, fully qualified name and address, so that any of them can serve
/// requests made to any of these names.
pub fn cert_sans(cfg: &NodeConfig) -> Result<Vec<String>, StepError> {
    let c = cfg.cluster;
    let mut sans = Vec::new();
    push_new(&mut sans, steps::vip(c, cfg.offline)?);
    push_new(&mut sans, c.vip_name());
    push_new(&mut sans, c.vip_record.clone());
    for node in c.control_planes() {
        push_new(&mut sans, node.node_name.clone());
        push_new(&mut sans, node.name.clone());
        if let Some(domain) = &c.domain {
            push_new(&mut sans, format!("{}.{domain}", node.node_name));
        }
        let address = if std::ptr::eq(node, cfg.node) {
            cfg.advertise_address.clone()
        } else {
            steps::node_ip(node, cfg.offline)?
        };
        push_new(&mut sans, address);
    }
    Ok(sans)
}

fn push_new(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// `ImagePull` (and only it) when images are missing, on control-plane nodes (workers pull
/// nothing in preflight).
fn ignore_preflight_errors(cfg: &NodeConfig, control_plane: bool) -> Vec<String> {
    if control_plane && !cfg.images.missing.is_empty() {
        vec![quote(IMAGE_PULL_CHECK)]
    } else {
        Vec::new()
    }
}

/// A YAML double-quoted scalar: JSON's quoting, which YAML reads the same.
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\""))
}

/// What kubeadm's configuration for `node` is made from: its address, the installed kubeadm's
/// version (else the one about to be installed), and a bundle's images.
pub fn node_config<'a>(
    ctx: &Ctx<'a>,
    node: &'a Node,
    facts: &HostFacts,
) -> Result<NodeConfig<'a>, StepError> {
    let version = facts
        .kubeadm_version
        .clone()
        .or_else(|| ctx.bundle.map(|b| format!("v{}", b.version)))
        .unwrap_or_else(|| match ctx.cluster.kubernetes.patch {
            Some(_) => format!("v{}", ctx.cluster.kubernetes),
            None => format!("v{}.<newest patch>", ctx.cluster.kubernetes),
        });
    NodeConfig::new(ctx, node, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_string_a_string() {
        assert_eq!(quote("0123"), "\"0123\"");
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(quote("<address of k8scp02>"), "\"<address of k8scp02>\"");
    }

    #[test]
    fn the_api_follows_the_version_table() {
        let v = |t: &str| KubeVersion::parse(t).unwrap();
        assert_eq!(Api::of(v("1.28.7")), Api::V1beta3);
        assert_eq!(Api::of(v("1.30")), Api::V1beta3);
        assert_eq!(Api::of(v("1.31.0")), Api::V1beta4);
        assert_eq!(Api::of(v("1.37.1")), Api::V1beta4);
        assert_eq!(Api::V1beta3.api_version(), "kubeadm.k8s.io/v1beta3");
        assert_eq!(Api::V1beta4.api_version(), "kubeadm.k8s.io/v1beta4");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = JoinSecrets {
            token: "abcdef.0123456789abcdef".into(),
            ca_cert_hash: "sha256:00".into(),
            certificate_key: Some("k".repeat(64)),
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("abcdef.0123456789abcdef"), "{shown}");
        assert!(!shown.contains(&"k".repeat(64)), "{shown}");
        assert!(shown.contains("sha256:00"), "{shown}");
    }
}
