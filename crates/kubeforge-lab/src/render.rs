//! Files the lab writes, rendered from the templates under `templates/` (pure, no I/O).

use std::net::Ipv4Addr;
use std::path::Path;

use crate::plan::{AddressPlan, DOMAIN, ENDPOINT_NAME, HostPlan};

pub const DNSMASQ_CONF: &str = include_str!("../templates/dnsmasq.conf");
pub const HOST0_NETWORK: &str = include_str!("../templates/host0.network");
pub const NETWORKD_READONLY_SYS: &str = include_str!("../templates/networkd-readonly-sys.conf");
pub const RESOLV_CONF: &str = include_str!("../templates/resolv.conf");
pub const SOURCES_LIST: &str = include_str!("../templates/sources.list");
pub const HOSTS: &str = include_str!("../templates/hosts");
pub const CGROUP_RW_UNIT: &str = include_str!("../templates/kubeforge-cgroup-rw.service");
pub const CGROUP_RW_SCRIPT: &str = include_str!("../templates/kubeforge-cgroup-rw");
pub const SSHD_CONF: &str = include_str!("../templates/sshd.conf");
pub const SYSCTL_NET_ONLY: &str = include_str!("../templates/systemd-sysctl-net-only.conf");
pub const KMSG_TMPFILES: &str = include_str!("../templates/kmsg-tmpfiles.conf");
pub const CLUSTER_YAML: &str = include_str!("../templates/cluster.yaml");
pub const SSH_CONFIG: &str = include_str!("../templates/ssh_config");
pub const SSH_CONFIG_HOST: &str = include_str!("../templates/ssh_config-host");

/// Replaces each `{{key}}` with its value; panics in tests if a placeholder is left over.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (key, value) in values {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    debug_assert!(!out.contains("{{"), "unfilled placeholder in:\n{out}");
    out
}

/// dnsmasq's configuration: every host name (short and fully-qualified) and `k8scp` -> VIP.
pub fn dnsmasq_conf(plan: &AddressPlan) -> String {
    let mut records = String::new();
    let mut record = |name: &str, addr: Ipv4Addr| {
        records.push_str(&format!("host-record={name}.{DOMAIN},{name},{addr}\n"));
    };
    for host in &plan.hosts {
        record(&host.name, host.address);
    }
    record(ENDPOINT_NAME, plan.vip);
    fill(
        DNSMASQ_CONF,
        &[
            ("domain", DOMAIN),
            ("bridge_ip", &plan.bridge_ip.to_string()),
            ("subnet", &plan.subnet.to_string()),
            ("records", records.trim_end()),
        ],
    )
}

/// systemd-networkd unit for a host's `host0` link.
pub fn host0_network(plan: &AddressPlan, host: &HostPlan) -> String {
    fill(
        HOST0_NETWORK,
        &[
            ("address", &host.address.to_string()),
            ("prefix_len", &plan.subnet.prefix_len().to_string()),
        ],
    )
}

pub fn resolv_conf(plan: &AddressPlan) -> String {
    fill(
        RESOLV_CONF,
        &[
            ("dns_server", &plan.bridge_ip.to_string()),
            ("domain", DOMAIN),
        ],
    )
}

pub fn sources_list(repo_host: Ipv4Addr, repo_port: u16) -> String {
    fill(
        SOURCES_LIST,
        &[
            ("repo_host", &repo_host.to_string()),
            ("repo_port", &repo_port.to_string()),
        ],
    )
}

pub fn etc_hosts(host: &HostPlan) -> String {
    fill(
        HOSTS,
        &[
            ("address", &host.address.to_string()),
            ("fqdn", &host.fqdn()),
            ("name", &host.name),
        ],
    )
}

/// A fake swap area that [`proc_swaps`] lists when a host has one.
pub const FAKE_SWAP: &str = "/kubeforge-lab.swap";

/// A host's own /proc/swaps: the header, and the fake swap area when `active` (the machine's
/// swap areas are the machine's; no host sees or turns them off).
pub fn proc_swaps(active: bool) -> String {
    let mut text = crate::sys::SWAPS_HEADER.to_owned();
    if active {
        text.push_str(&format!("{FAKE_SWAP:<40}file\t\t1048572\t\t0\t\t-2\n"));
    }
    text
}

/// One known_hosts line naming the host by its short and fully-qualified name (no address:
/// ssh reaches hosts by name, and checks the key under the name, see [`ssh_config`]).
/// `public_key` is the content of an OpenSSH `.pub` file (`type base64 [comment]`).
pub fn known_hosts_line(host: &HostPlan, public_key: &str) -> String {
    let mut fields = public_key.split_whitespace();
    let key_type = fields.next().unwrap_or_default();
    let key = fields.next().unwrap_or_default();
    format!("{},{} {key_type} {key}\n", host.name, host.fqdn())
}

/// The lab's ssh_config: a `Host` block per host, matching its short and fully-qualified
/// name, that reaches it at its address as root with the lab's key, checking its host key
/// strictly under its name in the lab's known_hosts.
pub fn ssh_config(
    plan: &AddressPlan,
    path: &Path,
    identity_file: &Path,
    known_hosts: &Path,
) -> String {
    let hosts: Vec<String> = plan
        .hosts
        .iter()
        .map(|host| {
            fill(
                SSH_CONFIG_HOST,
                &[
                    ("name", &host.name),
                    ("fqdn", &host.fqdn()),
                    ("address", &host.address.to_string()),
                    ("identity_file", &ssh_config_path(identity_file)),
                    ("known_hosts", &ssh_config_path(known_hosts)),
                ],
            )
        })
        .collect();
    fill(
        SSH_CONFIG,
        &[
            ("path", &path.display().to_string()),
            ("first", plan.hosts.first().map_or("", |h| h.name.as_str())),
            ("hosts", hosts.join("\n").trim_end()),
        ],
    )
}

/// A path as an ssh_config argument: `%` doubled (ssh expands `%` tokens in these paths),
/// double-quoted when it has white space.
fn ssh_config_path(path: &Path) -> String {
    let text = path.display().to_string().replace('%', "%%");
    if text.contains(char::is_whitespace) {
        format!("\"{text}\"")
    } else {
        text
    }
}

/// The inventory file `cluster.yaml` (kubeforge's own inventory format): hosts by name, as
/// an operator lists them, reached through the lab's ssh_config.
///
/// On a machine with cgroup v1 (whose kernel the hosts share) it pins Kubernetes 1.34, the
/// newest minor whose kubelet still starts on cgroup v1.
pub fn cluster_yaml(plan: &AddressPlan, ssh_config: &Path, cgroup_v1: bool) -> String {
    let mut hosts = String::new();
    for host in &plan.hosts {
        hosts.push_str(&format!("  - {}\n", host.name));
    }
    // No version here: a bundle given with this inventory must not be contradicted (its
    // version is the cluster's unless the inventory names one).
    let note = if cgroup_v1 {
        "# This machine runs cgroup v1 and the hosts share its kernel: kubelets of Kubernetes 1.35\n# and later refuse it. Install 1.34 or older: from an offline bundle (packages.bundle, whose\n# version is then the cluster's) or with kubernetes_version.\n"
    } else {
        ""
    };
    let yaml = fill(
        CLUSTER_YAML,
        &[
            ("hosts", &hosts),
            (
                "ssh_config",
                &yaml_scalar(&ssh_config.display().to_string()),
            ),
            ("domain", DOMAIN),
            ("dns_server", &plan.bridge_ip.to_string()),
        ],
    );
    format!("{yaml}{note}")
}

/// A path as a YAML scalar: plain when that is unambiguous, double-quoted otherwise.
fn yaml_scalar(s: &str) -> String {
    let plain = s.starts_with('/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c));
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::DEFAULT_SUBNET;

    fn plan() -> AddressPlan {
        AddressPlan::new(DEFAULT_SUBNET.parse().unwrap(), 2, 1).unwrap()
    }

    #[test]
    fn inventory_has_exactly_the_documented_schema() {
        let yaml = cluster_yaml(
            &plan(),
            Path::new("/var/lib/kubeforge/lab/ssh/config"),
            false,
        );
        let expected = "\
# kubeforge lab inventory (generated by `kubeforge lab up`)
hosts:
  - k8scp01
  - k8scp02
  - k8s01
ssh:
  config: /var/lib/kubeforge/lab/ssh/config
dns:
  domain: kubeforge.internal
  server: 10.213.0.1
calico:
  encapsulation: vxlan
";
        assert_eq!(yaml, expected);
        let cgroup_v1 = cluster_yaml(
            &plan(),
            Path::new("/var/lib/kubeforge/lab/ssh/config"),
            true,
        );
        assert!(cgroup_v1.starts_with(expected));
        assert!(cgroup_v1.contains("# This machine runs cgroup v1"));
        // A bundle the user brings decides the version: the lab must not name one.
        assert!(!cgroup_v1.contains("kubernetes_version:"), "{cgroup_v1}");
    }

    #[test]
    fn inventory_quotes_odd_paths() {
        let yaml = cluster_yaml(&plan(), Path::new("/tmp/my lab/ssh/config"), false);
        assert!(yaml.contains("  config: \"/tmp/my lab/ssh/config\"\n"));
    }

    #[test]
    fn ssh_config_reaches_each_host_by_name() {
        let text = ssh_config(
            &plan(),
            Path::new("/var/lib/kubeforge/lab/ssh/config"),
            Path::new("/var/lib/kubeforge/lab/ssh/id_ed25519"),
            Path::new("/var/lib/kubeforge/lab/ssh/known_hosts"),
        );
        assert!(text.starts_with("# kubeforge lab"));
        assert!(text.contains("ssh -F /var/lib/kubeforge/lab/ssh/config k8scp01\n"));
        let k8s01 = "\
Host k8s01 k8s01.kubeforge.internal
    HostName 10.213.0.21
    HostKeyAlias k8s01
    User root
    IdentityFile /var/lib/kubeforge/lab/ssh/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile /var/lib/kubeforge/lab/ssh/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
";
        assert!(text.ends_with(k8s01), "{text}");
        assert_eq!(text.matches("\nHost ").count(), 3);
        assert!(!text.contains("{{"));
    }

    #[test]
    fn ssh_config_paths_keep_spaces_and_percent_signs() {
        let text = ssh_config(
            &plan(),
            Path::new("/x/config"),
            Path::new("/my lab/id"),
            Path::new("/100%/known_hosts"),
        );
        assert!(text.contains("    IdentityFile \"/my lab/id\"\n"));
        assert!(text.contains("    UserKnownHostsFile /100%%/known_hosts\n"));
    }

    #[test]
    fn dnsmasq_serves_every_host_and_the_endpoint_only_on_the_bridge() {
        let conf = dnsmasq_conf(&plan());
        for line in [
            "listen-address=10.213.0.1",
            "bind-interfaces",
            "no-resolv",
            "local=/kubeforge.internal/",
            "auth-zone=kubeforge.internal,10.213.0.0/24",
            "host-record=k8scp01.kubeforge.internal,k8scp01,10.213.0.11",
            "host-record=k8scp02.kubeforge.internal,k8scp02,10.213.0.12",
            "host-record=k8s01.kubeforge.internal,k8s01,10.213.0.21",
            "host-record=k8scp.kubeforge.internal,k8scp,10.213.0.10",
        ] {
            assert!(
                conf.lines().any(|l| l == line),
                "missing {line:?} in\n{conf}"
            );
        }
        assert!(!conf.contains("{{"));
        assert!(!conf.lines().any(|l| l.starts_with("server=")));
    }

    #[test]
    fn host_files() {
        let plan = plan();
        let host = plan.host("k8scp02").unwrap();
        let network = host0_network(&plan, host);
        assert!(network.contains("Name=host0\n"));
        assert!(network.contains("Address=10.213.0.12/24\n"));
        assert!(!network.contains("Gateway"));
        assert_eq!(
            resolv_conf(&plan)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            vec!["nameserver 10.213.0.1", "search kubeforge.internal"]
        );
        assert!(
            sources_list(plan.bridge_ip, 8080)
                .contains("\ndeb [trusted=yes] http://10.213.0.1:8080 ./\n")
        );
        assert!(etc_hosts(host).contains("10.213.0.12\tk8scp02.kubeforge.internal k8scp02\n"));
    }

    #[test]
    fn a_hosts_swap_list_reads_as_proc_swaps() {
        let none = proc_swaps(false);
        assert!(none.starts_with("Filename") && none.lines().count() == 1);
        let swaps = crate::sys::parse_swaps(&proc_swaps(true));
        assert_eq!(
            swaps,
            vec![crate::sys::Swap {
                filename: FAKE_SWAP.into(),
                kind: "file".into(),
                priority: -2
            }]
        );
    }

    #[test]
    fn known_hosts_names_the_host_by_name_only() {
        let plan = plan();
        let line = known_hosts_line(
            plan.host("k8s01").unwrap(),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample root@k8s01\n",
        );
        assert_eq!(
            line,
            "k8s01,k8s01.kubeforge.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n"
        );
    }
}
