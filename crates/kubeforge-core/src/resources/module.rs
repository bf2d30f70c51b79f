//! A kernel module loaded now (its `modules-load.d` file, a separate [`super::File`], loads it
//! at boot).

use crate::facts::{FactQuery, HostFacts};
use crate::shell::quote;

use super::Change;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    /// A path that exists once the module's feature is there, also when the module is built
    /// into the kernel (no /sys/module entry then): `/proc/sys/net/bridge` for br_netfilter.
    pub probe: Option<String>,
}

impl Module {
    pub fn new(name: &str, probe: Option<&str>) -> Self {
        Module {
            name: name.to_string(),
            probe: probe.map(str::to_string),
        }
    }

    pub(super) fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        q.modules.insert(self.name.clone(), self.probe.clone());
        q
    }

    pub(super) fn changes(&self, step: &str, facts: &HostFacts) -> Vec<Change> {
        if facts.modules.get(&self.name).copied().unwrap_or(false) {
            return Vec::new();
        }
        vec![Change::command(
            step,
            format!("load kernel module {}", self.name),
            format!("modprobe {}", quote(&self.name)),
        )]
    }
}
