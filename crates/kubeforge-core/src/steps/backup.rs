//! `kubeforge backup`: what a restore needs and cannot get from etcd alone, read from one
//! control-plane node. The job only gathers facts (every control-plane node's view of the
//! cluster); [`source`] judges them (refused unless every etcd member is healthy) and names the
//! node; [`script`], run there, prints a tar of an etcd snapshot verified by its SHA-256
//! trailer, the cluster's CAs and service-account keys, the `kubeadm-config` ConfigMap and the
//! VRRP password. Nothing of it is printed but the archive itself, on standard output.

use std::collections::BTreeMap;

use crate::facts::HostFacts;
use crate::model::{Cluster, Node};

use super::{HostSet, Look};

/// The files of `/etc/kubernetes` a restore needs: the CAs (and their keys) and the
/// service-account key pair. Everything else kubeadm makes again from them.
pub const PKI: [&str; 8] = [
    "pki/ca.crt",
    "pki/ca.key",
    "pki/sa.key",
    "pki/sa.pub",
    "pki/front-proxy-ca.crt",
    "pki/front-proxy-ca.key",
    "pki/etcd/ca.crt",
    "pki/etcd/ca.key",
];

/// The snapshot's name in the tar [`script`] prints.
pub const SNAPSHOT: &str = "kubeforge-backup.db";
/// The `kubeadm-config` ConfigMap, as JSON, in the tar [`script`] prints.
pub const KUBEADM_CONFIG: &str = "kubeadm-config.json";
/// The VRRP password, in the tar [`script`] prints.
pub const VRRP_PASSWORD: &str = "vrrp-password";

/// The job: facts of every control-plane node, no change.
pub const BACKUP_JOB: Look = Look {
    name: "backup",
    title: "the cluster and etcd, read from every control-plane node",
    hosts: HostSet::ControlPlanes,
};

/// The control-plane node to take the backup on: the first, in inventory order, that answered
/// and whose etcd member is healthy; refused (why) unless every etcd member is healthy.
pub fn source<'c>(
    cluster: &'c Cluster,
    facts: &BTreeMap<String, HostFacts>,
) -> Result<&'c Node, String> {
    let refused = |why: String| format!("the backup is refused, nothing was written: {why}");
    let views: Vec<(&Node, &crate::facts::cluster::ClusterFacts)> = cluster
        .control_planes()
        .filter_map(|n| Some((n, facts.get(&n.node_name)?.cluster.as_ref()?)))
        .collect();
    let Some((_, api)) = views.iter().find(|(_, c)| c.api_ready()).copied() else {
        return Err(refused(
            "no control-plane node reaches a cluster through its admin kubeconfig".into(),
        ));
    };
    let (healthy, voters) = api.quorum();
    if voters == 0 {
        return Err(refused("etcd lists no member".into()));
    }
    if healthy < voters {
        let sick: Vec<&str> = api
            .members
            .iter()
            .filter(|m| !m.learner && !api.member_healthy(m))
            .map(|m| {
                if m.name.is_empty() {
                    m.id.as_str()
                } else {
                    m.name.as_str()
                }
            })
            .collect();
        return Err(refused(format!(
            "etcd has {healthy} of {voters} members healthy (not healthy: {}); a backup is taken of a whole etcd",
            sick.join(", ")
        )));
    }
    views
        .iter()
        .find(|(n, c)| {
            c.member(&n.node_name)
                .is_some_and(|m| api.member_healthy(m))
        })
        .map(|(n, _)| *n)
        .ok_or_else(|| refused("no control-plane node of the inventory runs an etcd member".into()))
}

/// On `node`: a tar on standard output of the etcd snapshot ([`SNAPSHOT`], verified), the
/// `kubeadm-config` ConfigMap ([`KUBEADM_CONFIG`]), the VRRP password ([`VRRP_PASSWORD`]) and
/// [`PKI`]; the snapshot and the scratch directory removed, whatever happens.
pub fn script(node: &Node) -> String {
    let snapshot = format!("/var/lib/etcd/{SNAPSHOT}");
    format!(
        r#"set -e
umask 077
t=$(mktemp -d)
trap 'rm -rf "$t"; rm -f {snapshot}' EXIT
{take}
kubectl --kubeconfig=/etc/kubernetes/admin.conf -n kube-system get configmap kubeadm-config -o json > "$t/{KUBEADM_CONFIG}"
sed -n 's/^[[:space:]]*auth_pass[[:space:]]*//p' /etc/keepalived/keepalived.conf | head -n 1 > "$t/{VRRP_PASSWORD}"
[ -s "$t/{VRRP_PASSWORD}" ] || {{ echo "/etc/keepalived/keepalived.conf holds no VRRP password" >&2; exit 1; }}
for f in {pki}; do [ -s "/etc/kubernetes/$f" ] || {{ echo "/etc/kubernetes/$f is missing" >&2; exit 1; }}; done
tar -cf - -C /var/lib/etcd {SNAPSHOT} -C "$t" {KUBEADM_CONFIG} {VRRP_PASSWORD} -C /etc/kubernetes {pki}"#,
        take = super::upgrade::snapshot_script(node, &snapshot),
        pki = PKI.join(" "),
    )
}
