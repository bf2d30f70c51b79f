//! The lab's address plan: which host gets which name and address (pure, no I/O).
//!
//! Offsets from the subnet's network address:
//! - `.1` the bridge (the machine's side: DNS and the package repository listen here),
//! - `.10` the virtual IP that `k8scp` resolves to (kept free of hosts),
//! - `.11` onwards the control-plane hosts `k8scp01`, `k8scp02`, ...,
//! - workers `k8s01`, `k8s02`, ... from the next multiple of ten after the control planes
//!   (`.21` for up to 10 control planes, `.31` for 11 to 20, ...).
//!
//! In a /24 that gives room for 244 hosts, so a /24 holds well over 60.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use kubeforge_core::model::Role;
use serde::{Deserialize, Serialize};

use crate::error::LabError;

/// DNS domain of the lab hosts.
pub const DOMAIN: &str = "kubeforge.internal";
/// Short name of the control-plane endpoint record (resolves to the VIP).
pub const ENDPOINT_NAME: &str = "k8scp";
/// Default lab subnet.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/24";

const BRIDGE_OFFSET: u32 = 1;
const VIP_OFFSET: u32 = 10;
const FIRST_HOST_OFFSET: u32 = 11;

/// One planned host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    pub name: String,
    pub role: Role,
    pub address: Ipv4Addr,
}

impl HostPlan {
    /// Fully-qualified name in the lab domain.
    pub fn fqdn(&self) -> String {
        format!("{}.{DOMAIN}", self.name)
    }
}

/// Every address of a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPlan {
    pub subnet: Ipv4Net,
    pub bridge_ip: Ipv4Addr,
    pub vip: Ipv4Addr,
    pub hosts: Vec<HostPlan>,
}

/// Name of the `n`th (1-based) control-plane host.
pub fn control_plane_name(n: u32) -> String {
    format!("k8scp{n:02}")
}

/// Name of the `n`th (1-based) worker host.
pub fn worker_name(n: u32) -> String {
    format!("k8s{n:02}")
}

impl AddressPlan {
    /// Plans `control_planes` + `workers` hosts in `subnet`.
    pub fn new(subnet: Ipv4Net, control_planes: u32, workers: u32) -> Result<Self, LabError> {
        if subnet.network() != subnet.addr() {
            return Err(LabError::Invalid(format!(
                "--subnet {subnet} has host bits set; use the network address, e.g. --subnet {}",
                subnet.trunc()
            )));
        }
        if control_planes == 0 {
            return Err(LabError::Invalid(
                "a lab needs at least one control-plane host (--control-planes 1 or more)".into(),
            ));
        }
        if control_planes > 99 || workers > 99 {
            return Err(LabError::Invalid(
                "at most 99 control-plane hosts and 99 workers (names have two digits)".into(),
            ));
        }
        let base = u32::from(subnet.network());
        // Usable offsets end before the broadcast address.
        let last_usable = u32::from(subnet.broadcast()) - base - 1;
        let worker_start = FIRST_HOST_OFFSET + control_planes.div_ceil(10) * 10;
        let last_needed = if workers == 0 {
            FIRST_HOST_OFFSET + control_planes - 1
        } else {
            worker_start + workers - 1
        };
        if subnet.prefix_len() > 30 || last_needed > last_usable {
            return Err(LabError::Invalid(format!(
                "--subnet {subnet} is too small for {control_planes} control-plane hosts and \
                 {workers} worker hosts (the plan needs addresses up to .{last_needed}); use a /24 \
                 or larger"
            )));
        }
        let at = |offset: u32| Ipv4Addr::from(base + offset);
        let mut hosts = Vec::new();
        for n in 1..=control_planes {
            hosts.push(HostPlan {
                name: control_plane_name(n),
                role: Role::ControlPlane,
                address: at(FIRST_HOST_OFFSET + n - 1),
            });
        }
        for n in 1..=workers {
            hosts.push(HostPlan {
                name: worker_name(n),
                role: Role::Worker,
                address: at(worker_start + n - 1),
            });
        }
        Ok(AddressPlan {
            subnet,
            bridge_ip: at(BRIDGE_OFFSET),
            vip: at(VIP_OFFSET),
            hosts,
        })
    }

    pub fn host(&self, name: &str) -> Option<&HostPlan> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn control_planes(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| h.role == Role::ControlPlane)
            .count()
    }

    pub fn workers(&self) -> usize {
        self.hosts.len() - self.control_planes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn default_lab_matches_the_documented_addresses() {
        let plan = AddressPlan::new(net(DEFAULT_SUBNET), 3, 1).unwrap();
        assert_eq!(plan.bridge_ip, Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(plan.vip, Ipv4Addr::new(10, 213, 0, 10));
        let got: Vec<(&str, String, Role)> = plan
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.address.to_string(), h.role))
            .collect();
        assert_eq!(
            got,
            vec![
                ("k8scp01", "10.213.0.11".into(), Role::ControlPlane),
                ("k8scp02", "10.213.0.12".into(), Role::ControlPlane),
                ("k8scp03", "10.213.0.13".into(), Role::ControlPlane),
                ("k8s01", "10.213.0.21".into(), Role::Worker),
            ]
        );
        assert_eq!(plan.hosts[0].fqdn(), "k8scp01.kubeforge.internal");
    }

    #[test]
    fn sixty_hosts_fit_in_a_slash_24_without_collisions() {
        let plan = AddressPlan::new(net("10.213.0.0/24"), 5, 60).unwrap();
        assert_eq!(plan.hosts.len(), 65);
        let mut addrs: Vec<Ipv4Addr> = plan.hosts.iter().map(|h| h.address).collect();
        addrs.push(plan.bridge_ip);
        addrs.push(plan.vip);
        let count = addrs.len();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), count, "addresses must be unique");
        assert!(addrs.iter().all(|a| plan.subnet.contains(a)));
        assert_eq!(
            plan.host("k8s60").unwrap().address,
            Ipv4Addr::new(10, 213, 0, 80)
        );
    }

    #[test]
    fn many_control_planes_push_workers_to_the_next_block() {
        let plan = AddressPlan::new(net("10.213.0.0/24"), 12, 2).unwrap();
        assert_eq!(plan.host("k8scp12").unwrap().address.octets()[3], 22);
        assert_eq!(plan.host("k8s01").unwrap().address.octets()[3], 31);
        assert_eq!(plan.control_planes(), 12);
        assert_eq!(plan.workers(), 2);
    }

    #[test]
    fn largest_lab_in_a_slash_24() {
        // Workers from .21 to .254 (broadcast is .255).
        assert!(AddressPlan::new(net("10.213.0.0/24"), 3, 234).is_err());
        let plan = AddressPlan::new(net("10.213.0.0/24"), 3, 99).unwrap();
        assert_eq!(plan.hosts.len(), 102);
    }

    #[test]
    fn other_subnets_use_the_same_offsets() {
        let plan = AddressPlan::new(net("192.168.77.0/24"), 1, 0).unwrap();
        assert_eq!(plan.bridge_ip, Ipv4Addr::new(192, 168, 77, 1));
        assert_eq!(plan.hosts[0].address, Ipv4Addr::new(192, 168, 77, 11));
        let plan = AddressPlan::new(net("10.8.0.0/16"), 3, 1).unwrap();
        assert_eq!(plan.vip, Ipv4Addr::new(10, 8, 0, 10));
    }

    #[test]
    fn rejects_bad_requests() {
        let err = AddressPlan::new(net("10.213.0.5/24"), 3, 1).unwrap_err();
        assert!(err.to_string().contains("10.213.0.0/24"), "{err}");
        assert!(AddressPlan::new(net("10.213.0.0/24"), 0, 1).is_err());
        let err = AddressPlan::new(net("10.213.0.0/28"), 3, 1).unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
        assert!(AddressPlan::new(net("10.213.0.0/27"), 3, 1).is_ok());
    }
}
