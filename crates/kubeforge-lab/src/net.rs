//! The lab network on the machine: one Linux bridge per lab (named by its slot:
//! [`crate::state::Slot::bridge`]), the hosts' veth links, and checks that the lab subnet is
//! free. Hosts get no route out: no gateway, no NAT, no forwarding.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Deserialize;

use crate::error::{LabError, Result};
use crate::exec;

/// Machine-side name systemd-nspawn gives a host's veth link.
pub fn veth_name(host: &str) -> String {
    // nspawn: "vb-" + the machine name, cut to the 15 bytes an interface name may have.
    let mut name = format!("vb-{host}");
    name.truncate(15);
    name
}

fn ip(args: &[&str]) -> Result<String> {
    exec::stdout(Command::new("ip").args(args))
}

pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Creates the bridge with the bridge address, up. An existing bridge is reused if it
/// carries exactly that address.
pub fn ensure_bridge(bridge: &str, bridge_ip: Ipv4Addr, subnet: Ipv4Net) -> Result<()> {
    let cidr = format!("{bridge_ip}/{}", subnet.prefix_len());
    if !link_exists(bridge) {
        ip(&["link", "add", bridge, "type", "bridge"])?;
    }
    let addrs = link_ipv4_addrs(bridge)?;
    if !addrs.contains(&cidr) {
        ip(&["addr", "add", &cidr, "dev", bridge])?;
    }
    // No IPv6 on the lab network: nothing in the lab uses it.
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6"),
        "1",
    );
    ip(&["link", "set", bridge, "up"])?;
    Ok(())
}

pub fn delete_link(name: &str) -> Result<()> {
    if link_exists(name) {
        ip(&["link", "delete", name])?;
    }
    Ok(())
}

pub fn set_link(name: &str, up: bool) -> Result<()> {
    ip(&["link", "set", name, if up { "up" } else { "down" }])?;
    Ok(())
}

/// Whether a link is administratively up.
pub fn link_is_up(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & 1 == 1)
}

/// Links enslaved to a bridge.
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
struct IpLink {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Debug, Deserialize)]
struct IpAddrInfo {
    local: String,
    prefixlen: u8,
}

#[derive(Debug, Deserialize)]
struct IpRoute {
    dst: String,
    #[serde(default)]
    dev: Option<String>,
}

fn link_ipv4_addrs(name: &str) -> Result<Vec<String>> {
    let json = ip(&["-j", "-4", "addr", "show", "dev", name])?;
    let links: Vec<IpLink> = serde_json::from_str(&json).unwrap_or_default();
    Ok(links
        .iter()
        .flat_map(|l| &l.addr_info)
        .map(|a| format!("{}/{}", a.local, a.prefixlen))
        .collect())
}

/// What on the machine already uses (part of) `subnet`, ignoring the lab's own `bridge`.
/// Inputs are the JSON of `ip -j -4 addr show` and `ip -j -4 route show`.
pub fn subnet_conflict(
    subnet: Ipv4Net,
    bridge: &str,
    addrs_json: &str,
    routes_json: &str,
) -> Option<String> {
    let links: Vec<IpLink> = serde_json::from_str(addrs_json).unwrap_or_default();
    for link in links.iter().filter(|l| l.ifname != bridge) {
        for a in &link.addr_info {
            let Ok(net) = format!("{}/{}", a.local, a.prefixlen).parse::<Ipv4Net>() else {
                continue;
            };
            if overlaps(net.trunc(), subnet) {
                return Some(format!(
                    "address {}/{} on {}",
                    a.local, a.prefixlen, link.ifname
                ));
            }
        }
    }
    let routes: Vec<IpRoute> = serde_json::from_str(routes_json).unwrap_or_default();
    for route in routes {
        if route.dst == "default" || route.dev.as_deref() == Some(bridge) {
            continue;
        }
        let dst = if route.dst.contains('/') {
            route.dst.clone()
        } else {
            format!("{}/32", route.dst)
        };
        let Ok(net) = dst.parse::<Ipv4Net>() else {
            continue;
        };
        if net.prefix_len() > 0 && overlaps(net, subnet) {
            return Some(format!(
                "route to {} via {}",
                route.dst,
                route.dev.as_deref().unwrap_or("?")
            ));
        }
    }
    None
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// What on this machine uses (part of) `subnet` already, ignoring the lab's own `bridge`.
pub fn subnet_user(subnet: Ipv4Net, bridge: &str) -> Result<Option<String>> {
    let addrs = ip(&["-j", "-4", "addr", "show"])?;
    let routes = ip(&["-j", "-4", "route", "show"])?;
    Ok(subnet_conflict(subnet, bridge, &addrs, &routes))
}

/// Fails with a clear error when the subnet is taken on this machine.
pub fn check_subnet_free(subnet: Ipv4Net, bridge: &str) -> Result<()> {
    match subnet_user(subnet, bridge)? {
        None => Ok(()),
        Some(what) => Err(LabError::SubnetTaken {
            subnet,
            what,
            suggestion: suggest_subnet(subnet),
        }),
    }
}

fn suggest_subnet(taken: Ipv4Net) -> String {
    let octets = taken.network().octets();
    let next = if octets[0] == 10 && octets[2] < 255 {
        Ipv4Addr::new(10, octets[1], octets[2] + 1, 0)
    } else {
        Ipv4Addr::new(10, 214, 0, 0)
    };
    format!("{next}/24")
}

/// Whether an SSH server answers on `addr:22` (reads its banner).
pub fn ssh_answers(addr: Ipv4Addr, timeout: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&SocketAddr::from((addr, 22)), timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let mut banner = [0u8; 8];
    stream.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-")
}

/// Whether the lab repository answers `GET /Packages` with 200.
pub fn http_answers(addr: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&SocketAddr::from((addr, port)), timeout)
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    if stream
        .write_all(format!("HEAD /Packages HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Whether something listens on TCP `addr:port` already.
pub fn tcp_port_in_use(addr: Ipv4Addr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((addr, port)), Duration::from_millis(300)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRS: &str = r#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
        {"ifindex":4,"ifname":"eth0","addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24}]},
        {"ifindex":9,"ifname":"kfbr0","addr_info":[{"family":"inet","local":"10.213.0.1","prefixlen":24}]}]"#;
    const ROUTES: &str = r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0"},
        {"dst":"192.0.2.0/24","dev":"eth0"},
        {"dst":"10.213.0.0/24","dev":"kfbr0"},
        {"dst":"172.16.5.7","dev":"tun0"},
        {"dst":"10.50.0.0/16","dev":"wg0"}]"#;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn own_bridge_and_default_route_are_not_conflicts() {
        assert_eq!(
            subnet_conflict(net("10.213.0.0/24"), "kfbr0", ADDRS, ROUTES),
            None
        );
        // Another lab's bridge is someone else's.
        assert_eq!(
            subnet_conflict(net("10.213.0.0/24"), "kfbr1", ADDRS, ROUTES).as_deref(),
            Some("address 10.213.0.1/24 on kfbr0")
        );
    }

    #[test]
    fn addresses_and_routes_that_overlap_are_conflicts() {
        assert_eq!(
            subnet_conflict(net("192.0.2.0/24"), "kfbr0", ADDRS, ROUTES).as_deref(),
            Some("address 192.0.2.2/24 on eth0")
        );
        assert_eq!(
            subnet_conflict(net("192.0.0.0/16"), "kfbr0", ADDRS, ROUTES).as_deref(),
            Some("address 192.0.2.2/24 on eth0")
        );
        assert_eq!(
            subnet_conflict(net("10.50.3.0/24"), "kfbr0", ADDRS, ROUTES).as_deref(),
            Some("route to 10.50.0.0/16 via wg0")
        );
        assert_eq!(
            subnet_conflict(net("172.16.5.0/24"), "kfbr0", ADDRS, ROUTES).as_deref(),
            Some("route to 172.16.5.7 via tun0")
        );
        assert_eq!(
            subnet_conflict(net("10.51.0.0/24"), "kfbr0", ADDRS, ROUTES),
            None
        );
    }

    #[test]
    fn suggestion_is_a_neighbouring_subnet() {
        assert_eq!(suggest_subnet(net("10.213.0.0/24")), "10.213.1.0/24");
        assert_eq!(suggest_subnet(net("192.168.1.0/24")), "10.214.0.0/24");
    }

    #[test]
    fn veth_names_fit_the_kernel_limit() {
        assert_eq!(veth_name("k8scp01"), "vb-k8scp01");
        assert_eq!(veth_name("averyveryverylongname").len(), 15);
    }
}
