//! `kubeadm certs renew all` (and each certificate by its name): every certificate kubeadm
//! manages under the certificate directory, and the client certificate embedded in each
//! kubeconfig it wrote (not the kubelet's, which rotates its own), signed again by the same
//! CA with the same key and names, valid one year from now. As the real one, it asks the
//! cluster for its configuration first, and says the static pods must be restarted.

use crate::flags::{b, v};
use crate::kubeadm::{self, Kubeadm, R, plain};
use crate::pki;
use crate::util;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// A certificate kubeadm renews: its name, its file (under the certificate directory, or a
/// kubeconfig under /etc/kubernetes), its CA, and what kubeadm says of it.
struct Renewable {
    name: &'static str,
    file: &'static str,
    ca: &'static str,
    what: &'static str,
}

const fn r(
    name: &'static str,
    file: &'static str,
    ca: &'static str,
    what: &'static str,
) -> Renewable {
    Renewable {
        name,
        file,
        ca,
        what,
    }
}

/// In kubeadm's order.
const RENEWABLE: &[Renewable] = &[
    r(
        "admin.conf",
        "admin.conf",
        "ca",
        "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
    ),
    r(
        "apiserver",
        "apiserver",
        "ca",
        "certificate for serving the Kubernetes API",
    ),
    r(
        "apiserver-etcd-client",
        "apiserver-etcd-client",
        "etcd/ca",
        "certificate the apiserver uses to access etcd",
    ),
    r(
        "apiserver-kubelet-client",
        "apiserver-kubelet-client",
        "ca",
        "certificate for the API server to connect to kubelet",
    ),
    r(
        "controller-manager.conf",
        "controller-manager.conf",
        "ca",
        "certificate embedded in the kubeconfig file for the controller manager to use",
    ),
    r(
        "etcd-healthcheck-client",
        "etcd/healthcheck-client",
        "etcd/ca",
        "certificate for liveness probes to healthcheck etcd",
    ),
    r(
        "etcd-peer",
        "etcd/peer",
        "etcd/ca",
        "certificate for etcd nodes to communicate with each other",
    ),
    r(
        "etcd-server",
        "etcd/server",
        "etcd/ca",
        "certificate for serving etcd",
    ),
    r(
        "front-proxy-client",
        "front-proxy-client",
        "front-proxy-ca",
        "certificate for the front proxy client",
    ),
    r(
        "scheduler.conf",
        "scheduler.conf",
        "ca",
        "certificate embedded in the kubeconfig file for the scheduler manager to use",
    ),
    r(
        "super-admin.conf",
        "super-admin.conf",
        "ca",
        "certificate embedded in the kubeconfig file for the super-admin",
    ),
];

pub(crate) fn run(k: &Kubeadm, extra: &[&str], rest: &[String]) -> R<i32> {
    let which = match extra {
        ["renew", which] => *which,
        ["renew"] => return Ok(kubeadm::help("kubeadm certs renew")),
        [] => return Ok(kubeadm::help("kubeadm certs")),
        ["renew", _, x, ..] => return Err(kubeadm::unknown(x, "kubeadm certs renew")),
        [x, ..] => {
            return Err(plain(format!(
                "the stand-in simulates only kubeadm certs renew, not {x:?}"
            )));
        }
    };
    let p = kubeadm::parse(
        rest,
        &[v("cert-dir"), v("config"), v("kubeconfig"), b("csr-only")],
    )?;
    if p.has("csr-only") || p.has("config") {
        return Err(plain(
            "the stand-in simulates kubeadm certs renew from the cluster's configuration only",
        ));
    }
    let chosen: Vec<&Renewable> = RENEWABLE
        .iter()
        .filter(|c| which == "all" || c.name == which)
        .collect();
    if chosen.is_empty() {
        return Err(kubeadm::unknown(which, "kubeadm certs renew"));
    }
    let kubeconfig = p.get("kubeconfig").unwrap_or("/etc/kubernetes/admin.conf");
    println!("[renew] Reading configuration from the cluster...");
    k.connect_admin(kubeconfig).map_err(|e| {
        plain(format!(
            "[renew] failed to read the cluster's configuration: {e}"
        ))
    })?;
    println!(
        "[renew] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n"
    );
    let dir = k
        .env
        .path(p.get("cert-dir").unwrap_or("/etc/kubernetes/pki"));
    for c in chosen {
        let ca = pki::read_pair(&dir, c.ca).map_err(plain)?;
        if c.file.ends_with(".conf") {
            let path = k.env.path(format!("/etc/kubernetes/{}", c.file));
            if !path.exists() {
                // (super-admin.conf exists on the first control-plane node only.)
                continue;
            }
            renew_kubeconfig(&path, &ca)
                .map_err(|e| plain(format!("failed to renew certificate {}: {e}", c.name)))?;
        } else {
            let old = pki::read_pair(&dir, c.file).map_err(plain)?;
            let cert = pki::renew(&old, &ca)
                .map_err(|e| plain(format!("failed to renew certificate {}: {e}", c.name)))?;
            pki::write_pair(&dir, c.file, &pki::Pair { cert, key: old.key }).map_err(plain)?;
        }
        println!("{} renewed", c.what);
    }
    if which == "all" {
        println!(
            "\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates."
        );
    }
    Ok(0)
}

/// The kubeconfig's embedded client certificate signed again, its key kept.
fn renew_kubeconfig(path: &std::path::Path, ca: &pki::Pair) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut v: Value = serde_saphyr::from_str(&text).map_err(|e| e.to_string())?;
    let user = v["users"][0]["user"].as_object_mut().ok_or("no user")?;
    let decode = |k: &str| -> Result<String, String> {
        let d = user
            .get(k)
            .and_then(Value::as_str)
            .ok_or(format!("no {k}"))?;
        String::from_utf8(B64.decode(d).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    };
    let old = pki::Pair {
        cert: decode("client-certificate-data")?,
        key: decode("client-key-data")?,
    };
    let cert = pki::renew(&old, ca)?;
    user.insert("client-certificate-data".into(), json!(B64.encode(cert)));
    util::write_atomic(path, pki::to_yaml(&v).as_bytes(), 0o600)
        .map_err(|e| format!("{}: {e}", path.display()))
}
