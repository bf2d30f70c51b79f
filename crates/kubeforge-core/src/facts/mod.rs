//! Host facts: one read-only shell script per host gathers everything the steps need in a
//! single round trip, and pure functions parse its output.
//!
//! The script prints sections headed `@@name [argument]`. Every path, unit and key in it comes
//! from kubeforge's own steps and is quoted; nothing from the inventory reaches it.
//!
//! Sealed files ([`Read::Masked`], [`Read::Hash`]) never leave the host whole: the host
//! returns their hash, and either their content with every secret value masked (by the same
//! rule as [`crate::mask::mask_line_values`]) or no content at all. Values kubeforge needs from
//! such a file (the VRRP password to keep) are asked for by name ([`FactQuery::extract`]).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde::Serialize;

use crate::shell::quote;

pub mod cluster;
#[cfg(test)]
mod tests;

pub use cluster::{ClusterFacts, DaemonSetStatus, EtcdMember, NodeStatus, PodStatus};

/// What shows that a module's feature is there, also when it is built into the kernel (no
/// /sys/module entry then, and in a container none at all).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Probe {
    /// This path exists (`/proc/sys/net/bridge/bridge-nf-call-iptables` for br_netfilter).
    Path(String),
    /// The kernel knows this file system (/proc/filesystems; `overlay`).
    Filesystem(String),
}

/// Where the host records the sha256 of what kubeforge put there, with the file's size and
/// modification time: reading it is cheaper than hashing hundreds of megabytes every run.
pub const DIGESTS: &str = "/var/lib/kubeforge/digests";

/// How much of a file the host returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Read {
    /// The whole content (files without secrets), for diffs.
    #[default]
    Content,
    /// The content with the value of every secret-looking line masked on the host.
    Masked,
    /// Metadata and hash only (keys, kubeconfigs, join configurations).
    Hash,
}

/// What to find out about a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactQuery {
    pub packages: BTreeSet<String>,
    /// Files and how much of each to return (the most guarded reading wins when merged).
    pub files: BTreeMap<String, Read>,
    /// Values read from files by key (`auth_pass` in keepalived.conf): secrets.
    pub extract: BTreeMap<String, BTreeSet<String>>,
    pub units: BTreeSet<String>,
    pub sysctls: BTreeSet<String>,
    /// Kernel modules, each with what shows its feature is there (a module built into the
    /// kernel shows no /sys/module entry).
    pub modules: BTreeMap<String, Option<Probe>>,
    /// Keyring files whose key fingerprints to read.
    pub keyrings: BTreeSet<String>,
    /// Swap configured to come back at boot (fstab entries, swap units), beyond /proc/swaps.
    pub swap_config: bool,
    /// The TCP ports something listens on, and which program.
    pub listening: bool,
    /// The machine facts preflight judges (CPUs, memory, cgroups, clock, identity, ...).
    pub system: bool,
    /// Names to resolve on the host, as its own resolver answers.
    pub resolve: BTreeSet<String>,
    /// Whether `address:port` accepts TCP connections from the host.
    pub probes: BTreeSet<(String, u16)>,
    /// Files whose sha256 to give (from kubeforge's record when size and time match).
    pub digests: BTreeSet<String>,
    /// The images in containerd's `k8s.io` namespace.
    pub images: bool,
    /// What the installed kubeadm says it needs (`kubeadm config images list` for its own
    /// version), and its version.
    pub kubeadm: bool,
    /// The cluster as the API sees it (nodes, static pods, etcd), read with the admin
    /// kubeconfig on this node (its etcd pod is `etcd-<host name>`: preflight holds host
    /// names equal to node names).
    pub cluster: bool,
    /// With `cluster`: one control-plane node's view is enough (the API and etcd answer every
    /// node the same). The engine then asks it of the first control-plane node it reaches,
    /// and of the others only when that one does not read a live cluster. Merged, a query
    /// stays `cluster_once` only when every query that asks for the cluster says so.
    pub cluster_once: bool,
    /// With `cluster`: the pods of every namespace, not only kube-system's (a drain's).
    pub all_pods: bool,
    /// With `cluster`: which etcd member leads (`etcdctl endpoint status`, one more call).
    pub etcd_leader: bool,
    /// The state of each kube-apiserver in this node's HAProxy (its admin socket).
    pub haproxy: bool,
    /// When the certificates kubeadm manages here expire ([`CERT_FILES`], [`CERT_KUBECONFIGS`]).
    pub certs: bool,
    /// `kubeadm upgrade plan VERSION` with the installed kubeadm (read-only: it asks the API
    /// and runs kubeadm's upgrade preflight): whether kubeadm agrees to an upgrade.
    pub upgrade_plan: Option<String>,
    /// A pkgs.k8s.io repository (`https://pkgs.k8s.io/core:/stable:/v1.37/deb/`) whose
    /// kubeadm versions to read, as this host reaches it (an upgrade's target, checked).
    pub repository: Option<String>,
    /// Whether the API knows this node, asked with the node's own kubelet credentials
    /// (`/etc/kubernetes/kubelet.conf`), which is how a worker knows it joined.
    pub registered: Option<String>,
    /// Files in users' home directories: `(user, path relative to the home)`; the user
    /// [`LOGIN_USER`] stands for the user kubeforge logs in as.
    pub home_files: BTreeSet<(String, String)>,
    /// What pod networks and kube-proxy left ([`NetworkLeftovers`]).
    pub leftovers: bool,
    /// The kube-system containers the container runtime runs here (`crictl ps`).
    pub static_pods: bool,
    /// The join credentials the cluster holds, by name (bootstrap tokens' Secrets and
    /// `kubeadm-certs`), read with the admin kubeconfig on this node.
    pub credentials: bool,
    /// kubeadm configurations with a token or a key that a killed run left on this host.
    pub join_files: bool,
}

/// In [`FactQuery::home_files`]: the user kubeforge logs in as (before sudo).
pub const LOGIN_USER: &str = "";

impl FactQuery {
    pub fn merge(&mut self, other: &FactQuery) {
        self.packages.extend(other.packages.iter().cloned());
        for (path, read) in &other.files {
            let entry = self.files.entry(path.clone()).or_default();
            *entry = (*entry).max(*read);
        }
        for (path, keys) in &other.extract {
            self.extract
                .entry(path.clone())
                .or_default()
                .extend(keys.iter().cloned());
        }
        self.units.extend(other.units.iter().cloned());
        self.sysctls.extend(other.sysctls.iter().cloned());
        for (module, probe) in &other.modules {
            let entry = self.modules.entry(module.clone()).or_default();
            if entry.is_none() {
                *entry = probe.clone();
            }
        }
        self.keyrings.extend(other.keyrings.iter().cloned());
        self.swap_config |= other.swap_config;
        self.listening |= other.listening;
        self.system |= other.system;
        self.resolve.extend(other.resolve.iter().cloned());
        self.probes.extend(other.probes.iter().cloned());
        self.digests.extend(other.digests.iter().cloned());
        self.images |= other.images;
        self.kubeadm |= other.kubeadm;
        self.cluster_once = match (self.cluster, other.cluster) {
            (true, true) => self.cluster_once && other.cluster_once,
            (true, false) => self.cluster_once,
            (false, true) => other.cluster_once,
            (false, false) => false,
        };
        self.cluster |= other.cluster;
        self.all_pods |= other.all_pods;
        self.etcd_leader |= other.etcd_leader;
        self.haproxy |= other.haproxy;
        self.certs |= other.certs;
        if other.upgrade_plan.is_some() {
            self.upgrade_plan.clone_from(&other.upgrade_plan);
        }
        if other.repository.is_some() {
            self.repository.clone_from(&other.repository);
        }
        if other.registered.is_some() {
            self.registered.clone_from(&other.registered);
        }
        self.home_files.extend(other.home_files.iter().cloned());
        self.leftovers |= other.leftovers;
        self.static_pods |= other.static_pods;
        self.credentials |= other.credentials;
        self.join_files |= other.join_files;
    }

    pub fn file(&mut self, path: &str, read: Read) -> &mut Self {
        let entry = self.files.entry(path.to_string()).or_default();
        *entry = (*entry).max(read);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFact {
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub size: u64,
    /// Last modification, seconds since the epoch (host clock).
    pub mtime: i64,
    pub sha256: String,
    /// The content, or for a [`Read::Masked`] file the masked content; `None` for
    /// [`Read::Hash`] files and files over 1 MiB.
    #[serde(skip)]
    pub content: Option<Vec<u8>>,
    /// Values asked for with [`FactQuery::extract`] (secrets: never serialised).
    #[serde(skip)]
    pub extracted: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitFact {
    /// loaded, not-found, masked, ...
    pub load: String,
    /// active, reloading, inactive, failed, activating, deactivating.
    pub active: String,
    /// running, exited, dead, auto-restart, start, ...
    pub sub: String,
    /// enabled, disabled, static, masked, ... (empty when the unit has no unit file).
    pub file_state: String,
    /// When the unit last entered the active state (seconds since the epoch).
    pub active_since: Option<i64>,
}

impl UnitFact {
    /// What systemd says of a unit without a unit file.
    pub fn not_found() -> UnitFact {
        UnitFact {
            load: "not-found".to_string(),
            active: "inactive".to_string(),
            sub: "dead".to_string(),
            ..UnitFact::default()
        }
    }
    pub fn is_enabled(&self) -> bool {
        matches!(
            self.file_state.as_str(),
            "enabled" | "enabled-runtime" | "static" | "alias" | "generated" | "transient"
        )
    }
    /// Running now: `activating` is not running (a unit that crashes and is restarted under
    /// `Restart=always` sits in activating/auto-restart).
    pub fn is_running(&self) -> bool {
        matches!(self.active.as_str(), "active" | "reloading")
    }
    pub fn is_crash_looping(&self) -> bool {
        self.active == "activating" && self.sub == "auto-restart"
    }
    pub fn exists(&self) -> bool {
        !self.load.is_empty() && self.load != "not-found"
    }
    pub fn is_masked(&self) -> bool {
        self.load == "masked" || self.file_state == "masked"
    }
    /// The state for messages: `active`, `activating (auto-restart)`, ...
    pub fn state(&self) -> String {
        if self.sub.is_empty() || self.active == "active" {
            self.active.clone()
        } else {
            format!("{} ({})", self.active, self.sub)
        }
    }
}

/// Swap now (/proc/swaps) and what brings it back at boot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SwapFacts {
    /// Active swap devices or files.
    pub active: Vec<String>,
    /// Uncommented /etc/fstab entries of type swap.
    pub fstab: Vec<String>,
    /// Swap units that are not masked, with their active state.
    pub units: BTreeMap<String, String>,
}

impl SwapFacts {
    pub fn is_active(&self) -> bool {
        !self.active.is_empty()
    }
}

/// Everything known about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// Left out of this run on purpose (`apply --skip`): not contacted, nothing of it known,
    /// nothing of it changed, in the cluster or on the host.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// /etc/os-release.
    pub os: BTreeMap<String, String>,
    /// The user commands run as (0 once become-root worked).
    pub uid: u32,
    /// The user kubeforge logs in as (`$SUDO_USER` under sudo).
    pub login: String,
    /// dpkg was interrupted (a run killed mid-install): `dpkg --configure -a` is due.
    pub dpkg_interrupted: bool,
    /// Installed packages asked about, with their versions.
    pub packages: BTreeMap<String, String>,
    pub holds: BTreeSet<String>,
    pub swap: SwapFacts,
    /// `None`: no such sysctl on this kernel (its module is not loaded, or it does not exist).
    pub sysctls: BTreeMap<String, Option<String>>,
    /// `None`: the file does not exist.
    pub files: BTreeMap<String, Option<FileFact>>,
    pub units: BTreeMap<String, UnitFact>,
    /// When kubeforge last restarted or reloaded each unit (seconds since the epoch).
    pub stamps: BTreeMap<String, i64>,
    /// Kernel modules asked about: loaded or built in.
    pub modules: BTreeMap<String, bool>,
    /// Key fingerprints in keyring files (empty: no such file or no key in it).
    pub keyrings: BTreeMap<String, Vec<String>>,
    /// IPv4 addresses by interface (`ip -o -4 addr`).
    pub addresses: Vec<Address>,
    /// TCP ports something listens on (when asked), with the program holding each.
    pub listening: BTreeMap<u16, String>,
    /// What preflight judges (when asked).
    pub system: SystemFacts,
    /// Names resolved on the host (IPv4 answers; empty: does not resolve).
    pub resolved: BTreeMap<String, Vec<std::net::Ipv4Addr>>,
    /// TCP probes from the host: `(address, port)` → accepted.
    #[serde(serialize_with = "probes_by_target")]
    pub probes: BTreeMap<(String, u16), bool>,
    /// sha256 of files asked for (`None`: no such file).
    pub digests: BTreeMap<String, Option<String>>,
    /// Images in containerd's `k8s.io` namespace (when asked).
    pub images: BTreeSet<String>,
    /// The installed kubeadm's version (`v1.37.1`) and the images it needs.
    pub kubeadm_version: Option<String>,
    pub kubeadm_images: Vec<String>,
    /// What kubeadm has already done here.
    pub kubeadm: KubeadmFacts,
    /// The cluster as the API sees it (when asked, and this node has the admin kubeconfig).
    pub cluster: Option<ClusterFacts>,
    /// The API knows this node (`None`: not asked, or no kubelet credentials here; `Some(false)`:
    /// the API did not confirm it, or did not answer).
    pub registered: Option<bool>,
    /// This node as the API sees it, read with its kubelet's credentials (with
    /// [`FactQuery::registered`]): how a worker knows its kubelet's version and readiness.
    pub own_node: Option<cluster::NodeStatus>,
    /// Files in users' home directories (`None`: no such file or user); the login user's
    /// under [`LOGIN_USER`].
    #[serde(serialize_with = "home_files_by_path")]
    pub home_files: BTreeMap<(String, String), Option<HomeFile>>,
    /// What pod networks and kube-proxy left (when asked).
    pub leftovers: NetworkLeftovers,
    /// The kube-system containers running here, by name (`etcd`, `kube-apiserver`, ...), as
    /// the container runtime tells: the static pods, whether or not the API lists them yet
    /// (`None`: not asked, or crictl cannot tell).
    pub static_pods: Option<BTreeSet<String>>,
    /// What `kubeadm upgrade plan` answered ([`FactQuery::upgrade_plan`]).
    pub upgrade_plan: Option<UpgradePlan>,
    /// The kubeadm versions the asked repository offers ([`FactQuery::repository`]), or why
    /// it could not be read.
    pub repository: Option<Result<Vec<String>, String>>,
    /// Each kube-apiserver in this node's HAProxy, by server name (`None`: not asked, or
    /// HAProxy's admin socket did not answer).
    pub haproxy: Option<BTreeMap<String, Backend>>,
    /// The certificates kubeadm manages here and when each expires (`None`: not asked; `Err`:
    /// the section could not be read).
    pub certs: Option<Result<Vec<CertExpiry>, String>>,
    /// The kube-system Secrets that let a node join: `bootstrap-token-<id>` and `kubeadm-certs`
    /// (`None`: not asked, no admin kubeconfig here, or the API did not answer). Names only:
    /// their data never leaves the host.
    pub credentials: Option<Vec<String>>,
    /// Join configurations a killed run left ([`JOIN_FILES`]).
    pub join_files: Vec<String>,
}

/// Where the join configurations (with a bootstrap token or a certificate key) live while
/// `kubeadm` reads them: removed when it ends, and by the next run if a run was killed.
pub const JOIN_FILES: &[&str] = &["/etc/kubeforge/.join.", "/etc/kubeforge/.upload-certs."];

/// Whether `name` is a Secret that lets a node join the cluster.
pub fn is_join_credential(name: &str) -> bool {
    name == "kubeadm-certs"
        || name.strip_prefix("bootstrap-token-").is_some_and(|id| {
            id.len() == 6
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Probes keyed `address:port` (JSON keys are text).
fn probes_by_target<S: serde::Serializer>(
    probes: &BTreeMap<(String, u16), bool>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(
        probes
            .iter()
            .map(|((a, p), open)| (format!("{a}:{p}"), open)),
    )
}

/// Home files keyed `~user/path` (`~/path` for the login user).
fn home_files_by_path<S: serde::Serializer>(
    files: &BTreeMap<(String, String), Option<HomeFile>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(files.iter().map(|((u, rel), f)| (format!("~{u}/{rel}"), f)))
}

/// A file in a user's home directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HomeFile {
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub sha256: String,
    /// The first `server:` of a kubeconfig (empty: none).
    pub server: String,
}

/// What a pod network and kube-proxy leave on a node: CNI configurations, network
/// interfaces, packet filter rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkLeftovers {
    /// Files in /etc/cni/net.d.
    pub cni_configs: Vec<String>,
    /// Interfaces of pod networks (cni0, flannel.1, vxlan.calico, tunl0, cali*, ...).
    pub links: Vec<String>,
    /// iptables/ip6tables rules and chains of Kubernetes, Calico, flannel and CNI plugins.
    pub rules: usize,
    /// nftables tables of kube-proxy or Calico.
    pub nft_tables: Vec<String>,
}

impl NetworkLeftovers {
    pub fn is_empty(&self) -> bool {
        self.cni_configs.is_empty()
            && self.links.is_empty()
            && self.rules == 0
            && self.nft_tables.is_empty()
    }
}

/// Interfaces that pod networks make (shell `case` patterns).
pub const POD_NETWORK_LINKS: &str =
    "cni0|flannel.*|vxlan.calico|vxlan-v6.calico|tunl0|cali*|kube-ipvs0|kube-bridge";
/// Packet filter chains and rules of Kubernetes and the pod networks (extended regex).
pub const POD_NETWORK_RULES: &str = "KUBE-|cali-|cali:|FLANNEL|flannel|CNI-";

/// The machine itself, for preflight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SystemFacts {
    /// `dpkg --print-architecture`: amd64, arm64, ...
    pub arch: String,
    pub cpus: u32,
    pub memory_mb: u64,
    /// The unified cgroup v2 hierarchy is mounted on /sys/fs/cgroup.
    pub cgroup_v2: bool,
    /// `systemd-detect-virt -c`: none, systemd-nspawn, lxc, ...
    pub container: String,
    pub hostname: String,
    /// /sys/class/dmi/id/product_uuid (empty where the machine has no DMI).
    pub product_uuid: String,
    pub machine_id: String,
    /// MAC addresses of the host's ethernet interfaces.
    pub macs: Vec<String>,
    /// Time synchronisation services running.
    pub time_sync: Vec<String>,
    /// The host's clock when the script ran (milliseconds since the epoch).
    pub clock_ms: Option<i64>,
    /// The file system that holds containerd's images and the kubelet's data
    /// (`/var/lib/containerd`, else `/var/lib`): its mount point, size and free space for
    /// unprivileged users (as the kubelet counts it), in MB; size 0 when unknown.
    pub disk: Disk,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Disk {
    pub mount: String,
    pub size_mb: u64,
    pub available_mb: u64,
}

/// What `kubeadm upgrade plan` answered: its exit status and the end of its output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpgradePlan {
    pub status: i32,
    pub tail: Vec<String>,
}

impl UpgradePlan {
    /// The preflight checks it reported as errors (`[ERROR CoreDNSMigration]: ...`).
    pub fn errors(&self) -> Vec<&str> {
        self.tail
            .iter()
            .filter_map(|l| l.split("[ERROR ").nth(1))
            .filter_map(|rest| rest.split(']').next())
            .collect()
    }
}

/// A server of HAProxy's `kube-apiserver` backend, as its admin socket tells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// Its health checks pass (operational state running).
    pub up: bool,
    /// Put in maintenance by an operator (admin state: forced maintenance).
    pub maint: bool,
}

/// What HAProxy's unchecked backup server for a node's kube-apiserver is called after the
/// node (`k8scp01_fallback`): no node name ends so, as an underscore is not in one.
pub const HAPROXY_FALLBACK: &str = "_fallback";

/// `show servers state kube-apiserver`: each server's name, operational and admin state (the
/// fallbacks left out: they are not checked, and stand for the same kube-apiservers).
fn parse_haproxy(body: &[&str]) -> BTreeMap<String, Backend> {
    body.iter()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (name, op, admin) = (f.get(3)?, f.get(5)?, f.get(6)?);
            if name.ends_with(HAPROXY_FALLBACK) {
                return None;
            }
            let admin: u32 = admin.parse().ok()?;
            Some((
                name.to_string(),
                Backend {
                    up: *op == "2",
                    maint: admin & 1 == 1,
                },
            ))
        })
        .collect()
}

/// The certificate files kubeadm writes on a control-plane node (`kubeadm certs
/// check-expiration` lists the same, and the certificate authorities').
pub const CERT_FILES: &[&str] = &[
    "/etc/kubernetes/pki/*.crt",
    "/etc/kubernetes/pki/etcd/*.crt",
];

/// The kubeconfigs whose client certificate kubeadm embeds and renews (the kubelet's own
/// rotates by itself).
pub const CERT_KUBECONFIGS: &[&str] = &[
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
];

/// A certificate on a host and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertExpiry {
    pub path: String,
    /// Its `notAfter`, in seconds since 1970 (UTC); `None`: the file is not a certificate.
    pub not_after: Option<i64>,
}

/// The `digest` sections of `paths`, in one pass: one `stat` of them all, and one `awk` that
/// takes each unchanged file's SHA-256 from [`DIGESTS`] (by path, size and modification time)
/// and prints `?PATH` for the others, which alone are hashed. A path that is not a regular
/// file is `missing`.
fn digests_script(paths: &BTreeSet<String>) -> String {
    let list: Vec<String> = paths.iter().map(|p| quote(p)).collect();
    let list = list.join(" ");
    format!(
        r#"stat -L -c '%s %Y %n' -- {list} 2>/dev/null | awk -v d={digests} '
BEGIN {{
  for (i = 1; i < ARGC; i++) want[i] = ARGV[i]
  n = ARGC - 1; ARGC = 1
  while ((getline l < d) > 0) {{ split(l, f, " "); p = l; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", p); known[p " " f[2] " " f[3]] = f[1] }}
}}
{{ p = $0; sub(/^[^ ]+ [^ ]+ /, "", p); k = p " " $1 " " $2; hash[p] = (k in known) ? known[k] : "?" }}
END {{ for (i = 1; i <= n; i++) {{ p = want[i]; print "@@digest " p; if (!(p in hash)) print "missing"; else if (hash[p] == "?") print "?" p; else print hash[p] }} }}' {list} | while IFS= read -r l; do case $l in '?'*) if [ -f "${{l#?}}" ]; then sha256sum < "${{l#?}}" | cut -d' ' -f1; else echo missing; fi;; *) printf '%s
' "$l";; esac; done
"#,
        digests = quote(DIGESTS)
    )
}

/// A certificate's `notAfter` in seconds since 1970, from its PEM (the first `CERTIFICATE`
/// block), read as DER only as far as its validity (RFC 5280, 4.1): the version, serial
/// number, signature algorithm and issuer skipped, then `notBefore` and `notAfter`, each a
/// UTCTime or a GeneralizedTime. (By hand: a certificate parser would add more crates than
/// the budget allows, for one date.)
pub fn pem_not_after(pem: &[u8]) -> Option<i64> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN CERTIFICATE-----")
        .skip(1)
        .take_while(|l| *l != "-----END CERTIFICATE-----")
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let (certificate, _) = der_element(&der, |t| t == 0x30)?;
    let (mut tbs, _) = der_element(certificate, |t| t == 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = der_element(tbs, |t| t == 0xa0)?.1;
    }
    for tag in [0x02, 0x30, 0x30] {
        tbs = der_element(tbs, |t| t == tag)?.1;
    }
    let (validity, _) = der_element(tbs, |t| t == 0x30)?;
    let is_time = |t: u8| t == 0x17 || t == 0x18;
    let (_, rest) = der_element(validity, is_time)?;
    let (time, _) = der_element(rest, is_time)?;
    let text = std::str::from_utf8(time).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match (rest[0], text.len()) {
        // UTCTime: YYMMDDHHMMSS, years 1950 to 2049.
        (0x17, 12) => {
            let yy: u32 = text[..2].parse().ok()?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        (0x18, 14) => text.to_string(),
        _ => return None,
    };
    let date =
        crate::version::Date::parse(&format!("{}-{}-{}", &full[..4], &full[4..6], &full[6..8]))?;
    let n = |at: usize| full[at..at + 2].parse::<i64>().ok();
    let (h, m, sec) = (n(8)?, n(10)?, n(12)?);
    (h < 24 && m < 60 && sec < 61).then(|| date.unix_days() * 86_400 + h * 3600 + m * 60 + sec)
}

/// One DER element at the start of `data` whose tag passes `tag`: its contents and what
/// follows it.
fn der_element(data: &[u8], tag: impl Fn(u8) -> bool) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = data.split_first()?;
    if !tag(t) {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The `certs` section: each certificate file's path and its certificate blocks (only what
/// lies between `BEGIN CERTIFICATE` and `END CERTIFICATE` leaves the host), and each
/// kubeconfig's embedded client certificate (only that line: its key stays). Read by the
/// shell alone: no program is started per file.
fn certs_script(files: &[&str], kubeconfigs: &[&str]) -> String {
    format!(
        "echo @@certs; for f in {}; do [ -f \"$f\" ] || continue; echo \"file $f\"; p=; while IFS= read -r l || [ -n \"$l\" ]; do case $l in '-----BEGIN CERTIFICATE-----') p=1;; esac; [ -n \"$p\" ] && echo \"$l\"; case $l in '-----END CERTIFICATE-----') p=;; esac; done < \"$f\"; done; for f in {}; do [ -f \"$f\" ] || continue; v=; while IFS= read -r l; do case $l in *client-certificate-data:*) v=${{l#*client-certificate-data:}}; break;; esac; done < \"$f\"; echo \"kubeconfig $f $v\"; done; true\n",
        files.join(" "),
        kubeconfigs.join(" ")
    )
}

fn parse_certs(body: &[&str]) -> Result<Vec<CertExpiry>, String> {
    use base64::Engine as _;
    let mut out: Vec<CertExpiry> = Vec::new();
    // The PEM of the file being read.
    let mut pem: Option<(String, String)> = None;
    let finish = |pem: &mut Option<(String, String)>, out: &mut Vec<CertExpiry>| {
        if let Some((path, text)) = pem.take() {
            out.push(CertExpiry {
                path,
                not_after: pem_not_after(text.as_bytes()),
            });
        }
    };
    for line in body {
        if let Some(path) = line.strip_prefix("file ") {
            finish(&mut pem, &mut out);
            pem = Some((path.to_string(), String::new()));
        } else if let Some(rest) = line.strip_prefix("kubeconfig ") {
            finish(&mut pem, &mut out);
            let (path, data) = rest.split_once(' ').unwrap_or((rest, ""));
            let text = base64::engine::general_purpose::STANDARD
                .decode(data.trim().trim_matches(['"', '\'']))
                .unwrap_or_default();
            out.push(CertExpiry {
                path: path.to_string(),
                not_after: pem_not_after(&text),
            });
        } else if let Some((_, text)) = pem.as_mut() {
            text.push_str(line);
            text.push('\n');
        } else if !line.trim().is_empty() {
            return Err(format!("unexpected line {line:?}"));
        }
    }
    finish(&mut pem, &mut out);
    Ok(out)
}

/// Traces kubeadm leaves: which of init, join and stacked etcd already happened on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KubeadmFacts {
    /// /etc/kubernetes/admin.conf: `kubeadm init` or a control-plane join ran.
    pub admin_conf: bool,
    /// /etc/kubernetes/kubelet.conf: the node joined (or was initialised).
    pub kubelet_conf: bool,
    /// Static pod manifests in /etc/kubernetes/manifests.
    pub manifests: Vec<String>,
    /// The image of each manifest's first container, by manifest file name
    /// (`kube-apiserver.yaml` → `registry.k8s.io/kube-apiserver:v1.28.7`): what kubeadm last
    /// wrote for this node's control plane.
    pub manifest_images: BTreeMap<String, String>,
    /// /var/lib/etcd/member: a stacked etcd member's data.
    pub etcd_data: bool,
    /// /etc/kubernetes/pki/ca.crt: the cluster's CA (a control-plane node's, or a joined
    /// worker's copy).
    pub pki_ca: bool,
    /// /etc/kubernetes/bootstrap-kubelet.conf: a join that has not finished its TLS bootstrap.
    pub bootstrap_kubelet_conf: bool,
    /// /var/lib/kubelet/config.yaml: kubeadm configured the kubelet here.
    pub kubelet_config: bool,
    /// kubeforge started `kubeadm init` here and did not see it finish ([`INIT_MARKER`]).
    pub init_started: bool,
}

/// Written before `kubeadm init` runs and removed once it succeeded: a host with traces of
/// kubeadm and this file holds a failed init, not a cluster.
pub const INIT_MARKER: &str = "/var/lib/kubeforge/kubeadm-init-started";

impl KubeadmFacts {
    /// What kubeadm left here, by path: empty on a host kubeadm never touched (or reset).
    pub fn traces(&self) -> Vec<String> {
        let mut out = Vec::new();
        let files = [
            (self.admin_conf, "/etc/kubernetes/admin.conf"),
            (self.kubelet_conf, "/etc/kubernetes/kubelet.conf"),
            (
                self.bootstrap_kubelet_conf,
                "/etc/kubernetes/bootstrap-kubelet.conf",
            ),
            (self.pki_ca, "/etc/kubernetes/pki/ca.crt"),
            (self.kubelet_config, "/var/lib/kubelet/config.yaml"),
            (self.etcd_data, "/var/lib/etcd/member"),
        ];
        for (present, path) in files {
            if present {
                out.push(path.to_string());
            }
        }
        out.extend(
            self.manifests
                .iter()
                .map(|m| format!("/etc/kubernetes/manifests/{m}")),
        );
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub interface: String,
    pub ip: std::net::Ipv4Addr,
    pub prefix: u8,
}

impl HostFacts {
    /// The interface holding `ip`, with its prefix length.
    pub fn interface_of(&self, ip: std::net::Ipv4Addr) -> Option<&Address> {
        self.addresses.iter().find(|a| a.ip == ip)
    }

    pub fn file(&self, path: &str) -> Option<&FileFact> {
        self.files.get(path).and_then(Option::as_ref)
    }
    pub fn unit(&self, unit: &str) -> Option<&UnitFact> {
        self.units.get(unit)
    }
    /// When `unit` last (re)read its configuration: the later of its start and kubeforge's
    /// last restart or reload of it.
    pub fn unit_loaded_at(&self, unit: &str) -> Option<i64> {
        let since = self.unit(unit).and_then(|u| u.active_since);
        let stamp = self.stamps.get(unit).copied();
        since.max(stamp)
    }

    /// The facts of a host where nothing is in place yet: what the offline plan is computed
    /// against. Swap is on, no package, file, unit or module is there, sysctls are unset.
    pub fn blank(query: &FactQuery) -> HostFacts {
        HostFacts {
            swap: SwapFacts {
                active: vec!["if any".into()],
                fstab: Vec::new(),
                units: BTreeMap::new(),
            },
            sysctls: query.sysctls.iter().map(|k| (k.clone(), None)).collect(),
            files: query.files.keys().map(|p| (p.clone(), None)).collect(),
            modules: query.modules.keys().map(|m| (m.clone(), false)).collect(),
            ..HostFacts::default()
        }
    }
}

const HEADER: &str = "@@kubeforge-facts 2";

/// The machine facts preflight judges, one `key value` per line.
const SYSTEM_SCRIPT: &str = r#"echo @@system
echo "clock $kubeforge_clock"
echo "arch $(dpkg --print-architecture 2>/dev/null)"
while read -r k v _; do [ "$k" = Cpus_allowed_list: ] && echo "cpu_list $v" && break; done < /proc/self/status
while read -r k v _; do [ "$k" = MemTotal: ] && echo "memory_kb $v" && break; done < /proc/meminfo
v=; [ -d /sys/fs/cgroup ] && v=tmpfs; [ -e /sys/fs/cgroup/cgroup.controllers ] && v=cgroup2fs; echo "cgroupfs $v"
v=none; [ -r /run/systemd/container ] && read -r v < /run/systemd/container; echo "container $v"
v=; read -r v < /proc/sys/kernel/hostname; echo "hostname $v"
v=; [ -r /sys/class/dmi/id/product_uuid ] && read -r v < /sys/class/dmi/id/product_uuid; echo "product_uuid $v"
v=; [ -r /etc/machine-id ] && read -r v < /etc/machine-id; echo "machine_id $v"
for l in /sys/class/net/*; do n=${l##*/}; case $n in lo|veth*|cali*|flannel*|cni*|vxlan*|docker*|kube-*) continue;; esac; [ -d "$l/bridge" ] && continue; t=; read -r t < "$l/type"; [ "$t" = 1 ] || continue; a=; read -r a < "$l/address"; echo "mac $n $a"; done
d=/var/lib/containerd; [ -d "$d" ] || d=/var/lib; df -Pk "$d" 2>/dev/null | while read -r _ size _ avail _ mount; do case $size in *[!0-9]*|'') continue;; esac; echo "disk $size $avail $mount"; done
true
"#;

/// The time synchronisation services preflight looks for (their state comes with the units').
pub const TIME_SYNC_UNITS: [&str; 5] = [
    "systemd-timesyncd.service",
    "chrony.service",
    "ntp.service",
    "ntpsec.service",
    "openntpd.service",
];

/// Where systemd finds unit files. A unit in none of them is not found, and systemctl is not
/// asked about it (loading a missing unit is its slowest answer).
const UNIT_DIRS: &str = "/etc/systemd/system /run/systemd/system /run/systemd/transient /run/systemd/generator /run/systemd/generator.early /run/systemd/generator.late /usr/local/lib/systemd/system /lib/systemd/system /usr/lib/systemd/system";

/// Where kubeforge records when it last restarted or reloaded a unit.
pub const STAMP_DIR: &str = "/var/lib/kubeforge/stamps";

/// The read-only script that prints every fact in `query`.
pub fn script(query: &FactQuery) -> String {
    // One bound for all of it, a little under the time kubeforge waits (120 s): past it, what
    // still runs on the host is stopped there too (a hung systemctl, getent, df, ctr, ...).
    // `exec`: the shell that runs this script becomes `timeout` (one process less).
    format!(
        "exec {}\n",
        crate::shell::under_timeout(SCRIPT_LIMIT_SECS, &body(query))
    )
}

/// How long the facts script may run on a host before it is stopped there.
pub const SCRIPT_LIMIT_SECS: u64 = 110;

/// The facts script itself (see [`script`]).
fn body(query: &FactQuery) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "kubeforge_clock=$(date +%s.%N); echo '{HEADER}'\n"
    ));
    // Shell builtins where they do: a no-op run reads these facts on every host every time.
    s.push_str("echo @@os; [ -r /etc/os-release ] && while IFS= read -r l; do echo \"$l\"; done < /etc/os-release\n");
    s.push_str("echo @@uid; while read -r k v _; do [ \"$k\" = Uid: ] && echo \"$v\" && break; done < /proc/self/status\n");
    s.push_str(
        "kubeforge_login=${SUDO_USER:-$(id -un)}; echo @@login; echo \"$kubeforge_login\"\n",
    );
    s.push_str("echo @@dpkg; set -- /var/lib/dpkg/updates/*; if [ -e \"$1\" ]; then echo interrupted; else echo clean; fi\n");
    if !query.packages.is_empty() {
        let names: Vec<String> = query.packages.iter().map(|p| quote(p)).collect();
        s.push_str(&format!(
            "echo @@packages; dpkg-query -W -f='${{Package}}\\t${{Version}}\\t${{db:Status-Abbrev}}\\n' {} 2>/dev/null\n",
            names.join(" ")
        ));
    }
    // `kubeforge_swap` is set when swap is active or configured.
    s.push_str("echo @@swap; kubeforge_swap=; [ -r /proc/swaps ] && { read -r _; while read -r d _; do echo \"$d\"; kubeforge_swap=1; done; } < /proc/swaps\n");
    if query.swap_config {
        s.push_str("echo @@swap-fstab; [ -r /etc/fstab ] && while read -r d _ t _; do case $d in \\#*|'') ;; *) [ \"$t\" = swap ] && echo \"$d\" && kubeforge_swap=1;; esac; done < /etc/fstab\n");
        // Swap units exist only for active swap, fstab lines or unit files: ask systemd only then.
        s.push_str("echo @@swap-units; set -- /etc/systemd/system/*.swap; [ -e \"$1\" ] && kubeforge_swap=1; if [ -n \"$kubeforge_swap\" ]; then systemctl list-units --type=swap --all --no-legend --plain 2>/dev/null | awk '$2 != \"masked\" {print $1, $3}'; fi\n");
    }
    s.push_str("echo @@addresses; ip -o -4 addr show 2>/dev/null\n");
    if query.listening {
        s.push_str("echo @@listening; ss -Htlnp 2>/dev/null\n");
    }
    if query.system {
        s.push_str(SYSTEM_SCRIPT);
    }
    for name in &query.resolve {
        s.push_str(&format!(
            "echo @@resolve {name}; getent ahostsv4 {} 2>/dev/null\n",
            quote(name)
        ));
    }
    if !query.digests.is_empty() {
        s.push_str(&digests_script(&query.digests));
    }
    if query.images {
        s.push_str("echo @@images; [ -S /run/containerd/containerd.sock ] && ctr -n k8s.io images ls -q 2>/dev/null; true\n");
    }
    if query.kubeadm {
        s.push_str("echo @@kubeadm-images; if command -v kubeadm >/dev/null 2>&1; then v=$(kubeadm version -o short 2>/dev/null) && echo \"version $v\" && kubeadm config images list --kubernetes-version \"$v\" 2>/dev/null | sed 's/^/image /'; fi; true\n");
    }
    if !query.probes.is_empty() {
        // Every probe at once, under one timeout (which ends them all): each prints its
        // target when the connection is accepted; one that does not print is closed.
        let targets: Vec<String> = query
            .probes
            .iter()
            .map(|(address, port)| format!("{address}:{port}"))
            .collect();
        let quoted: Vec<String> = targets.iter().map(|t| quote(t)).collect();
        s.push_str(&format!(
            "echo @@probes {}; timeout 3 bash -c 'for a; do {{ : 3<>\"/dev/tcp/${{a%:*}}/${{a##*:}}\"; }} 2>/dev/null && echo \"$a\" & done; wait' kubeforge {} 2>/dev/null; true\n",
            targets.join(" "),
            quoted.join(" ")
        ));
    }
    s.push_str("echo @@kubeadm; for f in /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/pki/ca.crt /var/lib/kubelet/config.yaml /var/lib/kubeforge/kubeadm-init-started; do [ -f \"$f\" ] && echo \"file $f\"; done; for f in /etc/kubernetes/manifests/*.yaml; do [ -f \"$f\" ] || continue; i=; while read -r k v; do [ \"$k\" = image: ] && i=$v && break; done < \"$f\"; echo \"manifest ${f##*/} $i\"; done; [ -d /var/lib/etcd/member ] && echo etcd-data; true\n");
    if query.cluster {
        s.push_str(&cluster::script(query.all_pods, query.etcd_leader));
    }
    if let Some(version) = &query.upgrade_plan {
        // Its exit status, then the end of what it said.
        s.push_str(&format!(
            "echo @@upgrade-plan; if command -v kubeadm >/dev/null 2>&1 && [ -f /etc/kubernetes/admin.conf ]; then o=$(timeout 60 kubeadm upgrade plan {}2>&1 </dev/null); echo \"exit $?\"; printf '%s\\n' \"$o\" | grep -v '^[[:space:]]*$' | tail -n 12; fi\n",
            if version.is_empty() { String::new() } else { format!("{} ", quote(version)) }
        ));
    }
    if let Some(url) = &query.repository {
        // The repository's package index, as apt would read it: kubeadm's versions, or why not.
        s.push_str(&format!(
            "echo @@repository; if i=$(curl -fsSL --max-time 20 {} 2>&1); then printf '%s\\n' \"$i\" | awk '/^Package: /{{p = ($2 == \"kubeadm\")}} p && /^Version: /{{print \"version \" $2}}'; else printf 'error %s\\n' \"$(printf '%s' \"$i\" | tail -n 1)\"; fi\n",
            quote(&format!("{url}Packages"))
        ));
    }
    if query.certs {
        s.push_str(&certs_script(CERT_FILES, CERT_KUBECONFIGS));
    }
    if query.haproxy {
        s.push_str("echo @@haproxy; [ -S /run/haproxy/admin.sock ] && command -v socat >/dev/null 2>&1 && echo 'show servers state kube-apiserver' | timeout 5 socat stdio /run/haproxy/admin.sock 2>/dev/null; true\n");
    }
    if let Some(node) = &query.registered {
        s.push_str(&format!(
            "echo @@registered; if [ -f /etc/kubernetes/kubelet.conf ] && command -v kubectl >/dev/null 2>&1; then if j=$(timeout 15 kubectl --kubeconfig=/etc/kubernetes/kubelet.conf --request-timeout=5s get node {} -o json 2>/dev/null </dev/null); then echo \"yes $(printf '%s' \"$j\" | base64 -w0)\"; else echo no; fi; else echo unknown; fi\n",
            quote(node)
        ));
    }
    for (user, rel) in &query.home_files {
        // The home directory from the user database; the path inside it is kubeforge's own.
        let u = if user == LOGIN_USER {
            "\"$kubeforge_login\"".to_string()
        } else {
            quote(user)
        };
        s.push_str(&format!(
            "echo @@home {user} {rel}; h=; while IFS=: read -r n _ _ _ _ d _; do [ \"$n\" = {u} ] && h=$d && break; done < /etc/passwd; [ -n \"$h\" ] || h=$(getent passwd {u} | cut -d: -f6); if [ -n \"$h\" ] && [ -f \"$h\"/{r} ]; then stat -c '%a %U %G %n' -- \"$h\"/{r}; sha256sum < \"$h\"/{r} | cut -d' ' -f1; sed -n 's/^[[:space:]]*server:[[:space:]]*//p' \"$h\"/{r} | head -n 1; fi\n",
            r = quote(rel)
        ));
    }
    if query.credentials {
        // Names only, and `end` once the API gave the whole list.
        s.push_str("echo @@credentials; if [ -f /etc/kubernetes/admin.conf ] && command -v kubectl >/dev/null 2>&1 && l=$(timeout 15 kubectl --kubeconfig=/etc/kubernetes/admin.conf --request-timeout=5s -n kube-system get secrets -o name 2>/dev/null </dev/null); then printf '%s\\n' \"$l\" | sed -n 's|^secret/||p'; echo end; fi\n");
    }
    if query.join_files {
        let globs: Vec<String> = JOIN_FILES.iter().map(|p| format!("{p}*")).collect();
        s.push_str(&format!(
            "echo @@join-files; for f in {}; do [ -e \"$f\" ] && echo \"$f\"; done; true\n",
            globs.join(" ")
        ));
    }
    if query.static_pods {
        s.push_str("echo @@static-pods; if command -v crictl >/dev/null 2>&1 && [ -S /run/containerd/containerd.sock ]; then timeout 10 crictl ps --state running -o json 2>/dev/null </dev/null | base64 -w0; fi; echo\n");
    }
    if query.leftovers {
        s.push_str(&format!(
            "echo @@leftovers; for f in /etc/cni/net.d/*; do [ -e \"$f\" ] && echo \"cni ${{f##*/}}\"; done; for l in /sys/class/net/*; do n=${{l##*/}}; case $n in {links}) echo \"link $n\";; esac; done; n=0; for t in iptables ip6tables; do command -v $t-save >/dev/null 2>&1 && n=$((n + $($t-save 2>/dev/null | grep -cE {rules}))); done; echo \"rules $n\"; command -v nft >/dev/null 2>&1 && nft list tables 2>/dev/null | while read -r _ family name; do case $name in kube-proxy|calico*) echo \"nft $family $name\";; esac; done; true\n",
            links = POD_NETWORK_LINKS,
            rules = quote(POD_NETWORK_RULES)
        ));
    }
    for key in &query.sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        s.push_str(&format!(
            // (read returns 1 on /proc/sys files, which do not read byte by byte to a newline)
            "echo @@sysctl {key}; if [ -r {p} ]; then v=; read -r v < {p}; echo \"value $v\"; else echo missing; fi\n",
            p = quote(&path)
        ));
    }
    for (module, probe) in &query.modules {
        let m = quote(module);
        let probe = match probe {
            Some(Probe::Path(p)) => format!(" || [ -e {} ]", quote(p)),
            Some(Probe::Filesystem(fs)) => {
                format!(
                    " || {{ f=; while read -r a b; do [ \"$a\" = {fs} ] || [ \"$b\" = {fs} ] && f=1 && break; done < /proc/filesystems; [ -n \"$f\" ]; }}",
                    fs = quote(fs)
                )
            }
            None => String::new(),
        };
        s.push_str(&format!(
            "echo @@module {module}; if [ -d /sys/module/{m} ]{probe} || grep -qs \"/{module}.ko\" \"/lib/modules/$(uname -r)/modules.builtin\"; then echo loaded; else echo missing; fi\n"
        ));
    }
    if !query.files.is_empty() {
        // Few processes for any number of files: one stat, one cat of every file whose content
        // is read (split again by the sizes stat gave; its sha256 computed here, not there),
        // one sha256sum for the others. Paths kubeforge asks about hold no whitespace.
        let paths: Vec<&str> = query.files.keys().map(String::as_str).collect();
        let quoted = |read: &dyn Fn(&Read) -> bool| -> String {
            query
                .files
                .iter()
                .filter(|(_, r)| read(r))
                .map(|(p, _)| quote(p))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let all = quoted(&|_| true);
        s.push_str(&format!(
            "echo @@files {}; stat -c '%a %U %G %s %Y %n' -- {all} 2>/dev/null\n",
            paths.join(" ")
        ));
        let content = quoted(&|r| *r == Read::Content);
        if !content.is_empty() {
            s.push_str(&format!(
                "echo @@contents; set --; for f in {content}; do [ -f \"$f\" ] && set -- \"$@\" \"$f\"; done; echo \"$*\"; [ $# -gt 0 ] && cat -- \"$@\" | base64 -w0; echo\n"
            ));
        }
        let hashed = quoted(&|r| *r != Read::Content);
        if !hashed.is_empty() {
            s.push_str(&format!(
                "echo @@sums; set --; for f in {hashed}; do [ -f \"$f\" ] && set -- \"$@\" \"$f\"; done; [ $# -gt 0 ] && sha256sum -- \"$@\"; true\n"
            ));
        }
        for (path, read) in &query.files {
            if *read == Read::Masked {
                let p = quote(path);
                s.push_str(&format!(
                    "echo @@masked {path}; [ -f {p} ] && sed -E {} {p} | base64 -w0; echo\n",
                    quote(&crate::mask::SED_MASK)
                ));
            }
        }
    }
    for (path, keys) in &query.extract {
        let p = quote(path);
        for key in keys {
            s.push_str(&format!(
                "echo @@extract {path} {key}; sed -nE 's/^[[:space:]]*{key}[[:space:]:=]+([^[:space:]]+).*/\\1/p; T; q' {p} 2>/dev/null\n"
            ));
        }
    }
    for path in &query.keyrings {
        s.push_str(&format!(
            "echo @@keyring {path}; [ -f {p} ] && gpg --show-keys --with-colons {p} 2>/dev/null | awk -F: '$1 == \"fpr\" {{print $10}}'; true\n",
            p = quote(path)
        ));
    }
    let mut units: BTreeSet<&str> = query.units.iter().map(String::as_str).collect();
    if query.system {
        units.extend(TIME_SYNC_UNITS);
    }
    if !units.is_empty() {
        // One systemctl for every unit that has a unit file: it prints their properties in the
        // order asked, each block ended by an empty line. The line before them names those
        // units; the others are not found.
        let names: Vec<String> = units.iter().map(|u| quote(u)).collect();
        s.push_str(&format!(
            "echo @@units {}; set --; for u in {}; do for d in {UNIT_DIRS}; do [ -e \"$d/$u\" ] && set -- \"$@\" \"$u\" && break; done; done; echo \"$*\"; [ $# -gt 0 ] && systemctl show --timestamp=unix -p LoadState,ActiveState,SubState,UnitFileState,ActiveEnterTimestamp \"$@\" 2>/dev/null; echo\n",
            units.iter().copied().collect::<Vec<_>>().join(" "),
            names.join(" ")
        ));
    }
    if !query.units.is_empty() {
        s.push_str(&format!(
            "echo @@stamps; set -- {STAMP_DIR}/*; [ -e \"$1\" ] && stat -c '%n %Y' \"$@\"; true\n"
        ));
    }
    s.push_str("echo @@end\n");
    s
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactError {
    #[error(
        "the facts output does not start with the expected header (is the remote shell printing a banner?)"
    )]
    NoHeader,
    #[error("the facts output ends early, without its @@end marker")]
    Truncated,
    #[error("malformed facts line in section {section}: {line}")]
    Malformed { section: String, line: String },
}

fn malformed(section: &str, line: &str) -> FactError {
    FactError::Malformed {
        section: section.to_string(),
        line: line.chars().take(200).collect(),
    }
}

/// Parses the output of [`script`].
pub fn parse(output: &str) -> Result<HostFacts, FactError> {
    let mut facts = HostFacts::default();
    let start = output.find(HEADER).ok_or(FactError::NoHeader)?;
    let mut lines = output[start + HEADER.len()..].lines().peekable();
    let mut ended = false;
    while let Some(line) = lines.next() {
        let Some(header) = line.strip_prefix("@@") else {
            if line.is_empty() {
                continue;
            }
            return Err(malformed("(none)", line));
        };
        let (section, arg) = header.split_once(' ').unwrap_or((header, ""));
        // The section's body: every line up to the next header.
        let mut body = Vec::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("@@") {
                break;
            }
            body.push(*next);
            lines.next();
        }
        let nonempty = || body.iter().map(|l| l.trim()).filter(|l| !l.is_empty());
        match section {
            "os" => {
                for l in &body {
                    if let Some((k, v)) = l.split_once('=') {
                        facts
                            .os
                            .insert(k.to_string(), v.trim_matches('"').to_string());
                    }
                }
            }
            "login" => facts.login = body.first().map_or(String::new(), |l| l.trim().to_string()),
            "uid" => {
                let text = body.first().copied().unwrap_or("");
                facts.uid = text.trim().parse().map_err(|_| malformed(section, text))?;
            }
            "dpkg" => {
                facts.dpkg_interrupted = body.first().is_some_and(|l| l.trim() == "interrupted")
            }
            "packages" => parse_packages(&body, &mut facts)?,
            "holds" => facts.holds.extend(nonempty().map(String::from)),
            "swap" => facts.swap.active = nonempty().map(String::from).collect(),
            "swap-fstab" => facts.swap.fstab = nonempty().map(String::from).collect(),
            "swap-units" => {
                for l in nonempty() {
                    let (unit, state) = l.split_once(' ').unwrap_or((l, ""));
                    facts
                        .swap
                        .units
                        .insert(unit.to_string(), state.trim().to_string());
                }
            }
            "kubeadm" => parse_kubeadm(&body, &mut facts)?,
            "cluster" => facts.cluster = cluster::parse(&body),
            "leftovers" => {
                for l in nonempty() {
                    match l.split_once(' ') {
                        Some(("cni", f)) => facts.leftovers.cni_configs.push(f.to_string()),
                        Some(("link", n)) => facts.leftovers.links.push(n.to_string()),
                        Some(("rules", n)) => {
                            facts.leftovers.rules = n.parse().map_err(|_| malformed(section, l))?
                        }
                        Some(("nft", t)) => facts.leftovers.nft_tables.push(t.to_string()),
                        _ => return Err(malformed(section, l)),
                    }
                }
            }
            "static-pods" => {
                let b64 = body.first().map(|l| l.trim()).unwrap_or("");
                facts.static_pods = if b64.is_empty() {
                    None
                } else {
                    let json = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|_| malformed(section, "content is not base64"))?;
                    Some(cluster::parse_containers(&json).map_err(|e| malformed(section, &e))?)
                };
            }
            "credentials" => {
                // Only a list the API gave in full counts (`end` follows it).
                let names: Vec<&str> = nonempty().collect();
                facts.credentials = (names.last() == Some(&"end")).then(|| {
                    names
                        .iter()
                        .filter(|n| is_join_credential(n))
                        .map(|n| n.to_string())
                        .collect()
                });
            }
            "join-files" => {
                facts.join_files = nonempty()
                    .filter(|f| {
                        JOIN_FILES.iter().any(|p| f.starts_with(p))
                            && !f.contains(|c: char| c.is_whitespace() || c == '\'')
                            && !f.contains("..")
                    })
                    .map(String::from)
                    .collect()
            }
            "upgrade-plan" => {
                facts.upgrade_plan =
                    body.first()
                        .and_then(|l| l.strip_prefix("exit "))
                        .map(|code| UpgradePlan {
                            status: code.trim().parse().unwrap_or(-1),
                            tail: body[1..].iter().map(|l| l.to_string()).collect(),
                        });
            }
            "repository" => {
                let error = body.iter().find_map(|l| l.strip_prefix("error "));
                facts.repository = Some(match error {
                    Some(e) => Err(e.trim().to_string()),
                    None => Ok(body
                        .iter()
                        .filter_map(|l| l.strip_prefix("version "))
                        .map(|v| v.trim().to_string())
                        .collect()),
                });
            }
            "haproxy" => facts.haproxy = Some(parse_haproxy(&body)).filter(|m| !m.is_empty()),
            "certs" => facts.certs = Some(parse_certs(&body)),
            "registered" => {
                let line = body.first().map(|l| l.trim()).unwrap_or_default();
                let (answer, node) = line.split_once(' ').unwrap_or((line, ""));
                facts.registered = match answer {
                    "yes" => Some(true),
                    "no" => Some(false),
                    _ => None,
                };
                facts.own_node = cluster::parse_node_b64(node);
            }
            "home" => {
                // `@@home  .kube/config`: the login user (empty).
                let (user, rel) = arg.split_once(' ').unwrap_or((LOGIN_USER, arg));
                let file = match nonempty().collect::<Vec<_>>().as_slice() {
                    [] => None,
                    [stat, sha, rest @ ..] if rest.len() <= 1 => {
                        let mut f = stat.splitn(4, ' ');
                        let (Some(mode), Some(owner), Some(group), Some(path)) =
                            (f.next(), f.next(), f.next(), f.next())
                        else {
                            return Err(malformed(section, stat));
                        };
                        Some(HomeFile {
                            path: path.to_string(),
                            mode: u32::from_str_radix(mode, 8)
                                .map_err(|_| malformed(section, stat))?,
                            owner: owner.to_string(),
                            group: group.to_string(),
                            sha256: sha.to_string(),
                            server: rest.first().map_or(String::new(), |s| s.to_string()),
                        })
                    }
                    [other, ..] => return Err(malformed(section, other)),
                };
                facts
                    .home_files
                    .insert((user.to_string(), rel.to_string()), file);
            }
            "listening" => {
                for l in nonempty() {
                    // LISTEN 0 4096 0.0.0.0:8443 0.0.0.0:* users:(("haproxy",pid=812,fd=7))
                    let fields: Vec<&str> = l.split_whitespace().collect();
                    let (address, users) = match fields.as_slice() {
                        [_, _, _, local, _, users, ..] => (*local, *users),
                        [_, _, _, local, ..] => (*local, ""),
                        // The older two-column form: address and users.
                        [local, users] => (*local, *users),
                        [local] => (*local, ""),
                        _ => continue,
                    };
                    let port = address.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
                    let port = port.parse().map_err(|_| malformed(section, l))?;
                    let program = users.split('"').nth(1).unwrap_or("").to_string();
                    let entry = facts.listening.entry(port).or_default();
                    if entry.is_empty() {
                        *entry = program;
                    }
                }
            }
            "system" => parse_system(&body, &mut facts.system),
            "digest" => {
                let value = match body.first().map(|l| l.trim()) {
                    Some("missing") | None => None,
                    Some(sha) if sha.len() == 64 => Some(sha.to_string()),
                    Some(other) => return Err(malformed(section, other)),
                };
                facts.digests.insert(arg.to_string(), value);
            }
            "images" => facts.images.extend(
                nonempty()
                    .filter(|l| !l.starts_with("sha256:"))
                    .map(String::from),
            ),
            "kubeadm-images" => {
                for l in nonempty() {
                    match l.split_once(' ') {
                        Some(("version", v)) => facts.kubeadm_version = Some(v.to_string()),
                        Some(("image", i)) => facts.kubeadm_images.push(i.to_string()),
                        _ => return Err(malformed(section, l)),
                    }
                }
            }
            "resolve" => {
                // 10.0.0.11       STREAM k8scp01.lab.net  (a line per socket type)
                let mut ips: Vec<std::net::Ipv4Addr> = nonempty()
                    .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                    .collect();
                ips.sort();
                ips.dedup();
                facts.resolved.insert(arg.to_string(), ips);
            }
            "probes" => {
                // The targets probed, then the open ones, a line each (in any order).
                let open: BTreeSet<&str> = nonempty().collect();
                for target in arg.split_whitespace() {
                    let (address, port) = target
                        .rsplit_once(':')
                        .ok_or_else(|| malformed(section, target))?;
                    let port = port.parse().map_err(|_| malformed(section, target))?;
                    facts
                        .probes
                        .insert((address.to_string(), port), open.contains(target));
                }
            }
            "addresses" => parse_addresses(&body, &mut facts)?,
            "sysctl" => {
                let text = body.first().copied().unwrap_or("");
                let value = match text.strip_prefix("value ") {
                    Some(v) => Some(v.split_whitespace().collect::<Vec<_>>().join(" ")),
                    None if text == "missing" => None,
                    None => return Err(malformed(section, text)),
                };
                facts.sysctls.insert(arg.to_string(), value);
            }
            "module" => {
                let loaded = match body.first().map(|l| l.trim()) {
                    Some("loaded") => true,
                    Some("missing") => false,
                    other => return Err(malformed(section, other.unwrap_or(""))),
                };
                facts.modules.insert(arg.to_string(), loaded);
            }
            "files" => {
                for path in arg.split_whitespace() {
                    facts.files.insert(path.to_string(), None);
                }
                for l in nonempty() {
                    let (path, fact) = parse_stat(l).ok_or_else(|| malformed(section, l))?;
                    facts.files.insert(path, Some(fact));
                }
            }
            "contents" => {
                let names: Vec<&str> = body
                    .first()
                    .map_or(Vec::new(), |l| l.split_whitespace().collect());
                let all = match body.get(1).map(|l| l.trim()).filter(|l| !l.is_empty()) {
                    Some(b64) => base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|_| malformed(section, "content is not base64"))?,
                    None => Vec::new(),
                };
                split_contents(&mut facts, &names, &all);
            }
            "sums" => {
                for l in nonempty() {
                    // `<sha256>  <path>`
                    let (sha, path) = l.split_once("  ").ok_or_else(|| malformed(section, l))?;
                    if let Some(Some(file)) = facts.files.get_mut(path) {
                        file.sha256 = sha.to_string();
                    }
                }
            }
            "masked" => {
                let b64 = body.first().map(|l| l.trim()).unwrap_or("");
                let content = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| malformed(section, "content is not base64"))?;
                if let Some(Some(file)) = facts.files.get_mut(arg) {
                    file.content = Some(content);
                }
            }
            "extract" => {
                let (path, key) = arg
                    .rsplit_once(' ')
                    .ok_or_else(|| malformed(section, arg))?;
                let value = body.first().map(|l| l.trim()).unwrap_or("");
                if let Some(Some(file)) = facts.files.get_mut(path)
                    && !value.is_empty()
                {
                    file.extracted.insert(key.to_string(), value.to_string());
                }
            }
            "keyring" => {
                facts
                    .keyrings
                    .insert(arg.to_string(), nonempty().map(String::from).collect());
            }
            "unit" => {
                facts.units.insert(arg.to_string(), parse_unit(&body));
            }
            "units" => {
                // The units asked about; then those with a unit file, and their blocks.
                for unit in arg.split_whitespace() {
                    facts.units.insert(unit.to_string(), UnitFact::not_found());
                }
                let (found, rest) = body.split_first().unwrap_or((&"", &[]));
                let blocks = rest.split(|l| l.trim().is_empty());
                for (unit, block) in found.split_whitespace().zip(blocks) {
                    facts.units.insert(unit.to_string(), parse_unit(block));
                }
            }
            "stamps" => {
                for l in nonempty() {
                    let (path, time) = l.rsplit_once(' ').ok_or_else(|| malformed(section, l))?;
                    let unit = path.rsplit('/').next().unwrap_or(path);
                    let time = time.parse().map_err(|_| malformed(section, l))?;
                    facts.stamps.insert(unit.to_string(), time);
                }
            }
            "end" => {
                ended = true;
                break;
            }
            _ => {}
        }
    }
    if !ended {
        return Err(FactError::Truncated);
    }
    facts.system.time_sync = TIME_SYNC_UNITS
        .iter()
        .filter(|u| facts.units.get(**u).is_some_and(UnitFact::is_running))
        .map(|u| u.trim_end_matches(".service").to_string())
        .collect();
    Ok(facts)
}

fn parse_system(body: &[&str], system: &mut SystemFacts) {
    for l in body {
        let (key, value) = l.split_once(' ').unwrap_or((l, ""));
        let value = value.trim();
        match key {
            "clock" => {
                system.clock_ms = value.split_once('.').and_then(|(s, ns)| {
                    let ms: i64 = ns.get(..3)?.parse().ok()?;
                    Some(s.parse::<i64>().ok()? * 1000 + ms)
                })
            }
            "arch" => system.arch = value.to_string(),
            "cpu_list" => system.cpus = cpu_count(value),
            "memory_kb" => system.memory_mb = value.parse::<u64>().unwrap_or(0) / 1024,
            "disk" => {
                let mut w = value.splitn(3, ' ');
                let mut kb = || w.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                let (size, available) = (kb(), kb());
                system.disk = Disk {
                    size_mb: size / 1024,
                    available_mb: available / 1024,
                    mount: w.next().unwrap_or_default().to_string(),
                };
            }
            "cgroupfs" => system.cgroup_v2 = value == "cgroup2fs",
            "container" => system.container = value.to_string(),
            "hostname" => system.hostname = value.to_string(),
            "product_uuid" => system.product_uuid = value.to_ascii_lowercase(),
            "machine_id" => system.machine_id = value.to_string(),
            "mac" => {
                if let Some((_, mac)) = value.split_once(' ')
                    && !mac.is_empty()
                    && mac != "00:00:00:00:00:00"
                {
                    system.macs.push(mac.to_string());
                }
            }
            _ => {}
        }
    }
}

fn parse_packages(body: &[&str], facts: &mut HostFacts) -> Result<(), FactError> {
    for l in body {
        let mut parts = l.split('\t');
        let (Some(name), Some(version), Some(status)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("packages", l));
        };
        // "ii " is installed; "rc " (removed, config left) and others are not.
        // The first letter is what is wanted: `h` for a held package.
        let name = name.split(':').next().unwrap_or(name);
        if status.starts_with("ii") || status.starts_with("hi") {
            facts.packages.insert(name.to_string(), version.to_string());
        }
        if status.starts_with('h') {
            facts.holds.insert(name.to_string());
        }
    }
    Ok(())
}

fn parse_kubeadm(body: &[&str], facts: &mut HostFacts) -> Result<(), FactError> {
    for l in body {
        match l.split_once(' ') {
            Some(("file", "/etc/kubernetes/admin.conf")) => facts.kubeadm.admin_conf = true,
            Some(("file", "/etc/kubernetes/kubelet.conf")) => facts.kubeadm.kubelet_conf = true,
            Some(("file", "/etc/kubernetes/bootstrap-kubelet.conf")) => {
                facts.kubeadm.bootstrap_kubelet_conf = true
            }
            Some(("file", "/etc/kubernetes/pki/ca.crt")) => facts.kubeadm.pki_ca = true,
            Some(("file", "/var/lib/kubelet/config.yaml")) => facts.kubeadm.kubelet_config = true,
            Some(("file", INIT_MARKER)) => facts.kubeadm.init_started = true,
            Some(("manifest", rest)) => {
                let (name, image) = rest.split_once(' ').unwrap_or((rest, ""));
                let image = image.trim().trim_matches(['"', '\'']);
                if !image.is_empty() {
                    facts
                        .kubeadm
                        .manifest_images
                        .insert(name.to_string(), image.to_string());
                }
                facts.kubeadm.manifests.push(name.to_string());
            }
            None if *l == "etcd-data" => facts.kubeadm.etcd_data = true,
            _ => return Err(malformed("kubeadm", l)),
        }
    }
    Ok(())
}

fn parse_addresses(body: &[&str], facts: &mut HostFacts) -> Result<(), FactError> {
    for l in body {
        // 2: host0    inet 10.213.0.11/24 brd 10.213.0.255 scope global host0
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pos) = fields.iter().position(|f| *f == "inet") else {
            continue;
        };
        let (Some(name), Some(cidr)) = (fields.get(1), fields.get(pos + 1)) else {
            return Err(malformed("addresses", l));
        };
        let (ip, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
        let (Ok(ip), Ok(prefix)) = (ip.parse(), prefix.parse()) else {
            return Err(malformed("addresses", l));
        };
        let interface = name.split('@').next().unwrap_or(name).to_string();
        facts.addresses.push(Address {
            interface,
            ip,
            prefix,
        });
    }
    Ok(())
}

/// One line of `stat -c '%a %U %G %s %Y %n'`.
fn parse_stat(line: &str) -> Option<(String, FileFact)> {
    let mut fields = line.splitn(6, ' ');
    let mode = u32::from_str_radix(fields.next()?, 8).ok()?;
    let owner = fields.next()?.to_string();
    let group = fields.next()?.to_string();
    let size = fields.next()?.parse().ok()?;
    let mtime = fields.next()?.parse().ok()?;
    let path = fields.next()?.to_string();
    Some((
        path,
        FileFact {
            mode,
            owner,
            group,
            size,
            mtime,
            sha256: String::new(),
            content: None,
            extracted: BTreeMap::new(),
        },
    ))
}

/// The contents of `names`, concatenated in that order, given back to each file by the size
/// stat gave it; their sha256 is computed here. A file that changed in between (the sizes do
/// not add up) keeps neither, which only makes kubeforge write it again.
fn split_contents(facts: &mut HostFacts, names: &[&str], all: &[u8]) {
    let sizes: Vec<u64> = names
        .iter()
        .map(|n| facts.file(n).map_or(u64::MAX, |f| f.size))
        .collect();
    if sizes.iter().try_fold(0u64, |a, s| a.checked_add(*s)) != Some(all.len() as u64) {
        return;
    }
    let mut offset = 0usize;
    for (name, size) in names.iter().zip(sizes) {
        let end = offset + size as usize;
        if let Some(Some(file)) = facts.files.get_mut(*name) {
            let content = all[offset..end].to_vec();
            file.sha256 = crate::hash::sha256_hex(&content);
            file.content = Some(content);
        }
        offset = end;
    }
}

/// The CPUs in a list such as `0-3,8,10-11` (as /proc/self/status gives the CPUs this
/// process may run on, which nproc counts).
fn cpu_count(list: &str) -> u32 {
    list.split(',')
        .filter_map(|part| match part.trim().split_once('-') {
            Some((a, b)) => Some(b.parse::<u32>().ok()?.checked_sub(a.parse().ok()?)? + 1),
            None => part.trim().parse::<u32>().ok().map(|_| 1),
        })
        .sum()
}

fn parse_unit(body: &[&str]) -> UnitFact {
    let mut unit = UnitFact::default();
    for l in body {
        let Some((key, value)) = l.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key {
            "LoadState" => unit.load = value.to_string(),
            "ActiveState" => unit.active = value.to_string(),
            "SubState" => unit.sub = value.to_string(),
            "UnitFileState" => unit.file_state = value.to_string(),
            "ActiveEnterTimestamp" => {
                unit.active_since = value
                    .trim_start_matches('@')
                    .parse()
                    .ok()
                    .filter(|t| *t > 0)
            }
            _ => {}
        }
    }
    unit
}
