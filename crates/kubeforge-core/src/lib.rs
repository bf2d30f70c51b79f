//! kubeforge's pure core: no SSH, no processes, no file system.
//!
//! Data flows one way: inventory text → [`inventory::RawInventory`] (as written, with
//! positions) → [`model::Cluster`] (validated) → [`dns`] facts fill in addresses and the VIP →
//! [`plan::Plan`] (ordered phases and steps per host). For apply: [`facts`] gathered from a
//! host → [`steps`] (resources rendered from templates) → [`resources::changes`] (data: diffs
//! and scripts).

pub mod bundle;
pub mod diag;
pub mod dns;
pub mod facts;
pub mod inventory;
pub mod model;
pub mod plan;
pub mod resources;
pub mod shell;
pub mod steps;
pub mod version;
