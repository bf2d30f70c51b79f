//! Inventories as written: kubeforge's own `cluster.yaml` and the Ansible INI hosts file.
//!
//! Both parsers produce the same [`RawInventory`]: text values with their positions, not yet
//! checked. [`crate::model::validate`] turns it into a [`crate::model::Cluster`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::diag::{Diagnostic, Span, Spanned};

/// The most hosts an inventory may list: Kubernetes is made for clusters of up to 5000 nodes.
pub const MAX_HOSTS: usize = 5000;

mod ini;
pub mod settings;
mod yaml;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// kubeforge's own `cluster.yaml`.
    Yaml,
    /// An Ansible INI inventory (the article's `hosts` file).
    Ini,
}

/// One host as written. Every field keeps its position for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHost {
    pub name: Spanned<String>,
    pub address: Option<Spanned<String>>,
    /// An explicit role: a `role:` key, a `kubeforge_role=` variable, or an INI group
    /// that names a role (`[k8sControlPlane]`, `[k8sNode]`).
    pub role: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub port: Option<Spanned<String>>,
    pub identity_file: Option<Spanned<String>>,
    /// The node's own address for the cluster (kubespray's `ip`), when it is not the one ssh
    /// connects to.
    pub ip: Option<Spanned<String>>,
    /// kubespray's `access_ip`: the address other nodes reach this one by; read when `ip` is
    /// not set.
    pub access_ip: Option<Spanned<String>>,
}

impl RawHost {
    pub fn named(name: Spanned<String>) -> Self {
        Self {
            name,
            address: None,
            role: None,
            user: None,
            port: None,
            identity_file: None,
            ip: None,
            access_ip: None,
        }
    }

    /// Sets a field by its `cluster.yaml` key. Returns false for an unknown key.
    fn set(&mut self, key: &str, value: Spanned<String>) -> bool {
        let slot = match key {
            "address" => &mut self.address,
            "role" => &mut self.role,
            "user" => &mut self.user,
            "port" => &mut self.port,
            "identity_file" => &mut self.identity_file,
            "ip" => &mut self.ip,
            "access_ip" => &mut self.access_ip,
            _ => return false,
        };
        *slot = Some(value);
        true
    }
}

/// An inventory as written, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawInventory {
    pub format: Format,
    /// Where the host list starts (the `hosts:` key, or the first host line).
    pub hosts_span: Span,
    pub hosts: Vec<RawHost>,
    /// Cluster-wide settings by their `cluster.yaml` key (`ssh.user`, `vip`, ...).
    pub settings: BTreeMap<&'static str, Spanned<String>>,
}

impl RawInventory {
    fn empty(format: Format) -> Self {
        Self {
            format,
            hosts_span: Span::START,
            hosts: Vec::new(),
            settings: BTreeMap::new(),
        }
    }
}

/// Tells the two formats apart by their first meaningful line: a `[section]` or a bare host
/// name is INI; a `key:` mapping or a `---` document start is YAML.
pub fn detect_format(source: &str) -> Format {
    for line in source.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with("---") || line.starts_with('%') {
            return Format::Yaml;
        }
        if line.starts_with('[') {
            return Format::Ini;
        }
        let word_end = match line.chars().next() {
            Some(q @ ('"' | '\'')) => line[1..].find(q).map_or(line.len(), |i| i + 2),
            _ => line
                .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.".contains(c)))
                .unwrap_or(line.len()),
        };
        let rest = line[word_end..].trim_start();
        return if rest.starts_with(':') {
            Format::Yaml
        } else {
            Format::Ini
        };
    }
    Format::Yaml
}

/// Parses an inventory in whichever format it is written. Syntax problems come back as
/// diagnostics; whatever could be read is returned too, so that validation can report more.
pub fn parse(source: &str) -> (RawInventory, Vec<Diagnostic>) {
    match detect_format(source) {
        Format::Yaml => yaml::parse(source),
        Format::Ini => ini::parse(source),
    }
}

/// The span of `len` characters starting at 1-based `column` on `line`.
fn span_at(line: usize, column: usize, len: usize) -> Span {
    Span::new(
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
        u32::try_from(len.max(1)).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_articles_hosts_file_as_ini() {
        assert_eq!(detect_format("[k8sControlPlane]\nk8scp01\n"), Format::Ini);
        assert_eq!(
            detect_format("# hosts\nk8scp01 ansible_host=10.0.0.1\n"),
            Format::Ini
        );
        assert_eq!(detect_format("k8scp01\nk8scp02\n"), Format::Ini);
    }

    #[test]
    fn detects_cluster_yaml() {
        assert_eq!(detect_format("hosts:\n  - k8scp01\n"), Format::Yaml);
        assert_eq!(detect_format("---\nhosts: []\n"), Format::Yaml);
        assert_eq!(detect_format("# c\n\nvip: 10.0.0.5\n"), Format::Yaml);
        assert_eq!(detect_format("\"hosts\": []\n"), Format::Yaml);
    }
}
