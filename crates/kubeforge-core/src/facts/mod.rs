//! Host facts: one read-only shell script per host gathers everything the steps need in a
//! single round trip, and pure functions parse its output.
//!
//! The script prints sections headed `@@name [argument]`. Every path, unit and key in it comes
//! from kubeforge's own steps and is quoted; nothing from the inventory reaches it.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde::Serialize;

use crate::shell::quote;

#[cfg(test)]
mod tests;

/// What to find out about a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactQuery {
    pub packages: BTreeSet<String>,
    pub files: BTreeSet<String>,
    pub units: BTreeSet<String>,
    pub sysctls: BTreeSet<String>,
}

impl FactQuery {
    pub fn merge(&mut self, other: &FactQuery) {
        self.packages.extend(other.packages.iter().cloned());
        self.files.extend(other.files.iter().cloned());
        self.units.extend(other.units.iter().cloned());
        self.sysctls.extend(other.sysctls.iter().cloned());
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFact {
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub sha256: String,
    /// The content, for diffs (files over 1 MiB are not fetched).
    #[serde(skip)]
    pub content: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitFact {
    /// `systemctl is-enabled`: enabled, disabled, static, masked, not-found, ...
    pub enabled: String,
    /// `systemctl is-active`: active, inactive, failed, ...
    pub active: String,
}

impl UnitFact {
    pub fn is_enabled(&self) -> bool {
        matches!(
            self.enabled.as_str(),
            "enabled" | "enabled-runtime" | "static" | "alias"
        )
    }
    pub fn is_active(&self) -> bool {
        matches!(self.active.as_str(), "active" | "reloading" | "activating")
    }
    pub fn exists(&self) -> bool {
        !self.enabled.is_empty() && self.enabled != "not-found"
    }
}

/// Everything known about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// /etc/os-release.
    pub os: BTreeMap<String, String>,
    /// The user commands run as (0 once become-root worked).
    pub uid: u32,
    /// dpkg was interrupted (a run killed mid-install): `dpkg --configure -a` is due.
    pub dpkg_interrupted: bool,
    /// Installed packages asked about, with their versions.
    pub packages: BTreeMap<String, String>,
    pub holds: BTreeSet<String>,
    pub swap_active: bool,
    /// `None`: no such sysctl on this kernel.
    pub sysctls: BTreeMap<String, Option<String>>,
    /// `None`: the file does not exist.
    pub files: BTreeMap<String, Option<FileFact>>,
    pub units: BTreeMap<String, UnitFact>,
    /// IPv4 addresses by interface (`ip -o -4 addr`).
    pub addresses: Vec<Address>,
    /// What kubeadm has already done here.
    pub kubeadm: KubeadmFacts,
}

/// Traces kubeadm leaves: which of init, join and stacked etcd already happened on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KubeadmFacts {
    /// /etc/kubernetes/admin.conf: `kubeadm init` or a control-plane join ran.
    pub admin_conf: bool,
    /// /etc/kubernetes/kubelet.conf: the node joined (or was initialised).
    pub kubelet_conf: bool,
    /// Static pod manifests in /etc/kubernetes/manifests.
    pub manifests: Vec<String>,
    /// /var/lib/etcd/member: a stacked etcd member's data.
    pub etcd_data: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub interface: String,
    pub ip: std::net::Ipv4Addr,
    pub prefix: u8,
}

impl HostFacts {
    /// The interface holding `ip`, with its prefix length.
    pub fn interface_of(&self, ip: std::net::Ipv4Addr) -> Option<&Address> {
        self.addresses.iter().find(|a| a.ip == ip)
    }

    pub fn file(&self, path: &str) -> Option<&FileFact> {
        self.files.get(path).and_then(Option::as_ref)
    }
    pub fn unit(&self, unit: &str) -> Option<&UnitFact> {
        self.units.get(unit)
    }
}

const HEADER: &str = "@@kubeforge-facts 1";

/// The read-only script that prints every fact in `query`.
pub fn script(query: &FactQuery) -> String {
    let mut s = String::new();
    s.push_str(&format!("echo '{HEADER}'\n"));
    s.push_str("echo @@os; cat /etc/os-release 2>/dev/null\n");
    s.push_str("echo @@uid; id -u\n");
    s.push_str("echo @@dpkg; if [ -n \"$(ls -A /var/lib/dpkg/updates 2>/dev/null)\" ]; then echo interrupted; else echo clean; fi\n");
    if !query.packages.is_empty() {
        let names: Vec<String> = query.packages.iter().map(|p| quote(p)).collect();
        s.push_str(&format!(
            "echo @@packages; dpkg-query -W -f='${{Package}}\\t${{Version}}\\t${{db:Status-Abbrev}}\\n' {} 2>/dev/null\n",
            names.join(" ")
        ));
        s.push_str("echo @@holds; apt-mark showhold 2>/dev/null\n");
    }
    s.push_str("echo @@swap; tail -n +2 /proc/swaps 2>/dev/null\n");
    s.push_str("echo @@addresses; ip -o -4 addr show 2>/dev/null\n");
    s.push_str("echo @@kubeadm; for f in /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf; do [ -f \"$f\" ] && echo \"file $f\"; done; for f in /etc/kubernetes/manifests/*.yaml; do [ -f \"$f\" ] && echo \"manifest ${f##*/}\"; done; [ -d /var/lib/etcd/member ] && echo etcd-data; true\n");
    for key in &query.sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        s.push_str(&format!(
            "echo @@sysctl {key}; if [ -r {p} ]; then echo \"value $(cat {p})\"; else echo missing; fi\n",
            p = quote(&path)
        ));
    }
    for path in &query.files {
        let p = quote(path);
        s.push_str(&format!(
            "echo @@file {path}; if [ -f {p} ]; then echo \"present $(stat -c '%a %U %G %s' {p}) $(sha256sum < {p} | cut -d' ' -f1)\"; if [ \"$(stat -c %s {p})\" -le 1048576 ]; then base64 -w0 < {p}; fi; echo; else echo missing; fi\n"
        ));
    }
    for unit in &query.units {
        let u = quote(unit);
        s.push_str(&format!(
            "echo @@unit {unit}; echo \"enabled=$(systemctl is-enabled {u} 2>/dev/null)\"; echo \"active=$(systemctl is-active {u} 2>/dev/null)\"\n"
        ));
    }
    s.push_str("echo @@end\n");
    s
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactError {
    #[error(
        "the facts output does not start with the expected header (is the remote shell printing a banner?)"
    )]
    NoHeader,
    #[error("the facts output ends early, without its @@end marker")]
    Truncated,
    #[error("malformed facts line in section {section}: {line}")]
    Malformed { section: String, line: String },
}

/// Parses the output of [`script`].
pub fn parse(output: &str) -> Result<HostFacts, FactError> {
    let mut facts = HostFacts::default();
    let start = output.find(HEADER).ok_or(FactError::NoHeader)?;
    let mut lines = output[start + HEADER.len()..].lines().peekable();
    let mut ended = false;
    let malformed = |section: &str, line: &str| FactError::Malformed {
        section: section.to_string(),
        line: line.chars().take(200).collect(),
    };
    while let Some(line) = lines.next() {
        let Some(header) = line.strip_prefix("@@") else {
            if line.is_empty() {
                continue;
            }
            return Err(malformed("(none)", line));
        };
        let (section, arg) = header.split_once(' ').unwrap_or((header, ""));
        // The section's body: every line up to the next header.
        let mut body = Vec::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("@@") {
                break;
            }
            body.push(*next);
            lines.next();
        }
        match section {
            "os" => {
                for l in body {
                    if let Some((k, v)) = l.split_once('=') {
                        facts
                            .os
                            .insert(k.to_string(), v.trim_matches('"').to_string());
                    }
                }
            }
            "uid" => {
                let text = body.first().copied().unwrap_or("");
                facts.uid = text.trim().parse().map_err(|_| malformed(section, text))?;
            }
            "dpkg" => {
                facts.dpkg_interrupted = body.first().is_some_and(|l| l.trim() == "interrupted")
            }
            "packages" => {
                for l in body {
                    let mut parts = l.split('\t');
                    let (Some(name), Some(version), Some(status)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return Err(malformed(section, l));
                    };
                    // "ii " is installed; "rc " (removed, config left) and others are not.
                    if status.starts_with("ii") || status.starts_with("hi") {
                        facts.packages.insert(
                            name.split(':').next().unwrap_or(name).to_string(),
                            version.to_string(),
                        );
                    }
                }
            }
            "holds" => facts.holds.extend(
                body.iter()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty()),
            ),
            "swap" => facts.swap_active = body.iter().any(|l| !l.trim().is_empty()),
            "kubeadm" => {
                for l in body {
                    match l.split_once(' ') {
                        Some(("file", "/etc/kubernetes/admin.conf")) => {
                            facts.kubeadm.admin_conf = true
                        }
                        Some(("file", "/etc/kubernetes/kubelet.conf")) => {
                            facts.kubeadm.kubelet_conf = true
                        }
                        Some(("manifest", name)) => facts.kubeadm.manifests.push(name.to_string()),
                        None if l == "etcd-data" => facts.kubeadm.etcd_data = true,
                        _ => return Err(malformed(section, l)),
                    }
                }
            }
            "addresses" => {
                for l in body {
                    // 2: host0    inet 10.213.0.11/24 brd 10.213.0.255 scope global host0
                    let fields: Vec<&str> = l.split_whitespace().collect();
                    let Some(pos) = fields.iter().position(|f| *f == "inet") else {
                        continue;
                    };
                    let (Some(name), Some(cidr)) = (fields.get(1), fields.get(pos + 1)) else {
                        return Err(malformed(section, l));
                    };
                    let (ip, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
                    let (Ok(ip), Ok(prefix)) = (ip.parse(), prefix.parse()) else {
                        return Err(malformed(section, l));
                    };
                    let interface = name.split('@').next().unwrap_or(name).to_string();
                    facts.addresses.push(Address {
                        interface,
                        ip,
                        prefix,
                    });
                }
            }
            "sysctl" => {
                let text = body.first().copied().unwrap_or("");
                let value = match text.strip_prefix("value ") {
                    Some(v) => Some(v.split_whitespace().collect::<Vec<_>>().join(" ")),
                    None if text == "missing" => None,
                    None => return Err(malformed(section, text)),
                };
                facts.sysctls.insert(arg.to_string(), value);
            }
            "file" => {
                let first = body.first().copied().unwrap_or("");
                if first == "missing" {
                    facts.files.insert(arg.to_string(), None);
                    continue;
                }
                let fields: Vec<&str> = first.split_whitespace().collect();
                let ["present", mode, owner, group, size, sha] = fields[..] else {
                    return Err(malformed(section, first));
                };
                let mode = u32::from_str_radix(mode, 8).map_err(|_| malformed(section, first))?;
                let size: u64 = size.parse().map_err(|_| malformed(section, first))?;
                let content = match body.get(1) {
                    Some(b64) if size <= 1_048_576 => Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .map_err(|_| malformed(section, "content is not base64"))?,
                    ),
                    _ => None,
                };
                facts.files.insert(
                    arg.to_string(),
                    Some(FileFact {
                        mode,
                        owner: owner.to_string(),
                        group: group.to_string(),
                        sha256: sha.to_string(),
                        content,
                    }),
                );
            }
            "unit" => {
                let field = |name: &str| {
                    body.iter()
                        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                        .map(|v| v.trim().to_string())
                };
                let (Some(enabled), Some(active)) = (field("enabled"), field("active")) else {
                    return Err(malformed(section, body.first().copied().unwrap_or("")));
                };
                facts
                    .units
                    .insert(arg.to_string(), UnitFact { enabled, active });
            }
            "end" => {
                ended = true;
                break;
            }
            _ => {}
        }
    }
    if !ended {
        return Err(FactError::Truncated);
    }
    Ok(facts)
}
