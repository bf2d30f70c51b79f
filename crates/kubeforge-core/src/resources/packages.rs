//! Debian packages installed at the wanted versions (from whatever apt sources the host has),
//! optionally held.

use std::time::Duration;

use crate::facts::{FactQuery, HostFacts};
use crate::shell::quote;

use super::{Change, WAIT_FOR_PACKAGE_MANAGERS, words};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    /// A Debian version (`1.37.1-1.1`) or a prefix ending in `*` (`1.37.1-*`); `None`: any.
    pub version: Option<String>,
}

impl Package {
    pub fn any(name: &str) -> Self {
        Package {
            name: name.to_string(),
            version: None,
        }
    }

    pub fn at(name: &str, version: &str) -> Self {
        Package {
            name: name.to_string(),
            version: Some(version.to_string()),
        }
    }

    /// Whether an installed version is the wanted one.
    pub fn accepts(&self, installed: &str) -> bool {
        match self.version.as_deref() {
            None => true,
            Some(v) => match v.strip_suffix('*') {
                Some(prefix) => installed.starts_with(prefix),
                None => installed == v,
            },
        }
    }

    /// `name` or `name=version` for apt-get.
    fn spec(&self) -> String {
        match &self.version {
            Some(v) => format!("{}={v}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packages {
    pub packages: Vec<Package>,
    pub hold: bool,
}

impl Packages {
    pub fn new(names: &[&str]) -> Self {
        Packages {
            packages: names.iter().map(|n| Package::any(n)).collect(),
            hold: false,
        }
    }

    pub(super) fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        q.packages
            .extend(self.packages.iter().map(|p| p.name.clone()));
        q
    }

    pub(super) fn changes(&self, step: &str, facts: &HostFacts) -> Vec<Change> {
        let mut out = Vec::new();
        if facts.dpkg_interrupted {
            out.push(Change::command(
                step,
                "finish an interrupted dpkg run",
                format!("{WAIT_FOR_PACKAGE_MANAGERS}; DEBIAN_FRONTEND=noninteractive dpkg --configure -a"),
            ).with_timeout(Duration::from_secs(600)));
        }
        let mut missing = Vec::new();
        let mut other_version = Vec::new();
        for p in &self.packages {
            match facts.packages.get(&p.name) {
                None => missing.push(p),
                Some(installed) if !p.accepts(installed) => other_version.push((p, installed)),
                Some(_) => {}
            }
        }
        if !missing.is_empty() || !other_version.is_empty() {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!(
                    "install {}",
                    words(missing.iter().map(|p| p.name.as_str()))
                ));
            }
            for (p, installed) in &other_version {
                parts.push(format!(
                    "change {} from {installed} to {}",
                    p.name,
                    p.version.as_deref().unwrap_or("any")
                ));
            }
            let specs: Vec<String> = missing
                .iter()
                .copied()
                .chain(other_version.iter().map(|(p, _)| *p))
                .map(|p| quote(&p.spec()))
                .collect();
            out.push(
                Change::command(
                    step,
                    parts.join(", "),
                    format!(
                        "{WAIT_FOR_PACKAGE_MANAGERS}; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends --allow-downgrades --allow-change-held-packages -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold {}",
                        specs.join(" ")
                    ),
                )
                .with_timeout(Duration::from_secs(900)),
            );
        }
        if self.hold {
            let unheld: Vec<&str> = self
                .packages
                .iter()
                .map(|p| p.name.as_str())
                .filter(|n| !facts.holds.contains(*n))
                .collect();
            if !unheld.is_empty() {
                out.push(Change::command(
                    step,
                    format!("hold {}", words(unheld.iter().copied())),
                    format!(
                        "apt-mark hold {} >/dev/null",
                        unheld
                            .iter()
                            .map(|n| quote(n))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                ));
            }
        }
        out
    }
}
