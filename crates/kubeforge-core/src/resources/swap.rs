//! No swap, now and after a reboot: /proc/swaps empty, no swap entry left in /etc/fstab and
//! every swap unit masked (a `.swap` unit or an fstab line brings swap back at boot).

use crate::facts::{FactQuery, HostFacts};
use crate::shell::quote;

use super::{Change, words};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwapOff;

impl SwapOff {
    pub(super) fn query(&self) -> FactQuery {
        FactQuery {
            swap_config: true,
            ..FactQuery::default()
        }
    }

    pub(super) fn changes(&self, step: &str, facts: &HostFacts) -> Vec<Change> {
        let swap = &facts.swap;
        let mut out = Vec::new();
        if swap.is_active() {
            out.push(Change::command(
                step,
                format!("turn swap off now ({})", swap.active.join(", ")),
                "swapoff -a",
            ));
        }
        if !swap.fstab.is_empty() {
            out.push(Change::command(
                step,
                format!(
                    "comment out the swap entries of /etc/fstab ({}; the old file is kept as /etc/fstab.kubeforge)",
                    swap.fstab.join(", ")
                ),
                "sed -i.kubeforge -E 's@^([^#].*[[:space:]]swap[[:space:]].*)$@# \\1@' /etc/fstab",
            ));
        }
        if !swap.units.is_empty() {
            let units: Vec<&str> = swap.units.keys().map(String::as_str).collect();
            out.push(Change::command(
                step,
                format!("mask swap units {}", words(units.iter().copied())),
                format!(
                    "systemctl mask -q {}",
                    units.iter().map(|u| quote(u)).collect::<Vec<_>>().join(" ")
                ),
            ));
        }
        out
    }
}
