//! A kernel module loaded now (its `modules-load.d` file, a separate [`super::File`], loads it
//! at boot).

use crate::facts::{FactQuery, HostFacts, Probe};
use crate::shell::quote;

use super::Change;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub probe: Option<Probe>,
}

impl Module {
    pub fn new(name: &str, probe: Option<Probe>) -> Self {
        Module {
            name: name.to_string(),
            probe,
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
