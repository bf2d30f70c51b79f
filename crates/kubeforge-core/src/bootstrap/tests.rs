use std::collections::BTreeMap;

use super::*;
use crate::facts::{ClusterFacts, KubeadmFacts, NodeStatus};

fn cluster() -> Cluster {
    crate::model::load(
        "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8scp02\n    address: 10.0.0.12\n  - name: k8scp03\n    address: 10.0.0.13\n  - name: k8s01\n    address: 10.0.0.21\n  - name: k8s02\n    address: 10.0.0.22\nvip: 10.0.0.10\n",
    )
    .cluster
    .unwrap()
}

/// What the API and etcd say, as seen from a control-plane node.
fn view(nodes: &[&str], members: &[(&str, &str)]) -> ClusterFacts {
    ClusterFacts {
        readyz: "ok".into(),
        nodes: nodes
            .iter()
            .map(|n| NodeStatus {
                name: n.to_string(),
                ready: Some(true),
                ..NodeStatus::default()
            })
            .collect(),
        daemonsets: Vec::new(),
        pods: Vec::new(),
        members: members
            .iter()
            .enumerate()
            .map(|(i, (name, ip))| EtcdMember {
                id: format!("{:x}", 0xa0 + i),
                name: name.to_string(),
                peer_urls: vec![format!("https://{ip}:2380")],
                learner: false,
            })
            .collect(),
        health: Vec::new(),
        leader: None,
    }
}

/// A control-plane node that is in the cluster, seeing `cluster`.
fn control_plane(cluster: ClusterFacts) -> HostFacts {
    HostFacts {
        kubeadm: KubeadmFacts {
            admin_conf: true,
            kubelet_conf: true,
            pki_ca: true,
            kubelet_config: true,
            etcd_data: true,
            manifests: [
                "etcd.yaml",
                "kube-apiserver.yaml",
                "kube-controller-manager.yaml",
                "kube-scheduler.yaml",
            ]
            .map(String::from)
            .to_vec(),
            ..KubeadmFacts::default()
        },
        cluster: Some(cluster),
        ..HostFacts::default()
    }
}

fn worker(registered: bool) -> HostFacts {
    HostFacts {
        kubeadm: KubeadmFacts {
            kubelet_conf: true,
            pki_ca: true,
            kubelet_config: true,
            ..KubeadmFacts::default()
        },
        registered: Some(registered),
        ..HostFacts::default()
    }
}

fn decide_with(facts: &BTreeMap<&str, HostFacts>) -> Result<State, StateError> {
    decide(&cluster(), |n| facts.get(n))
}

fn actions(state: &State) -> Vec<(&str, &str)> {
    state
        .actions
        .iter()
        .map(|(n, a)| {
            let a = match a {
                Action::Member => "member",
                Action::Init { reset } if reset.is_empty() => "init",
                Action::Init { .. } => "reset+init",
                Action::Join { reset } if reset.is_empty() => "join",
                Action::Join { .. } => "reset+join",
            };
            (n.as_str(), a)
        })
        .collect()
}

const ALL_CP: [(&str, &str); 3] = [
    ("k8scp01", "10.0.0.11"),
    ("k8scp02", "10.0.0.12"),
    ("k8scp03", "10.0.0.13"),
];

#[test]
fn bare_hosts_init_on_the_first_and_join_the_rest() {
    let state = decide_with(&BTreeMap::new()).unwrap();
    assert_eq!(state.leader, None);
    assert_eq!(state.init(), Some("k8scp01"));
    assert_eq!(
        actions(&state),
        [
            ("k8s01", "join"),
            ("k8s02", "join"),
            ("k8scp01", "init"),
            ("k8scp02", "join"),
            ("k8scp03", "join")
        ]
    );
    assert!(state.cleanups.is_empty());
}

#[test]
fn a_whole_cluster_is_left_alone() {
    let nodes = ["k8scp01", "k8scp02", "k8scp03", "k8s01", "k8s02"];
    let v = view(&nodes, &ALL_CP);
    let facts = BTreeMap::from([
        ("k8scp01", control_plane(v.clone())),
        ("k8scp02", control_plane(v.clone())),
        ("k8scp03", control_plane(v)),
        ("k8s01", worker(true)),
        ("k8s02", worker(true)),
    ]);
    let state = decide_with(&facts).unwrap();
    assert_eq!(state.leader.as_deref(), Some("k8scp01"));
    assert!(state.actions.values().all(|a| *a == Action::Member));
    assert_eq!(state.joins().count(), 0);
    assert!(state.cleanups.is_empty());
}

#[test]
fn killed_between_init_and_the_joins_the_next_run_joins_without_a_second_init() {
    let facts = BTreeMap::from([("k8scp01", control_plane(view(&["k8scp01"], &ALL_CP[..1])))]);
    let state = decide_with(&facts).unwrap();
    assert_eq!(state.leader.as_deref(), Some("k8scp01"));
    assert_eq!(state.init(), None);
    assert_eq!(
        state.joins().collect::<Vec<_>>(),
        ["k8s01", "k8s02", "k8scp02", "k8scp03"]
    );
}

#[test]
fn first_node_rebuilt_while_the_others_run_joins_them_as_a_new_member() {
    // 01 is a bare host again; the API and etcd still list its old self.
    let nodes = ["k8scp01", "k8scp02", "k8scp03", "k8s01"];
    let v = view(&nodes, &ALL_CP);
    let facts = BTreeMap::from([
        ("k8scp02", control_plane(v.clone())),
        ("k8scp03", control_plane(v)),
        ("k8s01", worker(true)),
    ]);
    let state = decide_with(&facts).unwrap();
    assert_eq!(state.leader.as_deref(), Some("k8scp02"));
    assert_eq!(state.init(), None, "never a second cluster");
    assert_eq!(*state.action("k8scp01"), Action::Join { reset: vec![] });
    // Its old Node and etcd member go first, or the join would clash with them.
    assert_eq!(
        state.cleanups,
        [Cleanup {
            node: "k8scp01".into(),
            delete_node: true,
            etcd_member: Some(EtcdMember {
                id: "a0".into(),
                name: "k8scp01".into(),
                peer_urls: vec!["https://10.0.0.11:2380".into()],
                learner: false,
            }),
        }]
    );
    assert_eq!(*state.action("k8s02"), Action::Join { reset: vec![] });
}

#[test]
fn a_join_that_failed_half_way_is_reset_before_it_joins_again() {
    // k8scp02's join wrote its PKI and manifests, then failed: the API has no such node,
    // and etcd has an unstarted member at its address.
    let mut members = ALL_CP[..1].to_vec();
    members.push(("", "10.0.0.12"));
    let v = view(&["k8scp01"], &members);
    let half = HostFacts {
        kubeadm: KubeadmFacts {
            pki_ca: true,
            manifests: vec!["kube-apiserver.yaml".into()],
            kubelet_config: true,
            bootstrap_kubelet_conf: true,
            ..KubeadmFacts::default()
        },
        ..HostFacts::default()
    };
    // k8s01's join failed after the TLS bootstrap: kubelet.conf, but no Node.
    let facts = BTreeMap::from([
        ("k8scp01", control_plane(v)),
        ("k8scp02", half),
        ("k8s01", worker(false)),
    ]);
    let state = decide_with(&facts).unwrap();
    let Action::Join { reset } = state.action("k8scp02") else {
        panic!("k8scp02 must join")
    };
    assert!(reset.contains(&"/etc/kubernetes/pki/ca.crt".to_string()));
    assert!(reset.contains(&"/etc/kubernetes/manifests/kube-apiserver.yaml".to_string()));
    let cleanup = &state.cleanups[0];
    assert_eq!(cleanup.node, "k8scp02");
    assert!(!cleanup.delete_node);
    assert_eq!(cleanup.etcd_member.as_ref().unwrap().id, "a1");
    assert!(
        matches!(state.action("k8s01"), Action::Join { reset } if reset.contains(&"/etc/kubernetes/kubelet.conf".to_string()))
    );
    assert_eq!(actions(&state)[2], ("k8scp01", "member"));
}

#[test]
fn traces_of_a_cluster_that_does_not_answer_are_never_overwritten() {
    let mut down = control_plane(view(&[], &[]));
    down.cluster = Some(ClusterFacts::default());
    let facts = BTreeMap::from([("k8scp01", down.clone()), ("k8scp02", down)]);
    let err = decide_with(&facts).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("k8scp01 (/etc/kubernetes/admin.conf"),
        "{text}"
    );
    assert!(text.contains("k8scp02"), "{text}");
    assert!(text.contains("will not create a second cluster"), "{text}");
    assert!(text.contains("k8scp.") || text.contains(":8443"), "{text}");
}

#[test]
fn a_failed_init_is_reset_and_run_again() {
    let failed = HostFacts {
        kubeadm: KubeadmFacts {
            pki_ca: true,
            manifests: vec!["etcd.yaml".into()],
            etcd_data: true,
            init_started: true,
            ..KubeadmFacts::default()
        },
        ..HostFacts::default()
    };
    let facts = BTreeMap::from([("k8scp01", failed)]);
    let state = decide_with(&facts).unwrap();
    assert!(
        matches!(state.action("k8scp01"), Action::Init { reset } if reset.contains(&"/var/lib/etcd/member".to_string()))
    );
}

#[test]
fn a_worker_rebuilt_loses_its_old_node_object_first() {
    let nodes = ["k8scp01", "k8scp02", "k8scp03", "k8s01", "k8s02"];
    let v = view(&nodes, &ALL_CP);
    let facts = BTreeMap::from([
        ("k8scp01", control_plane(v.clone())),
        ("k8scp02", control_plane(v.clone())),
        ("k8scp03", control_plane(v)),
        ("k8s01", worker(true)),
    ]);
    let state = decide_with(&facts).unwrap();
    assert_eq!(state.joins().collect::<Vec<_>>(), ["k8s02"]);
    assert_eq!(
        state.cleanups,
        [Cleanup {
            node: "k8s02".into(),
            delete_node: true,
            etcd_member: None
        }]
    );
}

#[test]
fn a_control_plane_node_that_lost_its_api_view_is_not_a_leader() {
    // k8scp01's kubectl could not read etcd (no member list): 02 leads.
    let nodes = ["k8scp01", "k8scp02", "k8scp03"];
    let full = view(&nodes, &ALL_CP);
    let mut partial = full.clone();
    partial.members.clear();
    let facts = BTreeMap::from([
        ("k8scp01", control_plane(partial)),
        ("k8scp02", control_plane(full.clone())),
        ("k8scp03", control_plane(full)),
    ]);
    let state = decide_with(&facts).unwrap();
    assert_eq!(state.leader.as_deref(), Some("k8scp02"));
    assert_eq!(*state.action("k8scp01"), Action::Member);
}

/// A control-plane join killed after kubeadm added its etcd member as a learner (the member
/// has started and has its name, but was never promoted): not a member; its learner goes, and
/// the node joins again.
#[test]
fn a_join_killed_while_its_etcd_member_is_a_learner_is_not_a_member() {
    let mut v = view(&["k8scp01", "k8scp02"], &ALL_CP[..2]);
    v.members[1].learner = true;
    let mut joined = control_plane(v.clone());
    joined.cluster = None;
    let facts = BTreeMap::from([("k8scp01", control_plane(v)), ("k8scp02", joined)]);
    let state = decide_with(&facts).unwrap();
    assert!(matches!(state.action("k8scp02"), Action::Join { .. }));
    let cleanup = &state.cleanups[0];
    assert_eq!(cleanup.node, "k8scp02");
    assert!(cleanup.delete_node);
    assert!(cleanup.etcd_member.as_ref().unwrap().learner);
}

fn skipped() -> HostFacts {
    HostFacts {
        skipped: true,
        ..HostFacts::default()
    }
}

#[test]
fn a_skipped_node_is_left_as_it_is_never_joined_nor_forgotten() {
    // k8scp01 is down and skipped; the cluster answers from k8scp02. Taken as bare, k8scp01
    // would be joined again after its Node and etcd member were removed.
    let nodes = ["k8scp01", "k8scp02", "k8scp03", "k8s01", "k8s02"];
    let v = view(&nodes, &ALL_CP);
    let facts = BTreeMap::from([
        ("k8scp01", skipped()),
        ("k8scp02", control_plane(v.clone())),
        ("k8scp03", control_plane(v)),
        ("k8s01", skipped()),
        ("k8s02", worker(true)),
    ]);
    let state = decide_with(&facts).unwrap();
    assert_eq!(state.leader.as_deref(), Some("k8scp02"));
    assert!(state.actions.values().all(|a| *a == Action::Member));
    assert!(state.cleanups.is_empty());
    // Without --skip the same host, bare, is joined after its records are removed.
    let mut bare = facts.clone();
    bare.remove("k8scp01");
    let state = decide_with(&bare).unwrap();
    assert_eq!(state.action("k8scp01"), &Action::Join { reset: vec![] });
    assert_eq!(state.cleanups.len(), 1);
}

#[test]
fn a_control_plane_node_is_skipped_only_while_a_cluster_answers_from_another() {
    let facts = BTreeMap::from([("k8scp03", skipped())]);
    let e = decide_with(&facts).unwrap_err();
    assert_eq!(e, StateError::SkippedControlPlane(vec!["k8scp03".into()]));
    assert!(
        e.to_string()
            .contains("k8scp03 skipped: it may be where the cluster lives")
    );
    // A skipped worker: the others are built, it is left out.
    let facts = BTreeMap::from([("k8s02", skipped())]);
    let state = decide_with(&facts).unwrap();
    assert_eq!(state.init(), Some("k8scp01"));
    assert_eq!(state.action("k8s02"), &Action::Member);
    assert_eq!(state.joins().count(), 3);
}
