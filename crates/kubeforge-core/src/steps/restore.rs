//! `kubeforge apply --restore-from BACKUP`: the build ([`super::PHASES`]), with the cluster
//! started from a backup instead of made anew. Only where no cluster exists (the binary checks
//! the facts of every host first; [`crate::bootstrap::decide`] says `init`).
//!
//! On the first control-plane node, before `kubeadm init`: the backup's CAs and
//! service-account keys go into `/etc/kubernetes/pki`, and etcd's data directory is made from
//! the snapshot by `etcdctl snapshot restore`, as a new cluster of one member, this node (the
//! etcdctl of the cluster's own etcd image, mounted read-only). `kubeadm init` then keeps the
//! CAs and keys it finds and starts etcd on the restored data; the other nodes join as usual.
//! Kubeconfigs and service-account tokens made before the backup keep working: they are
//! signed by the same CA and key. The VRRP password is the backup's.

use std::collections::BTreeMap;

use crate::facts::{HostFacts, INIT_MARKER};
use crate::model::{Cluster, Node};
use crate::shell::quote;

use super::backup::PKI;
use super::{HostSet, Look};

/// The snapshot's name in [`Restore::payload`].
pub const SNAPSHOT: &str = crate::backup_file::SNAPSHOT_FILE;
/// Where etcd keeps its data (kubeadm's default, which kubeforge does not change).
pub const ETCD_DATA: &str = "/var/lib/etcd";
/// The kubeadm preflight check a restore passes on purpose (etcd's data directory is there).
pub const IGNORED_PREFLIGHT: &str = "DirAvailable--var-lib-etcd";

/// A backup, as the first control-plane node receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    /// A tar of [`PKI`] and [`SNAPSHOT`] (verified by the binary), sent on the restore
    /// command's standard input.
    pub payload: Vec<u8>,
    /// Where and when the backup was taken, as the plan says it ("on k8scp01 at …").
    pub taken: String,
    /// The VRRP password of the backed-up cluster.
    pub vrrp_secret: String,
}

/// On `node` (the first control-plane node, `address` its IPv4 address; `config` kubeadm's
/// configuration there), with the backup on standard input (`len` bytes): the init marker first (a restore that fails is a failed init,
/// reset and tried again), the CAs and keys into place, etcd's data directory made from the
/// snapshot. Nothing of the backup stays outside those places.
pub fn script(node: &Node, address: &str, len: usize, config: &str) -> String {
    let name = quote(&node.node_name);
    let peer = quote(&format!("https://{address}:2380"));
    let initial = quote(&format!("{}=https://{address}:2380", node.node_name));
    let installs: String = PKI
        .iter()
        .map(|f| {
            let mode = if f.ends_with(".key") { "0600" } else { "0644" };
            format!("install -m {mode} \"$t/{f}\" /etc/kubernetes/{f}\n")
        })
        .collect();
    format!(
        r#"set -e
umask 077
mkdir -p /var/lib/kubeforge /etc/kubernetes/pki/etcd
touch {INIT_MARKER}
t=$(mktemp -d /var/lib/kubeforge/.restore.XXXXXX)
m="$t/etcd-image"
trap 'if [ -d "$m" ]; then ctr -n k8s.io images unmount "$m" >/dev/null 2>&1 || true; fi; rm -rf "$t" {ETCD_DATA}.kubeforge-restore' EXIT
head -c {len} > "$t/backup.tar"
n=$(stat -c %s "$t/backup.tar"); [ "$n" -eq {len} ] || {{ echo "the backup: received $n of {len} bytes" >&2; exit 1; }}
tar -xf "$t/backup.tar" -C "$t"
{installs}img=$(kubeadm config images list --config {config} | grep '/etcd:' | head -n 1)
[ -n "$img" ] || {{ echo "kubeadm config images list names no etcd image" >&2; exit 1; }}
ctr -n k8s.io images ls -q | grep -qxF "$img" || kubeadm config images pull --config {config} >/dev/null
mkdir "$m"
ctr -n k8s.io images mount "$img" "$m" >/dev/null
cp "$m/usr/local/bin/etcdctl" "$t/etcdctl"
ctr -n k8s.io images unmount "$m" >/dev/null
rmdir "$m"
rm -rf {ETCD_DATA}.kubeforge-restore
ETCDCTL_API=3 "$t/etcdctl" snapshot restore "$t/{SNAPSHOT}" --name {name} --initial-cluster {initial} --initial-advertise-peer-urls {peer} --data-dir {ETCD_DATA}.kubeforge-restore >/dev/null
rm -rf {ETCD_DATA}
mv {ETCD_DATA}.kubeforge-restore {ETCD_DATA}"#
    )
}

/// The job that looks before a restore: the cluster's facts on every host, no change.
pub const SURVEY: Look = Look {
    name: "restore-check",
    title: "whether any host holds a cluster",
    hosts: HostSet::All,
};

/// Whether a backup may be restored onto these hosts: only where no cluster answers and no
/// control-plane node holds another cluster's files (bare hosts, or after `kubeforge reset`;
/// what a failed init or restore left is reset and done again). `Err`: why not.
pub fn check(cluster: &Cluster, facts: &BTreeMap<String, HostFacts>) -> Result<(), String> {
    let refused = |why: String| format!("the restore is refused, nothing was changed: {why}");
    match crate::bootstrap::decide(cluster, |name| facts.get(name)) {
        Err(e) => Err(refused(e.to_string())),
        Ok(state) => match state.leader {
            Some(leader) => Err(refused(format!(
                "a cluster answers on {leader}. A backup is restored only onto hosts with no cluster (bare, or after `kubeforge reset`); if this is the cluster an earlier `apply --restore-from` started, `kubeforge apply` without --restore-from finishes it"
            ))),
            None => Ok(()),
        },
    }
}

/// What the backed-up cluster's ClusterConfiguration says differently from this inventory's,
/// on the settings restored objects depend on (the endpoint kubeconfigs name, the pod and
/// service networks their addresses come from): `setting: backup has A, inventory says B`.
pub fn mismatches(cluster: &Cluster, cluster_configuration: &str) -> Result<Vec<String>, String> {
    let doc: serde_json::Value = serde_saphyr::from_str(cluster_configuration)
        .map_err(|e| format!("its ClusterConfiguration is not valid YAML: {e}"))?;
    let ours = [
        (
            "controlPlaneEndpoint",
            "/controlPlaneEndpoint",
            cluster.control_plane_endpoint(),
        ),
        (
            "networking.podSubnet",
            "/networking/podSubnet",
            cluster.pod_cidr().to_string(),
        ),
        (
            "networking.serviceSubnet",
            "/networking/serviceSubnet",
            cluster.service_cidr.value.to_string(),
        ),
    ];
    Ok(ours
        .into_iter()
        .filter_map(|(name, pointer, ours)| {
            let theirs = doc.pointer(pointer).and_then(|v| v.as_str()).unwrap_or("");
            (theirs != ours).then(|| {
                format!(
                    "{name}: the backup's cluster has {theirs:?}, this inventory makes {ours:?}"
                )
            })
        })
        .collect())
}
