//! `kubeforge certs renew` from facts: what is refused and why, each node's turn, what a node
//! whose static pods carry the run's stamp has left (nothing); and the manifest marking run
//! on kubeadm 1.28's own manifests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kubeforge_core::facts::{Backend, ClusterFacts, EtcdMember, HostFacts, NodeStatus, PodStatus};
use kubeforge_core::model::{self, Cluster};
use kubeforge_core::resources::{CERTIFICATE_PODS, Change, RENEWED, changes};
use kubeforge_core::steps::certs::{RenewJob, check, mark_script};
use kubeforge_core::steps::{Ctx, Job};
use kubeforge_core::values::Values;

const CPS: [&str; 3] = ["k8scp01", "k8scp02", "k8scp03"];
const STAMP: &str = "2026-12-07T15:00:00Z";

fn cluster() -> Cluster {
    let mut text = String::from("hosts:\n");
    for (i, n) in CPS.iter().chain(&["k8s01"]).enumerate() {
        text.push_str(&format!("  - name: {n}\n    address: 10.0.0.{}\n", 11 + i));
    }
    text.push_str("vip: 10.0.0.10\ndns:\n  domain: lab.test\n");
    model::load(&text).cluster.unwrap()
}

/// The API's view: every node Ready, etcd whole; the static pods of the nodes in `stamped`
/// marked with [`STAMP`].
fn view(stamped: &[&str]) -> ClusterFacts {
    ClusterFacts {
        readyz: "ok".into(),
        nodes: CPS
            .iter()
            .chain(&["k8s01"])
            .map(|n| NodeStatus {
                name: n.to_string(),
                ready: Some(true),
                ..NodeStatus::default()
            })
            .collect(),
        pods: CPS
            .iter()
            .flat_map(|n| {
                CERTIFICATE_PODS.map(|p| PodStatus {
                    namespace: "kube-system".into(),
                    name: format!("{p}-{n}"),
                    node: n.to_string(),
                    phase: "Running".into(),
                    ready: true,
                    stays: true,
                    marks: if stamped.contains(n) {
                        [(RENEWED.to_string(), STAMP.to_string())].into()
                    } else {
                        BTreeMap::new()
                    },
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
        health: (0..3)
            .map(|i| (format!("https://10.0.0.{}:2379", 11 + i), true))
            .collect(),
        ..ClusterFacts::default()
    }
}

fn facts(api: &ClusterFacts) -> BTreeMap<String, HostFacts> {
    CPS.iter()
        .chain(&["k8s01"])
        .map(|n| {
            let mut f = HostFacts {
                login: "admin".into(),
                ..HostFacts::default()
            };
            if n.starts_with("k8scp") {
                f.kubeadm.admin_conf = true;
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
            }
            (n.to_string(), f)
        })
        .collect()
}

/// Each phase's changes on each of its hosts, as `phase host: step: summary` lines.
fn plan(c: &Cluster, facts: &BTreeMap<String, HostFacts>) -> Vec<String> {
    let values = Values::default();
    let ctx = Ctx {
        cluster: c,
        values: &values,
        offline: false,
        bundle: None,
        facts: Some(facts),
        state: None,
    };
    let job = RenewJob::new(c, STAMP);
    let mut out = Vec::new();
    for phase in job.phases() {
        for node in phase.hosts(c) {
            let f = &facts[&node.node_name];
            for step in phase.steps(&ctx, node, f).unwrap() {
                let found: Vec<Change> = changes(step.id, &step.resources, f);
                for change in found {
                    out.push(format!(
                        "{} {}: {}: {}",
                        phase.name(),
                        node.node_name,
                        change.step,
                        change.summary
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn each_control_plane_node_in_turn_out_of_haproxy_renewed_restarted_and_back() {
    let c = cluster();
    let lines = plan(&c, &facts(&view(&[])));
    let phases: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let mut turns = phases.clone();
    turns.dedup();
    assert_eq!(
        turns,
        ["backend-out", "renew", "backend-in"].repeat(3),
        "{lines:#?}"
    );
    for cp in CPS {
        let own: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("renew {cp}:")))
            .collect();
        assert!(
            own[0].ends_with("renew: kubeadm certs renew all"),
            "{own:#?}"
        );
        assert!(
            own[1].contains("restart: restart etcd, kube-apiserver"),
            "{own:#?}"
        );
        assert!(own[1].contains(STAMP), "{own:#?}");
        assert!(own[2].contains("wait: wait until"), "{own:#?}");
        // Out of and back into each of the three HAProxies.
        for way in ["backend-out", "backend-in"] {
            let n = lines
                .iter()
                .filter(|l| l.starts_with(way) && l.contains(&format!("{cp}'s kube-apiserver")))
                .count();
            assert_eq!(n, 3, "{way} of {cp}: {lines:#?}");
        }
    }
    // The worker takes no part.
    assert!(!lines.iter().any(|l| l.contains("k8s01")), "{lines:#?}");
}

#[test]
fn a_node_whose_static_pods_carry_the_stamp_is_done_and_only_the_others_are_renewed() {
    let c = cluster();
    // (The kubeconfigs' copies follow the facts of the home directories, none here.)
    let lines: Vec<String> = plan(&c, &facts(&view(&["k8scp01", "k8scp02"])))
        .into_iter()
        .filter(|l| !l.contains(": kubeconfigs: "))
        .collect();
    assert!(
        lines.iter().all(|l| l.contains("k8scp03")),
        "only k8scp03 is left: {lines:#?}"
    );
    let left: Vec<String> = plan(&c, &facts(&view(&CPS)))
        .into_iter()
        .filter(|l| !l.contains(": kubeconfigs: "))
        .collect();
    assert!(left.is_empty(), "{left:#?}");
}

#[test]
fn a_renewal_is_refused_while_a_member_or_a_control_plane_node_is_down() {
    let c = cluster();
    assert_eq!(check(&c, &facts(&view(&[]))), Ok(()));
    let mut api = view(&[]);
    api.health[1].1 = false;
    let e = check(&c, &facts(&api)).unwrap_err();
    assert!(e.contains("nothing was changed"), "{e}");
    assert!(e.contains("etcd member k8scp02 is not healthy"), "{e}");
    assert!(
        e.contains("2 of 3 members healthy: restarting one more would leave 1 of the 2 needed"),
        "{e}"
    );
    let mut api = view(&[]);
    api.nodes[2].ready = Some(false);
    let e = check(&c, &facts(&api)).unwrap_err();
    assert!(e.contains("k8scp03 is not Ready"), "{e}");
    let mut f = facts(&view(&[]));
    f.get_mut("k8scp01").unwrap().cluster = None;
    assert!(check(&c, &f).unwrap_err().contains("no cluster"));
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kubeforge-certs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests-1.28");
    for pod in CERTIFICATE_PODS {
        std::fs::copy(
            fixtures.join(format!("{pod}.yaml")),
            dir.join(format!("manifests/{pod}.yaml")),
        )
        .unwrap();
    }
    dir
}

fn mark(dir: &Path, stamp: &str) -> std::process::Output {
    let script = mark_script(stamp).replace("/etc/kubernetes", dir.to_str().unwrap());
    std::process::Command::new("sh")
        .args(["-euc", &script])
        .output()
        .unwrap()
}

fn annotations(dir: &Path, pod: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join(format!("manifests/{pod}.yaml"))).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    serde_json::from_value(v["metadata"]["annotations"].clone()).unwrap()
}

#[test]
fn marking_kubeadm_manifests_adds_or_replaces_the_stamp_and_keeps_everything_else() {
    let dir = scratch("mark");
    let before: BTreeMap<&str, String> = CERTIFICATE_PODS
        .iter()
        .map(|p| {
            let t = std::fs::read_to_string(dir.join(format!("manifests/{p}.yaml"))).unwrap();
            (*p, t)
        })
        .collect();
    let out = mark(&dir, STAMP);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pod in CERTIFICATE_PODS {
        let a = annotations(&dir, pod);
        assert_eq!(
            a.get(RENEWED).map(String::as_str),
            Some(STAMP),
            "{pod}: {a:?}"
        );
        // kubeadm's own annotation kept (etcd and the API server have one).
        assert_eq!(
            a.len(),
            if pod.starts_with("kube-") && pod != "kube-apiserver" {
                1
            } else {
                2
            },
            "{pod}: {a:?}"
        );
        let after = std::fs::read_to_string(dir.join(format!("manifests/{pod}.yaml"))).unwrap();
        let unmarked: Vec<&str> = after
            .lines()
            .filter(|l| !l.contains(RENEWED) && *l != "  annotations:")
            .collect();
        let original: Vec<&str> = before[pod]
            .lines()
            .filter(|l| *l != "  annotations:")
            .collect();
        assert_eq!(unmarked, original, "{pod}: only the mark added");
    }
    // The same stamp again: the files are left as they are (no restart).
    let inode = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir.join(format!("manifests/{p}.yaml")))
            .unwrap()
            .ino()
    };
    let inodes: Vec<u64> = CERTIFICATE_PODS.iter().map(|p| inode(p)).collect();
    assert!(mark(&dir, STAMP).status.success());
    assert_eq!(
        inodes,
        CERTIFICATE_PODS
            .iter()
            .map(|p| inode(p))
            .collect::<Vec<_>>()
    );
    // Another run's stamp replaces it.
    assert!(mark(&dir, "2027-01-01T00:00:00Z").status.success());
    for pod in CERTIFICATE_PODS {
        let a = annotations(&dir, pod);
        assert_eq!(
            a.get(RENEWED).map(String::as_str),
            Some("2027-01-01T00:00:00Z")
        );
        let text = std::fs::read_to_string(dir.join(format!("manifests/{pod}.yaml"))).unwrap();
        assert_eq!(text.matches(RENEWED).count(), 1, "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_manifest_that_cannot_be_marked_is_left_as_it_was() {
    let dir = scratch("broken");
    let path = dir.join("manifests/kube-scheduler.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("metadata:\n", "metadata: {}\n");
    std::fs::write(&path, &text).unwrap();
    let out = mark(&dir, STAMP);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("kube-scheduler.yaml: its metadata could not be marked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let _ = std::fs::remove_dir_all(&dir);
}
