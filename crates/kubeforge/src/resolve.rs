//! DNS lookups from the machine kubeforge runs on: the system resolver (getaddrinfo, as ssh and
//! the kubelet resolve: /etc/hosts, nsswitch, the search list), or the one DNS server that the
//! inventory names.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use kubeforge_core::diag::Diagnostic;
use kubeforge_core::dns::{self, Lookup, Record};
use kubeforge_core::dns_wire;
use kubeforge_core::model::Cluster;

use crate::output::Printer;

/// Looks every name up, concurrently. Each answer keeps the resolver's order with repeats
/// removed.
pub fn lookup_all(server: Option<SocketAddrV4>, names: &[String]) -> BTreeMap<String, Lookup> {
    match server {
        None => system(names),
        Some(server) => with_server(server, names),
    }
}

fn system(names: &[String]) -> BTreeMap<String, Lookup> {
    at_once(names, system_one)
}

/// `lookup` of every name, each on a thread of its own, all at once.
fn at_once(names: &[String], lookup: impl Fn(&str) -> Lookup + Sync) -> BTreeMap<String, Lookup> {
    let lookup = &lookup;
    std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| (name.clone(), scope.spawn(move || lookup(name))))
            .collect();
        handles
            .into_iter()
            .map(|(name, handle)| {
                (
                    name,
                    handle
                        .join()
                        .unwrap_or_else(|_| Lookup::Failed("resolver thread failed".into())),
                )
            })
            .collect()
    })
}

fn system_one(name: &str) -> Lookup {
    match (name, 0u16).to_socket_addrs() {
        Ok(addresses) => {
            let mut v4: Vec<Ipv4Addr> = Vec::new();
            for address in addresses {
                if let IpAddr::V4(ip) = address.ip()
                    && !v4.contains(&ip)
                {
                    v4.push(ip);
                }
            }
            if v4.is_empty() {
                Lookup::NotFound
            } else {
                Lookup::Found(v4)
            }
        }
        Err(error) => classify_system_error(&error.to_string()),
    }
}

/// getaddrinfo reports "no such name" and "no address" as text only.
fn classify_system_error(message: &str) -> Lookup {
    const NOT_FOUND: [&str; 4] = [
        "Name or service not known",
        "No address associated with hostname",
        "nodename nor servname provided",
        "Name has no usable address",
    ];
    if NOT_FOUND.iter().any(|m| message.contains(m)) {
        Lookup::NotFound
    } else {
        Lookup::Failed(message.to_string())
    }
}

/// Looks up the cluster's names, fills in the addresses and VIP that DNS gives, and returns the
/// resolver used, the records, and the problems found (DNS, then the network rules again with
/// the new addresses).
pub fn cluster(printer: &Printer, cluster: &mut Cluster) -> (String, Vec<Record>, Vec<Diagnostic>) {
    let names: Vec<String> = dns::queries(cluster).into_iter().map(|q| q.name).collect();
    let resolver = match cluster.dns_server {
        Some(server) => format!("DNS server {server}"),
        None => "system resolver".to_string(),
    };
    printer.detail(&format!(
        "looking up {} names with the {resolver}",
        names.len()
    ));
    let answers = lookup_all(cluster.dns_server, &names);
    let (records, mut diagnostics) = dns::evaluate(cluster, &answers);
    diagnostics.extend(cluster.network_checks());
    (resolver, records, diagnostics)
}

/// How long to wait for the server's answer, and how many times to ask.
const SERVER_TIMEOUT: Duration = Duration::from_secs(2);
const SERVER_ATTEMPTS: usize = 2;

/// Asks `server` alone, every name at once (one thread each).
fn with_server(server: SocketAddrV4, names: &[String]) -> BTreeMap<String, Lookup> {
    at_once(names, |name| {
        server_one(server, dns_wire::random_id(), name)
    })
}

/// One name's A records from `server`: over UDP, asked again when no answer comes in time,
/// over TCP when the answer did not fit.
fn server_one(server: SocketAddrV4, id: u16, name: &str) -> Lookup {
    let query = match dns_wire::a_query(id, name) {
        Ok(query) => query,
        Err(why) => return Lookup::Failed(why),
    };
    let mut last = String::new();
    for _ in 0..SERVER_ATTEMPTS {
        match udp_exchange(server, id, &query) {
            Ok(answer) if answer.truncated => {
                return match tcp_exchange(server, id, &query) {
                    Ok(answer) => lookup_of(server, answer),
                    Err(e) => Lookup::Failed(format!("{e} (DNS server {server}, over TCP)")),
                };
            }
            Ok(answer) => return lookup_of(server, answer),
            Err(e) => last = e.to_string(),
        }
    }
    Lookup::Failed(format!("{last} (DNS server {server})"))
}

fn lookup_of(server: SocketAddrV4, answer: dns_wire::Answer) -> Lookup {
    match answer.rcode {
        0 if answer.addresses.is_empty() => Lookup::NotFound,
        0 => Lookup::Found(answer.addresses),
        dns_wire::NXDOMAIN => Lookup::NotFound,
        code => Lookup::Failed(format!(
            "the DNS server {server} answered with response code {code}"
        )),
    }
}

fn udp_exchange(server: SocketAddrV4, id: u16, query: &[u8]) -> std::io::Result<dns_wire::Answer> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.set_read_timeout(Some(SERVER_TIMEOUT))?;
    socket.connect(server)?;
    socket.send(query)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time")
            }
            _ => e,
        })?;
        if let Some(answer) = dns_wire::parse_answer(id, &buf[..n]) {
            return Ok(answer);
        }
    }
}

/// DNS over TCP: each message after its length in two bytes.
fn tcp_exchange(server: SocketAddrV4, id: u16, query: &[u8]) -> std::io::Result<dns_wire::Answer> {
    use std::io::{Read as _, Write as _};
    let mut stream = TcpStream::connect_timeout(&server.into(), SERVER_TIMEOUT)?;
    stream.set_read_timeout(Some(SERVER_TIMEOUT))?;
    stream.set_write_timeout(Some(SERVER_TIMEOUT))?;
    let mut message = (query.len() as u16).to_be_bytes().to_vec();
    message.extend_from_slice(query);
    stream.write_all(&message)?;
    let mut length = [0u8; 2];
    stream.read_exact(&mut length)?;
    let mut buf = vec![0u8; u16::from_be_bytes(length) as usize];
    stream.read_exact(&mut buf)?;
    dns_wire::parse_answer(id, &buf).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an answer to the query",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getaddrinfo_messages_are_classified() {
        assert_eq!(
            classify_system_error(
                "failed to lookup address information: Name or service not known"
            ),
            Lookup::NotFound
        );
        assert!(matches!(
            classify_system_error("Temporary failure in name resolution"),
            Lookup::Failed(_)
        ));
    }

    #[test]
    fn localhost_resolves_through_the_system_resolver() {
        let answers = lookup_all(None, &["localhost".to_string()]);
        assert_eq!(
            answers["localhost"],
            Lookup::Found(vec![Ipv4Addr::LOCALHOST])
        );
    }
}
