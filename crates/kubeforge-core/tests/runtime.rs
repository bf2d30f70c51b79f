//! The runtime phase: containerd's configuration (version 2 for containerd 1.x, 3 for 2.x),
//! the Kubernetes packages at one version everywhere, an offline bundle's files and images.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kubeforge_core::bundle::{Bundle, BundleFile, BundleImage, DebPackage};
use kubeforge_core::facts::{HostFacts, SystemFacts};
use kubeforge_core::model::{self, Cluster};
use kubeforge_core::resources::{Change, File, Resource, changes};
use kubeforge_core::steps::runtime::{CONTAINERD_CONF, KUBERNETES_PACKAGE_VERSION, Runtime};
use kubeforge_core::steps::{Ctx, Order, Phase, Step, StepError};
use kubeforge_core::values::Values;
use kubeforge_core::version::KubeVersion;

fn cluster(version: &str) -> Cluster {
    model::load(&format!(
        "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\n  - name: k8s01\n    address: 10.0.0.21\nvip: 10.0.0.10\nkubernetes_version: \"{version}\"\n"
    ))
    .cluster
    .unwrap()
}

fn ctx<'a>(c: &'a Cluster, values: &'a Values, bundle: Option<&'a Bundle>) -> Ctx<'a> {
    Ctx {
        cluster: c,
        values,
        offline: false,
        bundle,
        facts: None,
        state: None,
    }
}

fn debian(container: &str) -> HostFacts {
    HostFacts {
        os: [("VERSION_CODENAME".to_string(), "bookworm".to_string())].into(),
        system: SystemFacts {
            arch: "amd64".into(),
            container: container.into(),
            ..SystemFacts::default()
        },
        ..HostFacts::default()
    }
}

fn file<'a>(steps: &'a [Step], path: &str) -> &'a File {
    steps
        .iter()
        .flat_map(|s| &s.resources)
        .find_map(|r| match r {
            Resource::File(f) if f.path == path => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {path}"))
}

fn summaries(steps: &[Step], facts: &HostFacts) -> Vec<String> {
    steps
        .iter()
        .flat_map(|s| changes(s.id, &s.resources, facts))
        .map(|c: Change| format!("{}: {}", c.step, c.summary))
        .collect()
}

#[test]
fn containerd_2_gets_config_version_3() {
    let c = cluster("1.37");
    let values = Values::default();
    let mut facts = debian("none");
    facts
        .packages
        .insert("containerd.io".into(), "2.2.1-1~debian.12~bookworm".into());
    let s = Runtime
        .steps(&ctx(&c, &values, None), &c.nodes[0], &facts)
        .unwrap();
    insta::assert_snapshot!("containerd_v3", file(&s, CONTAINERD_CONF).content);
}

#[test]
fn containerd_1_gets_config_version_2_and_a_container_host_restricts_oom_scores() {
    let c = cluster("1.28");
    let values = Values::default();
    let mut facts = debian("systemd-nspawn");
    facts
        .packages
        .insert("containerd".into(), "1.6.20~ds1-1+deb12u3".into());
    facts.packages.insert(
        "containernetworking-plugins".into(),
        "1.1.1+ds1-3+b5".into(),
    );
    let s = Runtime
        .steps(&ctx(&c, &values, None), &c.nodes[0], &facts)
        .unwrap();
    insta::assert_snapshot!("containerd_v2", file(&s, CONTAINERD_CONF).content);
}

#[test]
fn the_sandbox_image_is_what_the_installed_kubeadm_says() {
    let c = cluster("1.37");
    let values = Values::default();
    let mut facts = debian("none");
    let text = |f: &HostFacts| {
        let s = Runtime
            .steps(&ctx(&c, &values, None), &c.nodes[0], f)
            .unwrap();
        file(&s, CONTAINERD_CONF).content.clone()
    };
    assert!(text(&facts).contains("sandbox = 'registry.k8s.io/pause:3.10.2'"));
    facts.kubeadm_images = vec![
        "registry.k8s.io/kube-apiserver:v1.37.1".into(),
        "registry.k8s.io/pause:3.10.9".into(),
    ];
    assert!(text(&facts).contains("sandbox = 'registry.k8s.io/pause:3.10.9'"));
}

#[test]
fn online_packages_come_from_docker_and_pkgs_k8s_io_at_one_version() {
    let c = cluster("1.37");
    let values = Values::default();
    let facts = debian("none");
    let s = Runtime
        .steps(&ctx(&c, &values, None), &c.nodes[0], &facts)
        .unwrap();
    let all = summaries(&s, &facts);
    for expected in [
        "containerd: install the Docker signing key 9DC858229FC7DD38854AE2D88D81803C0EBFCD88 in /etc/apt/keyrings/docker.gpg (now missing)",
        "containerd: create /etc/apt/sources.list.d/docker.list",
        "containerd: refresh the package lists (Docker changed)",
        "containerd: install containerd.io",
        "containerd: hold containerd.io",
        "containerd: create /etc/containerd/config.toml",
        "containerd: create /etc/crictl.yaml",
        "kubernetes-packages: install the Kubernetes 1.37 signing key DE15B14486CD377B9E876E1A234654DA9A296436 in /etc/apt/keyrings/kubernetes-apt-keyring.gpg (now missing)",
        "kubernetes-packages: install kubelet kubeadm kubectl cri-tools kubernetes-cni",
        "kubernetes-packages: hold kubelet kubeadm kubectl cri-tools kubernetes-cni",
        "kubernetes-packages: note the kubeadm version installed here, for every other node (the newest 1.37 patch)",
        "kubernetes-packages: enable kubelet.service",
    ] {
        assert!(
            all.iter().any(|a| a == expected),
            "{expected:?} not in {all:#?}"
        );
    }
    let sources: Vec<&str> = s
        .iter()
        .flat_map(|s| &s.resources)
        .filter_map(|r| match r {
            Resource::AptRepository(a) => Some(a.source.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        sources,
        [
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/debian bookworm stable",
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.37/deb/ /"
        ]
    );
    // Once the first node found the version, the others install exactly it, nothing to find.
    let mut found = Values::default();
    found.set(KUBERNETES_PACKAGE_VERSION, "1.37.1-1.1", false);
    let s = Runtime
        .steps(&ctx(&c, &found, None), &c.nodes[1], &facts)
        .unwrap();
    let all = summaries(&s, &facts);
    assert!(!all.iter().any(|a| a.contains("note the kubeadm version")));
    let script = s
        .iter()
        .flat_map(|s| changes(s.id, &s.resources, &facts))
        .find(|c| c.summary.starts_with("install kubelet"))
        .unwrap()
        .script;
    assert!(
        script.contains("'kubelet=1.37.1-1.1' 'kubeadm=1.37.1-1.1' 'kubectl=1.37.1-1.1'"),
        "{script}"
    );
}

#[test]
fn the_version_is_settled_from_the_inventory_or_the_nodes_and_a_change_is_refused() {
    let empty = Values::default();
    let run = |c: &Cluster, facts: &BTreeMap<String, HostFacts>| {
        let mut values = Values::default();
        let mut never = |_: &mut [u8]| {};
        Runtime
            .settle(&ctx(c, &empty, None), facts, &mut values, &mut never)
            .map(|_| values.get(KUBERNETES_PACKAGE_VERSION).map(str::to_string))
    };
    let fresh: BTreeMap<String, HostFacts> = [("k8scp01".to_string(), debian("none"))].into();
    assert_eq!(
        run(&cluster("1.37"), &fresh),
        Ok(None),
        "the first node finds it"
    );
    assert_eq!(
        Runtime.order(&ctx(&cluster("1.37"), &empty, None), &fresh),
        Order::FirstThenRest
    );
    assert_eq!(run(&cluster("1.37.2"), &fresh), Ok(Some("1.37.2-*".into())));
    let mut running = debian("none");
    running
        .packages
        .insert("kubeadm".into(), "1.37.1-1.1".into());
    running.kubeadm_version = Some("v1.37.1".into());
    let established: BTreeMap<String, HostFacts> = [("k8scp01".to_string(), running)].into();
    assert_eq!(
        run(&cluster("1.37"), &established),
        Ok(Some("1.37.1-1.1".into()))
    );
    assert_eq!(
        Runtime.order(&ctx(&cluster("1.37"), &empty, None), &established),
        Order::Parallel
    );
    let err = run(&cluster("1.37.2"), &established).unwrap_err();
    assert!(
        matches!(&err, StepError::VersionChange { node, installed, wanted } if node == "k8scp01" && installed == "1.37.1" && wanted == "1.37.2"),
        "{err:?}"
    );
    assert!(err.to_string().contains("run `kubeforge upgrade`"), "{err}");
}

fn bundle() -> Bundle {
    let file = |sha: char, size| BundleFile {
        sha256: sha.to_string().repeat(64),
        size,
    };
    Bundle {
        dir: PathBuf::from("/srv/bundle"),
        version: KubeVersion::parse("1.28.7").unwrap(),
        files: [
            ("bin/kubeadm".to_string(), file('a', 48_000_000)),
            ("bin/kubelet".to_string(), file('b', 67_000_000)),
            ("bin/kubectl".to_string(), file('c', 49_000_000)),
            ("bin/crictl".to_string(), file('d', 37_000_000)),
            ("debs/Packages".to_string(), file('e', 9_000)),
            (
                "debs/containerd_1.6.20~ds1-1+deb12u3_amd64.deb".to_string(),
                file('f', 20_000_000),
            ),
            (
                "images/kube-apiserver.tar".to_string(),
                file('1', 79_000_000),
            ),
            ("images/pause.tar".to_string(), file('2', 700_000)),
        ]
        .into(),
        images: vec![
            BundleImage {
                reference: "registry.k8s.io/kube-apiserver:v1.28.7".into(),
                archive: "images/kube-apiserver.tar".into(),
            },
            BundleImage {
                reference: "registry.k8s.io/pause:3.9".into(),
                archive: "images/pause.tar".into(),
            },
        ],
        missing_images: vec!["registry.k8s.io/coredns/coredns:v1.10.1".into()],
        debs: vec![
            DebPackage {
                name: "containerd".into(),
                version: "1.6.20~ds1-1+deb12u3".into(),
                file: "debs/containerd_1.6.20~ds1-1+deb12u3_amd64.deb".into(),
                line: 1,
            },
            DebPackage {
                name: "containernetworking-plugins".into(),
                version: "1.1.1+ds1-3+b5".into(),
                file: "debs/containernetworking-plugins_1.1.1+ds1-3+b5_amd64.deb".into(),
                line: 9,
            },
        ],
        host_packages: Vec::new(),
        kubelet_service: "[Service]\nExecStart=/usr/local/bin/kubelet\n".into(),
        kubeadm_dropin: "[Service]\nExecStart=\n".into(),
        manifests: BTreeMap::new(),
        etcd_tag: Some("3.5.16-0".into()),
    }
}

#[test]
fn a_bundle_is_uploaded_where_it_differs_and_its_images_imported_where_missing() {
    let c = cluster("1.28");
    let values = Values::default();
    let b = bundle();
    let facts = debian("none");
    let s = Runtime
        .steps(&ctx(&c, &values, Some(&b)), &c.nodes[0], &facts)
        .unwrap();
    let all = summaries(&s, &facts);
    for expected in [
        "containerd: upload containerd_1.6.20~ds1-1+deb12u3_amd64.deb (20.0 MB) to /var/lib/kubeforge/bundle/debs/containerd_1.6.20~ds1-1+deb12u3_amd64.deb",
        "containerd: create /etc/apt/sources.list.d/kubeforge-bundle.list",
        "containerd: install containerd containernetworking-plugins",
        "kubernetes-packages: upload kubelet (67.0 MB) to /usr/local/bin/kubelet",
        "kubernetes-packages: create /etc/systemd/system/kubelet.service",
        "kubernetes-packages: reload systemd's unit files (/etc/systemd/system/kubelet.service changed)",
        "kubernetes-packages: enable kubelet.service",
        "images: upload kube-apiserver.tar (79.0 MB) to /var/lib/kubeforge/bundle/images/kube-apiserver.tar",
        "images: import registry.k8s.io/pause:3.9 into containerd",
    ] {
        assert!(
            all.iter().any(|a| a == expected),
            "{expected:?} not in {all:#?}"
        );
    }
    // containerd 1.6 from the bundle: config version 2, Debian's CNI plugins.
    let conf = &file(&s, CONTAINERD_CONF).content;
    assert!(conf.contains("version = 2") && conf.contains("bin_dir = \"/usr/lib/cni\""));
    assert!(conf.contains("sandbox_image = \"registry.k8s.io/pause:3.9\""));
    // A worker gets no control-plane image.
    let w = Runtime
        .steps(&ctx(&c, &values, Some(&b)), &c.nodes[1], &facts)
        .unwrap();
    assert!(
        !summaries(&w, &facts)
            .iter()
            .any(|a| a.contains("kube-apiserver"))
    );
    // In place: nothing to upload, nothing to import.
    let mut done = facts.clone();
    for (rel, f) in &b.files {
        let dest = match rel.strip_prefix("bin/") {
            Some(name) => format!("/usr/local/bin/{name}"),
            None => format!("/var/lib/kubeforge/bundle/{rel}"),
        };
        done.digests.insert(dest, Some(f.sha256.clone()));
    }
    done.images
        .extend(b.images.iter().map(|i| i.reference.clone()));
    let s = Runtime
        .steps(&ctx(&c, &values, Some(&b)), &c.nodes[0], &done)
        .unwrap();
    let left = summaries(&s, &done);
    assert!(
        !left
            .iter()
            .any(|a| a.contains("upload") || a.contains("import")),
        "{left:#?}"
    );
}

#[test]
fn a_bundle_version_other_than_the_nodes_is_a_version_change() {
    let c = cluster("1.28");
    let b = bundle();
    let empty = Values::default();
    let mut facts = debian("none");
    facts.kubeadm_version = Some("v1.28.6".into());
    let all: BTreeMap<String, HostFacts> = [("k8s01".to_string(), facts)].into();
    let err = Runtime
        .settle(
            &ctx(&c, &empty, Some(&b)),
            &all,
            &mut Values::default(),
            &mut |_| {},
        )
        .unwrap_err();
    assert_eq!(
        err,
        StepError::VersionChange {
            node: "k8s01".into(),
            installed: "1.28.6".into(),
            wanted: "1.28.7".into()
        }
    );
}
