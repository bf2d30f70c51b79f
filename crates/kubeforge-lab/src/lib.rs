//! `kubeforge lab`: throwaway Debian hosts on one Linux machine.
//!
//! A lab is a Linux bridge with N+M systemd-nspawn hosts booting systemd, each on an overlay
//! of one shared, cached Debian tree, with a DNS server (dnsmasq) and an offline package
//! repository on the bridge address. Hosts never get a route out. [`Lab`] is the API that
//! the CLI and the end-to-end tests share.

pub mod cli;
pub mod dns;
pub mod error;
pub mod exec;
pub mod host;
pub mod image;
pub mod lab;
pub mod net;
pub mod plan;
pub mod render;
pub mod state;
pub mod sys;

pub use error::LabError;
pub use lab::{Lab, Status, UpOptions};
