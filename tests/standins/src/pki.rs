//! Certificates and kubeconfig files as kubeadm lays them out. Keys are ECDSA P-256 (kubeadm's
//! `encryptionAlgorithm: ECDSA-P256`; its default is RSA-2048, which changes nothing here).

use crate::env::Env;
use crate::util;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::Path;
use time::{Duration as TDuration, OffsetDateTime};

/// The files `kubeadm init phase upload-certs` shares with joining control planes.
pub const SHARED_FILES: &[&str] = &[
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
];

/// A certificate and its key, in PEM.
#[derive(Clone, Debug)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

fn params(cn: &str, orgs: &[&str], ca: bool) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    for o in orgs {
        p.distinguished_name.push(DnType::OrganizationName, *o);
    }
    p.distinguished_name.push(DnType::CommonName, cn);
    let now = OffsetDateTime::now_utc();
    p.not_before = now - TDuration::minutes(5);
    if ca {
        p.not_after = now + TDuration::days(3650);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
    } else {
        p.not_after = now + TDuration::days(365);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.use_authority_key_identifier_extension = true;
    }
    let mut serial = util::random_bytes(16);
    serial[0] &= 0x7f;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    p
}

/// A new self-signed CA.
pub fn new_ca(cn: &str) -> Result<Pair, String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params(cn, &[], true)
        .self_signed(&key)
        .map_err(|e| e.to_string())?;
    Ok(Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// What a leaf certificate is for.
pub struct Leaf<'a> {
    pub cn: &'a str,
    pub orgs: &'a [&'a str],
    pub server: bool,
    pub client: bool,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

/// A certificate signed by `ca`.
pub fn issue(ca: &Pair, leaf: &Leaf) -> Result<Pair, String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = sign(ca, leaf, &key)?;
    Ok(Pair {
        cert,
        key: key.serialize_pem(),
    })
}

/// `leaf` with `key`, signed by `ca`, valid from now: the certificate in PEM.
fn sign(ca: &Pair, leaf: &Leaf, key: &KeyPair) -> Result<String, String> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|e| format!("failure loading CA key: {e}"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)
        .map_err(|e| format!("failure loading CA certificate: {e}"))?;
    let mut p = params(leaf.cn, leaf.orgs, false);
    if leaf.server {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if leaf.client {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in &leaf.dns {
        if seen.insert(d.clone()) {
            p.subject_alt_names.push(SanType::DnsName(
                d.clone().try_into().map_err(|e| format!("{d}: {e}"))?,
            ));
        }
    }
    for ip in &leaf.ips {
        if seen.insert(ip.to_string()) {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
    }
    Ok(p.signed_by(key, &issuer).map_err(|e| e.to_string())?.pem())
}

/// `old` signed again by `ca` (`kubeadm certs renew`): the same subject, names, usages and
/// key, valid from now. The new certificate in PEM.
pub fn renew(old: &Pair, ca: &Pair) -> Result<String, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(old.cert.as_bytes())
        .map_err(|e| format!("failed to parse certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("failed to parse certificate: {e}"))?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .find_map(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let orgs: Vec<String> = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(String::from))
        .collect();
    let orgs: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let eku = cert.extended_key_usage().ok().flatten().map(|e| e.value);
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    for name in sans(&old.cert) {
        match name.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(name),
        }
    }
    let leaf = Leaf {
        cn: &cn,
        orgs: &orgs,
        server: eku.is_some_and(|e| e.server_auth),
        client: eku.is_some_and(|e| e.client_auth),
        dns,
        ips,
    };
    let key = KeyPair::from_pem(&old.key).map_err(|e| format!("failure loading key: {e}"))?;
    sign(ca, &leaf, &key)
}

/// `sha256:<hex>` of a PEM certificate's public key, as `--discovery-token-ca-cert-hash` pins.
pub fn ca_hash(cert_pem: &str) -> Result<String, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| format!("failed to parse certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("failed to parse certificate: {e}"))?;
    Ok(format!(
        "sha256:{}",
        util::sha256_hex(cert.tbs_certificate.subject_pki.raw)
    ))
}

/// The subject alternative names of a PEM certificate (DNS names and IPs, as strings).
pub fn sans(cert_pem: &str) -> Vec<String> {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else {
        return vec![];
    };
    let Ok(cert) = pem.parse_x509() else {
        return vec![];
    };
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => out.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    if b.len() == 4 {
                        out.push(IpAddr::from([b[0], b[1], b[2], b[3]]).to_string());
                    } else if b.len() == 16 {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        out.push(IpAddr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Reads `DIR/NAME.crt` and `DIR/NAME.key`.
pub fn read_pair(dir: &Path, name: &str) -> Result<Pair, String> {
    let rd = |ext: &str| {
        let p = dir.join(format!("{name}.{ext}"));
        std::fs::read_to_string(&p).map_err(|e| format!("couldn't load {}: {e}", p.display()))
    };
    Ok(Pair {
        cert: rd("crt")?,
        key: rd("key")?,
    })
}

pub fn write_pair(dir: &Path, name: &str, p: &Pair) -> Result<(), String> {
    let w = |ext: &str, data: &str, mode: u32| {
        let path = dir.join(format!("{name}.{ext}"));
        util::write_atomic(&path, data.as_bytes(), mode)
            .map_err(|e| format!("failure while saving {}: {e}", path.display()))
    };
    w("crt", &p.cert, 0o644)?;
    w("key", &p.key, 0o600)
}

/// The certificates of one control-plane node.
pub struct NodeCerts<'a> {
    pub node_name: &'a str,
    pub advertise: IpAddr,
    pub endpoint_host: Option<String>,
    pub service_ip: Option<IpAddr>,
    pub dns_domain: &'a str,
    pub cert_sans: &'a [String],
}

/// Writes the CAs (new ones when `cas` is `None`) and every per-node certificate under `dir`,
/// printing kubeadm's `[certs]` lines. Returns the cluster CA.
pub fn write_control_plane_pki(
    dir: &Path,
    cas: Option<&std::collections::BTreeMap<String, String>>,
    n: &NodeCerts,
    out: &mut Vec<String>,
) -> Result<Pair, String> {
    let shared = |name: &str| -> Result<Pair, String> {
        match cas {
            Some(m) => Ok(Pair {
                cert: m.get(&format!("{name}.crt")).cloned().ok_or_else(|| {
                    format!("{name}.crt missing from the downloaded certificates")
                })?,
                key: m.get(&format!("{name}.key")).cloned().ok_or_else(|| {
                    format!("{name}.key missing from the downloaded certificates")
                })?,
            }),
            None => Err(String::new()),
        }
    };
    let ca = match shared("ca") {
        Ok(p) => {
            out.push("[certs] Using the existing \"ca\" certificate and key".into());
            p
        }
        Err(_) => {
            out.push("[certs] Generating \"ca\" certificate and key".into());
            new_ca("kubernetes")?
        }
    };
    write_pair(dir, "ca", &ca)?;
    let mut dns = vec![
        n.node_name.to_string(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", n.dns_domain),
    ];
    let mut ips: Vec<IpAddr> = n.service_ip.into_iter().collect();
    ips.push(n.advertise);
    if let Some(h) = &n.endpoint_host {
        match h.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(h.clone()),
        }
    }
    for s in n.cert_sans {
        match s.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(s.clone()),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    dns.retain(|d| seen.insert(d.clone()));
    let mut seen = std::collections::BTreeSet::new();
    ips.retain(|i| seen.insert(*i));
    out.push("[certs] Generating \"apiserver\" certificate and key".into());
    out.push(format!(
        "[certs] apiserver serving cert is signed for DNS names [{}] and IPs [{}]",
        dns.join(" "),
        ips.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let apiserver = issue(
        &ca,
        &Leaf {
            cn: "kube-apiserver",
            orgs: &[],
            server: true,
            client: false,
            dns,
            ips,
        },
    )?;
    write_pair(dir, "apiserver", &apiserver)?;
    out.push("[certs] Generating \"apiserver-kubelet-client\" certificate and key".into());
    let kc = issue(
        &ca,
        &Leaf {
            cn: "kube-apiserver-kubelet-client",
            orgs: &["kubeadm:cluster-admins"],
            server: false,
            client: true,
            dns: vec![],
            ips: vec![],
        },
    )?;
    write_pair(dir, "apiserver-kubelet-client", &kc)?;
    let fp = match shared("front-proxy-ca") {
        Ok(p) => p,
        Err(_) => {
            out.push("[certs] Generating \"front-proxy-ca\" certificate and key".into());
            new_ca("front-proxy-ca")?
        }
    };
    write_pair(dir, "front-proxy-ca", &fp)?;
    out.push("[certs] Generating \"front-proxy-client\" certificate and key".into());
    let fpc = issue(
        &fp,
        &Leaf {
            cn: "front-proxy-client",
            orgs: &[],
            server: false,
            client: true,
            dns: vec![],
            ips: vec![],
        },
    )?;
    write_pair(dir, "front-proxy-client", &fpc)?;
    let etcd_dir = dir.join("etcd");
    let eca = match shared("etcd/ca") {
        Ok(p) => p,
        Err(_) => {
            out.push("[certs] Generating \"etcd/ca\" certificate and key".into());
            new_ca("etcd-ca")?
        }
    };
    write_pair(&etcd_dir, "ca", &eca)?;
    let etcd_names = vec![n.node_name.to_string(), "localhost".to_string()];
    let etcd_ips = vec![
        n.advertise,
        IpAddr::from([127, 0, 0, 1]),
        "::1".parse().expect("ip"),
    ];
    for (name, server, client) in [("server", true, true), ("peer", true, true)] {
        out.push(format!(
            "[certs] Generating \"etcd/{name}\" certificate and key"
        ));
        out.push(format!(
            "[certs] etcd/{name} serving cert is signed for DNS names [{}] and IPs [{}]",
            etcd_names.join(" "),
            etcd_ips
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ));
        let p = issue(
            &eca,
            &Leaf {
                cn: n.node_name,
                orgs: &[],
                server,
                client,
                dns: etcd_names.clone(),
                ips: etcd_ips.clone(),
            },
        )?;
        write_pair(&etcd_dir, name, &p)?;
    }
    out.push("[certs] Generating \"etcd/healthcheck-client\" certificate and key".into());
    let hc = issue(
        &eca,
        &Leaf {
            cn: "kube-etcd-healthcheck-client",
            orgs: &[],
            server: false,
            client: true,
            dns: vec![],
            ips: vec![],
        },
    )?;
    write_pair(&etcd_dir, "healthcheck-client", &hc)?;
    out.push("[certs] Generating \"apiserver-etcd-client\" certificate and key".into());
    let aec = issue(
        &eca,
        &Leaf {
            cn: "kube-apiserver-etcd-client",
            orgs: &[],
            server: false,
            client: true,
            dns: vec![],
            ips: vec![],
        },
    )?;
    write_pair(dir, "apiserver-etcd-client", &aec)?;
    let (sa_key, sa_pub) = match cas {
        Some(m) if m.contains_key("sa.key") => (
            m["sa.key"].clone(),
            m.get("sa.pub").cloned().unwrap_or_default(),
        ),
        _ => {
            out.push("[certs] Generating \"sa\" key and public key".into());
            let k = KeyPair::generate().map_err(|e| e.to_string())?;
            (k.serialize_pem(), k.public_key_pem())
        }
    };
    util::write_atomic(&dir.join("sa.key"), sa_key.as_bytes(), 0o600).map_err(|e| e.to_string())?;
    util::write_atomic(&dir.join("sa.pub"), sa_pub.as_bytes(), 0o644).map_err(|e| e.to_string())?;
    Ok(ca)
}

/// The shared certificates of a control plane, as uploaded.
pub fn read_shared(dir: &Path) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut m = std::collections::BTreeMap::new();
    for f in SHARED_FILES {
        let p = dir.join(f);
        let s = std::fs::read_to_string(&p)
            .map_err(|e| format!("error reading {}: {e}", p.display()))?;
        m.insert(f.to_string(), s);
    }
    Ok(m)
}

/// A kubeconfig with embedded credentials.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, client: Option<&Pair>) -> String {
    let cluster = "kubernetes";
    let ctx = format!("{user}@{cluster}");
    let mut u = serde_json::Map::new();
    if let Some(c) = client {
        u.insert("client-certificate-data".into(), json!(B64.encode(&c.cert)));
        u.insert("client-key-data".into(), json!(B64.encode(&c.key)));
    }
    let v = json!({
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": B64.encode(ca_pem), "server": server}, "name": cluster}],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": ctx}],
        "current-context": ctx,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": Value::Object(u)}],
    });
    to_yaml(&v)
}

/// Renders JSON as YAML (block style, as Go's yaml marshaller writes it).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    yaml_into(v, 0, &mut out);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.starts_with(|c: char| "!&*?{}[],#|>@`\"'%: ".contains(c))
                && !(s.starts_with('-') && (s.len() == 1 || s[1..].starts_with(' ')))
                && !s.ends_with(':')
                && !s.contains('\n')
                && !matches!(
                    s.as_str(),
                    "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
                )
                && s.parse::<f64>().is_err();
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        _ => String::new(),
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty()) || matches!(v, Value::Object(o) if !o.is_empty())
}

fn yaml_into(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let key = scalar(&Value::String(k.clone()));
                if is_block(x) {
                    out.push_str(&format!("{pad}{key}:\n"));
                    let child = if x.is_array() { indent } else { indent + 2 };
                    yaml_into(x, child, out);
                } else {
                    out.push_str(&format!("{pad}{key}: {}\n", scalar(x)));
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                if is_block(x) {
                    let mut inner = String::new();
                    yaml_into(x, indent + 2, &mut inner);
                    let trimmed = inner.trim_start_matches(' ');
                    out.push_str(&format!("{pad}- {trimmed}"));
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(x)));
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(v))),
    }
}

/// What a kubeconfig says: server, CA, user name and client credentials.
#[derive(Clone, Debug, Default)]
pub struct KubeconfigInfo {
    pub server: String,
    pub ca_pem: String,
    pub user: String,
    pub client_cert: Option<String>,
}

/// Reads a kubeconfig as client-go does (current context; embedded data or files).
pub fn read_kubeconfig(env: &Env, path: &Path) -> Result<KubeconfigInfo, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "failed to load admin kubeconfig: open {}: {}",
            path.display(),
            crate::util_io_text(&e)
        )
    })?;
    let v: Value = serde_saphyr::from_str(&text)
        .map_err(|e| format!("failed to load kubeconfig {}: {e}", path.display()))?;
    let ctx_name = v["current-context"].as_str().unwrap_or_default();
    let ctx = v["contexts"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == ctx_name))
        .ok_or_else(|| {
            format!(
                "invalid kubeconfig {}: context was not found for specified context: {ctx_name}",
                path.display()
            )
        })?;
    let cname = ctx["context"]["cluster"].as_str().unwrap_or_default();
    let uname = ctx["context"]["user"].as_str().unwrap_or_default();
    let cluster = v["clusters"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == cname))
        .ok_or_else(|| {
            format!(
                "invalid kubeconfig {}: cluster has no server defined",
                path.display()
            )
        })?;
    let user = v["users"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == uname));
    let ca_pem = if let Some(d) = cluster["cluster"]["certificate-authority-data"].as_str() {
        String::from_utf8(B64.decode(d).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?
    } else if let Some(f) = cluster["cluster"]["certificate-authority"].as_str() {
        std::fs::read_to_string(env.path(f)).map_err(|e| format!("{f}: {e}"))?
    } else {
        String::new()
    };
    let client_cert = user.and_then(|u| {
        if let Some(d) = u["user"]["client-certificate-data"].as_str() {
            B64.decode(d).ok().and_then(|b| String::from_utf8(b).ok())
        } else {
            u["user"]["client-certificate"]
                .as_str()
                .and_then(|f| std::fs::read_to_string(env.path(f)).ok())
        }
    });
    Ok(KubeconfigInfo {
        server: cluster["cluster"]["server"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        ca_pem,
        user: uname.to_string(),
        client_cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_cert_has_sans_and_hash_is_stable() {
        let ca = new_ca("kubernetes").unwrap();
        let leaf = issue(
            &ca,
            &Leaf {
                cn: "kube-apiserver",
                orgs: &[],
                server: true,
                client: false,
                dns: vec!["k8scp.example".into()],
                ips: vec!["10.0.0.1".parse().unwrap()],
            },
        )
        .unwrap();
        let s = sans(&leaf.cert);
        assert!(s.contains(&"k8scp.example".to_string()), "{s:?}");
        assert!(s.contains(&"10.0.0.1".to_string()), "{s:?}");
        let h = ca_hash(&ca.cert).unwrap();
        assert_eq!(h.len(), 71);
        assert_eq!(h, ca_hash(&ca.cert).unwrap());
        assert_ne!(h, ca_hash(&new_ca("kubernetes").unwrap().cert).unwrap());
    }

    #[test]
    fn yaml_rendering_reads_back() {
        let k = kubeconfig("https://a:8443", "CA", "kubernetes-admin", None);
        let v: Value = serde_saphyr::from_str(&k).unwrap();
        assert_eq!(v["clusters"][0]["cluster"]["server"], "https://a:8443");
        assert_eq!(v["current-context"], "kubernetes-admin@kubernetes");
    }
}

#[cfg(test)]
mod yaml_tests {
    use super::*;

    #[test]
    fn flags_are_plain_and_ambiguous_strings_quoted() {
        let y = to_yaml(&json!({"c": ["--a=b", "-", "- x", "true", "10", "a: b", "ok"]}));
        assert_eq!(
            y,
            "c:\n- --a=b\n- \"-\"\n- \"- x\"\n- \"true\"\n- \"10\"\n- \"a: b\"\n- ok\n"
        );
    }
}
