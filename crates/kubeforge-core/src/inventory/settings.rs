//! The cluster-wide settings an inventory may set: one table that both parsers, the
//! validator and the reference documentation read.

/// How a setting's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Free text (an SSH user name).
    Text,
    /// A file path on the machine kubeforge runs on.
    Path,
    /// A TCP port, 1-65535.
    Port,
    /// An IPv4 address.
    Ipv4,
    /// An IPv4 address, optionally with a port (`192.0.2.53` or `192.0.2.53:5353`).
    Ipv4Port,
    /// An IPv4 network in CIDR notation.
    Cidr,
    /// `true` or `false`.
    Bool,
    /// A Kubernetes version: `1.37` or `1.37.1`.
    Version,
    /// A DNS name (RFC 1123).
    DnsName,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
}

impl ValueKind {
    /// What a value of this kind looks like, for "expected" in diagnostics.
    pub fn describe(self) -> String {
        match self {
            ValueKind::Text => "text".into(),
            ValueKind::Path => "a file path".into(),
            ValueKind::Port => "a port number from 1 to 65535".into(),
            ValueKind::Ipv4 => "an IPv4 address such as 192.0.2.10".into(),
            ValueKind::Ipv4Port => "an IPv4 address, optionally with :PORT".into(),
            ValueKind::Cidr => "an IPv4 network such as 10.244.0.0/16".into(),
            ValueKind::Bool => "true or false".into(),
            ValueKind::Version => "a Kubernetes version such as \"1.37\" or \"1.37.1\"".into(),
            ValueKind::DnsName => "a DNS name such as local.net".into(),
            ValueKind::Choice(words) => format!("one of {}", words.join(", ")),
        }
    }
}

/// One setting: its path in `cluster.yaml`, its variable in an Ansible INI inventory's
/// `[all:vars]`, how its value is read, its default and what it does.
#[derive(Debug, Clone, Copy)]
pub struct SettingDef {
    pub key: &'static str,
    pub ini: &'static [&'static str],
    pub kind: ValueKind,
    pub default: &'static str,
    pub doc: &'static str,
}

pub const ENCAPSULATIONS: &[&str] = &[
    "vxlan",
    "ipip",
    "vxlan-cross-subnet",
    "ipip-cross-subnet",
    "none",
];
pub const CNIS: &[&str] = &["calico", "flannel", "none"];
pub const HOST_KEY_CHECKING: &[&str] = &["strict", "accept-new"];
pub const PACKAGE_SOURCES: &[&str] = &["online", "bundle"];
pub const ROLES: &[&str] = &["control-plane", "worker"];

pub const SETTINGS: &[SettingDef] = &[
    SettingDef {
        key: "ssh.user",
        ini: &["ansible_user", "ansible_ssh_user"],
        kind: ValueKind::Text,
        default: "from ~/.ssh/config, else your login name",
        doc: "User kubeforge logs in as; sudo -n is used when it is not root.",
    },
    SettingDef {
        key: "ssh.port",
        ini: &["ansible_port", "ansible_ssh_port"],
        kind: ValueKind::Port,
        default: "from ~/.ssh/config, else 22",
        doc: "SSH port of every host.",
    },
    SettingDef {
        key: "ssh.identity_file",
        ini: &["ansible_ssh_private_key_file"],
        kind: ValueKind::Path,
        default: "from ~/.ssh/config and the SSH agent",
        doc: "Private key to log in with.",
    },
    SettingDef {
        key: "ssh.known_hosts",
        ini: &["kubeforge_known_hosts"],
        kind: ValueKind::Path,
        default: "ssh's own (~/.ssh/known_hosts)",
        doc: "known_hosts file that host keys are checked against.",
    },
    SettingDef {
        key: "ssh.config",
        ini: &["kubeforge_ssh_config"],
        kind: ValueKind::Path,
        default: "ssh's own (~/.ssh/config)",
        doc: "ssh_config file given to ssh (ssh -F) in place of ~/.ssh/config; its Host blocks match the names kubeforge connects to.",
    },
    SettingDef {
        key: "ssh.host_key_checking",
        ini: &["kubeforge_host_key_checking"],
        kind: ValueKind::Choice(HOST_KEY_CHECKING),
        default: "strict",
        doc: "strict refuses unknown hosts, as ssh does; accept-new records the key of a host seen for the first time.",
    },
    SettingDef {
        key: "dns.domain",
        ini: &["kubeforge_domain"],
        kind: ValueKind::DnsName,
        default: "the domain of the host names if they are fully qualified, else the resolver's search list",
        doc: "The hosts' DNS domain, in which the VIP record is looked up.",
    },
    SettingDef {
        key: "dns.server",
        ini: &["kubeforge_dns_server"],
        kind: ValueKind::Ipv4Port,
        default: "the system resolver",
        doc: "Ask this DNS server (address, optionally :port) instead of the system resolver.",
    },
    SettingDef {
        key: "dns.vip_record",
        ini: &["kubeforge_vip_record"],
        kind: ValueKind::DnsName,
        default: "k8scp",
        doc: "Name of the A record that points at the virtual IP; also the name in controlPlaneEndpoint.",
    },
    SettingDef {
        key: "vip",
        ini: &["kubeforge_vip"],
        kind: ValueKind::Ipv4,
        default: "the address of the dns.vip_record record",
        doc: "Virtual IP that keepalived holds on one control-plane node.",
    },
    SettingDef {
        key: "network",
        ini: &["kubeforge_network"],
        kind: ValueKind::Cidr,
        default: "the /24 that holds the hosts' addresses",
        doc: "The hosts' subnet: the VIP must lie in it, pod and service CIDRs must not overlap it.",
    },
    SettingDef {
        key: "endpoint_port",
        ini: &["kubeforge_endpoint_port"],
        kind: ValueKind::Port,
        default: "8443",
        doc: "Port HAProxy listens on in front of the kube-apiservers (6443 is taken by kube-apiserver itself).",
    },
    SettingDef {
        key: "kubernetes_version",
        ini: &["kubeforge_kubernetes_version"],
        kind: ValueKind::Version,
        default: crate::version::DEFAULT_MINOR_STR,
        doc: "Kubernetes minor (newest patch) or exact patch version; packages are pinned and held.",
    },
    SettingDef {
        key: "pod_cidr",
        ini: &["kubeforge_pod_cidr"],
        kind: ValueKind::Cidr,
        default: "192.168.0.0/16, or 10.244.0.0/16 or 172.20.0.0/16 if that overlaps the hosts",
        doc: "Pod network, given to kubeadm (podSubnet) and Calico alike.",
    },
    SettingDef {
        key: "service_cidr",
        ini: &["kubeforge_service_cidr"],
        kind: ValueKind::Cidr,
        default: "10.96.0.0/12",
        doc: "Service network (kubeadm serviceSubnet).",
    },
    SettingDef {
        key: "cni",
        ini: &["kubeforge_cni"],
        kind: ValueKind::Choice(CNIS),
        default: "calico",
        doc: "The pod network: Calico through the Tigera operator, flannel (VXLAN), or none (install your own; nodes stay NotReady until you do).",
    },
    SettingDef {
        key: "calico.encapsulation",
        ini: &["kubeforge_calico_encapsulation"],
        kind: ValueKind::Choice(ENCAPSULATIONS),
        default: "vxlan",
        doc: "How Calico carries pod traffic between nodes; vxlan works where IPIP is unavailable.",
    },
    SettingDef {
        key: "control_plane_workloads",
        ini: &["kubeforge_control_plane_workloads"],
        kind: ValueKind::Bool,
        default: "false",
        doc: "Remove the node-role.kubernetes.io/control-plane taint so pods run on control-plane nodes.",
    },
    SettingDef {
        key: "packages.source",
        ini: &["kubeforge_package_source"],
        kind: ValueKind::Choice(PACKAGE_SOURCES),
        default: "online",
        doc: "online: Docker's and the Kubernetes apt repositories; bundle: an offline bundle directory.",
    },
    SettingDef {
        key: "packages.bundle",
        ini: &["kubeforge_bundle"],
        kind: ValueKind::Path,
        default: "none",
        doc: "Offline bundle directory, used when packages.source is bundle.",
    },
];

/// Keys of a host entry in `cluster.yaml`.
pub const HOST_KEYS: &[&str] = &[
    "name",
    "address",
    "ip",
    "role",
    "user",
    "port",
    "identity_file",
];

/// Host variables of an Ansible INI inventory that kubeforge reads, and the host key each sets.
pub const INI_HOST_VARS: &[(&str, &str)] = &[
    ("ansible_host", "address"),
    ("ansible_ssh_host", "address"),
    ("ansible_user", "user"),
    ("ansible_ssh_user", "user"),
    ("ansible_port", "port"),
    ("ansible_ssh_port", "port"),
    ("ansible_ssh_private_key_file", "identity_file"),
    ("kubeforge_role", "role"),
    // kubespray's: the address the node's cluster services use, and the one others reach it by.
    ("ip", "ip"),
    ("access_ip", "access_ip"),
];

pub fn setting(key: &str) -> Option<&'static SettingDef> {
    SETTINGS.iter().find(|s| s.key == key)
}

pub fn setting_for_ini(var: &str) -> Option<&'static SettingDef> {
    SETTINGS.iter().find(|s| s.ini.contains(&var))
}

/// Top-level and section keys of `cluster.yaml`, for "did you mean" and unknown-key checks.
pub fn children_of(prefix: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in SETTINGS {
        let rest = if prefix.is_empty() {
            Some(s.key)
        } else {
            s.key.strip_prefix(prefix).and_then(|r| r.strip_prefix('.'))
        };
        if let Some(rest) = rest {
            let head = rest.split('.').next().unwrap_or(rest);
            if !out.contains(&head) {
                out.push(head);
            }
        }
    }
    if prefix.is_empty() {
        out.insert(0, "hosts");
        out.push("apiVersion");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_list_their_keys() {
        assert_eq!(
            children_of("ssh"),
            [
                "user",
                "port",
                "identity_file",
                "known_hosts",
                "config",
                "host_key_checking"
            ]
        );
        let top = children_of("");
        assert_eq!(top[0], "hosts");
        assert!(top.contains(&"ssh") && top.contains(&"vip") && top.contains(&"calico"));
        assert!(!top.contains(&"user"));
    }

    #[test]
    fn every_setting_has_an_ini_name() {
        for s in SETTINGS {
            assert!(!s.ini.is_empty(), "{}", s.key);
            assert_eq!(setting_for_ini(s.ini[0]).map(|d| d.key), Some(s.key));
        }
    }
}
