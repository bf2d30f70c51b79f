//! A cluster started again from a snapshot, as kubeforge's restore does it: the CAs and keys
//! put back, `etcdctl snapshot restore` (the etcd image's stand-in) into a fresh data
//! directory, then `kubeadm init` with the data directory's preflight check ignored: the
//! snapshot's objects are back, the CA is the one put back, etcd has one member, this node.

mod common;

use common::*;
use sha2::{Digest, Sha256};

/// A snapshot of the stand-ins' cluster, as `etcdctl snapshot save` in the etcd pod makes it.
fn snapshot(lab: &Lab) -> Vec<u8> {
    let cluster = lab.read().clusters.last().cloned().expect("a cluster");
    let mut data = serde_json::to_vec_pretty(&cluster).unwrap();
    data.resize(data.len().div_ceil(512) * 512, 0);
    let sum = Sha256::digest(&data);
    data.extend_from_slice(&sum);
    data
}

/// The CAs and the service-account keys: what a backup holds of the PKI.
const PKI: &[&str] = kubeforge_standins::pki::SHARED_FILES;

#[test]
fn a_cluster_restored_from_its_snapshot_keeps_its_objects_and_its_ca() {
    let lab = Lab::new();
    let cp = lab.host("cp1", 1);
    let endpoint = format!("{}:6443", cp.ip);
    init(&cp, &endpoint);
    cp.write(
        "/tmp/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: default\ndata:\n  a: b\n",
    );
    let o = cp.kubectl(&["apply", "-f", "/tmp/cm.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    let pki: Vec<(&str, String)> = PKI
        .iter()
        .map(|f| {
            (
                *f,
                std::fs::read_to_string(cp.path(&format!("/etc/kubernetes/pki/{f}"))).unwrap(),
            )
        })
        .collect();
    let snap = snapshot(&lab);
    std::fs::write(cp.path("/tmp/snapshot.db"), &snap).unwrap();
    cp.stop_kubelet();
    let o = cp.kubeadm(&["reset", "-f"]);
    assert!(o.status.success(), "{}", text(&o));
    for (f, text) in &pki {
        cp.write(&format!("/etc/kubernetes/pki/{f}"), text);
    }

    let peer = format!("https://{}:2380", cp.ip);
    let restore = |snapshot: &str, name: &str, dir: &str| {
        cp.run(
            ETCDCTL,
            &[
                "snapshot",
                "restore",
                snapshot,
                "--name",
                name,
                "--initial-cluster",
                &format!("cp1={peer}"),
                "--initial-advertise-peer-urls",
                &peer,
                "--data-dir",
                dir,
            ],
        )
    };
    // A damaged snapshot, a name the initial cluster does not give, a data directory in use.
    let mut bad = snap.clone();
    bad[3] ^= 1;
    std::fs::write(cp.path("/tmp/bad.db"), &bad).unwrap();
    let o = restore("/tmp/bad.db", "cp1", "/var/lib/etcd-new");
    assert!(
        !o.status.success() && stderr(&o).contains("does not match"),
        "{}",
        text(&o)
    );
    let o = restore("/tmp/snapshot.db", "cp2", "/var/lib/etcd-new");
    assert!(
        !o.status.success() && stderr(&o).contains("couldn't find local name"),
        "{}",
        text(&o)
    );
    cp.write("/var/lib/etcd-busy/member/x", "");
    let o = restore("/tmp/snapshot.db", "cp1", "/var/lib/etcd-busy");
    assert!(
        !o.status.success() && stderr(&o).contains("not empty"),
        "{}",
        text(&o)
    );

    let _ = std::fs::remove_dir_all(cp.path("/var/lib/etcd"));
    let o = restore("/tmp/snapshot.db", "cp1", "/var/lib/etcd");
    assert!(o.status.success(), "{}", text(&o));

    cp.start_kubelet();
    // The restored data directory fails kubeadm's check unless it is ignored on purpose.
    let o = cp.kubeadm(&["init", "--config", "/etc/kubeforge/init.yaml"]);
    assert!(
        !o.status.success() && stderr(&o).contains("DirAvailable--var-lib-etcd"),
        "{}",
        text(&o)
    );
    let o = cp.kubeadm(&[
        "init",
        "--config",
        "/etc/kubeforge/init.yaml",
        "--ignore-preflight-errors=DirAvailable--var-lib-etcd",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("Using the existing \"ca\" certificate and key"),
        "{}",
        text(&o)
    );
    for (f, text) in &pki {
        let now = std::fs::read_to_string(cp.path(&format!("/etc/kubernetes/pki/{f}"))).unwrap();
        assert_eq!(&now, text, "{f} was made again");
    }
    let o = cp.kubectl(&["-n", "default", "get", "configmap", "kept", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let st = lab.read();
    let c = st.clusters.last().unwrap();
    assert_eq!(c.etcd_members.len(), 1);
    assert_eq!(c.etcd_members[0].name, "cp1");
    assert_eq!(c.etcd_members[0].peer_urls, [peer]);
}
