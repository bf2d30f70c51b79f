//! `kubeforge upgrade` from facts: what is refused and why (nothing changed), the phases of
//! a 3+2 cluster, each node's steps, and what an interrupted upgrade finds left to do.

use std::collections::BTreeMap;

use kubeforge_core::facts::{
    Backend, ClusterFacts, EtcdMember, HostFacts, KubeadmFacts, NodeStatus, PodStatus,
};
use kubeforge_core::model::{self, Cluster};
use kubeforge_core::resources::{Change, changes};
use kubeforge_core::steps::upgrade::{CORDONED, UpgradeJob, check};
use kubeforge_core::steps::{Ctx, Job, Phase, Step};
use kubeforge_core::values::Values;

const CPS: [&str; 3] = ["k8scp01", "k8scp02", "k8scp03"];
const NODES: [&str; 5] = ["k8scp01", "k8scp02", "k8scp03", "k8s01", "k8s02"];

fn cluster(version: &str) -> Cluster {
    let mut text = String::from("hosts:\n");
    for (i, n) in NODES.iter().enumerate() {
        text.push_str(&format!("  - name: {n}\n    address: 10.0.0.{}\n", 11 + i));
    }
    text.push_str(&format!(
        "vip: 10.0.0.10\ndns:\n  domain: lab.test\nkubernetes_version: \"{version}\"\n"
    ));
    model::load(&text).cluster.unwrap()
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

/// The API's view: every node Ready on `kubelet`, one healthy etcd member per control plane,
/// the static pods on `images`.
fn view(kubelet: &str, images: &str) -> ClusterFacts {
    ClusterFacts {
        readyz: "ok".into(),
        nodes: NODES
            .iter()
            .map(|n| NodeStatus {
                name: n.to_string(),
                ready: Some(true),
                kubelet_version: kubelet.into(),
                ..NodeStatus::default()
            })
            .collect(),
        pods: CPS
            .iter()
            .flat_map(|n| {
                [
                    "kube-apiserver",
                    "kube-controller-manager",
                    "kube-scheduler",
                ]
                .map(|p| PodStatus {
                    namespace: "kube-system".into(),
                    name: format!("{p}-{n}"),
                    node: n.to_string(),
                    phase: "Running".into(),
                    ready: true,
                    images: vec![format!("registry.k8s.io/{p}:{images}")],
                    stays: true,
                    ..PodStatus::default()
                })
            })
            .collect(),
        members: CPS
            .iter()
            .enumerate()
            .map(|(i, n)| EtcdMember {
                id: format!("{:x}", 0x10 + i),
                name: n.to_string(),
                peer_urls: vec![format!("https://10.0.0.{}:2380", 11 + i)],
                learner: false,
            })
            .collect(),
        health: CPS
            .iter()
            .enumerate()
            .map(|(i, _)| (format!("https://10.0.0.{}:2379", 11 + i), true))
            .collect(),
        ..ClusterFacts::default()
    }
}

/// Every host's facts: the control planes with the API's view and their manifests on
/// `manifests`, the workers knowing their own Node.
fn facts(kubelet: &str, manifests: &str) -> BTreeMap<String, HostFacts> {
    let api = view(kubelet, manifests);
    NODES
        .iter()
        .map(|n| {
            let mut f = HostFacts {
                login: "admin".into(),
                ..HostFacts::default()
            };
            f.system.cgroup_v2 = true;
            if n.starts_with("k8scp") {
                f.kubeadm = KubeadmFacts {
                    admin_conf: true,
                    manifest_images: [
                        "kube-apiserver",
                        "kube-controller-manager",
                        "kube-scheduler",
                    ]
                    .iter()
                    .map(|c| {
                        (
                            format!("{c}.yaml"),
                            format!("registry.k8s.io/{c}:{manifests}"),
                        )
                    })
                    .collect(),
                    ..KubeadmFacts::default()
                };
                f.cluster = Some(api.clone());
                f.haproxy = Some(
                    CPS.iter()
                        .map(|c| {
                            (
                                c.to_string(),
                                Backend {
                                    up: true,
                                    maint: false,
                                },
                            )
                        })
                        .collect(),
                );
            } else {
                f.own_node = api.node(n).cloned();
            }
            (n.to_string(), f)
        })
        .collect()
}

fn node<'c>(c: &'c Cluster, name: &str) -> &'c model::Node {
    c.nodes.iter().find(|n| n.node_name == name).unwrap()
}

fn all_changes(steps: &[Step], facts: &HostFacts) -> Vec<Change> {
    steps
        .iter()
        .flat_map(|s| changes(s.id, &s.resources, facts))
        .collect()
}

/// The upgrade's own changes (what packages, services and kubeconfig copies change is
/// tested with their phases: `runtime`, `load-balancer`, `kubeconfigs`).
fn own(changes: Vec<String>) -> Vec<String> {
    changes
        .into_iter()
        .filter(|c| {
            ![
                "kubeadm:",
                "kubelet: install",
                "kubelet: hold",
                "kubelet: create",
                "kubelet: refresh",
                "keepalived:",
                "kubeconfigs:",
            ]
            .iter()
            .any(|p| c.starts_with(p))
        })
        .collect()
}

/// The summaries of `phase`'s changes on `host`.
fn planned(
    phase: &dyn Phase,
    c: &Cluster,
    values: &Values,
    f: &BTreeMap<String, HostFacts>,
    host: &str,
) -> Vec<String> {
    let steps = phase
        .steps(&ctx(c, values, f), node(c, host), &f[host])
        .unwrap();
    all_changes(&steps, &f[host])
        .into_iter()
        .map(|c| format!("{}: {}", c.step, c.summary))
        .collect()
}

fn phase<'j>(job: &'j UpgradeJob, name: &str, nth: usize) -> &'j dyn Phase {
    job.phases()
        .into_iter()
        .filter(|p| p.name() == name)
        .nth(nth)
        .unwrap()
}

#[test]
fn a_patch_upgrade_is_allowed_and_each_refusal_says_why() {
    let values = Values::default();
    let ok = facts("v1.36.3", "v1.36.3");
    let target = cluster("1.36.4");
    assert_eq!(check(&ctx(&target, &values, &ok), &ok), Ok(()));
    // The next minor too.
    let next = cluster("1.37.1");
    assert_eq!(check(&ctx(&next, &values, &ok), &ok), Ok(()));

    let refused =
        |c: &Cluster, f: &BTreeMap<String, HostFacts>| check(&ctx(c, &values, f), f).unwrap_err();
    let down = refused(&cluster("1.36.2"), &ok);
    assert!(down.contains("nothing was changed"), "{down}");
    assert!(
        down.contains("k8scp01's kubelet runs 1.36.3, newer than the target 1.36.2: kubeforge never downgrades"),
        "{down}"
    );
    let old = facts("v1.35.9", "v1.35.9");
    let skipped = refused(&next, &old);
    assert!(
        skipped.contains("runs 1.35.9, and Kubernetes is upgraded one minor at a time: upgrade to 1.36 first (`kubeforge upgrade --to 1.36`), then to 1.37"),
        "{skipped}"
    );

    let mut not_ready = ok.clone();
    for f in not_ready.values_mut() {
        if let Some(api) = f.cluster.as_mut() {
            let n = api.nodes.iter_mut().find(|n| n.name == "k8s02").unwrap();
            n.ready = Some(false);
            n.message = "container runtime network not ready".into();
        }
    }
    let why = refused(&target, &not_ready);
    assert!(
        why.contains("k8s02 is not Ready (container runtime network not ready): an upgrade drains nodes one by one"),
        "{why}"
    );

    let mut sick = ok.clone();
    for f in sick.values_mut() {
        if let Some(api) = f.cluster.as_mut() {
            api.health[1].1 = false;
        }
    }
    let why = refused(&target, &sick);
    assert!(why.contains("etcd member k8scp02 is not healthy"), "{why}");

    // An interrupted run left k8scp02 cordoned for the upgrade, its kubelet and etcd member
    // restarting: its turn is finished, not refused; but never without etcd's quorum.
    let mut mid_turn = sick.clone();
    for f in mid_turn.values_mut() {
        if let Some(api) = f.cluster.as_mut() {
            let n = api.nodes.iter_mut().find(|n| n.name == "k8scp02").unwrap();
            n.ready = None;
            n.unschedulable = true;
            n.annotations
                .insert("kubeforge.io/cordoned-for".into(), "upgrade".into());
        }
    }
    assert_eq!(check(&ctx(&target, &values, &mid_turn), &mid_turn), Ok(()));
    for f in mid_turn.values_mut() {
        if let Some(api) = f.cluster.as_mut() {
            api.health[2].1 = false;
        }
    }
    let why = refused(&target, &mid_turn);
    assert!(
        why.contains("etcd has no quorum: 1 of 3 members healthy, 2 needed")
            && why.contains("etcd member k8scp03 is not healthy")
            && !why.contains("k8scp02"),
        "{why}"
    );

    let mut v1 = ok.clone();
    v1.get_mut("k8s01").unwrap().system.cgroup_v2 = false;
    let why = refused(&next, &v1);
    assert!(
        why.contains("k8s01 runs cgroup v1, and the kubelet of Kubernetes 1.37 refuses it"),
        "{why}"
    );

    let mut none = ok.clone();
    none.get_mut("k8scp01").unwrap().cluster = None;
    let why = refused(&target, &none);
    assert!(why.contains("no cluster to upgrade"), "{why}");
}

#[test]
fn the_phases_take_control_planes_one_at_a_time_and_workers_in_batches() {
    let c = cluster("1.36.4");
    let names =
        |job: UpgradeJob| -> Vec<&'static str> { job.phases().iter().map(|p| p.name()).collect() };
    let per_cp = ["backend-out", "upgrade-control-plane", "backend-in"];
    let per_batch = ["drain-workers", "upgrade-workers", "uncordon-workers"];
    let mut expected = vec!["snapshot", "images"];
    expected.extend(per_cp.iter().cycle().take(9));
    expected.extend(per_batch.iter().cycle().take(6));
    assert_eq!(names(UpgradeJob::new(&c, 1)), expected);
    let two = names(UpgradeJob::new(&c, 2));
    assert_eq!(two.len(), 2 + 9 + 3);
    assert_eq!(names(UpgradeJob::new(&c, 1).snapshot_only()), ["snapshot"]);
    assert_eq!(
        names(UpgradeJob::new(&c, 1).without_snapshot())[0],
        "images"
    );
    // Each control-plane node's turn is its own: the first first.
    let job = UpgradeJob::new(&c, 1);
    let upgrading: Vec<Vec<String>> = job
        .phases()
        .iter()
        .filter(|p| p.name() == "upgrade-control-plane")
        .map(|p| p.hosts(&c).iter().map(|n| n.node_name.clone()).collect())
        .collect();
    assert_eq!(upgrading, [["k8scp01"], ["k8scp02"], ["k8scp03"]]);
}

#[test]
fn each_control_plane_node_is_taken_out_drained_upgraded_and_put_back() {
    let c = cluster("1.36.4");
    let job = UpgradeJob::new(&c, 1);
    let mut values = Values::default();
    let f = facts("v1.36.3", "v1.36.3");
    let settle = phase(&job, "upgrade-control-plane", 0);
    let empty = Values::default();
    settle
        .settle(&ctx(&c, &empty, &f), &f, &mut values, &mut |_| {})
        .unwrap();
    assert_eq!(values.get("kubernetes-package-version"), Some("1.36.4-*"));

    let out = planned(phase(&job, "backend-out", 0), &c, &values, &f, "k8scp02");
    assert_eq!(
        out,
        ["haproxy: take k8scp01's kube-apiserver out of HAProxy here (maintenance)"]
    );
    // The plan shows it put back afterwards too.
    assert_eq!(
        planned(phase(&job, "backend-in", 0), &c, &values, &f, "k8scp02"),
        ["haproxy: put k8scp01's kube-apiserver back in HAProxy here"]
    );
    let first = planned(settle, &c, &values, &f, "k8scp01");
    let text = first.join("\n");
    assert!(text.contains("drain: cordon and drain k8scp01"), "{text}");
    assert!(
        text.contains("install kubeadm (1.36.4-*)") || text.contains("kubeadm"),
        "{text}"
    );
    assert!(
        text.contains("upgrade: kubeadm upgrade plan, then kubeadm upgrade apply v1.36.4 (ignoring CoreDNS's checks: the cluster runs no CoreDNS)"),
        "{text}"
    );
    assert!(
        text.contains("kubelet: restart the kubelet on its new version"),
        "{text}"
    );
    assert!(
        text.contains("wait: wait until k8scp01 runs v1.36.4"),
        "{text}"
    );
    assert!(text.contains("uncordon: uncordon k8scp01"), "{text}");
    let second = planned(
        phase(&job, "upgrade-control-plane", 1),
        &c,
        &values,
        &f,
        "k8scp02",
    );
    assert!(
        second
            .iter()
            .any(|s| s.starts_with("upgrade: kubeadm upgrade node")),
        "{second:?}"
    );
    // The scripts: no secret, the node's name quoted, the eviction honouring budgets.
    let steps = settle
        .steps(&ctx(&c, &values, &f), node(&c, "k8scp01"), &f["k8scp01"])
        .unwrap();
    let scripts: Vec<String> = all_changes(&steps, &f["k8scp01"])
        .into_iter()
        .map(|c| c.script)
        .collect();
    let all = scripts.join("\n");
    assert!(all.contains("annotate --overwrite node k8scp01 kubeforge.io/cordoned-for=upgrade"));
    assert!(
        all.contains("drain k8scp01 --ignore-daemonsets --delete-emptydir-data --timeout=300s")
    );
    assert!(all.contains("kubeadm upgrade apply v1.36.4 --yes --ignore-preflight-errors=CoreDNSUnsupportedPlugins,CoreDNSMigration"));

    // Taken out on every HAProxy: back in afterwards, once the node runs the target.
    let mut after = facts("v1.36.4", "v1.36.4");
    for f in after.values_mut() {
        if let Some(h) = f.haproxy.as_mut() {
            h.get_mut("k8scp01").unwrap().maint = true;
        }
    }
    assert!(
        planned(
            phase(&job, "backend-out", 0),
            &c,
            &values,
            &after,
            "k8scp03"
        )
        .is_empty()
    );
    assert_eq!(
        planned(phase(&job, "backend-in", 0), &c, &values, &after, "k8scp03"),
        ["haproxy: put k8scp01's kube-apiserver back in HAProxy here"]
    );
    // A node on the target, uncordoned: nothing at all.
    let done = facts("v1.36.4", "v1.36.4");
    for (i, name) in CPS.iter().enumerate() {
        for stage in ["backend-out", "upgrade-control-plane", "backend-in"] {
            let p = phase(&job, stage, i);
            for host in p.hosts(&c) {
                let left = own(planned(p, &c, &values, &done, &host.node_name));
                assert!(
                    left.is_empty(),
                    "{name} {stage} on {}: {left:?}",
                    host.node_name
                );
            }
        }
    }
}

#[test]
fn an_interrupted_upgrade_continues_where_it_stopped() {
    let c = cluster("1.36.4");
    let job = UpgradeJob::new(&c, 1);
    let values = Values::default();
    // k8scp02 was drained and upgraded, then kubeforge was killed: only the uncordon is left.
    let mut f = facts("v1.36.4", "v1.36.4");
    for facts in f.values_mut() {
        if let Some(api) = facts.cluster.as_mut() {
            let n = api.nodes.iter_mut().find(|n| n.name == "k8scp02").unwrap();
            n.unschedulable = true;
            n.annotations.insert(CORDONED.into(), "upgrade".into());
        }
    }
    assert_eq!(
        own(planned(
            phase(&job, "upgrade-control-plane", 1),
            &c,
            &values,
            &f,
            "k8scp02"
        )),
        ["uncordon: uncordon k8scp02"]
    );
    // Found cordoned (by an operator: no mark) on the old version with a pod on it: drained all
    // the same, then left cordoned.
    let mut f = facts("v1.36.3", "v1.36.3");
    for facts in f.values_mut() {
        if let Some(api) = facts.cluster.as_mut() {
            api.nodes
                .iter_mut()
                .find(|n| n.name == "k8s01")
                .unwrap()
                .unschedulable = true;
            api.pods.push(PodStatus {
                namespace: "default".into(),
                name: "web-1".into(),
                node: "k8s01".into(),
                ..PodStatus::default()
            });
        }
    }
    assert_eq!(
        planned(phase(&job, "drain-workers", 0), &c, &values, &f, "k8scp01"),
        [
            "drain-workers: cordon and drain k8s01 (its pods evicted, PodDisruptionBudgets honoured; stops after 300 s naming the pods that block it)"
        ]
    );
    assert!(
        planned(
            phase(&job, "uncordon-workers", 0),
            &c,
            &values,
            &f,
            "k8scp01"
        )
        .is_empty()
    );
    let steps = phase(&job, "drain-workers", 0)
        .steps(&ctx(&c, &values, &f), node(&c, "k8scp01"), &f["k8scp01"])
        .unwrap();
    let script = &all_changes(&steps, &f["k8scp01"])[0].script;
    assert!(!script.contains("annotate"), "{script}");
    // Cordoned with nothing left to evict: drained, nothing to do.
    for facts in f.values_mut() {
        if let Some(api) = facts.cluster.as_mut() {
            api.pods.retain(|p| p.name != "web-1");
        }
    }
    assert!(planned(phase(&job, "drain-workers", 0), &c, &values, &f, "k8scp01").is_empty());
    // The worker itself: kubeadm upgrade node, the kubelet, its own Node asked.
    let worker = planned(phase(&job, "upgrade-workers", 0), &c, &values, &f, "k8s01");
    let text = worker.join("\n");
    assert!(text.contains("upgrade: kubeadm upgrade node"), "{text}");
    assert!(
        text.contains("wait: wait until k8s01 runs v1.36.4"),
        "{text}"
    );
}

#[test]
fn a_minor_upgrade_switches_the_package_repository_first() {
    let c = cluster("1.37.1");
    let job = UpgradeJob::new(&c, 1);
    let mut values = Values::default();
    let f = facts("v1.36.3", "v1.36.3");
    let p = phase(&job, "upgrade-control-plane", 0);
    let empty = Values::default();
    p.settle(&ctx(&c, &empty, &f), &f, &mut values, &mut |_| {})
        .unwrap();
    let steps = p
        .steps(&ctx(&c, &values, &f), node(&c, "k8scp01"), &f["k8scp01"])
        .unwrap();
    let kubeadm = steps.iter().find(|s| s.id == "kubeadm").unwrap();
    let changes = changes(kubeadm.id, &kubeadm.resources, &f["k8scp01"]);
    let scripts: Vec<&str> = changes.iter().map(|c| c.script.as_str()).collect();
    let all = scripts.join("\n");
    assert!(
        all.contains("https://pkgs.k8s.io/core:/stable:/v1.37/deb/"),
        "{all}"
    );
    assert!(all.contains("kubeadm=1.37.1-*"), "{all}");
    assert!(
        !all.contains("kubelet="),
        "the kubelet waits for its turn: {all}"
    );
}

#[test]
fn the_target_must_be_in_the_package_repository_the_first_node_reads() {
    let values = Values::default();
    let mut f = facts("v1.36.3", "v1.36.3");
    let first = f.get_mut("k8scp01").unwrap();
    first.repository = Some(Ok(vec!["1.36.3-1.1".into(), "1.36.4-1.1".into()]));
    let target = cluster("1.36.4");
    assert_eq!(check(&ctx(&target, &values, &f), &f), Ok(()));
    let minor = cluster("1.36");
    assert_eq!(check(&ctx(&minor, &values, &f), &f), Ok(()));
    let missing = cluster("1.36.9");
    let why = check(&ctx(&missing, &values, &f), &f).unwrap_err();
    assert!(
        why.contains("https://pkgs.k8s.io/core:/stable:/v1.36/deb/ has no kubeadm 1.36.9 (it offers 1.36.3-1.1, 1.36.4-1.1): pick one it has with --to"),
        "{why}"
    );
    f.get_mut("k8scp01").unwrap().repository =
        Some(Err("curl: (6) Could not resolve host: pkgs.k8s.io".into()));
    let why = check(&ctx(&target, &values, &f), &f).unwrap_err();
    assert!(
        why.contains("k8scp01 cannot read https://pkgs.k8s.io/core:/stable:/v1.36/deb/ (curl: (6) Could not resolve host: pkgs.k8s.io)"),
        "{why}"
    );
}

#[test]
fn kubeadm_upgrade_plan_must_agree_unless_the_cluster_explains_its_refusal() {
    use kubeforge_core::facts::UpgradePlan;
    let values = Values::default();
    let target = cluster("1.36.4");
    let mut f = facts("v1.36.3", "v1.36.3");
    let refusal = |errors: &[&str]| UpgradePlan {
        status: 1,
        tail: errors
            .iter()
            .map(|e| format!("\t[ERROR {e}]: it says why"))
            .chain(["error execution phase preflight: some preflight checks failed".to_string()])
            .collect(),
    };
    f.get_mut("k8scp01").unwrap().upgrade_plan = Some(UpgradePlan {
        status: 0,
        tail: vec!["Awesome, you're up-to-date! Enjoy!".into()],
    });
    assert_eq!(check(&ctx(&target, &values, &f), &f), Ok(()));
    // No CoreDNS in the cluster: its migration checks fail, as kubeadm 1.28's do here.
    f.get_mut("k8scp01").unwrap().upgrade_plan =
        Some(refusal(&["CoreDNSUnsupportedPlugins", "CoreDNSMigration"]));
    assert_eq!(check(&ctx(&target, &values, &f), &f), Ok(()));
    f.get_mut("k8scp01").unwrap().upgrade_plan =
        Some(refusal(&["CoreDNSMigration", "ControlPlaneNodesReady"]));
    let why = check(&ctx(&target, &values, &f), &f).unwrap_err();
    assert!(
        why.contains("`kubeadm upgrade plan v1.36.4` on k8scp01 does not agree (exit 1):\n      \t[ERROR CoreDNSMigration]"),
        "{why}"
    );
    // With CoreDNS running, its checks are not explained away.
    for facts in f.values_mut() {
        if let Some(api) = facts.cluster.as_mut() {
            api.pods.push(PodStatus {
                name: "coredns-5d78c9869d-abcde".into(),
                ..PodStatus::default()
            });
        }
    }
    f.get_mut("k8scp01").unwrap().upgrade_plan = Some(refusal(&["CoreDNSMigration"]));
    assert!(check(&ctx(&target, &values, &f), &f).is_err());
}
