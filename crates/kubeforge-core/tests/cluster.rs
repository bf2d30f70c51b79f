//! The cluster's phases from facts: init only where no cluster is, credentials where it lives,
//! joins with their secrets on stdin only, kubeconfigs, readiness and reset.

use std::collections::BTreeMap;

use kubeforge_core::facts::{
    ClusterFacts, DaemonSetStatus, EtcdMember, FileFact, HomeFile, HostFacts, KubeadmFacts,
    LOGIN_USER, NodeStatus, PodStatus,
};
use kubeforge_core::model::{self, Cluster};
use kubeforge_core::resources::{Action, Change, ClusterCondition, changes};
use kubeforge_core::steps::init::Init;
use kubeforge_core::steps::join::{
    CA_CERT_HASH, CERTIFICATE_KEY, JOIN_TOKEN, JoinControlPlanes, JoinCredentials, JoinWorkers,
};
use kubeforge_core::steps::kubeconfigs::Kubeconfigs;
use kubeforge_core::steps::reset::ResetJob;
use kubeforge_core::steps::{Ctx, Job, Phase, Step};
use kubeforge_core::values::Values;

const TOKEN: &str = "abcdef.0123456789abcdef";
const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn cluster() -> Cluster {
    model::load("hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8scp02\n    address: 10.0.0.12\n  - name: k8scp03\n    address: 10.0.0.13\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\ndns:\n  domain: lab.test\nkubernetes_version: \"1.37.1\"\n")
        .cluster
        .unwrap()
}

fn ctx<'a>(c: &'a Cluster, values: &'a Values, facts: &'a BTreeMap<String, HostFacts>) -> Ctx<'a> {
    Ctx {
        cluster: c,
        values,
        offline: false,
        bundle: None,
        facts: Some(facts),
        state: None,
    }
}

fn all_changes(steps: &[Step], facts: &HostFacts) -> Vec<Change> {
    steps
        .iter()
        .flat_map(|s| changes(s.id, &s.resources, facts))
        .collect()
}

fn summaries(changes: &[Change]) -> Vec<&str> {
    changes.iter().map(|c| c.summary.as_str()).collect()
}

fn view(nodes: &[&str]) -> ClusterFacts {
    let cps: Vec<&str> = nodes
        .iter()
        .copied()
        .filter(|n| n.starts_with("k8scp"))
        .collect();
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
        daemonsets: [
            ("kube-system", "kube-proxy"),
            ("calico-system", "calico-node"),
        ]
        .map(|(namespace, name)| DaemonSetStatus {
            namespace: namespace.into(),
            name: name.into(),
            desired: nodes.len() as u64,
            updated: nodes.len() as u64,
            ready: nodes.len() as u64,
            observed: true,
        })
        .to_vec(),
        pods: cps
            .iter()
            .flat_map(|n| {
                [
                    "etcd",
                    "kube-apiserver",
                    "kube-controller-manager",
                    "kube-scheduler",
                ]
                .map(|p| PodStatus {
                    name: format!("{p}-{n}"),
                    node: n.to_string(),
                    phase: "Running".into(),
                    ready: true,
                    ..PodStatus::default()
                })
            })
            .collect(),
        members: cps
            .iter()
            .enumerate()
            .map(|(i, n)| EtcdMember {
                id: format!("{:x}", 0x10 + i),
                name: n.to_string(),
                peer_urls: vec![format!("https://10.0.0.1{}:2380", i + 1)],
                learner: false,
            })
            .collect(),
        health: cps
            .iter()
            .enumerate()
            .map(|(i, _)| (format!("https://10.0.0.1{}:2379", i + 1), true))
            .collect(),
        leader: None,
    }
}

fn member(view: ClusterFacts, address: &str) -> HostFacts {
    let mut f = HostFacts {
        kubeadm: KubeadmFacts {
            admin_conf: true,
            kubelet_conf: true,
            pki_ca: true,
            kubelet_config: true,
            etcd_data: true,
            manifests: vec!["etcd.yaml".into(), "kube-apiserver.yaml".into()],
            ..KubeadmFacts::default()
        },
        cluster: Some(view),
        kubeadm_version: Some("v1.37.1".into()),
        login: "admin".into(),
        ..HostFacts::default()
    };
    f.probes.insert((address.to_string(), 6443), true);
    f
}

fn bare() -> HostFacts {
    HostFacts {
        kubeadm_version: Some("v1.37.1".into()),
        login: "admin".into(),
        ..HostFacts::default()
    }
}

/// Every node of `c` bare.
fn all_bare(c: &Cluster) -> BTreeMap<String, HostFacts> {
    c.nodes
        .iter()
        .map(|n| (n.node_name.clone(), bare()))
        .collect()
}

#[test]
fn init_runs_on_the_first_node_only_and_only_without_a_cluster() {
    let c = cluster();
    let values = Values::default();
    let facts = all_bare(&c);
    let cx = ctx(&c, &values, &facts);
    let first = Init::BUILD
        .steps(&cx, &c.nodes[0], &facts["k8scp01"])
        .unwrap();
    let planned = all_changes(&first, &facts["k8scp01"]);
    assert_eq!(
        summaries(&planned),
        [
            "create /etc/kubeforge/kubeadm-init.yaml",
            "kubeadm init: create the cluster, its endpoint k8scp.lab.test:8443",
            "wait until k8scp01 is in the cluster and healthy"
        ]
    );
    let init = &planned[1];
    assert!(init.script.contains("kubeadm init --config /etc/kubeforge/kubeadm-init.yaml --skip-token-print --skip-certificate-key-print"));
    assert!(
        init.script
            .contains("touch /var/lib/kubeforge/kubeadm-init-started")
    );
    // The others take no part.
    assert!(
        Init::BUILD
            .steps(&cx, &c.nodes[1], &facts["k8scp02"])
            .unwrap()
            .is_empty()
    );

    // A cluster lives on 02 and 03 (01 was rebuilt): no init anywhere.
    let mut facts = facts;
    let v = view(&["k8scp01", "k8scp02", "k8scp03", "k8s01"]);
    facts.insert("k8scp02".into(), member(v.clone(), "10.0.0.12"));
    facts.insert("k8scp03".into(), member(v, "10.0.0.13"));
    let cx = ctx(&c, &values, &facts);
    assert!(
        Init::BUILD
            .steps(&cx, &c.nodes[0], &facts["k8scp01"])
            .unwrap()
            .is_empty()
    );
    let on_02 = Init::BUILD
        .steps(&cx, &c.nodes[1], &facts["k8scp02"])
        .unwrap();
    assert!(all_changes(&on_02, &facts["k8scp02"]).is_empty());
}

#[test]
fn a_stale_init_marker_on_a_live_cluster_is_cleared() {
    let c = cluster();
    let values = Values::default();
    let mut f = member(view(&["k8scp01"]), "10.0.0.11");
    f.kubeadm.init_started = true;
    let facts = BTreeMap::from([("k8scp01".to_string(), f)]);
    let cx = ctx(&c, &values, &facts);
    let steps = Init::BUILD
        .steps(&cx, &c.nodes[0], &facts["k8scp01"])
        .unwrap();
    assert_eq!(
        summaries(&all_changes(&steps, &facts["k8scp01"])),
        ["note that kubeadm init finished"]
    );
}

#[test]
fn credentials_are_made_where_the_cluster_lives_and_only_when_someone_joins() {
    let c = cluster();
    let values = Values::default();
    // 01 is up alone (kubeforge was killed after init): everyone else joins.
    let facts = BTreeMap::from([(
        "k8scp01".to_string(),
        member(view(&["k8scp01"]), "10.0.0.11"),
    )]);
    let cx = ctx(&c, &values, &facts);
    let steps = JoinCredentials
        .steps(&cx, &c.nodes[0], &facts["k8scp01"])
        .unwrap();
    let planned = all_changes(&steps, &facts["k8scp01"]);
    assert_eq!(
        summaries(&planned),
        [
            "make a bootstrap token for k8s01, k8scp02, k8scp03 (valid 2 h)",
            "upload the control-plane certificates for the joining control-plane nodes, with a fresh key (valid 2 h)"
        ]
    );
    for change in &planned {
        let Action::Script { captures, .. } = &change.action else {
            panic!("a script")
        };
        assert!(captures.iter().all(|c| c.value != JOIN_TOKEN || c.secret));
        assert!(
            captures
                .iter()
                .all(|c| c.value != CERTIFICATE_KEY || c.secret)
        );
    }
    // upload-certs gets this node's own configuration (its advertise address: kubeadm
    // refuses to default one on a host without a default route), on stdin, and no key in
    // it: kubeadm makes a fresh one.
    let upload = &planned[1];
    assert!(
        upload
            .script
            .contains("kubeadm init phase upload-certs --upload-certs --config \"$f\""),
        "{}",
        upload.script
    );
    let config = String::from_utf8(upload.payload.clone()).unwrap();
    assert!(
        config.contains("advertiseAddress: \"10.0.0.11\""),
        "{config}"
    );
    assert!(!config.contains("certificateKey"), "{config}");
    // Once made in this run, not again.
    let mut made = Values::default();
    made.set(JOIN_TOKEN, TOKEN, true);
    made.set(CERTIFICATE_KEY, KEY, true);
    let cx = ctx(&c, &made, &facts);
    let steps = JoinCredentials
        .steps(&cx, &c.nodes[0], &facts["k8scp01"])
        .unwrap();
    assert!(all_changes(&steps, &facts["k8scp01"]).is_empty());

    // Only a worker joins: a token, no certificate key.
    let v = view(&["k8scp01", "k8scp02", "k8scp03"]);
    let facts = BTreeMap::from([
        ("k8scp01".to_string(), member(v.clone(), "10.0.0.11")),
        ("k8scp02".to_string(), member(v.clone(), "10.0.0.12")),
        ("k8scp03".to_string(), member(v, "10.0.0.13")),
    ]);
    let cx = ctx(&c, &values, &facts);
    let steps = JoinCredentials
        .steps(&cx, &c.nodes[0], &facts["k8scp01"])
        .unwrap();
    assert_eq!(
        summaries(&all_changes(&steps, &facts["k8scp01"])),
        ["make a bootstrap token for k8s01 (valid 2 h)"]
    );
    // Elsewhere: nothing.
    assert!(
        JoinCredentials
            .steps(&cx, &c.nodes[1], &facts["k8scp02"])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_rebuilt_first_node_is_forgotten_by_the_cluster_before_it_joins() {
    let c = cluster();
    let values = Values::default();
    let v = view(&["k8scp01", "k8scp02", "k8scp03", "k8s01"]);
    let facts = BTreeMap::from([
        ("k8scp01".to_string(), bare()),
        ("k8scp02".to_string(), member(v.clone(), "10.0.0.12")),
        ("k8scp03".to_string(), member(v, "10.0.0.13")),
        (
            "k8s01".to_string(),
            HostFacts {
                kubeadm: KubeadmFacts {
                    kubelet_conf: true,
                    ..KubeadmFacts::default()
                },
                registered: Some(true),
                ..bare()
            },
        ),
    ]);
    let cx = ctx(&c, &values, &facts);
    let steps = JoinCredentials
        .steps(&cx, &c.nodes[1], &facts["k8scp02"])
        .unwrap();
    let planned = all_changes(&steps, &facts["k8scp02"]);
    assert_eq!(
        summaries(&planned)[0],
        "forget its Node and its etcd member of k8scp01, which joins again"
    );
    assert!(
        planned[0]
            .script
            .contains("delete node k8scp01 --ignore-not-found")
    );
    assert!(
        planned[0]
            .script
            .contains("exec etcd-k8scp02 -- etcdctl --endpoints=https://127.0.0.1:2379")
    );
    assert!(planned[0].script.ends_with("member remove 10"));
    // 01 joins as a control-plane node.
    let join = JoinControlPlanes
        .steps(&cx, &c.nodes[0], &facts["k8scp01"])
        .unwrap();
    let planned = all_changes(&join, &facts["k8scp01"]);
    assert!(summaries(&planned)[0].starts_with("kubeadm join as a control-plane node"));
}

#[test]
fn a_join_carries_its_secrets_on_stdin_only() {
    let c = cluster();
    let mut values = Values::default();
    values.set(JOIN_TOKEN, TOKEN, true);
    values.set(CA_CERT_HASH, "sha256:00ff", false);
    values.set(CERTIFICATE_KEY, KEY, true);
    let facts = BTreeMap::from([
        (
            "k8scp01".to_string(),
            member(view(&["k8scp01"]), "10.0.0.11"),
        ),
        ("k8scp02".to_string(), bare()),
        ("k8s01".to_string(), bare()),
    ]);
    let cx = ctx(&c, &values, &facts);
    let cp = JoinControlPlanes
        .steps(&cx, &c.nodes[1], &facts["k8scp02"])
        .unwrap();
    let planned = all_changes(&cp, &facts["k8scp02"]);
    assert_eq!(
        summaries(&planned),
        [
            "kubeadm join as a control-plane node through k8scp.lab.test:8443",
            "wait until k8scp02's etcd member is healthy and its kube-apiserver answers"
        ]
    );
    let join = &planned[0];
    let payload = String::from_utf8(join.payload.clone()).unwrap();
    assert!(payload.contains(TOKEN) && payload.contains(KEY) && payload.contains("sha256:00ff"));
    for shown in [&join.script, &join.summary] {
        assert!(!shown.contains(TOKEN) && !shown.contains(KEY), "{shown}");
        assert!(!shown.contains("0123456789abcdef"));
    }
    assert!(join.script.contains("umask 077"));
    assert!(join.script.contains("trap 'rm -f \"$f\"' EXIT"));
    assert!(join.script.contains("kubeadm join --config \"$f\""));
    // A worker's configuration has no certificate key.
    let worker = JoinWorkers
        .steps(&cx, &c.nodes[3], &facts["k8s01"])
        .unwrap();
    let planned = all_changes(&worker, &facts["k8s01"]);
    let payload = String::from_utf8(planned[0].payload.clone()).unwrap();
    assert!(payload.contains(TOKEN) && !payload.contains(KEY));
    assert_eq!(summaries(&planned)[1], "wait until the API knows k8s01");
}

#[test]
fn a_member_is_left_alone_and_a_half_joined_node_is_reset_first() {
    let c = cluster();
    let mut values = Values::default();
    values.set(JOIN_TOKEN, TOKEN, true);
    values.set(CA_CERT_HASH, "sha256:00ff", false);
    values.set(CERTIFICATE_KEY, KEY, true);
    let v = view(&["k8scp01", "k8scp02"]);
    let half = HostFacts {
        kubeadm: KubeadmFacts {
            pki_ca: true,
            manifests: vec!["kube-apiserver.yaml".into()],
            ..KubeadmFacts::default()
        },
        ..bare()
    };
    let facts = BTreeMap::from([
        ("k8scp01".to_string(), member(v.clone(), "10.0.0.11")),
        ("k8scp02".to_string(), member(v, "10.0.0.12")),
        ("k8scp03".to_string(), half),
    ]);
    let cx = ctx(&c, &values, &facts);
    let on_02 = JoinControlPlanes
        .steps(&cx, &c.nodes[1], &facts["k8scp02"])
        .unwrap();
    assert!(all_changes(&on_02, &facts["k8scp02"]).is_empty());
    let on_03 = JoinControlPlanes
        .steps(&cx, &c.nodes[2], &facts["k8scp03"])
        .unwrap();
    let planned = all_changes(&on_03, &facts["k8scp03"]);
    assert_eq!(
        summaries(&planned)[0],
        "reset what an earlier join or cluster left (/etc/kubernetes/pki/ca.crt, /etc/kubernetes/manifests/kube-apiserver.yaml)"
    );
    assert!(
        planned[0]
            .script
            .contains("kubeadm reset -f --cri-socket unix:///run/containerd/containerd.sock --skip-phases=remove-etcd-member --kubeconfig /dev/null\n")
    );
    // Never kubeadm's own member removal (five minutes of retries without quorum): the data
    // goes here, the stale member from where the cluster lives.
    assert!(
        planned[0]
            .script
            .contains("\nrm -rf /var/lib/etcd/member\n")
    );
    assert!(summaries(&planned)[1].starts_with("kubeadm join"));
}

#[test]
fn kubeconfigs_are_copies_of_the_admin_kubeconfig_for_root_and_the_login_user() {
    let c = cluster();
    let values = Values::default();
    let mut f = member(view(&["k8scp01"]), "10.0.0.11");
    f.files.insert(
        "/etc/kubernetes/admin.conf".into(),
        Some(FileFact {
            mode: 0o600,
            owner: "root".into(),
            group: "root".into(),
            size: 5000,
            mtime: 1,
            sha256: "aa".repeat(32),
            content: None,
            extracted: BTreeMap::new(),
        }),
    );
    let facts = BTreeMap::from([("k8scp01".to_string(), f.clone())]);
    let cx = ctx(&c, &values, &facts);
    let steps = Kubeconfigs.steps(&cx, &c.nodes[0], &f).unwrap();
    let planned = all_changes(&steps, &f);
    assert_eq!(
        summaries(&planned),
        [
            "copy the admin kubeconfig to root's ~/.kube/config (mode 0600)",
            "copy the admin kubeconfig to admin's ~/.kube/config (mode 0600)"
        ]
    );
    assert!(planned[1].script.contains("u=\"${SUDO_USER:-$(id -un)}\""));
    assert!(planned[1].script.contains("chmod 0600"));
    let copy = |owner: &str, mode: u32| {
        Some(HomeFile {
            path: format!("/home/{owner}/.kube/config"),
            mode,
            owner: owner.into(),
            group: owner.into(),
            sha256: "aa".repeat(32),
            server: "https://k8scp.lab.test:8443".into(),
        })
    };
    f.home_files
        .insert(("root".into(), ".kube/config".into()), copy("root", 0o600));
    // Readable by others: copied again.
    f.home_files.insert(
        (LOGIN_USER.into(), ".kube/config".into()),
        copy("admin", 0o644),
    );
    let steps = Kubeconfigs.steps(&cx, &c.nodes[0], &f).unwrap();
    assert_eq!(all_changes(&steps, &f).len(), 1);
    f.home_files.insert(
        (LOGIN_USER.into(), ".kube/config".into()),
        copy("admin", 0o600),
    );
    let steps = Kubeconfigs.steps(&cx, &c.nodes[0], &f).unwrap();
    assert!(all_changes(&steps, &f).is_empty());
}

#[test]
fn readiness_says_what_is_missing_per_node() {
    let c = cluster();
    let values = Values::default();
    let mut v = view(&["k8scp01", "k8scp02", "k8scp03", "k8s01"]);
    let facts = BTreeMap::from([("k8scp01".to_string(), member(v.clone(), "10.0.0.11"))]);
    let cx = ctx(&c, &values, &facts);
    let settle = Kubeconfigs.settled(&cx).unwrap();
    // The API is asked on the node the cluster lives on; every control-plane node tells what
    // its container runtime runs.
    let on_leader = settle.condition.query("k8scp01");
    let on_other = settle.condition.query("k8scp03");
    assert!(on_leader.cluster && on_leader.static_pods);
    assert!(!on_other.cluster && on_other.static_pods);
    assert!(settle.condition.missing(&facts).is_empty());
    // k8s01 without a network, 03's scheduler down, 02's etcd member unhealthy, 01's
    // kube-apiserver running but not ready yet (its readiness probe).
    v.nodes[3].ready = Some(false);
    v.nodes[3].message = "container runtime network not ready".into();
    v.pods.retain(|p| p.name != "kube-scheduler-k8scp03");
    v.health[1].1 = false;
    v.pods
        .iter_mut()
        .filter(|p| p.name == "kube-apiserver-k8scp01")
        .for_each(|p| p.ready = false);
    let facts = BTreeMap::from([("k8scp01".to_string(), member(v, "10.0.0.11"))]);
    let missing = settle.condition.missing(&facts);
    for expected in [
        "k8s01: not Ready (container runtime network not ready)",
        "k8scp03: kube-scheduler not running and ready",
        "k8scp02: its etcd member is not healthy",
        "k8scp01: kube-apiserver not running and ready",
    ] {
        assert!(
            missing.iter().any(|m| m == expected),
            "{expected:?} not in {missing:?}"
        );
    }
    assert_eq!(missing.len(), 4, "{missing:?}");
    // A node the kubelet finds short of disk says so, and what to do: its images may be gone.
    let mut pressed = view(&["k8scp01", "k8scp02", "k8scp03", "k8s01"]);
    pressed.nodes[0].ready = Some(false);
    pressed.nodes[0].message = "cni plugin not initialized".into();
    pressed.nodes[0].pressure = vec!["DiskPressure".into()];
    let pressed = BTreeMap::from([("k8scp01".to_string(), member(pressed, "10.0.0.11"))]);
    let said = settle.condition.missing(&pressed);
    assert!(
        said.iter().any(|m| m.starts_with(
            "k8scp01: not Ready (cni plugin not initialized); DiskPressure: the kubelet evicts pods and deletes images"
        ) && m.ends_with("run apply again: it imports what is missing")),
        "{said:?}"
    );
    // Without a pod network the nodes need not be Ready.
    let ClusterCondition::Ready {
        on,
        nodes,
        control_planes,
        daemonsets,
        ..
    } = settle.condition
    else {
        panic!("readiness")
    };
    assert_eq!(
        daemonsets,
        [
            ("kube-system".to_string(), "kube-proxy".to_string()),
            ("calico-system".to_string(), "calico-node".to_string())
        ]
    );
    let no_network = ClusterCondition::Ready {
        on,
        nodes,
        control_planes,
        network: false,
        daemonsets: vec![("kube-system".to_string(), "kube-proxy".to_string())],
        skipped: Vec::new(),
    };
    assert_eq!(no_network.missing(&facts).len(), 3);
}

/// A node is Ready once the pod network's init container has copied its CNI configuration,
/// before the network's daemon runs: apply waits for the DaemonSets too.
#[test]
fn readiness_waits_for_the_pod_network_and_kube_proxy_on_every_node() {
    let c = cluster();
    let values = Values::default();
    let mut v = view(&["k8scp01", "k8scp02", "k8scp03", "k8s01"]);
    v.daemonsets[1].ready = 3;
    v.daemonsets[0].updated = 2;
    let mut facts = BTreeMap::from([("k8scp01".to_string(), member(v.clone(), "10.0.0.11"))]);
    let cx = ctx(&c, &values, &facts);
    let settle = Kubeconfigs.settled(&cx).unwrap();
    assert_eq!(
        settle.condition.missing(&facts),
        [
            "DaemonSet kube-system/kube-proxy: 2 of 4 pods run its current template",
            "DaemonSet calico-system/calico-node: 3 of 4 pods ready"
        ]
    );
    v.daemonsets[0].updated = 4;
    v.daemonsets[1].ready = 4;
    v.daemonsets[1].observed = false;
    facts.insert("k8scp01".into(), member(v.clone(), "10.0.0.11"));
    assert_eq!(
        settle.condition.missing(&facts),
        ["DaemonSet calico-system/calico-node: its latest change is not rolled out yet"]
    );
    // Fewer pods scheduled than nodes (the DaemonSet has not seen a node yet).
    v.daemonsets[1].observed = true;
    v.daemonsets[1].desired = 3;
    v.daemonsets[1].updated = 3;
    v.daemonsets[1].ready = 3;
    v.daemonsets.remove(0);
    facts.insert("k8scp01".into(), member(v, "10.0.0.11"));
    assert_eq!(
        settle.condition.missing(&facts),
        [
            "DaemonSet kube-system/kube-proxy: not created yet",
            "DaemonSet calico-system/calico-node: 3 of 4 pods run its current template"
        ]
    );
}

#[test]
fn a_static_pod_the_api_does_not_list_yet_runs_if_its_runtime_runs_it() {
    // A control-plane node that just joined: the API lists none of its static pods yet.
    let c = cluster();
    let values = Values::default();
    let mut v = view(&["k8scp01", "k8scp02", "k8scp03", "k8s01"]);
    v.pods.retain(|p| !p.name.ends_with("-k8scp03"));
    let mut facts = BTreeMap::from([("k8scp01".to_string(), member(v, "10.0.0.11"))]);
    let cx = ctx(&c, &values, &facts);
    let settle = Kubeconfigs.settled(&cx).unwrap();
    let missing = settle.condition.missing(&facts);
    assert_eq!(
        missing,
        [
            "k8scp03: etcd, kube-apiserver, kube-controller-manager, kube-scheduler not running and ready"
        ]
    );
    // Its container runtime runs three of them.
    let mut k8scp03 = bare();
    k8scp03.static_pods = Some(
        ["etcd", "kube-apiserver", "kube-scheduler", "coredns"]
            .map(String::from)
            .into(),
    );
    facts.insert("k8scp03".into(), k8scp03);
    assert_eq!(
        settle.condition.missing(&facts),
        ["k8scp03: kube-controller-manager not running and ready"]
    );
}

#[test]
fn reset_cleans_what_is_there_and_nothing_on_clean_hosts() {
    let c = cluster();
    let values = Values::default();
    let job = ResetJob::new(None, false);
    let phases = job.phases();
    assert_eq!(
        phases.iter().map(|p| p.name()).collect::<Vec<_>>(),
        ["reset"]
    );
    let mut f = member(view(&["k8scp01"]), "10.0.0.11");
    f.leftovers.cni_configs.push("10-flannel.conflist".into());
    f.leftovers.links.push("flannel.1".into());
    f.leftovers.rules = 12;
    let facts = BTreeMap::from([("k8scp01".to_string(), f.clone())]);
    let cx = ctx(&c, &values, &facts);
    let steps = phases[0].steps(&cx, &c.nodes[0], &f).unwrap();
    let planned = all_changes(&steps, &f);
    assert_eq!(planned.len(), 1);
    assert!(
        planned[0]
            .summary
            .starts_with("kubeadm reset and clean up (/etc/kubernetes/admin.conf"),
        "{}",
        planned[0].summary
    );
    assert!(planned[0].script.contains("$t-save | grep -vE"));
    assert!(
        planned[0]
            .script
            .contains("server:[[:space:]]*https://k8scp\\.lab\\.test:8443")
    );
    let clean = bare();
    let steps = phases[0].steps(&cx, &c.nodes[0], &clean).unwrap();
    assert!(all_changes(&steps, &clean).is_empty());

    // One worker: drained on the node the cluster lives on, then reset.
    let job = ResetJob::new(Some(["k8s01".to_string()].into()), true);
    assert!(job.check(&c).is_ok());
    assert!(
        ResetJob::new(
            Some(["k8scp01", "k8scp02", "k8scp03"].map(String::from).into()),
            false
        )
        .check(&c)
        .unwrap_err()
        .contains("that is every control-plane node")
    );
    assert!(
        ResetJob::new(Some(["k8s09".to_string()].into()), false)
            .check(&c)
            .unwrap_err()
            .contains("k8s09 is not in the inventory")
    );
    let names: Vec<&str> = job.phases().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["drain", "reset", "forget", "remove"]);
    let v = view(&["k8scp01", "k8s01"]);
    let facts = BTreeMap::from([("k8scp01".to_string(), member(v, "10.0.0.11"))]);
    let cx = ctx(&c, &values, &facts);
    // Finding the node the cluster lives on takes the kubeadm facts along with the view.
    let q = job.phases()[0].query(&cx, &c.nodes[0]);
    assert!(q.cluster && q.kubeadm, "{q:?}");
    let drain = job.phases()[0]
        .steps(&cx, &c.nodes[0], &facts["k8scp01"])
        .unwrap();
    let planned = all_changes(&drain, &facts["k8scp01"]);
    assert_eq!(summaries(&planned), ["drain k8s01"]);
    // Its Node is deleted after the reset: a running kubelet must not be left without one.
    let forget = job.phases()[2]
        .steps(&cx, &c.nodes[0], &facts["k8scp01"])
        .unwrap();
    let planned = all_changes(&forget, &facts["k8scp01"]);
    assert_eq!(summaries(&planned), ["delete the Node k8s01"]);
    assert!(!planned[0].script.contains("drain"));
    // Once cordoned, the drain is done; once gone, so is the deletion.
    let mut cordoned = facts["k8scp01"].clone();
    if let Some(c) = cordoned.cluster.as_mut() {
        c.nodes
            .iter_mut()
            .filter(|n| n.name == "k8s01")
            .for_each(|n| n.unschedulable = true);
    }
    let drain = job.phases()[0].steps(&cx, &c.nodes[0], &cordoned).unwrap();
    assert!(all_changes(&drain, &cordoned).is_empty());
    let mut gone = facts["k8scp01"].clone();
    if let Some(c) = gone.cluster.as_mut() {
        c.nodes.retain(|n| n.name != "k8s01");
    }
    let forget = job.phases()[2].steps(&cx, &c.nodes[0], &gone).unwrap();
    assert!(all_changes(&forget, &gone).is_empty());
    let hosts: Vec<&str> = job.phases()[1]
        .hosts(&c)
        .iter()
        .map(|n| n.node_name.as_str())
        .collect();
    assert_eq!(hosts, ["k8s01"]);
}

#[test]
fn removing_a_worker_from_a_cluster_that_does_not_answer_stops_before_anything_changes() {
    // kubeadm's files on the control-plane nodes (with and without kubeforge's init marker),
    // and no API answers: the worker can be neither drained nor forgotten.
    let c = cluster();
    let values = Values::default();
    let job = ResetJob::new(Some(["k8s01".to_string()].into()), false);
    for marker in [false, true] {
        let mut down = member(view(&[]), "10.0.0.11");
        down.cluster = None;
        down.kubeadm.init_started = marker;
        let facts: BTreeMap<String, HostFacts> = c
            .control_planes()
            .map(|n| (n.node_name.clone(), down.clone()))
            .collect();
        let cx = ctx(&c, &values, &facts);
        for (phase, verb) in [(0, "drain k8s01"), (2, "delete the Node of k8s01")] {
            let err = job.phases()[phase]
                .steps(&cx, &c.nodes[0], &down)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("no cluster API answers through k8scp.lab.test:8443")
                    && err.contains(&format!("kubeforge cannot {verb}"))
                    && err.contains("kubeforge reset")
                    && !err.contains("second cluster"),
                "{err}"
            );
            // Said once, by the first control-plane node.
            assert!(
                job.phases()[phase]
                    .steps(&cx, &c.nodes[1], &down)
                    .unwrap()
                    .is_empty()
            );
        }
    }
    // Bare control-plane nodes: there is no cluster to drain from, and nothing to say.
    let facts: BTreeMap<String, HostFacts> = c
        .control_planes()
        .map(|n| (n.node_name.clone(), bare()))
        .collect();
    let cx = ctx(&c, &values, &facts);
    assert!(
        job.phases()[0]
            .steps(&cx, &c.nodes[0], &bare())
            .unwrap()
            .is_empty()
    );
}

/// Once every node has joined, the join credentials go: every bootstrap token and
/// kubeadm-certs that the first control-plane node sees, deleted there, once.
#[test]
fn the_join_credentials_are_revoked_once_every_node_has_joined() {
    use kubeforge_core::steps::revoke::Revoke;
    let c = cluster();
    let values = Values::default();
    let v = view(&["k8scp01", "k8scp02", "k8scp03", "k8s01"]);
    let mut first = member(v.clone(), "10.0.0.11");
    first.credentials = Some(vec![
        "bootstrap-token-abc123".into(),
        "bootstrap-token-def456".into(),
        "kubeadm-certs".into(),
    ]);
    let facts = BTreeMap::from([
        ("k8scp01".to_string(), first.clone()),
        ("k8scp02".to_string(), member(v, "10.0.0.12")),
    ]);
    let cx = ctx(&c, &values, &facts);
    // Asked on the first control-plane node only.
    assert!(Revoke.query(&cx, &c.nodes[0]).credentials);
    assert!(!Revoke.query(&cx, &c.nodes[1]).credentials);
    let planned = all_changes(&Revoke.steps(&cx, &c.nodes[0], &first).unwrap(), &first);
    assert_eq!(
        summaries(&planned),
        [
            "delete 2 bootstrap token(s) and the uploaded control-plane certificates (kubeadm-certs): every node has joined"
        ]
    );
    assert!(planned[0].script.ends_with(
        "-n kube-system delete secret --ignore-not-found bootstrap-token-abc123 bootstrap-token-def456 kubeadm-certs"
    ));
    // Only on the first control-plane node.
    let other = &facts["k8scp02"];
    assert!(all_changes(&Revoke.steps(&cx, &c.nodes[1], other).unwrap(), other).is_empty());
    // Nothing left: nothing to do.
    first.credentials = Some(Vec::new());
    assert!(all_changes(&Revoke.steps(&cx, &c.nodes[0], &first).unwrap(), &first).is_empty());
}

/// Removing a control-plane node: refused when etcd would lose its quorum (the arithmetic
/// shown); otherwise its kube-apiserver out of the other HAProxies first, drained and its
/// Node deleted from another node (even when it is the one the cluster lives on), its
/// keepalived and HAProxy stopped with its reset, its etcd member removed.
#[test]
fn removing_a_control_plane_node_keeps_etcd_whole_and_acts_from_another_node() {
    use kubeforge_core::facts::Backend;
    use kubeforge_core::steps::reset::removal_check;
    let c = cluster();
    let values = Values::default();
    let all = ["k8scp01", "k8scp02", "k8scp03", "k8s01"];
    let with_haproxy = |f: HostFacts| HostFacts {
        haproxy: Some(
            ["k8scp01", "k8scp02", "k8scp03"]
                .map(|n| {
                    (
                        n.to_string(),
                        Backend {
                            up: true,
                            maint: false,
                        },
                    )
                })
                .into(),
        ),
        ..f
    };
    let facts: BTreeMap<String, HostFacts> = [
        ("k8scp01", "10.0.0.11"),
        ("k8scp02", "10.0.0.12"),
        ("k8scp03", "10.0.0.13"),
    ]
    .map(|(n, a)| (n.to_string(), with_haproxy(member(view(&all), a))))
    .into();
    let only: std::collections::BTreeSet<String> = ["k8scp01".to_string()].into();
    assert_eq!(removal_check(&c, &facts, &only), Ok(()));
    // One member already down: removing a healthy one leaves 1 of 2, 2 needed.
    let mut sick = facts.clone();
    for f in sick.values_mut() {
        if let Some(v) = f.cluster.as_mut() {
            v.health[2].1 = false;
        }
    }
    let e = removal_check(&c, &sick, &only).unwrap_err();
    assert!(
        e.contains("removing k8scp01 would leave etcd without quorum: 3 members, 2 healthy; after it 2 members, 1 healthy, 2 needed"),
        "{e}"
    );
    // Removing the sick one itself is fine: 2 members, 2 healthy.
    let third: std::collections::BTreeSet<String> = ["k8scp03".to_string()].into();
    assert_eq!(removal_check(&c, &sick, &third), Ok(()));

    // k8scp01, the node the cluster lives on, removed.
    let job = ResetJob::new(Some(only.clone()), false).with_roles(&c);
    assert!(job.check(&c).is_ok());
    let names: Vec<&str> = job.phases().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["backend-out", "drain", "reset", "forget"]);
    let cx = ctx(&c, &values, &facts);
    let phases = job.phases();
    let on = |phase: usize, node: usize| {
        let f = &facts[&c.nodes[node].node_name];
        let steps = phases[phase].steps(&cx, &c.nodes[node], f).unwrap();
        summaries(&all_changes(&steps, f))
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let hosts: Vec<&str> = phases[0]
        .hosts(&c)
        .iter()
        .map(|n| n.node_name.as_str())
        .collect();
    assert_eq!(hosts, ["k8scp02", "k8scp03"]);
    assert_eq!(
        on(0, 1),
        ["take k8scp01's kube-apiserver out of HAProxy here (maintenance)"]
    );
    // Drained and forgotten from k8scp02, not from itself.
    assert!(on(1, 0).is_empty());
    assert_eq!(on(1, 1), ["drain k8scp01"]);
    assert!(on(1, 2).is_empty());
    assert_eq!(
        on(3, 1),
        ["delete the Node k8scp01", "remove k8scp01's etcd member"]
    );
    let f = &facts["k8scp02"];
    let steps = phases[3].steps(&cx, &c.nodes[1], f).unwrap();
    let script = &all_changes(&steps, f)[1].script;
    assert!(
        script.contains("exec etcd-k8scp02 -- etcdctl") && script.ends_with("member remove 10"),
        "{script}"
    );
    // Its reset stops its keepalived and HAProxy first.
    let mut own = facts["k8scp01"].clone();
    own.units.insert(
        "keepalived.service".into(),
        kubeforge_core::facts::UnitFact {
            active: "active".into(),
            sub: "running".into(),
            ..Default::default()
        },
    );
    let steps = phases[2].steps(&cx, &c.nodes[0], &own).unwrap();
    let planned = all_changes(&steps, &own);
    assert!(
        planned[0]
            .script
            .starts_with("systemctl disable --now keepalived.service haproxy.service"),
        "{}",
        planned[0].script
    );
    // Once gone from etcd and from a HAProxy, nothing is left to do there.
    let mut gone = facts["k8scp02"].clone();
    gone.haproxy.as_mut().unwrap().remove("k8scp01");
    if let Some(v) = gone.cluster.as_mut() {
        v.members.retain(|m| m.name != "k8scp01");
        v.nodes.retain(|n| n.name != "k8scp01");
    }
    for phase in [0, 3] {
        let steps = phases[phase].steps(&cx, &c.nodes[1], &gone).unwrap();
        assert!(all_changes(&steps, &gone).is_empty(), "phase {phase}");
    }
}

fn restore_job() -> kubeforge_core::steps::RestoreBuild {
    kubeforge_core::steps::RestoreBuild::new(kubeforge_core::steps::restore::Restore {
        payload: b"BACKUP-PAYLOAD-ca.key".to_vec(),
        taken: "on k8scp01 at 2026-12-07T15:00:00Z".into(),
        vrrp_secret: "vRrP5ecr".into(),
    })
}

#[test]
fn a_restore_puts_the_backup_in_place_before_init_and_only_where_init_runs() {
    let c = cluster();
    let job = restore_job();
    let names: Vec<&str> = job.phases().iter().map(|p| p.name()).collect();
    let build: Vec<&str> = kubeforge_core::steps::PHASES
        .iter()
        .map(|p| p.name())
        .collect();
    assert_eq!(names, build);
    let mut values = Values::default();
    job.preset(&mut values);
    assert_eq!(
        values.get(kubeforge_core::steps::load_balancer::VRRP_SECRET),
        Some("vRrP5ecr")
    );
    assert_eq!(values.mask().apply("pass vRrP5ecr"), "pass ********");

    let init = job.phases()[3];
    assert_eq!(init.name(), "init");
    let facts = all_bare(&c);
    let cx = ctx(&c, &values, &facts);
    let planned = all_changes(
        &init.steps(&cx, &c.nodes[0], &facts["k8scp01"]).unwrap(),
        &facts["k8scp01"],
    );
    assert_eq!(
        summaries(&planned),
        [
            "create /etc/kubeforge/kubeadm-init.yaml",
            "restore the backup taken on k8scp01 at 2026-12-07T15:00:00Z: the CAs and service-account keys into /etc/kubernetes/pki, etcd's data from its snapshot (a new etcd of one member, k8scp01)",
            "kubeadm init: start the cluster, its endpoint k8scp.lab.test:8443",
            "wait until k8scp01 is in the cluster and healthy"
        ]
    );
    let (restore, kubeadm) = (&planned[1], &planned[2]);
    // The backup travels on stdin only.
    assert_eq!(restore.payload, b"BACKUP-PAYLOAD-ca.key");
    assert!(!restore.script.contains("BACKUP-PAYLOAD"));
    assert!(restore.script.contains("head -c 21 >"));
    // The init marker before anything else: a failed restore is a failed init.
    let marker = restore
        .script
        .find("touch /var/lib/kubeforge/kubeadm-init-started");
    let pki = restore.script.find("/etc/kubernetes/pki/ca.key");
    assert!(marker.is_some() && marker < pki, "{}", restore.script);
    let line = restore
        .script
        .lines()
        .find(|l| l.contains("snapshot restore"))
        .unwrap();
    let words = shlex::split(line).unwrap();
    assert_eq!(
        words[2..words.len() - 1],
        [
            "snapshot",
            "restore",
            "$t/etcd/snapshot.db",
            "--name",
            "k8scp01",
            "--initial-cluster",
            "k8scp01=https://10.0.0.11:2380",
            "--initial-advertise-peer-urls",
            "https://10.0.0.11:2380",
            "--data-dir",
            "/var/lib/etcd.kubeforge-restore"
        ]
    );
    assert!(
        restore
            .script
            .contains("install -m 0600 \"$t/pki/sa.key\" /etc/kubernetes/pki/sa.key")
    );
    assert!(
        restore
            .script
            .contains("install -m 0644 \"$t/pki/etcd/ca.crt\" /etc/kubernetes/pki/etcd/ca.crt")
    );
    assert!(kubeadm.script.ends_with(
        "kubeadm init --config /etc/kubeforge/kubeadm-init.yaml --skip-token-print --skip-certificate-key-print --ignore-preflight-errors=DirAvailable--var-lib-etcd"
    ));
    // The others take no part; a cluster that lives gets no restore.
    assert!(
        init.steps(&cx, &c.nodes[1], &facts["k8scp02"])
            .unwrap()
            .is_empty()
    );
    let live = BTreeMap::from([(
        "k8scp01".to_string(),
        member(view(&["k8scp01"]), "10.0.0.11"),
    )]);
    let cx = ctx(&c, &values, &live);
    assert!(
        all_changes(
            &init.steps(&cx, &c.nodes[0], &live["k8scp01"]).unwrap(),
            &live["k8scp01"]
        )
        .is_empty()
    );
}

#[test]
fn a_restore_is_refused_where_a_cluster_answers_or_another_clusters_files_are() {
    use kubeforge_core::steps::restore::check;
    let c = cluster();
    let mut facts = all_bare(&c);
    assert_eq!(check(&c, &facts), Ok(()));
    // What a failed init or restore left is done again.
    facts.get_mut("k8scp01").unwrap().kubeadm.init_started = true;
    facts.get_mut("k8scp01").unwrap().kubeadm.etcd_data = true;
    assert_eq!(check(&c, &facts), Ok(()));
    // Another cluster's files, no cluster answering.
    facts.get_mut("k8scp01").unwrap().kubeadm.init_started = false;
    let e = check(&c, &facts).unwrap_err();
    assert!(
        e.starts_with(
            "the restore is refused, nothing was changed: kubeadm has been at work on k8scp01"
        ),
        "{e}"
    );
    // A cluster answers.
    facts.insert("k8scp02".into(), member(view(&["k8scp02"]), "10.0.0.12"));
    let e = check(&c, &facts).unwrap_err();
    assert!(e.contains("a cluster answers on k8scp02"), "{e}");
}

#[test]
fn a_backup_must_fit_the_inventory_it_is_restored_with() {
    use kubeforge_core::steps::restore::mismatches;
    let c = cluster();
    let config = |pods: &str| {
        format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: {}\nnetworking:\n  podSubnet: {pods}\n  serviceSubnet: {}\n",
            c.control_plane_endpoint(),
            c.service_cidr.value
        )
    };
    assert_eq!(
        mismatches(&c, &config(&c.pod_cidr().to_string())),
        Ok(vec![])
    );
    assert_eq!(
        mismatches(&c, &config("10.99.0.0/16")),
        Ok(vec![format!(
            "networking.podSubnet: the backup's cluster has \"10.99.0.0/16\", this inventory makes \"{}\"",
            c.pod_cidr()
        )])
    );
    assert!(mismatches(&c, "{ not yaml").is_err());
}

/// `apply --skip k8scp03`: the cluster is Ready without it. Its Node NotReady, its static pods
/// and etcd member down and the DaemonSets' pods on it not ready are not waited for; its etcd
/// member is no stranger.
#[test]
fn readiness_leaves_skipped_nodes_out() {
    let c = cluster();
    let values = Values::default();
    let mut v = view(&["k8scp01", "k8scp02", "k8scp03", "k8s01"]);
    v.nodes[2].ready = Some(false);
    v.pods.retain(|p| !p.name.ends_with("-k8scp03"));
    v.health[2].1 = false;
    for d in &mut v.daemonsets {
        d.ready = 3;
    }
    let mut facts = BTreeMap::from([
        ("k8scp01".to_string(), member(v.clone(), "10.0.0.11")),
        (
            "k8scp03".to_string(),
            HostFacts {
                skipped: true,
                ..HostFacts::default()
            },
        ),
    ]);
    let cx = ctx(&c, &values, &facts);
    let settle = Kubeconfigs.settled(&cx).unwrap();
    assert_eq!(settle.condition.missing(&facts), Vec::<String>::new());
    // One more pod not ready, on a node that is not skipped: waited for.
    v.daemonsets[0].ready = 2;
    facts.insert("k8scp01".into(), member(v.clone(), "10.0.0.11"));
    assert_eq!(
        settle.condition.missing(&facts),
        ["DaemonSet kube-system/kube-proxy: 2 of 3 pods ready"]
    );
    // Not skipped, the same node is waited for.
    facts.remove("k8scp03");
    v.daemonsets[0].ready = 3;
    facts.insert("k8scp01".into(), member(v, "10.0.0.11"));
    let cx = ctx(&c, &values, &facts);
    let missing = Kubeconfigs.settled(&cx).unwrap().condition.missing(&facts);
    assert!(
        missing.iter().any(|m| m.starts_with("k8scp03: not Ready")),
        "{missing:?}"
    );
}
