//! The pod network's manifests: what is applied, in which order, from where; kubeforge's own
//! documents as snapshots.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use kubeforge_core::bundle::{Bundle, BundleFile};
use kubeforge_core::cni::{
    self, APISERVERS_CRD, BUNDLE_FLANNEL, CniError, FLANNEL, FLANNEL_CONFIGMAP, FLANNEL_CONTAINER,
    FLANNEL_DAEMONSET, FLANNEL_NAMESPACE, FlannelObjects, INSTALLATIONS_CRD, KUBEFORGE_MANAGER,
    Manifest, Source, UPSTREAM_MANAGER,
};
use kubeforge_core::model::{self, Cluster};
use kubeforge_core::version::KubeVersion;
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/kube-flannel-bundle.yml");
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);

fn cluster(settings: &str) -> Cluster {
    let v = model::load(&format!(
        "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\n{settings}"
    ));
    v.cluster
        .unwrap_or_else(|| panic!("invalid inventory: {:?}", v.diagnostics))
}

fn bundle(manifests: &[(&str, &str)]) -> Bundle {
    Bundle {
        dir: PathBuf::from("/srv/bundle"),
        version: KubeVersion::parse("1.28.7").unwrap(),
        files: manifests
            .iter()
            .map(|(p, t)| {
                (
                    p.to_string(),
                    BundleFile {
                        sha256: format!("{:0>64}", t.len()),
                        size: t.len() as u64,
                    },
                )
            })
            .collect(),
        images: vec![],
        missing_images: vec![],
        debs: vec![],
        host_packages: vec![],
        kubelet_service: String::new(),
        kubeadm_dropin: String::new(),
        manifests: manifests
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect::<BTreeMap<_, _>>(),
        etcd_tag: None,
    }
}

fn inline<'a>(ms: &'a [Manifest], name: &str) -> &'a str {
    match &ms.iter().find(|m| m.name == name).expect(name).source {
        Source::Inline(text) => text,
        other => panic!("{name} is {other:?}"),
    }
}

/// The documents of a YAML text.
fn docs(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// One line per manifest: name, source, field manager, CRDs waited for.
fn order(ms: &[Manifest]) -> String {
    ms.iter()
        .map(|m| {
            let source = match &m.source {
                Source::Bundle { path, .. } => format!("bundle {path}"),
                Source::Url { url, .. } => format!("url {url}"),
                Source::Inline(_) => "inline".into(),
            };
            let wait = if m.wait_for_crds.is_empty() {
                String::new()
            } else {
                format!(" after {}", m.wait_for_crds.join(", "))
            };
            format!("{} ({source}) as {}{wait}\n", m.name, m.field_manager)
        })
        .collect()
}

#[test]
fn flannel_overlay_sets_the_network_the_interface_and_the_api_endpoint() {
    let c = cluster("cni: flannel\npod_cidr: 10.244.0.0/16\n");
    let ms = cni::manifests(&c, VIP, None).unwrap();
    insta::assert_snapshot!("flannel_overlay", inline(&ms, "kubeforge-flannel.yaml"));
}

#[test]
fn flannel_overlay_over_a_bundle_keeps_its_arguments_and_names() {
    let c = cluster("cni: flannel\npod_cidr: 10.244.0.0/16\n");
    let b = bundle(&[(BUNDLE_FLANNEL, FIXTURE)]);
    let ms = cni::manifests(&c, VIP, Some(&b)).unwrap();
    insta::assert_snapshot!(
        "flannel_overlay_bundle",
        inline(&ms, "kubeforge-flannel.yaml")
    );
}

#[test]
fn the_overlay_names_the_objects_of_the_manifest_it_changes() {
    // The pinned names are those of a manifest shaped as upstream's.
    let found = cni::flannel_objects(FIXTURE).unwrap();
    assert_eq!(
        found,
        FlannelObjects {
            args: vec!["--ip-masq".into(), "--kube-subnet-mgr".into()],
            ..FlannelObjects::pinned()
        }
    );
    // Every object of the overlay exists in the manifest, in the same namespace, and its
    // DaemonSet names the container that runs flanneld.
    let c = cluster("cni: flannel\n");
    let b = bundle(&[(BUNDLE_FLANNEL, FIXTURE)]);
    let ms = cni::manifests(&c, VIP, Some(&b)).unwrap();
    let upstream = docs(FIXTURE);
    for d in docs(inline(&ms, "kubeforge-flannel.yaml")) {
        let same = upstream.iter().find(|u| {
            u["apiVersion"] == d["apiVersion"]
                && u["kind"] == d["kind"]
                && u["metadata"]["name"] == d["metadata"]["name"]
                && u["metadata"]["namespace"] == d["metadata"]["namespace"]
        });
        assert!(same.is_some(), "not in the manifest: {}", d["metadata"]);
        if d["kind"] == "DaemonSet" {
            let name = &d["spec"]["template"]["spec"]["containers"][0]["name"];
            assert_eq!(name, FLANNEL_CONTAINER);
            let containers = same.unwrap()["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap();
            assert!(containers.iter().any(|c| &c["name"] == name));
        }
    }
    assert_eq!(
        (
            FLANNEL_NAMESPACE,
            FLANNEL_CONFIGMAP,
            FLANNEL_DAEMONSET,
            FLANNEL_CONTAINER
        ),
        (
            "kube-flannel",
            "kube-flannel-cfg",
            "kube-flannel-ds",
            "kube-flannel"
        )
    );
}

#[test]
fn a_bundle_with_other_names_gets_an_overlay_with_its_names() {
    // flannel before v0.20 lived in kube-system.
    let old = FIXTURE
        .replace("namespace: kube-flannel", "namespace: kube-system")
        .replace("name: kube-flannel-cfg", "name: flannel-cfg")
        .replace("- name: kube-flannel\n", "- name: flanneld\n");
    let found = cni::flannel_objects(&old).unwrap();
    assert_eq!(
        (
            found.namespace.as_str(),
            found.configmap.as_str(),
            found.container.as_str()
        ),
        ("kube-system", "flannel-cfg", "flanneld")
    );
    let c = cluster("cni: flannel\n");
    let b = bundle(&[(BUNDLE_FLANNEL, &old)]);
    let ms = cni::manifests(&c, VIP, Some(&b)).unwrap();
    let overlay = docs(inline(&ms, "kubeforge-flannel.yaml"));
    assert_eq!(overlay[0]["metadata"]["namespace"], "kube-system");
    assert_eq!(overlay[0]["metadata"]["name"], "flannel-cfg");
    assert_eq!(
        overlay[1]["spec"]["template"]["spec"]["containers"][0]["name"],
        "flanneld"
    );
}

#[test]
fn flanneld_keeps_upstreams_arguments_and_gets_the_vips_interface() {
    let args = |a: &[&str]| {
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        cni::flanneld_args(&a, VIP)
    };
    assert_eq!(
        args(&["--ip-masq", "--kube-subnet-mgr", "--healthz-port=8081"]),
        [
            "--ip-masq",
            "--kube-subnet-mgr",
            "--healthz-port=8081",
            "--iface-can-reach=10.0.0.10"
        ]
    );
    assert_eq!(
        args(&[
            "-kube-subnet-mgr",
            "--iface",
            "eth0",
            "--iface-regex=^en",
            "--v=2"
        ]),
        [
            "--ip-masq",
            "--kube-subnet-mgr",
            "--v=2",
            "--iface-can-reach=10.0.0.10"
        ]
    );
    assert_eq!(
        args(&[]),
        [
            "--ip-masq",
            "--kube-subnet-mgr",
            "--iface-can-reach=10.0.0.10"
        ]
    );
}

#[test]
fn flannel_overlay_follows_the_pod_network_and_the_endpoint() {
    let c = cluster("cni: flannel\npod_cidr: 10.32.0.0/12\nendpoint_port: 6444\n");
    let ms = cni::manifests(&c, Ipv4Addr::new(192, 168, 7, 5), None).unwrap();
    let d = docs(inline(&ms, "kubeforge-flannel.yaml"));
    let net: Value = serde_json::from_str(d[0]["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(net["Network"], "10.32.0.0/12");
    assert_eq!(net["Backend"]["Type"], "vxlan");
    let container = &d[1]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"][3], "--iface-can-reach=192.168.7.5");
    assert_eq!(container["env"][0]["value"], "192.168.7.5");
    assert_eq!(container["env"][1]["value"], "6444");
}

#[test]
fn calico_installation_for_each_encapsulation() {
    for enc in [
        "vxlan",
        "vxlan-cross-subnet",
        "ipip",
        "ipip-cross-subnet",
        "none",
    ] {
        let c = cluster(&format!(
            "cni: calico\npod_cidr: 192.168.0.0/16\ncalico:\n  encapsulation: {enc}\n"
        ));
        let ms = cni::manifests(&c, VIP, None).unwrap();
        insta::assert_snapshot!(
            format!("calico_installation_{enc}"),
            inline(&ms, "kubeforge-calico.yaml")
        );
    }
}

#[test]
fn calico_bgp_runs_where_routes_need_it() {
    assert_eq!(cni::calico_bgp("VXLAN"), "Disabled");
    assert_eq!(cni::calico_bgp("VXLANCrossSubnet"), "Disabled");
    assert_eq!(cni::calico_bgp("IPIP"), "Enabled");
    assert_eq!(cni::calico_bgp("IPIPCrossSubnet"), "Enabled");
    assert_eq!(cni::calico_bgp("None"), "Enabled");
}

#[test]
fn calico_endpoint_config_map() {
    let c = cluster("cni: calico\n");
    let ms = cni::manifests(&c, VIP, None).unwrap();
    insta::assert_snapshot!(
        "calico_endpoint",
        inline(&ms, "kubeforge-calico-endpoint.yaml")
    );
}

#[test]
fn order_of_manifests_for_each_pod_network() {
    let c = cluster("cni: calico\n");
    let calico = cni::manifests(&c, VIP, None).unwrap();
    let flannel = cni::manifests(&cluster("cni: flannel\n"), VIP, None).unwrap();
    let none = cni::manifests(&cluster("cni: none\n"), VIP, None).unwrap();
    insta::assert_snapshot!(
        "order",
        format!(
            "calico:\n{}\nflannel:\n{}\nnone:\n{}",
            order(&calico),
            order(&flannel),
            order(&none)
        )
    );
    assert!(none.is_empty());
    // The operator's endpoint is there before the operator starts; the custom resources wait
    // for their CRDs.
    let names: Vec<&str> = calico.iter().map(|m| m.name).collect();
    assert_eq!(
        names,
        [
            "v1_crd_projectcalico_org.yaml",
            "kubeforge-calico-endpoint.yaml",
            "tigera-operator.yaml",
            "kubeforge-calico.yaml"
        ]
    );
    assert_eq!(calico[3].wait_for_crds, [INSTALLATIONS_CRD, APISERVERS_CRD]);
    assert_eq!(
        (flannel[0].field_manager, flannel[1].field_manager),
        (UPSTREAM_MANAGER, KUBEFORGE_MANAGER)
    );
    assert_ne!(UPSTREAM_MANAGER, KUBEFORGE_MANAGER);
}

#[test]
fn order_from_a_bundle() {
    let b = bundle(&[
        (BUNDLE_FLANNEL, FIXTURE),
        ("manifests/operator-crds.yaml", "# crds\n"),
        ("manifests/tigera-operator.yaml", "# operator\n"),
    ]);
    let calico = cni::manifests(&cluster("cni: calico\n"), VIP, Some(&b)).unwrap();
    let flannel = cni::manifests(&cluster("cni: flannel\n"), VIP, Some(&b)).unwrap();
    insta::assert_snapshot!(
        "order_bundle",
        format!("calico:\n{}\nflannel:\n{}", order(&calico), order(&flannel))
    );
    // The bundle's own hashes, from SHA256SUMS.
    assert_eq!(
        flannel[0].source,
        Source::Bundle {
            path: BUNDLE_FLANNEL.into(),
            sha256: b.files[BUNDLE_FLANNEL].sha256.clone()
        }
    );
    // The current name wins over the old one.
    let b = bundle(&[
        ("manifests/operator-crds.yaml", "# old\n"),
        ("manifests/v1_crd_projectcalico_org.yaml", "# new\n"),
        ("manifests/tigera-operator.yaml", "# operator\n"),
    ]);
    let calico = cni::manifests(&cluster("cni: calico\n"), VIP, Some(&b)).unwrap();
    assert_eq!(calico[0].name, "v1_crd_projectcalico_org.yaml");
    // A bundle without Calico's files: they are downloaded.
    let b = bundle(&[(BUNDLE_FLANNEL, FIXTURE)]);
    let calico = cni::manifests(&cluster("cni: calico\n"), VIP, Some(&b)).unwrap();
    assert!(matches!(calico[0].source, Source::Url { .. }));
    assert!(matches!(calico[2].source, Source::Url { .. }));
}

#[test]
fn a_bundle_without_flannels_manifest_is_an_error() {
    let b = bundle(&[("manifests/tigera-operator.yaml", "# operator\n")]);
    let e = cni::manifests(&cluster("cni: flannel\n"), VIP, Some(&b)).unwrap_err();
    assert_eq!(
        e,
        CniError::BundleWithoutFlannel {
            bundle: PathBuf::from("/srv/bundle")
        }
    );
    insta::assert_snapshot!("error_bundle_without_flannel", e.to_string());
    // Calico and none do not need it.
    assert!(cni::manifests(&cluster("cni: none\n"), VIP, Some(&b)).is_ok());
}

#[test]
fn other_errors() {
    // A flannel manifest without flanneld.
    let b = bundle(&[(
        BUNDLE_FLANNEL,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-flannel\n",
    )]);
    let e = cni::manifests(&cluster("cni: flannel\n"), VIP, Some(&b)).unwrap_err();
    insta::assert_snapshot!("error_bundle_flannel_without_daemonset", e.to_string());
    // One DaemonSet per architecture, as flannel's manifests before v0.12.
    let ds = &FIXTURE[FIXTURE.find("apiVersion: apps/v1").unwrap()..];
    let two = format!(
        "{FIXTURE}---\n{}",
        ds.replace("name: kube-flannel-ds\n", "name: kube-flannel-ds-arm64\n")
    );
    let e = cni::flannel_objects(&two).unwrap_err();
    assert!(e.starts_with("2 DaemonSets run flanneld"), "{e}");
    // Unreadable YAML.
    let b = bundle(&[(BUNDLE_FLANNEL, "kind: [\n")]);
    let e = cni::manifests(&cluster("cni: flannel\n"), VIP, Some(&b)).unwrap_err();
    assert!(matches!(e, CniError::BundleManifest { .. }), "{e}");
    // Half of Calico.
    let b = bundle(&[("manifests/tigera-operator.yaml", "# operator\n")]);
    let e = cni::manifests(&cluster("cni: calico\n"), VIP, Some(&b)).unwrap_err();
    insta::assert_snapshot!("error_bundle_half_calico", e.to_string());
}

#[test]
fn pinned_sources_name_their_release() {
    for (p, version) in [
        (cni::CALICO_CRDS, cni::CALICO_VERSION),
        (cni::CALICO_OPERATOR, cni::CALICO_VERSION),
        (FLANNEL, cni::FLANNEL_VERSION),
    ] {
        assert!(
            p.url.contains(&format!("/{version}/")) && p.url.ends_with(&format!("/{}", p.file)),
            "{p:?}"
        );
        assert!(p.url.starts_with("https://raw.githubusercontent.com/"));
        assert_eq!(p.sha256.len(), 64);
        assert!(
            p.sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}

#[test]
fn kubectl_arguments() {
    let ms = cni::manifests(&cluster("cni: calico\n"), VIP, None).unwrap();
    assert_eq!(
        ms[3].apply_args("/etc/kubeforge/cni/kubeforge-calico.yaml"),
        [
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=kubeforge",
            "-f",
            "/etc/kubeforge/cni/kubeforge-calico.yaml"
        ]
    );
    assert_eq!(
        ms[3].wait_args().unwrap(),
        [
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            "crd/installations.operator.tigera.io",
            "crd/apiservers.operator.tigera.io"
        ]
    );
    assert_eq!(ms[0].wait_args(), None);
}

#[test]
fn rendering_is_deterministic() {
    let c = cluster("cni: calico\n");
    assert_eq!(
        cni::manifests(&c, VIP, None).unwrap(),
        cni::manifests(&c, VIP, None).unwrap()
    );
}
