//! DNS facts: which names kubeforge looks up, and what the answers mean for the cluster.
//! The lookups themselves happen outside the core (the CLI asks the system resolver, or the
//! inventory's DNS server); this module only reads their results.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::diag::{Diagnostic, Kind};
use crate::model::{Cluster, HostAddress, Node, Role, Sourced};

/// The answer to one A-record lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result", content = "value")]
pub enum Lookup {
    Found(Vec<Ipv4Addr>),
    NotFound,
    Failed(String),
}

/// What a name is looked up for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "for", content = "host")]
pub enum Purpose {
    /// The node's own name.
    Node(String),
    /// The name the inventory gives as the node's address (`address`, `ansible_host`).
    Address(String),
    Vip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Query {
    pub name: String,
    pub purpose: Purpose,
}

/// The names to look up: every control-plane node, every worker without an address, every
/// address that is a name, and the VIP record. Fully qualified where the domain is known
/// (`k8scp01.local.net`), else as the resolver's search list completes them.
pub fn queries(cluster: &Cluster) -> Vec<Query> {
    let mut out: Vec<Query> = Vec::new();
    for n in &cluster.nodes {
        let own = fqdn(cluster, &n.name);
        if n.role == Role::ControlPlane || n.address.is_none() {
            out.push(Query {
                name: own.clone(),
                purpose: Purpose::Node(n.node_name.clone()),
            });
        }
        if let Some(address) = address_name(cluster, n)
            && address != own
        {
            out.push(Query {
                name: address,
                purpose: Purpose::Address(n.node_name.clone()),
            });
        }
    }
    out.push(Query {
        name: cluster.vip_name(),
        purpose: Purpose::Vip,
    });
    out
}

/// The name to look up for a node's address when the inventory gives a name, not an IP.
fn address_name(cluster: &Cluster, node: &Node) -> Option<String> {
    match &node.address {
        Some(HostAddress::Name(name)) => Some(fqdn(cluster, name)),
        _ => None,
    }
}

/// A host's name, fully qualified when it is short and the domain is known.
pub fn fqdn(cluster: &Cluster, name: &str) -> String {
    match &cluster.domain {
        Some(domain) if !name.contains('.') => format!("{name}.{domain}"),
        _ => name.to_string(),
    }
}

/// One looked-up record, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub name: String,
    #[serde(flatten)]
    pub purpose: Purpose,
    #[serde(flatten)]
    pub lookup: Lookup,
}

/// Reads the answers: fills in the node IPs (and the VIP) that only DNS knows, leaving what
/// the inventory says to connect to as it is, and reports every missing or inconsistent record
/// with the record to add.
pub fn evaluate(
    cluster: &mut Cluster,
    answers: &BTreeMap<String, Lookup>,
) -> (Vec<Record>, Vec<Diagnostic>) {
    let mut records = Vec::new();
    let mut diagnostics = Vec::new();
    let zone_hint = |name: &str, address: &str| {
        if name.contains('.') {
            format!("add the A record `{name}. IN A {address}` to your DNS")
        } else {
            format!(
                "add an A record for {name} in the hosts' domain (`{name}.<domain>. IN A {address}`), or set dns.domain"
            )
        }
    };
    for query in queries(cluster) {
        let lookup = answers
            .get(&query.name)
            .cloned()
            .unwrap_or(Lookup::Failed("not looked up".into()));
        records.push(Record {
            name: query.name.clone(),
            purpose: query.purpose.clone(),
            lookup: lookup.clone(),
        });
        match &query.purpose {
            Purpose::Node(node_name) => {
                let Some(index) = cluster.nodes.iter().position(|n| &n.node_name == node_name) else { continue };
                let node = &cluster.nodes[index];
                // The address the inventory gives: an IP, or the IP its address name has.
                let address = address_name(cluster, node);
                let written = match &address {
                    _ if node.node_ip.is_some() => node.node_ip.map(|ip| (ip, format!("the inventory gives its ip {ip}"))),
                    Some(name) => match answers.get(name) {
                        Some(Lookup::Found(ips)) => ips.first().map(|ip| (*ip, format!("its address {name} resolves to {ip}"))),
                        _ => None,
                    },
                    None => node.ip().map(|ip| (ip, format!("the inventory gives {ip}"))),
                };
                match lookup {
                    Lookup::Found(addresses) => {
                        if let Some((ip, what)) = written
                            && !addresses.contains(&ip)
                        {
                            diagnostics.push(
                                Diagnostic::error(Kind::DnsMismatch, None, format!("{} resolves to {}, but {what}", query.name, join(&addresses)))
                                    .hint(format!("correct the record to `{}. IN A {ip}`, or the address in the inventory", query.name)),
                            );
                        }
                        let node = &mut cluster.nodes[index];
                        if node.address.is_none() {
                            node.resolved = Some(addresses[0]);
                        }
                    }
                    Lookup::NotFound => {
                        let address = written.map(|(ip, _)| ip.to_string()).unwrap_or_else(|| "<its address>".into());
                        let what = if node.role == Role::ControlPlane {
                            "every control-plane node must resolve"
                        } else {
                            "a host without an address in the inventory must resolve"
                        };
                        diagnostics.push(
                            Diagnostic::error(Kind::DnsMissing, None, format!("{} does not resolve: {what}", query.name))
                                .hint(zone_hint(&query.name, &address)),
                        );
                    }
                    Lookup::Failed(why) => diagnostics.push(
                        Diagnostic::error(Kind::DnsMissing, None, format!("looking up {} failed: {why}", query.name))
                            .hint("check that the DNS server answers (dns.server in the inventory, or /etc/resolv.conf)"),
                    ),
                }
            }
            Purpose::Address(node_name) => match lookup {
                Lookup::Found(addresses) => {
                    if let Some(node) = cluster.nodes.iter_mut().find(|n| &n.node_name == node_name) {
                        node.resolved = Some(addresses[0]);
                    }
                }
                Lookup::NotFound => diagnostics.push(
                    Diagnostic::error(Kind::DnsMissing, None, format!("{} does not resolve: it is the address the inventory gives for {node_name}", query.name))
                        .hint(zone_hint(&query.name, "<its address>")),
                ),
                Lookup::Failed(why) => diagnostics.push(
                    Diagnostic::error(Kind::DnsMissing, None, format!("looking up {} failed: {why}", query.name))
                        .hint("check that the DNS server answers (dns.server in the inventory, or /etc/resolv.conf)"),
                ),
            },
            Purpose::Vip => match lookup {
                Lookup::Found(addresses) if addresses.len() > 1 => diagnostics.push(
                    Diagnostic::error(Kind::DnsAmbiguous, None, format!("{} resolves to {} addresses ({}); it must name exactly one, the VIP", query.name, addresses.len(), join(&addresses)))
                        .hint(format!("keep a single A record for {}: the virtual IP that keepalived holds", query.name)),
                ),
                Lookup::Found(addresses) => {
                    let found = addresses[0];
                    match cluster.vip {
                        Some(vip) if vip.value != found => diagnostics.push(
                            Diagnostic::error(Kind::DnsMismatch, vip.span, format!("{} resolves to {found}, but the inventory's vip is {}", query.name, vip.value))
                                .hint(format!("nodes reach the API through {}: point the record at {} or drop `vip:` to use {found}", query.name, vip.value)),
                        ),
                        Some(_) => {}
                        None => cluster.vip = Some(Sourced { value: found, span: None }),
                    }
                }
                Lookup::NotFound => match cluster.vip {
                    Some(vip) => diagnostics.push(
                        Diagnostic::error(Kind::DnsMissing, vip.span, format!("{} does not resolve, and nodes reach the API by that name", query.name))
                            .hint(zone_hint(&query.name, &vip.value.to_string())),
                    ),
                    None => diagnostics.push(
                        Diagnostic::error(Kind::DnsMissing, None, format!("{} does not resolve, so the VIP is unknown", query.name))
                            .hint(zone_hint(&query.name, "<a free address in the hosts' network>")),
                    ),
                },
                Lookup::Failed(why) => diagnostics.push(
                    Diagnostic::error(Kind::DnsMissing, None, format!("looking up {} failed: {why}", query.name))
                        .hint("check that the DNS server answers (dns.server in the inventory, or /etc/resolv.conf)"),
                ),
            },
        }
    }
    (records, diagnostics)
}

fn join(addresses: &[Ipv4Addr]) -> String {
    addresses
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
