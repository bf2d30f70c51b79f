//! kubeforge's kubeadm configuration files, as kubeforge-core's snapshots hold them
//! (`crates/kubeforge-core/tests/snapshots/kubeadm__*.snap`), decoded by the kubeadm stand-in
//! as kubeadm decodes them: strictly (an unknown field or a wrong type fails), v1beta3 by a
//! v1.28.7 kubeadm and v1beta4 by a v1.37.0 one, then validated as `kubeadm init` and
//! `kubeadm join` validate them.

use std::path::{Path, PathBuf};

use kubeforge_standins::api;
use kubeforge_standins::env::{Env, Version};

const KINDS: &[&str] = &[
    "InitConfiguration",
    "ClusterConfiguration",
    "JoinConfiguration",
];

fn snapshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/kubeforge-core/tests/snapshots")
}

/// The snapshot's contents without insta's header (`---`, its metadata, `---`).
fn contents(snap: &str) -> &str {
    let rest = snap
        .strip_prefix("---\n")
        .expect("a snapshot starts with insta's header");
    let end = rest.find("\n---\n").expect("insta's header ends with ---");
    &rest[end + "\n---\n".len()..]
}

fn env(version: &str) -> Env {
    Env {
        root: PathBuf::new(),
        state_dir: PathBuf::from("/nonexistent"),
        version: Version::parse(version).unwrap(),
        no_systemd: true,
        bind: None,
        hostname: "unused".into(),
    }
}

/// Every kubeadm configuration snapshot: (file name, contents).
fn configs() -> Vec<(String, String)> {
    let dir = snapshots_dir();
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("kubeadm__") && name.ends_with(".snap")
        })
        .map(|p| {
            let snap = std::fs::read_to_string(&p).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                contents(&snap).to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_configuration_kubeforge_writes_decodes_strictly_and_validates() {
    let mut seen = Vec::new();
    for (name, text) in configs() {
        let (api_name, version) = if text.contains("apiVersion: kubeadm.k8s.io/v1beta3") {
            ("v1beta3", "v1.28.7")
        } else if text.contains("apiVersion: kubeadm.k8s.io/v1beta4") {
            ("v1beta4", "v1.37.0")
        } else {
            panic!("{name}: no kubeadm API version in\n{text}")
        };
        let env = env(version);
        let file = api::load(&env, &text, KINDS)
            .unwrap_or_else(|e| panic!("{name} (kubeadm {version}): {e}\n{text}"));
        for w in &file.warnings {
            assert!(
                w.contains("deprecated API spec"),
                "{name}: unexpected warning {w}"
            );
        }
        let mut warnings = Vec::new();
        let (kind, node) = if file.join.is_some() {
            assert!(file.init.is_none() && file.cluster.is_none(), "{name}");
            assert!(file.kubelet.is_none(), "{name}: a join takes the cluster's");
            let join = api::join(&env, &file, &mut warnings)
                .unwrap_or_else(|e| panic!("{name} (kubeadm {version}): {e}\n{text}"));
            if let Some(cp) = &join.control_plane {
                assert_eq!(
                    join.node.extra_arg("node-ip"),
                    Some(cp.advertise_address.as_str()),
                    "{name}"
                );
                assert_eq!(cp.certificate_key.len(), 64, "{name}");
            }
            ("join", join.node)
        } else {
            let kubelet = file.kubelet.as_ref().expect("a KubeletConfiguration");
            assert_eq!(kubelet["cgroupDriver"], "systemd", "{name}");
            let init = api::init(&env, &file, &mut warnings)
                .unwrap_or_else(|e| panic!("{name} (kubeadm {version}): {e}\n{text}"));
            assert_eq!(
                init.node.extra_arg("node-ip"),
                Some(init.advertise_address.as_str()),
                "{name}"
            );
            assert!(!init.cluster.control_plane_endpoint.is_empty(), "{name}");
            assert!(init.cluster.feature_gates().is_empty(), "{name}");
            ("init", init.node)
        };
        assert_eq!(
            node.cri_socket, "unix:///run/containerd/containerd.sock",
            "{name}"
        );
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        seen.push(format!("{kind} {api_name}"));
    }
    for expected in [
        "init v1beta3",
        "init v1beta4",
        "join v1beta3",
        "join v1beta4",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "no {expected} snapshot in {}: {seen:?}",
            snapshots_dir().display()
        );
    }
}

/// The version decides: kubeadm 1.37 has no v1beta3 any more.
#[test]
fn v1beta3_configurations_are_refused_by_kubeadm_1_37() {
    let mut checked = 0;
    for (name, text) in configs() {
        if text.contains("apiVersion: kubeadm.k8s.io/v1beta3") {
            let err = api::load(&env("v1.37.0"), &text, KINDS).unwrap_err();
            assert!(err.contains("uses an old API spec"), "{name}: {err}");
            checked += 1;
        }
    }
    assert!(checked > 0, "no v1beta3 snapshot");
}

#[test]
fn insta_headers_are_stripped() {
    assert_eq!(
        contents("---\nsource: x.rs\nexpression: text\n---\na: 1\n---\nb: 2\n"),
        "a: 1\n---\nb: 2\n"
    );
}
