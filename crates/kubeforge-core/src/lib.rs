//! kubeforge's pure core: no SSH, no processes, no file system.
//!
//! Data flows one way: inventory text → [`inventory::RawInventory`] (as written, with
//! positions) → [`model::Cluster`] (validated) → [`dns`] facts fill in addresses and the VIP →
//! [`plan::Plan`] (the changes of each phase on hosts where nothing is in place yet). For
//! apply: [`facts`] gathered from a host → the phases of [`steps::PHASES`] (resources rendered
//! from templates) → [`resources::changes`] (data: diffs, scripts, waits); [`kubeadm`] renders
//! kubeadm's configuration files and [`cni`] says which pod network manifests to apply, in
//! which order. [`values`] carry what one host gives to another; [`mask`] keeps secrets out of
//! everything shown.

pub mod backup_file;
pub mod bootstrap;
pub mod bundle;
pub mod cni;
pub mod diag;
pub mod dns;
pub mod dns_wire;
pub mod facts;
#[cfg(test)]
mod fake_kubectl;
pub mod hash;
pub mod inventory;
pub mod kubeconfig;
pub mod mask;
pub mod model;
pub mod plan;
pub mod preflight;
pub mod resources;
pub mod shell;
pub mod status;
pub mod steps;
pub mod values;
pub mod version;
