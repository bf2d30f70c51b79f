//! The pod network as kubeforge applies it: upstream's manifests, then kubeforge's own partial
//! objects with server-side apply under another field manager, and `kubectl wait` for CRDs.
//! kubeforge's documents are the ones `kubeforge_core::cni` renders.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use kubeforge_core::cni::{self, Manifest, Source};
use kubeforge_standins::state::{Cluster, ManifestRecord};
use serde_json::Value;

/// The manifests kubeforge renders for `cni` (pod network 10.244.0.0/16, the VIP at `vip`).
fn rendered(cni: &str, vip: IpAddr, with_bundle_flannel: Option<&str>) -> Vec<Manifest> {
    let c = kubeforge_core::model::load(&format!(
        "hosts:\n  - name: k8scp01\n    address: 10.0.0.11\nvip: 10.0.0.10\ncni: {cni}\npod_cidr: 10.244.0.0/16\n"
    ))
    .cluster
    .unwrap();
    let bundle = with_bundle_flannel.map(|text| kubeforge_core::bundle::Bundle {
        dir: "/srv/bundle".into(),
        version: kubeforge_core::version::KubeVersion::parse("1.34.2").unwrap(),
        files: Default::default(),
        images: vec![],
        missing_images: vec![],
        debs: vec![],
        host_packages: vec![],
        kubelet_service: String::new(),
        kubeadm_dropin: String::new(),
        manifests: [(cni::BUNDLE_FLANNEL.to_string(), text.to_string())].into(),
        etcd_tag: None,
    });
    let IpAddr::V4(vip) = vip else {
        panic!("{vip}")
    };
    cni::manifests(&c, vip, bundle.as_ref()).unwrap()
}

fn inline(m: &Manifest) -> &str {
    match &m.source {
        Source::Inline(t) => t,
        other => panic!("{} is {other:?}", m.name),
    }
}

/// Applies `text` as kubeforge applies a manifest: written to a file, server-side.
fn apply(h: &Host, m: &Manifest, text: &str) -> std::process::Output {
    let path = format!("/etc/kubeforge/cni/{}", m.name);
    h.write(&path, text);
    let args = m.apply_args(&path);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    h.kubectl(&args)
}

fn record<'a>(c: &'a Cluster, kind: &str, name: &str) -> &'a ManifestRecord {
    c.manifests
        .iter()
        .find(|m| m.kind == kind && m.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn container<'a>(ds: &'a ManifestRecord, name: &str) -> &'a Value {
    ds.object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {}", ds.object))
}

fn bundle_flannel(lab: &Lab, h: &Host) -> String {
    let dir = lab.dir.path().join("bundle");
    let o = h.run(BUNDLE, &[dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::read_to_string(dir.join("manifests/kube-flannel.yml")).unwrap()
}

#[test]
fn flannel_upstream_then_kubeforges_overlay_merge_per_object() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    init(&cp1, &format!("{}:6443", cp1.ip));
    let upstream = bundle_flannel(&lab, &cp1);
    let ms = rendered("flannel", cp1.ip, Some(&upstream));
    assert_eq!(ms.len(), 2);

    let o = apply(&cp1, &ms[0], &upstream);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("daemonset.apps/kube-flannel-ds serverside-applied"),
        "{}",
        text(&o)
    );
    let o = apply(&cp1, &ms[1], inline(&ms[1]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "configmap/kube-flannel-cfg serverside-applied\ndaemonset.apps/kube-flannel-ds serverside-applied\n"
    );

    // One object each, upstream's fields and kubeforge's together, both managers recorded.
    let st = lab.read();
    let c = &st.clusters[0];
    assert_eq!(
        c.manifests
            .iter()
            .filter(|m| m.name == "kube-flannel-ds")
            .count(),
        1
    );
    let ds = record(c, "DaemonSet", "kube-flannel-ds");
    assert_eq!(ds.managers, ["kubeforge-upstream", "kubeforge"]);
    assert_eq!(ds.namespace, "kube-flannel");
    let flanneld = container(ds, "kube-flannel");
    assert_eq!(flanneld["image"], "docker.io/flannel/flannel:v0.20.2");
    assert_eq!(flanneld["command"][0], "/opt/bin/flanneld");
    let args: Vec<&str> = flanneld["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "--ip-masq",
            "--kube-subnet-mgr",
            &format!("--iface-can-reach={}", cp1.ip)
        ]
    );
    let env: Vec<(&str, &str)> = flanneld["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap_or("(from a field)"),
            )
        })
        .collect();
    assert!(env.contains(&("KUBERNETES_SERVICE_HOST", cp1.ip.to_string().as_str())));
    assert!(env.contains(&("KUBERNETES_SERVICE_PORT", "8443")));
    assert!(
        env.iter().any(|(n, _)| *n == "POD_NAME"),
        "upstream's env stays: {env:?}"
    );
    assert_eq!(
        ds.object["spec"]["selector"]["matchLabels"]["app"], "flannel",
        "the selector stays upstream's"
    );
    let cm = record(c, "ConfigMap", "kube-flannel-cfg");
    let net: Value =
        serde_json::from_str(cm.object["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(net["Network"], "10.244.0.0/16");
    assert!(
        cm.object["data"]["cni-conf.json"].is_string(),
        "upstream's key stays"
    );
    assert_eq!(c.pod_network.as_deref(), Some("flannel"));

    // The kubelet sees a pod network: its CNI configuration, the node Ready, flannel's pod.
    wait_for(30, "cp1 Ready", || {
        let o = cp1.kubectl(&["get", "nodes", "cp1", "-o", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        v["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    });
    assert!(cp1.path("/etc/cni/net.d/10-flannel.conflist").exists());
    let o = cp1.kubectl(&["get", "pods", "-n", "kube-flannel", "-o", "name"]);
    assert!(
        stdout(&o).starts_with("pod/kube-flannel-ds-"),
        "{}",
        text(&o)
    );

    // Applying upstream again takes `args` back whole (an atomic list), and keeps the env
    // entries it does not name: what real server-side apply does.
    let o = apply(&cp1, &ms[0], &upstream);
    assert!(o.status.success(), "{}", text(&o));
    let st = lab.read();
    let flanneld = container(
        record(&st.clusters[0], "DaemonSet", "kube-flannel-ds"),
        "kube-flannel",
    )
    .clone();
    assert_eq!(flanneld["args"].as_array().unwrap().len(), 2);
    assert!(
        flanneld["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "KUBERNETES_SERVICE_HOST")
    );
}

#[test]
fn an_overlay_without_its_object_is_invalid() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    init(&cp1, &format!("{}:6443", cp1.ip));
    let ms = rendered("flannel", cp1.ip, None);
    let o = apply(&cp1, &ms[1], inline(&ms[1]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // The ConfigMap alone is a valid object; the DaemonSet is not.
    assert_eq!(
        stdout(&o),
        "configmap/kube-flannel-cfg serverside-applied\n"
    );
    assert_eq!(
        stderr(&o).trim_end(),
        "The DaemonSet \"kube-flannel-ds\" is invalid: \n* spec.selector: Required value\n* spec.template.spec.containers[0].image: Required value"
    );
    let st = lab.read();
    assert_eq!(st.clusters[0].pod_network, None);
    assert!(
        !st.clusters[0]
            .manifests
            .iter()
            .any(|m| m.name == "kube-flannel-ds")
    );
}

#[test]
fn field_managers_and_force_conflicts() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    init(&cp1, &format!("{}:6443", cp1.ip));
    cp1.write(
        "/root/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: kube-system\ndata:\n  a: \"1\"\n",
    );
    let o = cp1.kubectl(&["apply", "--force-conflicts", "-f", "/root/cm.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: --force-conflicts only works with --server-side"
    );
    // kubectl's default managers, then a named one.
    let o = cp1.kubectl(&["apply", "-f", "/root/cm.yaml"]);
    assert_eq!(stdout(&o), "configmap/x created\n", "{}", text(&o));
    let o = cp1.kubectl(&["apply", "--server-side", "-f", "/root/cm.yaml"]);
    assert_eq!(
        stdout(&o),
        "configmap/x serverside-applied\n",
        "{}",
        text(&o)
    );
    let o = cp1.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=kubeforge",
        "-f",
        "/root/cm.yaml",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = cp1.kubectl(&["apply", "-f", "/root/cm.yaml"]);
    assert_eq!(stdout(&o), "configmap/x unchanged\n", "{}", text(&o));
    let st = lab.read();
    assert_eq!(
        record(&st.clusters[0], "ConfigMap", "x").managers,
        ["kubectl-client-side-apply", "kubectl", "kubeforge"]
    );
}

/// Two CRDs shaped as the operator's (group, names, scope, versions), enough to serve their kinds.
const OPERATOR_CRDS: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: installations.operator.tigera.io
spec:
  group: operator.tigera.io
  names:
    kind: Installation
    plural: installations
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: apiservers.operator.tigera.io
spec:
  group: operator.tigera.io
  names:
    kind: APIServer
    plural: apiservers
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

#[test]
fn calicos_custom_resources_need_their_crds_established() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    init(&cp1, &format!("{}:6443", cp1.ip));
    let ms = rendered("calico", cp1.ip, None);
    let (crds, endpoint, resources) = (&ms[0], &ms[1], &ms[3]);
    let wait = resources.wait_args().unwrap();
    let wait: Vec<&str> = wait.iter().map(String::as_str).collect();

    // Before the CRDs: kubectl cannot map the kinds, and wait finds nothing (kubectl 1.28
    // fails at once for a named resource that does not exist).
    let o = apply(&cp1, resources, inline(resources));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).lines().next().unwrap(),
        "error: resource mapping not found for name: \"default\" namespace: \"\" from \"/etc/kubeforge/cni/kubeforge-calico.yaml\": no matches for kind \"Installation\" in version \"operator.tigera.io/v1\"",
        "{}",
        text(&o)
    );
    assert!(stderr(&o).contains("ensure CRDs are installed first"));
    let o = cp1.kubectl(&wait);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io \"installations.operator.tigera.io\" not found"
    );
    assert_eq!(lab.read().clusters[0].pod_network, None);

    // The CRDs, the endpoint, then the custom resources.
    let o = apply(&cp1, crds, OPERATOR_CRDS);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains(
        "customresourcedefinition.apiextensions.k8s.io/installations.operator.tigera.io serverside-applied"
    ));
    let o = cp1.kubectl(&wait);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "customresourcedefinition.apiextensions.k8s.io/installations.operator.tigera.io condition met\ncustomresourcedefinition.apiextensions.k8s.io/apiservers.operator.tigera.io condition met\n"
    );
    let o = apply(&cp1, endpoint, inline(endpoint));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "namespace/tigera-operator serverside-applied\nconfigmap/kubernetes-services-endpoint serverside-applied\n"
    );
    let o = apply(&cp1, resources, inline(resources));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "installation.operator.tigera.io/default serverside-applied\napiserver.operator.tigera.io/default serverside-applied\n"
    );
    let st = lab.read();
    let c = &st.clusters[0];
    assert_eq!(c.pod_network.as_deref(), Some("calico"));
    let cm = record(c, "ConfigMap", "kubernetes-services-endpoint");
    assert_eq!(cm.namespace, "tigera-operator");
    assert_eq!(cm.object["data"]["KUBERNETES_SERVICE_PORT"], "8443");
    let inst = record(c, "Installation", "default");
    assert_eq!(inst.namespace, "", "cluster-scoped, as its CRD says");
    assert_eq!(
        inst.object["spec"]["calicoNetwork"]["ipPools"][0]["cidr"],
        "10.244.0.0/16"
    );
    // A CRD keeps only what serves its kind.
    let crd = record(
        c,
        "CustomResourceDefinition",
        "installations.operator.tigera.io",
    );
    assert!(crd.object["spec"]["versions"][0].get("schema").is_none());
    wait_for(30, "the CNI configuration", || {
        cp1.path("/etc/cni/net.d/10-calico.conflist").exists()
    });
}

#[test]
fn wait_fails_after_its_timeout_and_checks_its_flags() {
    let lab = Lab::new();
    let cp1 = lab.host("cp1", 1);
    init(&cp1, &format!("{}:6443", cp1.ip));
    cp1.write("/root/crds.yaml", OPERATOR_CRDS);
    let o = cp1.kubectl(&["apply", "--server-side", "-f", "/root/crds.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    // The resource type and names in either form.
    let o = cp1.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "installations.operator.tigera.io",
        "apiservers.operator.tigera.io",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).lines().count(), 2);

    // CRDs that never become Established: the timeout, then kubectl's message.
    cp1.write(kubeforge_standins::kubectl::CRDS_NOT_ESTABLISHED, "");
    let start = Instant::now();
    let o = cp1.kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=1s",
        "crd/installations.operator.tigera.io",
    ]);
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: timed out waiting for the condition on customresourcedefinitions/installations.operator.tigera.io"
    );

    let o = cp1.kubectl(&["wait", "crd/installations.operator.tigera.io"]);
    assert_eq!(stderr(&o).trim(), "error: unrecognized condition: \"\"");
    let o = cp1.kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=soon",
        "crd/x",
    ]);
    assert_eq!(
        stderr(&o).trim(),
        "error: invalid argument \"soon\" for \"--timeout\" flag: time: invalid duration \"soon\""
    );
    let o = cp1.kubectl(&["wait", "--for=condition=established"]);
    assert!(
        stderr(&o).starts_with("error: You must provide one or more resources"),
        "{}",
        text(&o)
    );
}
