//! A kernel parameter's running value (its persistent file is a separate [`super::File`]).

use crate::facts::{FactQuery, HostFacts};
use crate::shell::quote;

use super::Change;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

impl Sysctl {
    pub fn new(key: &str, value: &str) -> Self {
        Sysctl {
            key: key.to_string(),
            value: value.to_string(),
        }
    }

    pub(super) fn query(&self) -> FactQuery {
        let mut q = FactQuery::default();
        q.sysctls.insert(self.key.clone());
        q
    }

    pub(super) fn changes(&self, step: &str, facts: &HostFacts) -> Vec<Change> {
        let current = facts.sysctls.get(&self.key).cloned().flatten();
        if current.as_deref() == Some(self.value.as_str()) {
            return Vec::new();
        }
        let now = match current.as_deref() {
            Some(v) => format!("now {v}"),
            // Not there until the module that provides it is loaded (br_netfilter for
            // net.bridge.*): an earlier step loads it.
            None => "not present yet".to_string(),
        };
        vec![Change::command(
            step,
            format!("set {} = {} ({now})", self.key, self.value),
            format!(
                "sysctl -q -w {}",
                quote(&format!("{}={}", self.key, self.value))
            ),
        )]
    }
}
