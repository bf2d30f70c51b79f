//! The pod network: which manifests `kubectl apply` gets on the first control-plane node, and
//! in which order. Pure: the phase downloads, uploads and applies; this only says what.
//!
//! Every manifest is applied with server-side apply (`--server-side --force-conflicts`):
//! Calico's CRDs are too large for client-side apply's annotation, and kubeforge's own
//! documents are partial objects over upstream's, owned by another field manager.
//!
//! - flannel: upstream's `kube-flannel.yml` as is (pinned by URL and SHA-256, or the offline
//!   bundle's `manifests/kube-flannel.yml`), then kubeforge's overlay: `net-conf.json` with the
//!   pod network and the VXLAN backend, and flanneld pinned to the interface that reaches the VIP
//!   and told the API endpoint (hosts may have no default route, so host-network pods cannot
//!   reach the `kubernetes` service address).
//! - calico: the CRDs, the Tigera operator's `kubernetes-services-endpoint` ConfigMap (before the
//!   operator starts: it reads it into its environment), `tigera-operator.yaml`, then, once the
//!   operator's CRDs are Established, the `Installation` and `APIServer` named `default`.
//! - none: nothing.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::bundle::Bundle;
use crate::model::{Cluster, Cni, PackageSource};

/// A file of an upstream release, pinned by its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pinned {
    /// Its file name (on the host, and in a bundle's `manifests/`).
    pub file: &'static str,
    pub url: &'static str,
    pub sha256: &'static str,
}

/// Calico's release: the newest v3.32 tag.
pub const CALICO_VERSION: &str = "v3.32.1";

// The SHA-256 of Calico's files is that of the blob at the tag, which raw.githubusercontent.com
// serves as stored: `git -C projectcalico/calico show v3.32.1:manifests/<file> | sha256sum`.

/// Calico's CRDs (`crd.projectcalico.org/v1` and `operator.tigera.io/v1`). 3.32 renamed
/// `operator-crds.yaml` to this name (it still ships the old name as an identical copy); its
/// `v3_projectcalico_org.yaml` is the tech-preview API without the API server, not used here.
pub const CALICO_CRDS: Pinned = Pinned {
    file: "v1_crd_projectcalico_org.yaml",
    url: "https://raw.githubusercontent.com/projectcalico/calico/v3.32.1/manifests/v1_crd_projectcalico_org.yaml",
    sha256: "192f8b2d934ef24b62e86b7e1a6e1762d1c8af26a916f78057bc13fa5ed60f71",
};

/// The Tigera operator (namespace, RBAC, Deployment).
pub const CALICO_OPERATOR: Pinned = Pinned {
    file: "tigera-operator.yaml",
    url: "https://raw.githubusercontent.com/projectcalico/calico/v3.32.1/manifests/tigera-operator.yaml",
    sha256: "f18e073794207d372606bc3ea6f8fd73972f86d6828f4ba666dfe0d4aa8ab07f",
};

/// The CRD file's name before 3.32, which a bundle may still carry.
pub const CALICO_CRDS_LEGACY: &str = "operator-crds.yaml";

/// flannel's release: the newest v0.28 tag.
pub const FLANNEL_VERSION: &str = "v0.28.9";

// flannel's manifest comes from the tag, not from the release's download: the release asset
// `kube-flannel.yml` is generated when the release is published (`make release-manifest`:
// `kubectl kustomize Documentation/kustomization/kube-flannel/`), so its bytes, and its hash,
// cannot be established from the sources, and it is not the same manifest either (at v0.28.9 it
// lacks flanneld's health probes and adds `k8s-app: flannel` to the selector). The tag's
// `Documentation/kube-flannel.yml` is a stored blob:
// `git -C flannel-io/flannel show v0.28.9:Documentation/kube-flannel.yml | sha256sum`.

/// flannel's manifest (namespace, RBAC, `kube-flannel-cfg`, DaemonSet `kube-flannel-ds`).
pub const FLANNEL: Pinned = Pinned {
    file: "kube-flannel.yml",
    url: "https://raw.githubusercontent.com/flannel-io/flannel/v0.28.9/Documentation/kube-flannel.yml",
    sha256: "e875824be2f552b45711dbda91af81b17eb961d00025d914d9fef18fad8f09c0",
};

/// flanneld's arguments in [`FLANNEL`]. Server-side apply replaces an atomic list such as
/// `args` whole, so the overlay repeats them (the health probes need `--healthz-port`).
pub const FLANNEL_ARGS: &[&str] = &["--ip-masq", "--kube-subnet-mgr", "--healthz-port=8081"];

/// The objects of [`FLANNEL`] the overlay changes (the same since v0.20, when flannel moved to
/// its own namespace).
pub const FLANNEL_NAMESPACE: &str = "kube-flannel";
pub const FLANNEL_CONFIGMAP: &str = "kube-flannel-cfg";
pub const FLANNEL_DAEMONSET: &str = "kube-flannel-ds";
pub const FLANNEL_CONTAINER: &str = "kube-flannel";

/// The bundle's flannel manifest, relative to the bundle directory.
pub const BUNDLE_FLANNEL: &str = "manifests/kube-flannel.yml";

/// The Tigera operator's namespace and the ConfigMap it takes the API endpoint from
/// (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`; the operator passes them on to
/// calico-node and the other components).
pub const CALICO_NAMESPACE: &str = "tigera-operator";
pub const CALICO_ENDPOINT_CONFIGMAP: &str = "kubernetes-services-endpoint";

/// Where the Tigera operator runs Calico's node agent, a DaemonSet on every node.
pub const CALICO_NODE_NAMESPACE: &str = "calico-system";
pub const CALICO_NODE_DAEMONSET: &str = "calico-node";

/// kubeadm's kube-proxy addon, a DaemonSet on every node.
pub const KUBE_PROXY: (&str, &str) = ("kube-system", "kube-proxy");

/// The CRDs kubeforge's `Installation` and `APIServer` need.
pub const INSTALLATIONS_CRD: &str = "installations.operator.tigera.io";
pub const APISERVERS_CRD: &str = "apiservers.operator.tigera.io";

/// The field manager of upstream's manifests, and of kubeforge's own documents.
pub const UPSTREAM_MANAGER: &str = "kubeforge-upstream";
pub const KUBEFORGE_MANAGER: &str = "kubeforge";

/// How long `kubectl wait` waits for CRDs.
pub const CRD_WAIT_TIMEOUT: &str = "60s";

/// Where a manifest's text comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A file of the offline bundle: its path relative to the bundle directory and its SHA-256.
    Bundle { path: String, sha256: String },
    /// A download that must have this SHA-256.
    Url {
        url: &'static str,
        sha256: &'static str,
    },
    /// kubeforge's own text.
    Inline(String),
}

/// One `kubectl apply --server-side` of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// Its file name on the host.
    pub name: &'static str,
    /// What it is, for people.
    pub what: &'static str,
    pub source: Source,
    pub field_manager: &'static str,
    /// CRDs that must be Established before it is applied.
    pub wait_for_crds: Vec<&'static str>,
}

impl Manifest {
    /// kubectl's arguments to apply it from `path` on the host.
    pub fn apply_args(&self, path: &str) -> Vec<String> {
        vec![
            "apply".into(),
            "--server-side".into(),
            "--force-conflicts".into(),
            format!("--field-manager={}", self.field_manager),
            "-f".into(),
            path.into(),
        ]
    }

    /// kubectl's arguments to wait for its CRDs (`None` when it needs none).
    pub fn wait_args(&self) -> Option<Vec<String>> {
        if self.wait_for_crds.is_empty() {
            return None;
        }
        let mut args = vec![
            "wait".to_string(),
            "--for=condition=established".into(),
            format!("--timeout={CRD_WAIT_TIMEOUT}"),
        ];
        args.extend(self.wait_for_crds.iter().map(|c| format!("crd/{c}")));
        Some(args)
    }
}

/// Why the pod network's manifests cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CniError {
    /// `cni: flannel` with a bundle that has no `manifests/kube-flannel.yml`.
    #[error(
        "the bundle {} has no {BUNDLE_FLANNEL}, which `cni: flannel` applies: add flannel's manifest (and its images to images/), or choose another pod network",
        bundle.display()
    )]
    BundleWithoutFlannel { bundle: PathBuf },
    /// The bundle has one of Calico's two files but not the other.
    #[error(
        "the bundle {} has {has} but not {missing}: Calico's two manifests come from one release; add the other one, or remove both to have them downloaded",
        bundle.display()
    )]
    BundleCalicoIncomplete {
        bundle: PathBuf,
        has: String,
        missing: String,
    },
    /// A manifest of the bundle that cannot serve (unreadable, or without what it must have).
    #[error("{path} in the bundle {}: {message}", bundle.display())]
    BundleManifest {
        bundle: PathBuf,
        path: String,
        message: String,
    },
}

/// The pod network apply installs, in words: the one line about it that the offline plan, the
/// live plan and apply all print. `bundle`: the offline bundle, when it was read (the offline
/// plan reads nothing but the inventory).
pub fn describe(cluster: &Cluster, bundle: Option<&Bundle>) -> String {
    let from_bundle = matches!(cluster.packages, PackageSource::Bundle { .. });
    match cluster.cni {
        Cni::None => "none: install your own (nodes stay NotReady until it runs)".into(),
        Cni::Flannel => {
            let source = match bundle.map(|b| b.manifests.get(BUNDLE_FLANNEL)) {
                Some(Some(text)) => match flannel_image(text) {
                    Some(image) => format!("from the bundle's {BUNDLE_FLANNEL} ({image})"),
                    None => format!("from the bundle's {BUNDLE_FLANNEL}"),
                },
                _ if from_bundle => format!("from the bundle's {BUNDLE_FLANNEL}"),
                _ => FLANNEL_VERSION.to_string(),
            };
            format!("flannel {source}, VXLAN")
        }
        Cni::Calico => {
            let in_bundle = |b: &Bundle| {
                b.manifests
                    .contains_key(&format!("manifests/{}", CALICO_OPERATOR.file))
            };
            let source = match bundle {
                Some(b) if in_bundle(b) => "from the bundle's manifests/".to_string(),
                None if from_bundle => {
                    format!("from the bundle's manifests/, else {CALICO_VERSION} downloaded")
                }
                _ => CALICO_VERSION.to_string(),
            };
            format!(
                "Calico {source} (Tigera operator), {}",
                cluster.encapsulation.calico_name()
            )
        }
    }
}

/// The pod network's DaemonSet that runs on every node, `(namespace, name)`: flannel's (as its
/// manifest names it) or calico-node; `None` for `none`.
pub fn node_daemonset(
    cluster: &Cluster,
    bundle: Option<&Bundle>,
) -> Result<Option<(String, String)>, CniError> {
    Ok(match cluster.cni {
        Cni::None => None,
        Cni::Flannel => {
            let objects = match bundle {
                None => FlannelObjects::pinned(),
                Some(b) => {
                    let text = b.manifests.get(BUNDLE_FLANNEL).ok_or_else(|| {
                        CniError::BundleWithoutFlannel {
                            bundle: b.dir.clone(),
                        }
                    })?;
                    flannel_objects(text).map_err(|message| CniError::BundleManifest {
                        bundle: b.dir.clone(),
                        path: BUNDLE_FLANNEL.into(),
                        message,
                    })?
                }
            };
            Some((objects.namespace, objects.daemonset))
        }
        Cni::Calico => Some((CALICO_NODE_NAMESPACE.into(), CALICO_NODE_DAEMONSET.into())),
    })
}

/// The image of the container that runs flanneld in a flannel manifest.
fn flannel_image(text: &str) -> Option<String> {
    documents(text)
        .ok()?
        .iter()
        .filter(|d| d["kind"] == "DaemonSet")
        .filter_map(|d| d.pointer("/spec/template/spec/containers")?.as_array())
        .flatten()
        .find(|c| runs_flanneld(c))
        .and_then(|c| c["image"].as_str().map(String::from))
}

/// The manifests of the cluster's pod network, in the order to apply them; empty for `none`.
/// `vip` is the control-plane VIP's address: what flanneld's interface must reach and where the
/// network's host-network components find the API (HAProxy's `endpoint_port` on it).
pub fn manifests(
    cluster: &Cluster,
    vip: Ipv4Addr,
    bundle: Option<&Bundle>,
) -> Result<Vec<Manifest>, CniError> {
    let endpoint = Endpoint {
        host: vip,
        port: cluster.endpoint_port,
    };
    match cluster.cni {
        Cni::None => Ok(Vec::new()),
        Cni::Flannel => flannel(cluster.pod_cidr(), endpoint, bundle),
        Cni::Calico => calico(
            cluster.pod_cidr(),
            cluster.encapsulation.calico_name(),
            endpoint,
            bundle,
        ),
    }
}

/// The API server's address for host-network pods: the VIP and HAProxy's port.
#[derive(Debug, Clone, Copy)]
struct Endpoint {
    host: Ipv4Addr,
    port: u16,
}

impl Endpoint {
    fn env(&self) -> [(&'static str, String); 2] {
        [
            ("KUBERNETES_SERVICE_HOST", self.host.to_string()),
            ("KUBERNETES_SERVICE_PORT", self.port.to_string()),
        ]
    }
}

fn bundle_source(bundle: &Bundle, path: &str, text: &str) -> Source {
    let sha256 = match bundle.files.get(path) {
        Some(f) => f.sha256.clone(),
        None => crate::hash::sha256_hex(text.as_bytes()),
    };
    Source::Bundle {
        path: path.to_string(),
        sha256,
    }
}

// ---------------------------------------------------------------------------------------------
// flannel

/// What the overlay changes in a flannel manifest: the objects' names and flanneld's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlannelObjects {
    pub namespace: String,
    /// The ConfigMap with `net-conf.json`.
    pub configmap: String,
    pub daemonset: String,
    /// The container that runs flanneld.
    pub container: String,
    pub args: Vec<String>,
}

impl FlannelObjects {
    /// Those of the pinned [`FLANNEL`].
    pub fn pinned() -> FlannelObjects {
        FlannelObjects {
            namespace: FLANNEL_NAMESPACE.into(),
            configmap: FLANNEL_CONFIGMAP.into(),
            daemonset: FLANNEL_DAEMONSET.into(),
            container: FLANNEL_CONTAINER.into(),
            args: FLANNEL_ARGS.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// Finds the objects the overlay changes in a flannel manifest's text: the DaemonSet whose
/// container runs flanneld, and the ConfigMap with `net-conf.json` in its namespace.
pub fn flannel_objects(text: &str) -> Result<FlannelObjects, String> {
    let docs = documents(text)?;
    let str_at = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_str).map(String::from);
    let namespace_of = |v: &Value| str_at(v, "/metadata/namespace").unwrap_or("default".into());
    let found: Vec<(&Value, &Value)> = docs
        .iter()
        .filter(|d| d["kind"] == "DaemonSet")
        .filter_map(|d| {
            let containers = d.pointer("/spec/template/spec/containers")?.as_array()?;
            let c = containers.iter().find(|c| runs_flanneld(c))?;
            Some((d, c))
        })
        .collect();
    let (ds, container) = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(
                "no DaemonSet runs flanneld (a container whose command is /opt/bin/flanneld)"
                    .into(),
            );
        }
        _ => {
            return Err(format!(
                "{} DaemonSets run flanneld (one per architecture, as before flannel v0.12): use a manifest of flannel v0.20 or later",
                found.len()
            ));
        }
    };
    let namespace = namespace_of(ds);
    let daemonset = str_at(ds, "/metadata/name").ok_or("the flannel DaemonSet has no name")?;
    let container = str_at(container, "/name").ok_or("flanneld's container has no name")?;
    let args = ds
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
        .and_then(|c| c["args"].as_array())
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let configmap = docs
        .iter()
        .filter(|d| d["kind"] == "ConfigMap" && namespace_of(d) == namespace)
        .find(|d| d.pointer("/data/net-conf.json").is_some())
        .and_then(|d| str_at(d, "/metadata/name"))
        .ok_or_else(|| format!("no ConfigMap in namespace {namespace} has net-conf.json"))?;
    Ok(FlannelObjects {
        namespace,
        configmap,
        daemonset,
        container,
        args,
    })
}

fn runs_flanneld(container: &Value) -> bool {
    let mentions = |v: &Value| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x.as_str().is_some_and(|s| s.ends_with("/flanneld")))
        })
    };
    mentions(&container["command"])
        || (container["command"].is_null() && container["name"] == FLANNEL_CONTAINER)
}

/// flanneld's arguments: IP masquerade and the Kubernetes subnet manager first, upstream's
/// others kept (e.g. `--healthz-port`, which its probes need), any interface choice replaced by
/// the interface that reaches the VIP.
pub fn flanneld_args(upstream: &[String], vip: Ipv4Addr) -> Vec<String> {
    const REPLACED: [&str; 5] = [
        "--ip-masq",
        "--kube-subnet-mgr",
        "--iface",
        "--iface-regex",
        "--iface-can-reach",
    ];
    // Go's flag package takes `-x` as `--x`.
    let flag = |a: &str| {
        let (name, value) = match a.split_once('=') {
            Some((n, _)) => (n, true),
            None => (a, false),
        };
        (format!("--{}", name.trim_start_matches('-')), value)
    };
    let mut out = vec!["--ip-masq".to_string(), "--kube-subnet-mgr".to_string()];
    let mut skip_value = false;
    for a in upstream {
        if skip_value {
            skip_value = false;
            continue;
        }
        let (name, inline_value) = flag(a);
        if REPLACED.contains(&name.as_str()) {
            // Go's flag package also takes `--iface eth0`; the boolean ones never a value.
            skip_value = !inline_value && name.starts_with("--iface");
            continue;
        }
        out.push(a.clone());
    }
    out.push(format!("--iface-can-reach={vip}"));
    out
}

fn flannel(
    pod_cidr: Ipv4Net,
    endpoint: Endpoint,
    bundle: Option<&Bundle>,
) -> Result<Vec<Manifest>, CniError> {
    let (source, objects) = match bundle {
        None => (
            Source::Url {
                url: FLANNEL.url,
                sha256: FLANNEL.sha256,
            },
            FlannelObjects::pinned(),
        ),
        Some(b) => {
            let text =
                b.manifests
                    .get(BUNDLE_FLANNEL)
                    .ok_or_else(|| CniError::BundleWithoutFlannel {
                        bundle: b.dir.clone(),
                    })?;
            let objects = flannel_objects(text).map_err(|message| CniError::BundleManifest {
                bundle: b.dir.clone(),
                path: BUNDLE_FLANNEL.into(),
                message,
            })?;
            (bundle_source(b, BUNDLE_FLANNEL, text), objects)
        }
    };
    Ok(vec![
        Manifest {
            name: FLANNEL.file,
            what: "flannel",
            source,
            field_manager: UPSTREAM_MANAGER,
            wait_for_crds: Vec::new(),
        },
        Manifest {
            name: "kubeforge-flannel.yaml",
            what: "flannel's settings: the pod network, the VIP's interface, the API endpoint",
            source: Source::Inline(flannel_overlay(&objects, pod_cidr, endpoint)),
            field_manager: KUBEFORGE_MANAGER,
            wait_for_crds: Vec::new(),
        },
    ])
}

/// kubeforge's partial objects over flannel's: each names its object (apiVersion, kind,
/// namespace, name) and, in the DaemonSet, its container by name (containers and env are lists
/// keyed by name, so the rest stays upstream's). Nothing else: the selector is immutable and
/// upstream's own (flannel's release asset and its source file differ there).
fn flannel_overlay(objects: &FlannelObjects, pod_cidr: Ipv4Net, endpoint: Endpoint) -> String {
    // In upstream's order; a CIDR needs no JSON escaping.
    let net_conf = format!(
        "{{\n  \"Network\": \"{pod_cidr}\",\n  \"Backend\": {{\n    \"Type\": \"vxlan\"\n  }}\n}}\n"
    );
    let configmap = object(
        "v1",
        "ConfigMap",
        &objects.configmap,
        Some(&objects.namespace),
        json!({"data": {"net-conf.json": net_conf}}),
    );
    let env: Vec<Value> = endpoint
        .env()
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let daemonset = object(
        "apps/v1",
        "DaemonSet",
        &objects.daemonset,
        Some(&objects.namespace),
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": objects.container,
            "args": flanneld_args(&objects.args, endpoint.host),
            "env": env,
        }]}}}}),
    );
    yaml_documents(
        &[
            "kubeforge's settings over flannel's manifest, applied with server-side apply as field manager `kubeforge`:",
            "the pod network and the VXLAN backend; flanneld on the interface that reaches the VIP",
            "and told the API endpoint (host-network pods cannot reach the kubernetes service without a default route).",
        ],
        &[configmap, daemonset],
    )
}

// ---------------------------------------------------------------------------------------------
// Calico

fn calico(
    pod_cidr: Ipv4Net,
    encapsulation: &str,
    endpoint: Endpoint,
    bundle: Option<&Bundle>,
) -> Result<Vec<Manifest>, CniError> {
    let url = |p: Pinned| Source::Url {
        url: p.url,
        sha256: p.sha256,
    };
    let ((crds_name, crds), operator) = match bundle {
        None => ((CALICO_CRDS.file, url(CALICO_CRDS)), url(CALICO_OPERATOR)),
        Some(b) => {
            let get = |file: &str| {
                let path = format!("manifests/{file}");
                b.manifests
                    .get(&path)
                    .map(|text| bundle_source(b, &path, text))
            };
            let crds = get(CALICO_CRDS.file)
                .map(|s| (CALICO_CRDS.file, s))
                .or_else(|| get(CALICO_CRDS_LEGACY).map(|s| (CALICO_CRDS_LEGACY, s)));
            match (crds, get(CALICO_OPERATOR.file)) {
                (Some(crds), Some(operator)) => (crds, operator),
                (None, None) => ((CALICO_CRDS.file, url(CALICO_CRDS)), url(CALICO_OPERATOR)),
                (Some((name, _)), None) => {
                    return Err(CniError::BundleCalicoIncomplete {
                        bundle: b.dir.clone(),
                        has: format!("manifests/{name}"),
                        missing: format!("manifests/{}", CALICO_OPERATOR.file),
                    });
                }
                (None, Some(_)) => {
                    return Err(CniError::BundleCalicoIncomplete {
                        bundle: b.dir.clone(),
                        has: format!("manifests/{}", CALICO_OPERATOR.file),
                        missing: format!("manifests/{}", CALICO_CRDS.file),
                    });
                }
            }
        }
    };
    Ok(vec![
        Manifest {
            name: crds_name,
            what: "Calico's custom resource definitions",
            source: crds,
            field_manager: UPSTREAM_MANAGER,
            wait_for_crds: Vec::new(),
        },
        Manifest {
            name: "kubeforge-calico-endpoint.yaml",
            what: "the API endpoint for the Tigera operator and calico-node",
            source: Source::Inline(calico_endpoint(endpoint)),
            field_manager: KUBEFORGE_MANAGER,
            wait_for_crds: Vec::new(),
        },
        Manifest {
            name: CALICO_OPERATOR.file,
            what: "the Tigera operator",
            source: operator,
            field_manager: UPSTREAM_MANAGER,
            wait_for_crds: Vec::new(),
        },
        Manifest {
            name: "kubeforge-calico.yaml",
            what: "Calico's installation: the IP pool, encapsulation, node addresses",
            source: Source::Inline(calico_installation(pod_cidr, encapsulation)),
            field_manager: KUBEFORGE_MANAGER,
            wait_for_crds: vec![INSTALLATIONS_CRD, APISERVERS_CRD],
        },
    ])
}

/// The operator's namespace (as upstream's: the operator's pods are privileged) and the
/// ConfigMap the operator reads into its environment when it starts: applied before the operator
/// so that its first start already reaches the API.
fn calico_endpoint(endpoint: Endpoint) -> String {
    let namespace = object(
        "v1",
        "Namespace",
        CALICO_NAMESPACE,
        None,
        json!({"metadata": {"labels": {
            "name": CALICO_NAMESPACE,
            "pod-security.kubernetes.io/enforce": "privileged",
        }}}),
    );
    let data: Map<String, Value> = endpoint
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    let configmap = object(
        "v1",
        "ConfigMap",
        CALICO_ENDPOINT_CONFIGMAP,
        Some(CALICO_NAMESPACE),
        json!({"data": data}),
    );
    yaml_documents(
        &[
            "The API endpoint for the Tigera operator, which passes it on to calico-node: host-network",
            "pods cannot reach the kubernetes service without a default route.",
        ],
        &[namespace, configmap],
    )
}

/// Whether Calico runs BGP for an encapsulation: IPIP and unencapsulated pools need BIRD to
/// program routes (the operator refuses them with BGP disabled); VXLAN routes are Felix's own.
pub fn calico_bgp(encapsulation: &str) -> &'static str {
    match encapsulation {
        "VXLAN" | "VXLANCrossSubnet" => "Disabled",
        _ => "Enabled",
    }
}

fn calico_installation(pod_cidr: Ipv4Net, encapsulation: &str) -> String {
    let installation = object(
        "operator.tigera.io/v1",
        "Installation",
        "default",
        None,
        json!({"spec": {"calicoNetwork": {
            "bgp": calico_bgp(encapsulation),
            "ipPools": [{
                "name": "default-ipv4-ippool",
                "cidr": pod_cidr.to_string(),
                "encapsulation": encapsulation,
                "natOutgoing": "Enabled",
                "nodeSelector": "all()",
            }],
            "nodeAddressAutodetectionV4": {"kubernetes": "NodeInternalIP"},
        }}}),
    );
    let apiserver = object(
        "operator.tigera.io/v1",
        "APIServer",
        "default",
        None,
        json!({"spec": {}}),
    );
    yaml_documents(
        &[
            "Calico's installation: one IPv4 pool over the pod network, node addresses as kubeadm",
            "registered them (NodeInternalIP), and the Calico API server.",
        ],
        &[installation, apiserver],
    )
}

// ---------------------------------------------------------------------------------------------
// Documents

/// A Kubernetes object: apiVersion, kind and metadata first, then the rest.
#[derive(Serialize)]
struct Object {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    metadata: Value,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// An object named `name` (in `namespace`), with `body`'s fields; `body.metadata` adds to the
/// metadata.
fn object(
    api_version: &'static str,
    kind: &'static str,
    name: &str,
    namespace: Option<&str>,
    body: Value,
) -> Object {
    let mut rest = match body {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    if let Some(ns) = namespace {
        metadata.insert("namespace".into(), json!(ns));
    }
    if let Some(Value::Object(extra)) = rest.remove("metadata") {
        metadata.extend(extra);
    }
    Object {
        api_version,
        kind,
        metadata: Value::Object(metadata),
        rest,
    }
}

/// A YAML file of documents, after a comment.
fn yaml_documents(comment: &[&str], docs: &[Object]) -> String {
    let mut out =
        String::from("# Managed by kubeforge: `kubeforge apply` writes and applies it again.\n");
    for line in comment {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    for doc in docs {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(doc).expect("objects serialize"));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The documents of a multi-document YAML text, without empty ones.
fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, docs: &mut Vec<Value>| -> Result<(), String> {
        let meaningful = current.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        });
        if meaningful {
            let v: Value = serde_saphyr::from_str(current).map_err(|e| e.to_string())?;
            if !v.is_null() {
                docs.push(v);
            }
        }
        current.clear();
        Ok(())
    };
    for line in text.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            flush(&mut current, &mut docs)?;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current, &mut docs)?;
    Ok(docs)
}
