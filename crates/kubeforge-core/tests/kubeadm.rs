//! kubeadm's configuration files, one template per API: v1beta3 (1.28.7) and v1beta4 (1.37.1),
//! init and joins, with and without workloads on control-plane nodes, an offline bundle's etcd
//! tag and missing CoreDNS, a domain or none.
//!
//! The snapshots `kubeadm__*.snap` are also decoded by the kubeadm stand-in's strict decoder
//! (tests/standins/tests/kubeforge_configs.rs): keep every snapshot a complete configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kubeforge_core::bundle::Bundle;
use kubeforge_core::mask::mask_line_values;
use kubeforge_core::model::{self, Cluster, Node};
use kubeforge_core::steps::kubeadm::{
    Api, Images, JoinSecrets, NodeConfig, cert_sans, init_config, join_config,
};
use kubeforge_core::steps::{Ctx, StepError};
use kubeforge_core::values::Values;
use kubeforge_core::version::KubeVersion;
use serde_json::Value;

const TOKEN: &str = "k8sfrg.0123456789abcdef";
const HASH: &str = "sha256:2f3c1e0a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e";
/// An all-digit certificate key: read unquoted, YAML would make it a number.
const KEY: &str = "1234567890123456789012345678901234567890123456789012345678901234";

/// Three control-plane nodes and a worker; `domain`: `dns.domain`, else short names alone.
fn cluster(version: &str, domain: Option<&str>, workloads: bool) -> Cluster {
    let mut inv = String::from(
        "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8scp02\n    address: 10.0.0.12\n  - name: k8scp03\n    address: 10.0.0.13\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\n",
    );
    inv.push_str(&format!("kubernetes_version: \"{version}\"\n"));
    if let Some(d) = domain {
        inv.push_str(&format!("dns:\n  domain: {d}\n"));
    }
    if workloads {
        inv.push_str("control_plane_workloads: true\n");
    }
    let v = model::load(&inv);
    v.cluster
        .unwrap_or_else(|| panic!("{inv}: {:?}", v.diagnostics))
}

fn node<'a>(c: &'a Cluster, name: &str) -> &'a Node {
    c.nodes.iter().find(|n| n.node_name == name).unwrap()
}

/// The images of an offline bundle that holds another etcd and no CoreDNS.
fn bundle_images(coredns: &str) -> Images {
    Images {
        repository: "registry.k8s.io".into(),
        etcd_tag: Some("3.5.16-0".into()),
        missing: vec![format!("registry.k8s.io/coredns/coredns:{coredns}")],
    }
}

fn config<'a>(c: &'a Cluster, name: &str, version: &str, images: Images) -> NodeConfig<'a> {
    let node = node(c, name);
    NodeConfig {
        cluster: c,
        node,
        advertise_address: node.ip().unwrap().to_string(),
        kubernetes_version: version.into(),
        images,
        offline: false,
    }
}

fn secrets(key: Option<&str>) -> JoinSecrets {
    JoinSecrets {
        token: TOKEN.into(),
        ca_cert_hash: HASH.into(),
        certificate_key: key.map(String::from),
    }
}

/// The documents of a configuration, as JSON values.
fn documents(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap_or_else(|e| panic!("{e}:\n{d}")))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn init_v1beta3_with_a_domain() {
    let c = cluster("1.28.7", Some("lab.net"), false);
    let cfg = config(&c, "k8scp01", "v1.28.7", Images::online());
    assert_eq!(cfg.api(), Api::V1beta3);
    let text = init_config(&cfg).unwrap();
    insta::assert_snapshot!("init_v1beta3", text);
    let docs = documents(&text);
    let init = kind(&docs, "InitConfiguration");
    assert!(init["nodeRegistration"].get("taints").is_none());
    assert!(
        init["nodeRegistration"]
            .get("ignorePreflightErrors")
            .is_none()
    );
    assert!(init.get("skipPhases").is_none());
    let cluster = kind(&docs, "ClusterConfiguration");
    assert_eq!(cluster["controlPlaneEndpoint"], "k8scp.lab.net:8443");
    assert_eq!(cluster["kubernetesVersion"], "v1.28.7");
    assert!(cluster.get("etcd").is_none(), "kubeadm's own etcd");
    assert_eq!(
        kind(&docs, "KubeletConfiguration")["cgroupDriver"],
        "systemd"
    );
}

#[test]
fn init_v1beta3_from_a_bundle_without_coredns_and_no_domain() {
    let c = cluster("1.28.7", None, false);
    let text = init_config(&config(&c, "k8scp01", "v1.28.7", bundle_images("v1.10.1"))).unwrap();
    insta::assert_snapshot!("init_v1beta3_bundle", text);
    let docs = documents(&text);
    let init = kind(&docs, "InitConfiguration");
    assert_eq!(
        init["nodeRegistration"]["ignorePreflightErrors"],
        serde_json::json!(["ImagePull"])
    );
    assert_eq!(init["skipPhases"], serde_json::json!(["addon/coredns"]));
    let cluster = kind(&docs, "ClusterConfiguration");
    assert_eq!(cluster["etcd"]["local"]["imageTag"], "3.5.16-0");
    assert_eq!(cluster["controlPlaneEndpoint"], "k8scp:8443");
}

#[test]
fn init_v1beta4_with_workloads_on_control_planes() {
    let c = cluster("1.37.1", Some("lab.net"), true);
    let cfg = config(&c, "k8scp01", "v1.37.1", Images::online());
    assert_eq!(cfg.api(), Api::V1beta4);
    let text = init_config(&cfg).unwrap();
    insta::assert_snapshot!("init_v1beta4", text);
    let docs = documents(&text);
    let init = kind(&docs, "InitConfiguration");
    assert_eq!(init["nodeRegistration"]["taints"], serde_json::json!([]));
    assert_eq!(
        init["nodeRegistration"]["kubeletExtraArgs"],
        serde_json::json!([{"name": "node-ip", "value": "10.0.0.11"}])
    );
}

#[test]
fn init_v1beta4_from_a_bundle_without_coredns_and_no_domain() {
    let c = cluster("1.37.1", None, false);
    let text = init_config(&config(&c, "k8scp01", "v1.37.1", bundle_images("v1.14.6"))).unwrap();
    insta::assert_snapshot!("init_v1beta4_bundle", text);
    let docs = documents(&text);
    assert_eq!(
        kind(&docs, "InitConfiguration")["skipPhases"],
        serde_json::json!(["addon/coredns"])
    );
}

#[test]
fn join_worker_v1beta3() {
    let c = cluster("1.28.7", Some("lab.net"), true);
    // A worker gets no certificate key, no controlPlane, no taints, even when given them.
    let text = join_config(
        &config(&c, "k8s01", "v1.28.7", bundle_images("v1.10.1")),
        &secrets(Some(KEY)),
    )
    .unwrap();
    insta::assert_snapshot!("join_worker_v1beta3", text);
    assert!(!text.contains(KEY), "{text}");
    let docs = documents(&text);
    assert_eq!(docs.len(), 1);
    let join = kind(&docs, "JoinConfiguration");
    assert!(join.get("controlPlane").is_none());
    assert!(join["nodeRegistration"].get("taints").is_none());
    assert!(
        join["nodeRegistration"]
            .get("ignorePreflightErrors")
            .is_none(),
        "workers pull no images in preflight"
    );
    assert_eq!(
        join["nodeRegistration"]["kubeletExtraArgs"],
        serde_json::json!({"node-ip": "10.0.0.21"})
    );
    assert_eq!(
        join["discovery"]["bootstrapToken"],
        serde_json::json!({"apiServerEndpoint": "k8scp.lab.net:8443", "token": TOKEN, "caCertHashes": [HASH]})
    );
}

#[test]
fn join_control_plane_v1beta3_from_a_bundle() {
    let c = cluster("1.28.7", Some("lab.net"), false);
    let text = join_config(
        &config(&c, "k8scp02", "v1.28.7", bundle_images("v1.10.1")),
        &secrets(Some(KEY)),
    )
    .unwrap();
    insta::assert_snapshot!("join_control_plane_v1beta3", text);
    let docs = documents(&text);
    let join = kind(&docs, "JoinConfiguration");
    assert_eq!(join["controlPlane"]["certificateKey"], KEY, "a string");
    assert_eq!(
        join["controlPlane"]["localAPIEndpoint"],
        serde_json::json!({"advertiseAddress": "10.0.0.12", "bindPort": 6443})
    );
    assert_eq!(
        join["nodeRegistration"]["ignorePreflightErrors"],
        serde_json::json!(["ImagePull"])
    );
    assert!(join.get("skipPhases").is_none(), "addons are init's");
    assert!(join["nodeRegistration"].get("taints").is_none());
}

#[test]
fn join_worker_v1beta4() {
    let c = cluster("1.37.1", None, true);
    let text = join_config(
        &config(&c, "k8s01", "v1.37.1", Images::online()),
        &secrets(None),
    )
    .unwrap();
    insta::assert_snapshot!("join_worker_v1beta4", text);
    let join = documents(&text).remove(0);
    assert!(join["nodeRegistration"].get("taints").is_none());
    assert_eq!(
        join["discovery"]["bootstrapToken"]["apiServerEndpoint"],
        "k8scp:8443"
    );
}

#[test]
fn join_control_plane_v1beta4_with_workloads_from_a_bundle() {
    let c = cluster("1.37.1", Some("lab.net"), true);
    let text = join_config(
        &config(&c, "k8scp03", "v1.37.1", bundle_images("v1.14.6")),
        &secrets(Some(KEY)),
    )
    .unwrap();
    insta::assert_snapshot!("join_control_plane_v1beta4", text);
    let join = documents(&text).remove(0);
    assert_eq!(join["nodeRegistration"]["taints"], serde_json::json!([]));
    assert_eq!(join["controlPlane"]["certificateKey"], KEY);
    assert_eq!(
        join["nodeRegistration"]["kubeletExtraArgs"],
        serde_json::json!([{"name": "node-ip", "value": "10.0.0.13"}])
    );
}

#[test]
fn the_certificate_names_every_way_to_reach_an_api_server() {
    let c = cluster("1.37.1", Some("lab.net"), false);
    let cfg = config(&c, "k8scp01", "v1.37.1", Images::online());
    assert_eq!(
        cert_sans(&cfg).unwrap(),
        [
            "10.0.0.10",
            "k8scp.lab.net",
            "k8scp",
            "k8scp01",
            "k8scp01.lab.net",
            "10.0.0.11",
            "k8scp02",
            "k8scp02.lab.net",
            "10.0.0.12",
            "k8scp03",
            "k8scp03.lab.net",
            "10.0.0.13",
        ]
    );
    let c = cluster("1.37.1", None, false);
    let cfg = config(&c, "k8scp01", "v1.37.1", Images::online());
    assert_eq!(
        cert_sans(&cfg).unwrap(),
        [
            "10.0.0.10",
            "k8scp",
            "k8scp01",
            "10.0.0.11",
            "k8scp02",
            "10.0.0.12",
            "k8scp03",
            "10.0.0.13",
        ]
    );
}

#[test]
fn another_missing_image_ignores_the_pull_check_but_keeps_coredns() {
    let c = cluster("1.37.1", None, false);
    let images = Images {
        repository: "registry.k8s.io".into(),
        etcd_tag: None,
        missing: vec!["registry.k8s.io/pause:3.10.2".into()],
    };
    let docs = documents(&init_config(&config(&c, "k8scp01", "v1.37.1", images)).unwrap());
    let init = kind(&docs, "InitConfiguration");
    assert_eq!(
        init["nodeRegistration"]["ignorePreflightErrors"],
        serde_json::json!(["ImagePull"])
    );
    assert!(init.get("skipPhases").is_none());
    assert!(kind(&docs, "ClusterConfiguration").get("etcd").is_none());
}

#[test]
fn a_bundle_gives_its_etcd_tag_and_missing_images() {
    let bundle = Bundle {
        dir: PathBuf::from("/srv/bundle"),
        version: KubeVersion::parse("1.28.7").unwrap(),
        files: BTreeMap::new(),
        images: Vec::new(),
        missing_images: vec!["registry.k8s.io/coredns/coredns:v1.10.1".into()],
        debs: Vec::new(),
        host_packages: Vec::new(),
        kubelet_service: String::new(),
        kubeadm_dropin: String::new(),
        manifests: BTreeMap::new(),
        etcd_tag: Some("3.5.16-0".into()),
    };
    assert_eq!(Images::of_bundle(&bundle), bundle_images("v1.10.1"));
    let c = cluster("1.28.7", None, false);
    let values = Values::default();
    let ctx = Ctx {
        cluster: &c,
        values: &values,
        offline: false,
        bundle: Some(&bundle),
        facts: None,
        state: None,
    };
    let cfg = NodeConfig::new(&ctx, node(&c, "k8scp01"), "v1.28.7").unwrap();
    assert_eq!(cfg.advertise_address, "10.0.0.11");
    assert_eq!(cfg.images, bundle_images("v1.10.1"));
    let ctx = Ctx {
        bundle: None,
        ..ctx
    };
    assert_eq!(
        NodeConfig::new(&ctx, node(&c, "k8scp01"), "v1.28.7")
            .unwrap()
            .images,
        Images::online()
    );
}

#[test]
fn secrets_sit_on_lines_that_are_masked() {
    let c = cluster("1.37.1", Some("lab.net"), false);
    let text = join_config(
        &config(&c, "k8scp02", "v1.37.1", Images::online()),
        &secrets(Some(KEY)),
    )
    .unwrap();
    assert!(text.contains(TOKEN) && text.contains(KEY));
    let masked = mask_line_values(&text);
    assert!(!masked.contains(TOKEN), "{masked}");
    assert!(!masked.contains(KEY), "{masked}");
    assert!(masked.contains(HASH), "the CA's pin is not secret");
}

#[test]
fn never_a_feature_gate() {
    for (version, exact) in [("1.28.7", "v1.28.7"), ("1.37.1", "v1.37.1")] {
        let c = cluster(version, Some("lab.net"), true);
        let init = init_config(&config(&c, "k8scp01", exact, bundle_images("v1"))).unwrap();
        let join = join_config(
            &config(&c, "k8scp02", exact, bundle_images("v1")),
            &secrets(Some(KEY)),
        )
        .unwrap();
        for text in [init, join] {
            assert!(!text.contains("featureGates"), "{text}");
            assert!(!text.contains("FeatureGates"), "{text}");
        }
    }
}

#[test]
fn addresses_only_dns_knows_are_placeholders_in_plans_and_errors_otherwise() {
    let inv = "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - k8scp02\n  - k8s01\ndns:\n  domain: lab.net\n";
    let c = model::load(inv).cluster.unwrap();
    let mut cfg = config(&c, "k8scp01", "v1.37.1", Images::online());
    assert_eq!(init_config(&cfg), Err(StepError::NoVip));
    cfg.offline = true;
    let sans = cert_sans(&cfg).unwrap();
    assert_eq!(sans[0], "<address of k8scp.lab.net>");
    assert!(
        sans.contains(&"<address of k8scp02>".to_string()),
        "{sans:?}"
    );
    let text = init_config(&cfg).unwrap();
    assert!(text.contains("  - \"<address of k8scp02>\"\n"), "{text}");
}

#[test]
fn the_api_is_the_exact_versions_else_the_inventorys() {
    let c = cluster("1.30", None, false);
    assert_eq!(
        config(&c, "k8scp01", "v1.31.2", Images::online()).api(),
        Api::V1beta4
    );
    assert_eq!(
        config(&c, "k8scp01", "<kubernetes version>", Images::online()).api(),
        Api::V1beta3
    );
}
