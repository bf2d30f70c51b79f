//! Phase `load-balancer`: keepalived holding the VIP and HAProxy in front of every
//! kube-apiserver, on each control-plane node. Configurations are validated before they
//! replace the old ones and picked up with a reload; once the services run, nodes change one
//! at a time so the VIP and the endpoint never drop.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::context;

use crate::facts::{FactQuery, HostFacts, Read};
use crate::model::{Cluster, Node};
use crate::resources::{
    ClusterCondition, Condition, File, Notify, Packages, Resource, Service, Settle, Wait,
};
use crate::values::Values;

use super::{Ctx, HostSet, Order, Phase, Random, Step, StepError, render};

pub const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";
/// keepalived's drop-in: it starts after HAProxy and stops before it.
pub const KEEPALIVED_DROPIN: &str = "/etc/systemd/system/keepalived.service.d/kubeforge.conf";
pub const HAPROXY_CFG: &str = "/etc/haproxy/haproxy.cfg";
const HAPROXY: &str = "haproxy.service";
const KEEPALIVED: &str = "keepalived.service";

/// The VRRP password shared by the control-plane nodes (a secret value).
pub const VRRP_SECRET: &str = "vrrp-secret";

pub struct LoadBalancer;

impl Phase for LoadBalancer {
    fn name(&self) -> &'static str {
        "load-balancer"
    }
    fn title(&self) -> &'static str {
        "keepalived and HAProxy on every control-plane node"
    }
    fn hosts<'c>(&self, cluster: &'c Cluster) -> Vec<&'c Node> {
        HostSet::ControlPlanes.select(cluster)
    }

    /// Once HAProxy or keepalived run anywhere, changing every node at once could drop the
    /// VIP or the endpoint: then one node at a time.
    fn order(&self, _ctx: &Ctx, facts: &BTreeMap<String, HostFacts>) -> Order {
        let running = facts.values().any(|f| {
            [HAPROXY, KEEPALIVED]
                .iter()
                .any(|u| f.unit(u).is_some_and(|u| u.is_running()))
        });
        if running {
            Order::OneAtATime
        } else {
            Order::Parallel
        }
    }

    fn query(&self, ctx: &Ctx, node: &Node) -> FactQuery {
        let mut q = super::steps_query(self, ctx, node);
        // The password in place, to keep it (it never leaves the host otherwise).
        q.extract
            .entry(KEEPALIVED_CONF.to_string())
            .or_default()
            .insert("auth_pass".to_string());
        q
    }

    /// The phase is done when keepalived has elected: exactly one node holds the VIP, and the
    /// endpoint answers on it (right after a start, no node holds it for a few seconds).
    fn settled(&self, ctx: &Ctx) -> Option<Settle> {
        let vip = ctx.cluster.vip?.value;
        Some(Settle {
            what: format!(
                "exactly one control-plane node holds the VIP {vip} and {vip}:{} answers",
                ctx.cluster.endpoint_port
            ),
            condition: ClusterCondition::VipHeld {
                vip,
                port: ctx.cluster.endpoint_port,
            },
            deadline: Duration::from_secs(60),
        })
    }

    /// The VRRP password: the one the run started with (a restore's), else the one already on
    /// a control-plane node, else a new one.
    fn settle(
        &self,
        _ctx: &Ctx,
        facts: &BTreeMap<String, HostFacts>,
        values: &mut Values,
        random: Random,
    ) -> Result<(), StepError> {
        if values.contains(VRRP_SECRET) {
            return Ok(());
        }
        let secret = facts
            .values()
            .find_map(vrrp_secret_in)
            .unwrap_or_else(|| new_vrrp_secret(random));
        values.set(VRRP_SECRET, secret, true);
        Ok(())
    }

    fn steps(&self, ctx: &Ctx, node: &Node, facts: &HostFacts) -> Result<Vec<Step>, StepError> {
        let address = ctx.ip(node)?;
        let (interface, prefix) = match address.parse().ok().and_then(|ip| facts.interface_of(ip)) {
            Some(a) => (a.interface.clone(), a.prefix.to_string()),
            None if ctx.offline => (format!("<interface holding {address}>"), "24".into()),
            None => {
                return Err(StepError::NoInterface {
                    node: node.node_name.clone(),
                    address,
                });
            }
        };
        let mut servers = Vec::new();
        let mut peers = Vec::new();
        for cp in HostSet::ControlPlanes.select(ctx.cluster) {
            let ip = ctx.ip(cp)?;
            servers.push(context! { name => cp.node_name, address => ip });
            if cp.node_name != node.node_name {
                peers.push(ctx.ip(cp)?);
            }
        }
        let port = ctx.cluster.endpoint_port;
        let haproxy = render(
            "haproxy.cfg",
            include_str!("../../templates/haproxy.cfg"),
            context! { endpoint_port => port, servers, fallback => crate::facts::HAPROXY_FALLBACK },
        )?;
        let vip = ctx.vip()?;
        let keepalived = render(
            "keepalived.conf",
            include_str!("../../templates/keepalived.conf"),
            context! {
                node => node.node_name,
                vip => vip,
                prefix => prefix,
                interface => interface,
                router_id => ctx.cluster.vip.map_or(1, |v| router_id(v.value)),
                priority => priority(node),
                auth_pass => ctx.values.or_placeholder(VRRP_SECRET),
                address => address,
                peers => peers,
            },
        )?;
        let check = render(
            "check_apiserver.sh",
            include_str!("../../templates/check_apiserver.sh"),
            context! { endpoint_port => port },
        )?;
        Ok(vec![
            Step::new(
                "haproxy",
                vec![
                    Resource::Packages(Packages::new(&["haproxy"])),
                    Resource::File(
                        File::new(HAPROXY_CFG, haproxy, 0o644)
                            .validate("haproxy -c -q -f {}")
                            .notify(HAPROXY, Notify::Reload),
                    ),
                    Resource::Service(Service::running(HAPROXY)),
                    Resource::Wait(Wait::new(
                        format!("HAProxy listens on port {port}"),
                        Condition::PortListening(port),
                        Duration::from_secs(30),
                    )),
                ],
            ),
            Step::new(
                "keepalived",
                vec![
                    Resource::Packages(Packages::new(&["keepalived"])),
                    Resource::File(File::new(
                        "/etc/keepalived/check_apiserver.sh",
                        check,
                        0o755,
                    )),
                    Resource::File(
                        File::new(
                            KEEPALIVED_DROPIN,
                            include_str!("../../templates/keepalived-after-haproxy.conf"),
                            0o644,
                        )
                        .notify("", Notify::DaemonReload),
                    ),
                    Resource::File(
                        File::new(KEEPALIVED_CONF, keepalived, 0o600)
                            .read(Read::Masked)
                            .validate("keepalived -t -f {}")
                            .notify(KEEPALIVED, Notify::Reload),
                    ),
                    Resource::Service(Service::running(KEEPALIVED)),
                    Resource::Wait(Wait::new(
                        "keepalived runs",
                        Condition::UnitRunning(KEEPALIVED.into()),
                        Duration::from_secs(30),
                    )),
                ],
            ),
        ])
    }
}

/// The first control-plane node gets the highest priority, so the VIP settles there. High
/// priorities (254 is the highest a router that does not own the address may have) make
/// VRRP's skew short: a backup takes over `3 + (256 - priority) / 256` advertisement
/// intervals after the holder's last one, 3.03 s rather than 3.4 s at 148.
pub fn priority(node: &Node) -> u32 {
    250u32.saturating_sub(node.number.unwrap_or(150)).max(1)
}

/// VRRP router id from the VIP, so that clusters on one network with different VIPs differ.
pub fn router_id(vip: std::net::Ipv4Addr) -> u8 {
    vip.octets()[3].max(1)
}

/// The VRRP password a keepalived.conf written earlier holds (read on the host, never the file).
pub fn vrrp_secret_in(facts: &HostFacts) -> Option<String> {
    let value = facts.file(KEEPALIVED_CONF)?.extracted.get("auth_pass")?;
    (!value.is_empty() && value.len() <= 8 && value.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| value.clone())
}

/// A new VRRP password: 8 letters and digits (keepalived's limit for PASS authentication).
pub fn new_vrrp_secret(random: Random) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 8];
    random(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}
