//! The validated cluster model: what the inventory means, with every rule checked.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Kind, Span, Spanned, did_you_mean};
use crate::inventory::settings::{self, SettingDef, ValueKind};
use crate::inventory::{Format, RawHost, RawInventory};
use crate::version::{Date, KubeVersion, NEWEST_MINOR, OLDEST_MINOR, VersionError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the inventory says a node is reached (`address`, `ansible_host`), as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum HostAddress {
    Ip(Ipv4Addr),
    Name(String),
}

/// A value and where it came from: the inventory (with its place) or DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ssh {
    /// `None`: ssh decides (~/.ssh/config, then the login name).
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The name as written (short or fully qualified).
    pub name: String,
    /// The first label: the Kubernetes node name.
    pub node_name: String,
    pub role: Role,
    /// The number in `k8scpNN` / `k8sNN`.
    pub number: Option<u32>,
    /// The control-plane node numbered 01 (when no control-plane name is numbered, the first
    /// listed), where `kubeadm init` runs.
    pub first: bool,
    /// What ssh connects to, as the inventory writes it; `None`: the node's name. DNS never
    /// changes it, so that an ssh_config's `Host` blocks and known_hosts entries by name apply.
    pub address: Option<HostAddress>,
    /// The node's own address for the cluster when it is not the one ssh connects to
    /// (kubespray's `ip`, else its `access_ip`): what configs are rendered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_ip: Option<Ipv4Addr>,
    /// The IPv4 address DNS gave (for the `address` name, else for the node's name) when the
    /// inventory writes none: what configs are rendered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Ipv4Addr>,
    #[serde(skip)]
    pub span: Span,
    #[serde(skip)]
    pub address_span: Option<Span>,
    pub ssh: Ssh,
}

impl Node {
    /// The node's IPv4 address for configs: its `ip` when the inventory gives one, else its
    /// address as written, else as DNS gave it.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        match (self.node_ip, &self.address) {
            (Some(ip), _) | (None, &Some(HostAddress::Ip(ip))) => Some(ip),
            _ => self.resolved,
        }
    }

    /// What ssh connects to, as users do: the address as written (an IP address or a name),
    /// else the node's name as written; never an address found through DNS.
    pub fn destination(&self) -> String {
        match &self.address {
            Some(HostAddress::Ip(ip)) => ip.to_string(),
            Some(HostAddress::Name(name)) => name.clone(),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    Strict,
    AcceptNew,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "source")]
pub enum PackageSource {
    /// Docker's and the Kubernetes apt repositories.
    Online,
    /// An offline bundle directory on the machine kubeforge runs on.
    Bundle { path: PathBuf },
}

/// The pod network (`cni:`). Its names are [`settings::CNIS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cni {
    Calico,
    Flannel,
    /// None installed: the operator brings one.
    None,
}

impl Cni {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "calico" => Some(Cni::Calico),
            "flannel" => Some(Cni::Flannel),
            "none" => Some(Cni::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cni::Calico => "calico",
            Cni::Flannel => "flannel",
            Cni::None => "none",
        }
    }
}

/// Calico's encapsulation between nodes (`calico.encapsulation:`). Its names are
/// [`settings::ENCAPSULATIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encapsulation {
    Vxlan,
    Ipip,
    VxlanCrossSubnet,
    IpipCrossSubnet,
    None,
}

impl Encapsulation {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "vxlan" => Some(Encapsulation::Vxlan),
            "ipip" => Some(Encapsulation::Ipip),
            "vxlan-cross-subnet" => Some(Encapsulation::VxlanCrossSubnet),
            "ipip-cross-subnet" => Some(Encapsulation::IpipCrossSubnet),
            "none" => Some(Encapsulation::None),
            _ => None,
        }
    }

    /// Calico's own name for it (`VXLANCrossSubnet`).
    pub fn calico_name(self) -> &'static str {
        match self {
            Encapsulation::Vxlan => "VXLAN",
            Encapsulation::Ipip => "IPIP",
            Encapsulation::VxlanCrossSubnet => "VXLANCrossSubnet",
            Encapsulation::IpipCrossSubnet => "IPIPCrossSubnet",
            Encapsulation::None => "None",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub format: Format,
    /// Control-plane nodes by number (the first one first), then workers by number.
    pub nodes: Vec<Node>,
    pub vip: Option<Sourced<Ipv4Addr>>,
    pub network: Option<Sourced<Ipv4Net>>,
    pub domain: Option<String>,
    /// Ask this server rather than the system resolver.
    pub dns_server: Option<SocketAddrV4>,
    pub vip_record: String,
    pub endpoint_port: u16,
    pub kubernetes: KubeVersion,
    /// The inventory names a version (else the default; an offline bundle then sets it).
    pub kubernetes_set: bool,
    /// `None`: the default, chosen not to overlap the hosts ([`Cluster::pod_cidr`]).
    pub pod_cidr: Option<Sourced<Ipv4Net>>,
    pub service_cidr: Sourced<Ipv4Net>,
    /// The pod network.
    pub cni: Cni,
    /// Calico's encapsulation between nodes.
    pub encapsulation: Encapsulation,
    pub control_plane_workloads: bool,
    pub packages: PackageSource,
    pub known_hosts: Option<PathBuf>,
    /// An ssh_config file for ssh (`-F`) in place of `~/.ssh/config`.
    pub ssh_config: Option<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    pub ssh: Ssh,
}

/// Pod networks tried in turn when none is set: Calico's own default first.
const POD_CIDR_CANDIDATES: [&str; 3] = ["192.168.0.0/16", "10.244.0.0/16", "172.20.0.0/16"];
const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
/// Ports that kubeadm's components bind on control-plane nodes.
const RESERVED_PORTS: [(u16, &str); 6] = [
    (6443, "kube-apiserver"),
    (2379, "etcd clients"),
    (2380, "etcd peers"),
    (10250, "the kubelet"),
    (10257, "kube-controller-manager"),
    (10259, "kube-scheduler"),
];

impl Cluster {
    pub fn control_planes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::ControlPlane)
    }

    pub fn workers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Worker)
    }

    pub fn first_control_plane(&self) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.first)
            .unwrap_or(&self.nodes[0])
    }

    /// The name that resolves to the VIP: `k8scp.<domain>`, or `k8scp` alone for the
    /// resolver's search list.
    pub fn vip_name(&self) -> String {
        match &self.domain {
            Some(domain) => format!("{}.{domain}", self.vip_record),
            None => self.vip_record.clone(),
        }
    }

    /// kubeadm's controlPlaneEndpoint: the VIP's name and HAProxy's port.
    pub fn control_plane_endpoint(&self) -> String {
        format!("{}:{}", self.vip_name(), self.endpoint_port)
    }

    /// The hosts' subnet: as set, else the /24 that holds every known host address.
    pub fn effective_network(&self) -> Option<Sourced<Ipv4Net>> {
        if self.network.is_some() {
            return self.network;
        }
        let mut ips = self.nodes.iter().filter_map(Node::ip);
        let first = ips.next()?;
        let net = Ipv4Net::new(first, 24).ok()?.trunc();
        ips.all(|ip| net.contains(&ip)).then_some(Sourced {
            value: net,
            span: None,
        })
    }

    /// The pod network: as set, else the first candidate that overlaps neither the hosts nor
    /// the service network.
    pub fn pod_cidr(&self) -> Ipv4Net {
        if let Some(p) = self.pod_cidr {
            return p.value;
        }
        let network = self.effective_network().map(|n| n.value);
        let ips: Vec<Ipv4Addr> = self.nodes.iter().filter_map(Node::ip).collect();
        let candidates = POD_CIDR_CANDIDATES.map(|c| c.parse::<Ipv4Net>().expect("valid literal"));
        candidates
            .iter()
            .copied()
            .find(|c| {
                !overlaps(*c, self.service_cidr.value)
                    && !network.is_some_and(|n| overlaps(*c, n))
                    && !ips.iter().any(|ip| c.contains(ip))
                    && !self.vip.is_some_and(|v| c.contains(&v.value))
            })
            .unwrap_or(candidates[0])
    }

    /// Rules about addresses: run after validation and again once DNS has filled in addresses
    /// and the VIP.
    pub fn network_checks(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let network = self.effective_network();
        if let (Some(net), Some(explicit)) = (network, self.network) {
            for node in &self.nodes {
                if let Some(ip) = node.ip()
                    && !explicit.value.contains(&ip)
                {
                    out.push(
                        Diagnostic::error(
                            Kind::HostOutsideNetwork,
                            node.address_span.or(Some(node.span)),
                            format!(
                                "{} ({ip}) is outside the hosts' network {}",
                                node.name, net.value
                            ),
                        )
                        .expected(format!("an address in {}", net.value))
                        .hint("correct the address or `network`"),
                    );
                }
            }
        }
        if let Some(vip) = self.vip {
            let from = if vip.span.is_some() {
                "the VIP"
            } else {
                "the VIP (from DNS)"
            };
            if let Some(node) = self.nodes.iter().find(|n| n.ip() == Some(vip.value)) {
                out.push(
                    Diagnostic::error(Kind::VipIsHostAddress, vip.span, format!("{from} {} is the address of {}", vip.value, node.name))
                        .expected("a free address in the hosts' network that no host uses")
                        .hint("keepalived moves the VIP between control-plane nodes, so it must not be any node's own address"),
                );
            }
            if let Some(net) = network
                && !net.value.contains(&vip.value)
            {
                let hint = if net.span.is_some() {
                    "VRRP moves the VIP within one network; choose an address in it".to_string()
                } else {
                    format!(
                        "the hosts' network was taken to be {}; set `network:` if it is wider",
                        net.value
                    )
                };
                out.push(
                    Diagnostic::error(
                        Kind::VipOutsideNetwork,
                        vip.span,
                        format!(
                            "{from} {} is outside the hosts' network {}",
                            vip.value, net.value
                        ),
                    )
                    .expected(format!("an address in {}", net.value))
                    .hint(hint),
                );
            }
        }
        let pod = Sourced {
            value: self.pod_cidr(),
            span: self.pod_cidr.and_then(|p| p.span),
        };
        let mut ranges: Vec<(&str, Sourced<Ipv4Net>)> =
            vec![("pod_cidr", pod), ("service_cidr", self.service_cidr)];
        if self.pod_cidr.is_none() {
            ranges.swap(0, 1);
        }
        if overlaps(ranges[0].1.value, ranges[1].1.value) {
            let (a, b) = (ranges[0], ranges[1]);
            out.push(
                Diagnostic::error(Kind::CidrOverlap, a.1.span.or(b.1.span), format!("{} {} overlaps {} {}", a.0, a.1.value, b.0, b.1.value))
                    .expected("pod and service networks that share no address")
                    .hint("pick ranges apart, such as pod_cidr 10.244.0.0/16 and service_cidr 10.96.0.0/12"),
            );
        }
        for (name, range) in ranges {
            if let Some(net) = network
                && overlaps(range.value, net.value)
            {
                out.push(
                    Diagnostic::error(Kind::CidrOverlap, range.span.or(net.span), format!("{name} {} overlaps the hosts' network {}", range.value, net.value))
                        .expected("a range that no host or VIP address falls in")
                        .hint("pods and services would shadow the hosts' own addresses; pick another range"),
                );
                continue;
            }
            if let Some(node) = self
                .nodes
                .iter()
                .find(|n| n.ip().is_some_and(|ip| range.value.contains(&ip)))
            {
                out.push(
                    Diagnostic::error(
                        Kind::CidrOverlap,
                        range.span.or(node.address_span),
                        format!("{name} {} holds the address of {}", range.value, node.name),
                    )
                    .hint("pick a range that no host address falls in"),
                );
            }
        }
        out
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The outcome of validation: the model when there is no error, and every diagnostic.
#[derive(Debug)]
pub struct Validated {
    pub cluster: Option<Cluster>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Is this an RFC 1123 host name (labels of letters, digits and inner hyphens)? Kubernetes
/// node names must also be lowercase, which is checked separately for a clearer message.
pub fn is_rfc1123_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Is this a portable login name (POSIX: letters, digits, `.`, `_`, `-`; not starting with
/// `-`), at most 32 characters as useradd allows?
pub fn is_login_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The role and number that a name implies: `k8scpNN` a control-plane node, `k8sNN` a worker.
pub fn role_from_name(node_name: &str) -> Option<(Role, u32)> {
    let number = |digits: &str| -> Option<u32> {
        (digits.len() >= 2 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    };
    if let Some(n) = node_name.strip_prefix("k8scp").and_then(number) {
        return Some((Role::ControlPlane, n));
    }
    node_name
        .strip_prefix("k8s")
        .and_then(number)
        .map(|n| (Role::Worker, n))
}

struct Checker<'a> {
    raw: &'a RawInventory,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn invalid(&mut self, span: Span, what: &str, found: &str, kind: ValueKind) {
        let mut d = Diagnostic::error(
            Kind::InvalidValue,
            span,
            format!("`{found}` is not a valid {what}"),
        )
        .found(format!("`{found}`"))
        .expected(kind.describe());
        if let ValueKind::Choice(words) = kind
            && let Some(near) = did_you_mean(&found.to_ascii_lowercase(), words.iter().copied())
        {
            d = d.hint(format!("did you mean `{near}`?"));
        }
        self.diagnostics.push(d);
    }

    fn text(&self, key: &str) -> Option<&Spanned<String>> {
        self.raw.settings.get(key)
    }

    fn port(&mut self, value: &Spanned<String>, what: &str) -> Option<u16> {
        match value.value.trim().parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => {
                self.invalid(value.span, what, &value.value, ValueKind::Port);
                None
            }
        }
    }

    fn setting<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(&str) -> Option<T>,
    ) -> Option<Sourced<T>> {
        let def: &SettingDef = settings::setting(key).expect("known setting");
        let value = self.text(key)?.clone();
        match read(value.value.trim()) {
            Some(v) => Some(Sourced {
                value: v,
                span: Some(value.span),
            }),
            None => {
                self.invalid(
                    value.span,
                    &format!("value for `{key}`"),
                    &value.value,
                    def.kind,
                );
                None
            }
        }
    }

    fn choice(&mut self, key: &str) -> Option<Sourced<String>> {
        let def = settings::setting(key).expect("known setting");
        let ValueKind::Choice(words) = def.kind else {
            return None;
        };
        self.setting(key, |v| {
            let v = v.to_ascii_lowercase();
            words.contains(&v.as_str()).then_some(v)
        })
    }

    fn dns_name(&mut self, key: &str) -> Option<String> {
        self.setting(key, |v| {
            let v = v.trim_end_matches('.').to_ascii_lowercase();
            is_rfc1123_hostname(&v).then_some(v)
        })
        .map(|s| s.value)
    }

    fn version(&mut self) -> KubeVersion {
        let Some(value) = self.text("kubernetes_version").cloned() else {
            return KubeVersion::DEFAULT;
        };
        match KubeVersion::parse(&value.value) {
            Ok(v) => v,
            Err(VersionError::Malformed) => {
                let mut d = Diagnostic::error(
                    Kind::InvalidVersion,
                    value.span,
                    format!("`{}` is not a Kubernetes version", value.value),
                )
                .found(format!("`{}`", value.value))
                .expected(ValueKind::Version.describe());
                if self.raw.format == Format::Yaml
                    && value.value.matches('.').count() == 1
                    && !value.value.contains('"')
                {
                    d = d.hint(
                        "quote the version (\"1.30\"): unquoted, YAML may read it as a number",
                    );
                }
                self.diagnostics.push(d);
                KubeVersion::DEFAULT
            }
            Err(VersionError::Unsupported(minor)) => {
                self.diagnostics.push(
                    Diagnostic::error(
                        Kind::UnsupportedVersion,
                        value.span,
                        format!("Kubernetes 1.{minor} is not supported by this kubeforge"),
                    )
                    .found(format!("`{}`", value.value))
                    .expected(format!(
                        "a version from 1.{OLDEST_MINOR} to 1.{NEWEST_MINOR}"
                    ))
                    .hint(format!(
                        "use \"1.{NEWEST_MINOR}\", the newest supported minor"
                    )),
                );
                KubeVersion::DEFAULT
            }
        }
    }

    /// A minor that upstream no longer supports still installs, with a warning.
    fn end_of_life(&mut self, version: KubeVersion, today: Date) {
        if !version.is_past_end_of_life(today) {
            return;
        }
        let span = self.text("kubernetes_version").map(|v| v.span);
        let newest = KubeVersion {
            minor: NEWEST_MINOR,
            patch: None,
        };
        let what = if span.is_some() {
            format!("Kubernetes 1.{}", version.minor)
        } else {
            format!("the default Kubernetes 1.{}", version.minor)
        };
        let hint = if version.minor < NEWEST_MINOR {
            format!(
                "upgrade to \"{newest}\", the newest minor this kubeforge installs (supported upstream until {})",
                newest.end_of_life()
            )
        } else {
            "a newer kubeforge installs a supported minor".to_string()
        };
        self.diagnostics.push(
            Diagnostic::warning(
                Kind::PastEndOfLife,
                span,
                format!(
                    "{what} reached its upstream end of life on {}: it gets no security fixes",
                    version.end_of_life()
                ),
            )
            .found(format!("{version}, today is {today}"))
            .expected(format!("a minor supported upstream on {today}"))
            .hint(hint),
        );
    }

    /// A login name, or an error at its place: anything else could be read by a shell
    /// somewhere between here and the host (`ops; rm -rf /`).
    fn user(&mut self, user: &Spanned<String>) -> Option<String> {
        if is_login_name(&user.value) {
            return Some(user.value.clone());
        }
        self.diagnostics.push(
            Diagnostic::error(
                Kind::InvalidUser,
                user.span,
                format!("`{}` is not a valid login name", user.value),
            )
            .found(format!("`{}`", user.value))
            .expected("a login name: letters, digits, `.`, `_` and `-`, not starting with `-`, at most 32 characters")
            .hint("write the user kubeforge logs in as, such as `admin` or `root`"),
        );
        None
    }

    fn ssh_of(
        &mut self,
        user: Option<&Spanned<String>>,
        port: Option<&Spanned<String>>,
        key: Option<&Spanned<String>>,
    ) -> Ssh {
        Ssh {
            user: user.and_then(|u| self.user(u)),
            port: port.and_then(|p| self.port(p, "SSH port")),
            identity_file: key.map(|k| PathBuf::from(&k.value)),
        }
    }

    /// kubespray's `ip` (else its `access_ip`): an IPv4 address. kubeforge gives a node one
    /// address for the cluster, so an `access_ip` that differs from `ip` is said to be unused.
    fn node_ip(&mut self, host: &RawHost, node_name: &str) -> Option<Ipv4Addr> {
        let mut parse = |v: &Spanned<String>, what: &str| match v.value.trim().parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.invalid(v.span, what, &v.value, ValueKind::Ipv4);
                None
            }
        };
        let ip = host.ip.as_ref().and_then(|v| parse(v, "node address (ip)"));
        let access = host
            .access_ip
            .as_ref()
            .and_then(|v| parse(v, "node address (access_ip)"));
        if let (Some(ip), Some(access), Some(raw)) = (ip, access, &host.access_ip)
            && ip != access
        {
            self.diagnostics.push(
                Diagnostic::warning(
                    Kind::IgnoredVariable,
                    raw.span,
                    format!("{node_name} has ip {ip} and access_ip {access}: kubeforge gives a node one address, {ip}; access_ip is not used"),
                )
                .hint("the other nodes must reach this one at its ip, or set ip to the address they reach it by"),
            );
        }
        ip.or(access)
    }

    fn node(&mut self, host: &RawHost) -> Option<Node> {
        let name = host.name.value.trim_end_matches('.').to_string();
        let span = host.name.span;
        if !is_rfc1123_hostname(&name) {
            self.diagnostics.push(
                Diagnostic::error(Kind::InvalidHostname, span, format!("`{}` is not a valid host name", host.name.value))
                    .found(format!("`{}`", host.name.value))
                    .expected("an RFC 1123 host name: letters, digits and inner hyphens, dot-separated labels of at most 63 characters")
                    .hint("name control-plane nodes k8scp01, k8scp02, ... and workers k8s01, k8s02, ..."),
            );
            return None;
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.diagnostics.push(
                Diagnostic::error(
                    Kind::InvalidHostname,
                    span,
                    format!("`{name}` has upper-case letters"),
                )
                .expected("a lower-case name: Kubernetes node names must be lower case")
                .hint(format!("write `{}`", name.to_ascii_lowercase())),
            );
            return None;
        }
        let node_name = name.split('.').next().unwrap_or(&name).to_string();
        let implied = role_from_name(&node_name);
        let explicit = match &host.role {
            None => None,
            Some(r) => match r.value.trim().to_ascii_lowercase().as_str() {
                "control-plane" => Some((Role::ControlPlane, r.span)),
                "worker" => Some((Role::Worker, r.span)),
                _ => {
                    self.invalid(r.span, "role", &r.value, ValueKind::Choice(settings::ROLES));
                    return None;
                }
            },
        };
        let role = match (explicit, implied) {
            (Some((role, role_span)), Some((named, _))) => {
                if role != named {
                    self.diagnostics.push(
                        Diagnostic::warning(Kind::RoleMismatch, role_span, format!("{node_name}'s name says {} but its role is {}; the explicit role wins", named.as_str(), role.as_str()))
                            .hint("rename the host to match its role, to keep the naming convention"),
                    );
                }
                role
            }
            (Some((role, _)), None) => role,
            (None, Some((role, _))) => role,
            (None, None) => {
                self.diagnostics.push(
                    Diagnostic::error(Kind::UnknownRole, span, format!("cannot tell the role of `{name}` from its name"))
                        .found(format!("`{node_name}`"))
                        .expected("k8scpNN for a control-plane node or k8sNN for a worker (NN: two or more digits), or an explicit role")
                        .hint(match self.raw.format {
                            Format::Yaml => "add `role: control-plane` or `role: worker` to this host",
                            Format::Ini => "list the host under [k8sControlPlane] or [k8sNode], or add kubeforge_role=worker",
                        }),
                );
                return None;
            }
        };
        let number = implied.filter(|(r, _)| *r == role).map(|(_, n)| n);
        let address = match &host.address {
            None => None,
            Some(a) => {
                let text = a.value.trim();
                if let Ok(ip) = text.parse::<Ipv4Addr>() {
                    Some(HostAddress::Ip(ip))
                } else if is_rfc1123_hostname(text)
                    && !text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                {
                    Some(HostAddress::Name(text.to_ascii_lowercase()))
                } else {
                    self.invalid(a.span, "host address", &a.value, ValueKind::Ipv4);
                    None
                }
            }
        };
        let ssh = self.ssh_of(
            host.user.as_ref(),
            host.port.as_ref(),
            host.identity_file.as_ref(),
        );
        let node_ip = self.node_ip(host, &node_name);
        Some(Node {
            name,
            node_name,
            role,
            number,
            first: role == Role::ControlPlane && number == Some(1),
            address,
            node_ip,
            resolved: None,
            span,
            address_span: host.address.as_ref().map(|a| a.span),
            ssh,
        })
    }
}

/// Checks a raw inventory against every rule and builds the cluster model. Rules that depend
/// on the date (end of life) are not checked: see [`validate_on`].
pub fn validate(raw: &RawInventory) -> Validated {
    validate_on(raw, None)
}

/// [`validate`], and with `today` also the rules that depend on the date: a Kubernetes minor
/// past its upstream end of life is a warning. The caller reads the clock.
pub fn validate_on(raw: &RawInventory, today: Option<Date>) -> Validated {
    let mut c = Checker {
        raw,
        diagnostics: Vec::new(),
    };
    let nodes = c.nodes();

    // Settings.
    let ssh = {
        let (user, port, key) = (
            raw.settings.get("ssh.user").cloned(),
            raw.settings.get("ssh.port").cloned(),
            raw.settings.get("ssh.identity_file").cloned(),
        );
        c.ssh_of(user.as_ref(), port.as_ref(), key.as_ref())
    };
    let known_hosts = raw
        .settings
        .get("ssh.known_hosts")
        .map(|p| PathBuf::from(&p.value));
    let ssh_config = raw
        .settings
        .get("ssh.config")
        .map(|p| PathBuf::from(&p.value));
    let host_key_checking = match c.choice("ssh.host_key_checking").map(|s| s.value) {
        Some(v) if v == "accept-new" => HostKeyChecking::AcceptNew,
        _ => HostKeyChecking::Strict,
    };
    let domain = c.dns_name("dns.domain").or_else(|| {
        // The domain of fully qualified host names, when they agree.
        let mut domains = nodes
            .iter()
            .filter_map(|n| n.name.split_once('.').map(|(_, d)| d.to_string()));
        let first = domains.next()?;
        domains.all(|d| d == first).then_some(first)
    });
    let dns_server = c
        .setting("dns.server", |v| {
            v.parse::<SocketAddrV4>().ok().or_else(|| {
                v.parse::<Ipv4Addr>()
                    .ok()
                    .map(|ip| SocketAddrV4::new(ip, 53))
            })
        })
        .map(|s| s.value);
    let vip_record = c
        .dns_name("dns.vip_record")
        .unwrap_or_else(|| "k8scp".to_string());
    let vip = c.setting("vip", |v| v.parse::<Ipv4Addr>().ok());
    let network = c.setting("network", |v| v.parse::<Ipv4Net>().ok().map(|n| n.trunc()));
    let endpoint_port = c.endpoint_port();
    let kubernetes = c.version();
    if let Some(today) = today {
        c.end_of_life(kubernetes, today);
    }
    let pod_cidr = c.setting("pod_cidr", |v| v.parse::<Ipv4Net>().ok().map(|n| n.trunc()));
    let service_cidr = c
        .setting("service_cidr", |v| {
            v.parse::<Ipv4Net>().ok().map(|n| n.trunc())
        })
        .unwrap_or(Sourced {
            value: DEFAULT_SERVICE_CIDR.parse().expect("valid literal"),
            span: None,
        });
    let cni = c
        .choice("cni")
        .and_then(|s| Cni::parse(&s.value))
        .unwrap_or(Cni::Calico);
    let encapsulation = c
        .choice("calico.encapsulation")
        .and_then(|s| Encapsulation::parse(&s.value))
        .unwrap_or(Encapsulation::Vxlan);
    let control_plane_workloads = c
        .setting("control_plane_workloads", |v| {
            match v.to_ascii_lowercase().as_str() {
                "true" | "yes" => Some(true),
                "false" | "no" => Some(false),
                _ => None,
            }
        })
        .is_some_and(|s| s.value);
    let packages = c.packages();
    if !nodes.is_empty()
        && !nodes.iter().any(|n| n.role == Role::Worker)
        && !control_plane_workloads
    {
        c.diagnostics.push(
            Diagnostic::warning(Kind::NoWorkers, raw.hosts_span, "there are no worker nodes, and control-plane nodes keep their taint: ordinary pods will have nowhere to run")
                .hint("add workers (k8s01, ...) or set control_plane_workloads: true"),
        );
    }

    let mut diagnostics = c.diagnostics;
    let cluster = Cluster {
        format: raw.format,
        nodes,
        vip,
        network,
        domain,
        dns_server,
        vip_record,
        endpoint_port,
        kubernetes,
        kubernetes_set: raw.settings.contains_key("kubernetes_version"),
        pod_cidr,
        service_cidr,
        cni,
        encapsulation,
        control_plane_workloads,
        packages,
        known_hosts,
        ssh_config,
        host_key_checking,
        ssh,
    };
    diagnostics.extend(cluster.network_checks());
    crate::diag::sort(&mut diagnostics);
    let ok = !diagnostics.iter().any(Diagnostic::is_error) && !cluster.nodes.is_empty();
    Validated {
        cluster: ok.then_some(cluster),
        diagnostics,
    }
}

impl Checker<'_> {
    /// The hosts as nodes, in cluster order (the first control-plane node first), with every
    /// problem of the host list: too many, duplicates, no first node, etcd's quorum.
    fn nodes(&mut self) -> Vec<Node> {
        let mut nodes = Vec::new();
        let mut by_name: HashMap<String, Span> = HashMap::new();
        let mut by_address: HashMap<Ipv4Addr, (String, Span)> = HashMap::new();
        if self.raw.hosts.len() > MAX_HOSTS {
            self.diagnostics.push(
                Diagnostic::error(
                    Kind::TooManyHosts,
                    self.raw.hosts_span,
                    format!("the inventory lists {} hosts", self.raw.hosts.len()),
                )
                .found(format!("{} hosts", self.raw.hosts.len()))
                .expected(format!(
                    "at most {MAX_HOSTS} hosts (the most a Kubernetes cluster is made for)"
                ))
                .hint("check the ranges (k8s[01:99]) and split the hosts into several clusters"),
            );
        }
        for host in self.raw.hosts.iter().take(MAX_HOSTS) {
            let Some(node) = self.node(host) else {
                continue;
            };
            if let Some(first) = by_name.get(&node.node_name) {
                self.diagnostics.push(
                    Diagnostic::error(
                        Kind::DuplicateHost,
                        node.span,
                        format!("host `{}` is listed twice", node.node_name),
                    )
                    .found(format!(
                        "a second `{}`; the first is on line {}",
                        node.node_name, first.line
                    ))
                    .expected("each host once: its first label is its Kubernetes node name")
                    .hint("remove one of the two entries"),
                );
                continue;
            }
            by_name.insert(node.node_name.clone(), node.span);
            if let Some(ip) = node.ip() {
                if let Some((other, _)) = by_address.get(&ip) {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Kind::DuplicateAddress,
                            node.address_span.unwrap_or(node.span),
                            format!("{} has the address {ip}, as {other} does", node.name),
                        )
                        .expected("one address per host")
                        .hint("correct one of the two addresses"),
                    );
                } else {
                    by_address.insert(
                        ip,
                        (node.name.clone(), node.address_span.unwrap_or(node.span)),
                    );
                }
            }
            nodes.push(node);
        }
        if self.raw.hosts.is_empty()
            && !self.diagnostics.iter().any(|d| {
                d.kind == Kind::MissingKey || d.kind == Kind::Syntax || d.kind == Kind::WrongType
            })
        {
            self.diagnostics.push(
                Diagnostic::error(
                    Kind::NoHosts,
                    self.raw.hosts_span,
                    "the inventory lists no hosts",
                )
                .expected("at least the first control-plane node, k8scp01")
                .hint("list your hosts: k8scp01, k8scp02, k8scp03 and workers k8s01, ..."),
            );
        }
        // Names that follow no convention (kubespray's node1, node2, ...): the first
        // control-plane host as listed is the first node.
        if !nodes
            .iter()
            .any(|n| n.role == Role::ControlPlane && n.number.is_some())
            && let Some(first) = nodes.iter_mut().find(|n| n.role == Role::ControlPlane)
        {
            first.first = true;
        }
        // Numbered, but none 01 (the first was removed from the cluster): the lowest is the
        // first for the runs that follow.
        if !nodes.iter().any(|n| n.first)
            && let Some(lowest) = nodes
                .iter_mut()
                .filter(|n| n.role == Role::ControlPlane && n.number.is_some())
                .min_by_key(|n| n.number)
        {
            lowest.first = true;
            let name = lowest.node_name.clone();
            self.diagnostics.push(
                Diagnostic::warning(
                    Kind::NoFirstControlPlane,
                    self.raw.hosts_span,
                    format!("no control-plane node is numbered 01: {name}, the lowest, is the first"),
                )
                .hint(format!("right after k8scp01 was removed from the cluster (`kubeforge reset --hosts k8scp01`); otherwise, if k8scp01 holds a cluster, list it: without a cluster answering on {name} or the others, apply would make a new one on {name}")),
            );
        }
        nodes.sort_by_key(|n| {
            (
                n.role,
                !n.first,
                n.number.is_none(),
                n.number,
                n.node_name.clone(),
            )
        });
        let control_planes = nodes
            .iter()
            .filter(|n| n.role == Role::ControlPlane)
            .count();
        let host_errors = self
            .diagnostics
            .iter()
            .any(|d| d.is_error() && matches!(d.kind, Kind::InvalidHostname | Kind::UnknownRole));
        if !nodes.is_empty() && !nodes.iter().any(|n| n.first) && !host_errors {
            self.diagnostics.push(
                Diagnostic::error(Kind::NoFirstControlPlane, self.raw.hosts_span, "no first control-plane node")
                    .found(if control_planes == 0 {
                        "no control-plane node at all".to_string()
                    } else {
                        format!("control-plane nodes {}", nodes.iter().filter(|n| n.role == Role::ControlPlane).map(|n| n.node_name.as_str()).collect::<Vec<_>>().join(", "))
                    })
                    .expected("a control-plane node named k8scp01, where `kubeadm init` runs")
                    .hint("add k8scp01 (it must take part in the first run), or rename your first control-plane node to k8scp01; when no control-plane node is named k8scpNN, the first one listed is the first"),
            );
        }
        if control_planes > 0 {
            let tolerated = (control_planes - 1) / 2;
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            if control_planes < 3 {
                self.diagnostics.push(
                    Diagnostic::warning(Kind::Quorum, self.raw.hosts_span, format!("{control_planes} control-plane node{} tolerate{} no failure: etcd loses quorum when {} down", plural(control_planes), if control_planes == 1 { "s" } else { "" }, if control_planes == 1 { "it is" } else { "either is" }))
                        .hint("use 3 control-plane nodes (k8scp01..k8scp03) to tolerate 1 failure"),
                );
            } else if control_planes % 2 == 0 {
                self.diagnostics.push(
                    Diagnostic::warning(Kind::Quorum, self.raw.hosts_span, format!("{control_planes} control-plane nodes tolerate {tolerated} failure{}, as {} do", plural(tolerated), control_planes - 1))
                        .hint(format!("n etcd members tolerate floor((n-1)/2) failures: use {} or {} control-plane nodes", control_planes - 1, control_planes + 1)),
                );
            }
        }
        nodes
    }

    /// HAProxy's port: 8443 unless set, never a port of the control plane or NodePorts.
    fn endpoint_port(&mut self) -> u16 {
        match self.raw.settings.get("endpoint_port").cloned() {
            None => 8443,
            Some(value) => match self.port(&value, "endpoint port") {
                Some(port) => {
                    if let Some((_, owner)) = RESERVED_PORTS.iter().find(|(p, _)| *p == port) {
                        self.diagnostics.push(
                            Diagnostic::error(Kind::ReservedPort, value.span, format!("port {port} is used by {owner} on every control-plane node"))
                                .expected("a free port for HAProxy, such as 8443")
                                .hint("HAProxy runs beside kube-apiserver on each control-plane node; kubeadm's documented choice is 8443"),
                        );
                    } else if (30000..=32767).contains(&port) {
                        self.diagnostics.push(
                            Diagnostic::error(
                                Kind::ReservedPort,
                                value.span,
                                format!("port {port} is in the NodePort range 30000-32767"),
                            )
                            .expected("a port outside 30000-32767, such as 8443"),
                        );
                    }
                    port
                }
                None => 8443,
            },
        }
    }

    /// Where packages come from.
    fn packages(&mut self) -> PackageSource {
        let source = self.choice("packages.source");
        let bundle = self.raw.settings.get("packages.bundle");
        match (source.as_ref().map(|s| s.value.as_str()), bundle) {
            (Some("online"), _) | (None, None) => PackageSource::Online,
            (_, Some(path)) => PackageSource::Bundle {
                path: PathBuf::from(&path.value),
            },
            (Some(_), None) => {
                self.diagnostics.push(
                    Diagnostic::error(
                        Kind::MissingKey,
                        source.as_ref().and_then(|s| s.span),
                        "packages.source is bundle, but no packages.bundle directory is given",
                    )
                    .expected("`bundle:` under `packages:` with the bundle directory")
                    .hint("add `bundle: /path/to/kubeforge-bundle` under `packages:`"),
                );
                PackageSource::Online
            }
        }
    }
}

pub use crate::inventory::MAX_HOSTS;

/// The largest inventory kubeforge reads.
pub const MAX_INVENTORY_BYTES: u64 = 4 << 20;

/// Parses and validates an inventory's text in one go (no date-dependent rules: see
/// [`load_on`]).
pub fn load(source: &str) -> Validated {
    load_on(source, None)
}

/// Parses and validates an inventory's text in one go; with `today`, a minor past its end of
/// life is a warning.
pub fn load_on(source: &str, today: Option<Date>) -> Validated {
    let (raw, mut parse_diagnostics) = crate::inventory::parse(source);
    let mut validated = validate_on(&raw, today);
    parse_diagnostics.append(&mut validated.diagnostics);
    crate::diag::sort(&mut parse_diagnostics);
    if parse_diagnostics.iter().any(Diagnostic::is_error) {
        validated.cluster = None;
    }
    validated.diagnostics = parse_diagnostics;
    validated
}

/// Counts of nodes by role, for summaries.
pub fn role_counts(cluster: &Cluster) -> BTreeMap<Role, usize> {
    let mut counts = BTreeMap::new();
    for node in &cluster.nodes {
        *counts.entry(node.role).or_insert(0) += 1;
    }
    counts
}
