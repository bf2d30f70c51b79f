//! kubeforge's pure core: no SSH, no processes, no file system.
//!
//! Data flows one way: inventory text → [`inventory::RawInventory`] (as written, with
//! positions) → [`model::Cluster`] (validated) → [`dns`] facts fill in addresses and the VIP →
//! [`plan::Plan`] (ordered phases and steps per host).

pub mod diag;
pub mod dns;
pub mod inventory;
pub mod model;
pub mod plan;
pub mod version;
