use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::*;
use crate::facts::cluster::{EtcdMember, NodeStatus};
use crate::facts::{Address, Backend, CertExpiry};

/// 2026-12-07 00:00:00 UTC.
const NOW: i64 = 20_794 * 86_400;
const DAY: i64 = 86_400;

fn cluster() -> Cluster {
    crate::model::load(
        "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8scp02\n    address: 10.0.0.12\n  - name: k8scp03\n    address: 10.0.0.13\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\n",
    )
    .cluster
    .unwrap()
}

const CPS: [(&str, &str); 3] = [
    ("k8scp01", "10.0.0.11"),
    ("k8scp02", "10.0.0.12"),
    ("k8scp03", "10.0.0.13"),
];

/// A healthy cluster's facts: every node Ready, three healthy members (k8scp01 leads), the
/// VIP on k8scp01, every HAProxy with 3 servers up, certificates for a year.
fn healthy() -> BTreeMap<String, HostFacts> {
    let view = ClusterFacts {
        readyz: "ok".into(),
        nodes: ["k8scp01", "k8scp02", "k8scp03", "k8s01"]
            .iter()
            .map(|n| NodeStatus {
                name: n.to_string(),
                ready: Some(true),
                kubelet_version: "v1.36.2".into(),
                ..NodeStatus::default()
            })
            .collect(),
        members: CPS
            .iter()
            .enumerate()
            .map(|(i, (name, ip))| EtcdMember {
                id: format!("{:x}", 0xa0 + i),
                name: name.to_string(),
                peer_urls: vec![format!("https://{ip}:2380")],
                learner: false,
            })
            .collect(),
        health: CPS
            .iter()
            .map(|(_, ip)| (format!("https://{ip}:2379"), true))
            .collect(),
        leader: Some("a0".into()),
        ..ClusterFacts::default()
    };
    let mut all = BTreeMap::new();
    for (i, (name, ip)) in CPS.iter().enumerate() {
        let mut f = HostFacts {
            cluster: Some(view.clone()),
            haproxy: Some(
                CPS.iter()
                    .map(|(n, _)| {
                        (
                            n.to_string(),
                            Backend {
                                up: true,
                                maint: false,
                            },
                        )
                    })
                    .collect(),
            ),
            certs: Some(Ok(vec![
                CertExpiry {
                    path: "/etc/kubernetes/pki/apiserver.crt".into(),
                    not_after: Some(NOW + 300 * DAY),
                },
                CertExpiry {
                    path: "/etc/kubernetes/pki/ca.crt".into(),
                    not_after: Some(NOW + 3600 * DAY),
                },
            ])),
            ..HostFacts::default()
        };
        f.addresses.push(address(ip));
        if i == 0 {
            f.addresses.push(address("10.0.0.10"));
        }
        all.insert(name.to_string(), f);
    }
    all.insert("k8s01".into(), HostFacts::default());
    all
}

fn address(ip: &str) -> Address {
    Address {
        interface: "eth0".into(),
        ip: ip.parse::<Ipv4Addr>().unwrap(),
        prefix: 24,
    }
}

/// The certificates read on `host`.
fn certs_of<'a>(facts: &'a mut BTreeMap<String, HostFacts>, host: &str) -> &'a mut Vec<CertExpiry> {
    facts
        .get_mut(host)
        .and_then(|f| f.certs.as_mut())
        .and_then(|c| c.as_mut().ok())
        .unwrap()
}

/// Each control-plane node's view of the cluster.
fn views(facts: &mut BTreeMap<String, HostFacts>) -> impl Iterator<Item = &mut ClusterFacts> {
    facts.values_mut().filter_map(|f| f.cluster.as_mut())
}

fn judge(facts: &BTreeMap<String, HostFacts>) -> Status {
    assess(&cluster(), facts, &BTreeMap::new(), Some(0), NOW)
}

#[test]
fn a_healthy_cluster_has_no_problem() {
    let s = judge(&healthy());
    assert!(s.healthy, "{:?}", s.problems);
    assert_eq!(s.seen_from.as_deref(), Some("k8scp01"));
    assert_eq!(s.vip.holders, ["k8scp01"]);
    assert_eq!(s.nodes.len(), 4);
    assert!(
        s.nodes
            .iter()
            .all(|n| n.ready == Some(true) && n.registered)
    );
    assert_eq!(
        s.etcd
            .iter()
            .filter(|m| m.leader)
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["k8scp01"]
    );
    assert_eq!(s.certificates.len(), 6);
    assert_eq!(s.certificates[0].days_left, Some(300));
    assert_eq!(s.certificates[0].expires.as_deref(), Some("2027-10-03"));
}

fn problems_of(facts: &BTreeMap<String, HostFacts>) -> Vec<String> {
    let s = judge(facts);
    assert!(!s.healthy);
    s.problems
}

#[test]
fn a_stopped_worker_is_named() {
    let mut facts = healthy();
    facts.remove("k8s01");
    for view in views(&mut facts) {
        let node = view.nodes.iter_mut().find(|n| n.name == "k8s01").unwrap();
        node.ready = None;
        node.message = "Kubelet stopped posting node status.".into();
    }
    let unreachable = BTreeMap::from([("k8s01".to_string(), "connection timed out".to_string())]);
    let s = assess(&cluster(), &facts, &unreachable, None, NOW);
    assert!(!s.healthy);
    assert_eq!(
        s.problems,
        [
            "k8s01: does not answer over SSH (connection timed out)",
            "k8s01: not Ready (Kubelet stopped posting node status.)"
        ]
    );
    assert!(!s.nodes[3].reachable);
}

#[test]
fn a_foreign_etcd_member_is_named() {
    let mut facts = healthy();
    for view in views(&mut facts) {
        view.members.push(EtcdMember {
            id: "b7".into(),
            name: "k8scp09".into(),
            peer_urls: vec!["https://10.0.0.19:2380".into()],
            learner: false,
        });
    }
    let p = problems_of(&facts);
    assert!(
        p[0].starts_with("etcd member k8scp09 (b7) matches no control-plane host"),
        "{p:?}"
    );
    assert_eq!(p[1], "etcd member k8scp09 (b7) is not healthy");
    assert_eq!(p.len(), 2, "{p:?}");
}

#[test]
fn a_certificate_under_30_days_is_named_and_an_expired_one_too() {
    let mut facts = healthy();
    let certs = certs_of(&mut facts, "k8scp03");
    certs[0].not_after = Some(NOW + 29 * DAY + 3600);
    let p = problems_of(&facts);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with(
            "k8scp03: /etc/kubernetes/pki/apiserver.crt expires in 29 days (under 30)"
        ),
        "{p:?}"
    );
    let certs = certs_of(&mut facts, "k8scp03");
    certs[0].not_after = Some(NOW + 30 * DAY);
    assert!(judge(&facts).healthy);
    let certs = certs_of(&mut facts, "k8scp02");
    certs[1].not_after = Some(NOW - 1);
    let p = problems_of(&facts);
    assert!(
        p[0].starts_with("k8scp02: /etc/kubernetes/pki/ca.crt has expired"),
        "{p:?}"
    );
}

#[test]
fn the_vip_haproxy_quorum_and_drift_are_judged() {
    // The VIP on two nodes; a server down on k8scp02's HAProxy; the plan would change 2 things.
    let mut facts = healthy();
    facts
        .get_mut("k8scp02")
        .unwrap()
        .addresses
        .push(address("10.0.0.10"));
    facts
        .get_mut("k8scp02")
        .unwrap()
        .haproxy
        .as_mut()
        .unwrap()
        .insert(
            "k8scp03".into(),
            Backend {
                up: false,
                maint: false,
            },
        );
    let s = assess(&cluster(), &facts, &BTreeMap::new(), Some(2), NOW);
    assert_eq!(
        s.problems,
        [
            "more than one node holds the VIP 10.0.0.10: k8scp01, k8scp02 (VRRP adverts do not reach each other)",
            "k8scp02: HAProxy sees kube-apiserver k8scp03 down",
            "plan would make 2 changes: `kubeforge plan` shows them, `kubeforge apply` makes them",
        ]
    );
    // Two of three members unhealthy: quorum lost, said with the arithmetic.
    let mut facts = healthy();
    for view in views(&mut facts) {
        view.health[1].1 = false;
        view.health[2].1 = false;
    }
    let p = problems_of(&facts);
    assert!(
        p.contains(&"etcd has lost quorum: 1 of 3 voting members healthy, 2 needed".to_string()),
        "{p:?}"
    );
}

#[test]
fn a_node_left_cordoned_by_an_upgrade_and_an_unlisted_node() {
    let mut facts = healthy();
    for view in views(&mut facts) {
        let n = view.nodes.iter_mut().find(|n| n.name == "k8s01").unwrap();
        n.unschedulable = true;
        n.annotations
            .insert("kubeforge.io/cordoned-for".into(), "v1.36.3".into());
        view.nodes.push(NodeStatus {
            name: "k8s77".into(),
            ready: Some(true),
            ..NodeStatus::default()
        });
    }
    let p = problems_of(&facts);
    assert_eq!(
        p,
        [
            "k8s01: left cordoned by an upgrade to v1.36.3 that did not finish: `kubeforge upgrade` completes it",
            "k8s77: a node of the cluster that the inventory does not list",
        ]
    );
}
