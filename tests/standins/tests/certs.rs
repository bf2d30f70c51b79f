//! `kubeadm certs renew all` on a control-plane node, then its static pods restarted the way
//! kubeforge restarts them (their manifests marked): every certificate kubeadm manages is
//! valid for longer, with the same key and names; the CAs are kept; the renewed admin
//! kubeconfig works; each mirror pod shows the mark.

mod common;

use common::*;
use kubeforge_core::resources::{CERTIFICATE_PODS, RENEWED};
use serde_json::Value;
use std::collections::BTreeMap;

fn not_after(pem: &str) -> i64 {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    p.parse_x509().unwrap().validity().not_after.timestamp()
}

fn read(h: &Host, p: &str) -> String {
    std::fs::read_to_string(h.path(p)).unwrap()
}

const CERTS: [&str; 7] = [
    "apiserver",
    "apiserver-kubelet-client",
    "apiserver-etcd-client",
    "front-proxy-client",
    "etcd/server",
    "etcd/peer",
    "etcd/healthcheck-client",
];

/// The client certificate embedded in a kubeconfig.
fn client_cert(h: &Host, p: &str) -> String {
    use base64::Engine as _;
    let v: Value = serde_saphyr::from_str(&read(h, p)).unwrap();
    let d = v["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .unwrap();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(d).unwrap()).unwrap()
}

#[test]
fn renewed_certificates_then_the_static_pods_restarted_on_them() {
    let lab = Lab::new();
    let cp = lab.host("cp1", 1);
    let endpoint = format!("{}:6443", cp.ip);
    init(&cp, &endpoint);
    let pki = |n: &str, ext: &str| read(&cp, &format!("/etc/kubernetes/pki/{n}.{ext}"));
    let before: BTreeMap<&str, (i64, String)> = CERTS
        .iter()
        .map(|c| (*c, (not_after(&pki(c, "crt")), pki(c, "key"))))
        .collect();
    let cas: Vec<String> = ["ca", "front-proxy-ca", "etcd/ca"]
        .iter()
        .map(|c| pki(c, "crt"))
        .collect();
    let admin = not_after(&client_cert(&cp, "/etc/kubernetes/admin.conf"));
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let o = cp.kubeadm(&["certs", "renew", "all"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("certificate for serving etcd renewed"),
        "{}",
        text(&o)
    );
    assert!(
        stdout(&o).contains("Done renewing certificates. You must restart"),
        "{}",
        text(&o)
    );
    for (c, (was, key)) in &before {
        let now = pki(c, "crt");
        assert!(not_after(&now) > *was, "{c}: not renewed");
        assert_eq!(&pki(c, "key"), key, "{c}: the key is kept");
    }
    let same: Vec<String> = ["ca", "front-proxy-ca", "etcd/ca"]
        .iter()
        .map(|c| pki(c, "crt"))
        .collect();
    assert_eq!(same, cas, "the CAs are not renewed");
    assert!(not_after(&client_cert(&cp, "/etc/kubernetes/admin.conf")) > admin);
    assert_eq!(stdout(&cp.kubectl(&["get", "--raw", "/readyz"])), "ok");
    // What kubeforge's backup reads: the ClusterConfiguration kubeadm uploaded.
    let o = cp.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "configmap",
        "kubeadm-config",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let cm: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cc: Value =
        serde_saphyr::from_str(cm["data"]["ClusterConfiguration"].as_str().unwrap()).unwrap();
    assert!(cc["controlPlaneEndpoint"].is_string(), "{cm}");
    // As kubeadm: one certificate by name; an unknown one refused.
    assert!(
        cp.kubeadm(&["certs", "renew", "apiserver"])
            .status
            .success()
    );
    let o = cp.kubeadm(&["certs", "renew", "apiserver-bogus"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("apiserver-bogus"), "{}", text(&o));

    // kubeforge's mark, as it runs on the node.
    let stamp = "2026-12-07T15:00:00Z";
    let script = kubeforge_core::steps::certs::mark_script(stamp).replace(
        "/etc/kubernetes",
        cp.path("/etc/kubernetes").to_str().unwrap(),
    );
    let o = std::process::Command::new("sh")
        .args(["-euc", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // (A mirror pod shows the annotations of the manifest its pod was last started from.)
    wait_for(30, "every mirror pod marked and ready", || {
        let o = cp.kubectl(&["-n", "kube-system", "get", "pods", "-o", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        CERTIFICATE_PODS.iter().all(|c| {
            v["items"].as_array().into_iter().flatten().any(|p| {
                p["metadata"]["name"] == format!("{c}-cp1").as_str()
                    && p["metadata"]["annotations"][RENEWED] == stamp
                    && p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string()
                    && p["status"]["conditions"][0]["status"] == "True"
            })
        })
    });
    let o = cp.kubectl(&["-n", "kube-system", "get", "pods", "-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let api = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == "kube-apiserver-cp1")
        .unwrap();
    assert!(
        api["metadata"]["annotations"]
            ["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"]
            .is_string(),
        "kubeadm's own annotation is kept: {api}"
    );
    assert_eq!(stdout(&cp.kubectl(&["get", "--raw", "/readyz"])), "ok");
}
