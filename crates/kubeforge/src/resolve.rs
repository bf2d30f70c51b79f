//! DNS lookups from the machine kubeforge runs on: the system resolver (getaddrinfo, as ssh and
//! the kubelet resolve: /etc/hosts, nsswitch, the search list), or the one DNS server that the
//! inventory names.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, ToSocketAddrs};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use kubeforge_core::dns::Lookup;

/// Looks every name up, concurrently. Each answer keeps the resolver's order with repeats
/// removed.
pub fn lookup_all(server: Option<SocketAddrV4>, names: &[String]) -> BTreeMap<String, Lookup> {
    match server {
        None => system(names),
        Some(server) => with_server(server, names),
    }
}

fn system(names: &[String]) -> BTreeMap<String, Lookup> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| (name.clone(), scope.spawn(move || system_one(name))))
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

/// A runtime and a resolver that asks only `server`.
fn server_resolver(
    server: SocketAddrV4,
) -> Result<(tokio::runtime::Runtime, hickory_resolver::TokioResolver), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut udp = ConnectionConfig::udp();
    udp.port = server.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = server.port();
    let config = ResolverConfig::from_parts(
        None,
        vec![],
        vec![NameServerConfig::new(
            IpAddr::V4(*server.ip()),
            true,
            vec![udp, tcp],
        )],
    );
    let mut options = ResolverOpts::default();
    options.timeout = Duration::from_secs(2);
    options.attempts = 2;
    options.cache_size = 0;
    let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
        .map_err(|e| e.to_string())?;
    Ok((runtime, resolver))
}

fn with_server(server: SocketAddrV4, names: &[String]) -> BTreeMap<String, Lookup> {
    let (runtime, resolver) = match server_resolver(server) {
        Ok(both) => both,
        Err(error) => {
            return names
                .iter()
                .map(|n| (n.clone(), Lookup::Failed(error.clone())))
                .collect();
        }
    };
    runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for name in names {
            let (resolver, name) = (resolver.clone(), name.clone());
            set.spawn(async move {
                // The server answers for the names as given: make them absolute.
                let query = if name.ends_with('.') {
                    name.clone()
                } else {
                    format!("{name}.")
                };
                let lookup = match resolver.ipv4_lookup(query.as_str()).await {
                    Ok(answer) => {
                        let mut v4: Vec<Ipv4Addr> = Vec::new();
                        for record in answer.answers() {
                            if let RData::A(a) = &record.data
                                && !v4.contains(&a.0)
                            {
                                v4.push(a.0);
                            }
                        }
                        if v4.is_empty() {
                            Lookup::NotFound
                        } else {
                            Lookup::Found(v4)
                        }
                    }
                    Err(error) if error.is_no_records_found() || error.is_nx_domain() => {
                        Lookup::NotFound
                    }
                    Err(error) => Lookup::Failed(format!("{error} (DNS server {server})")),
                };
                (name, lookup)
            });
        }
        let mut out = BTreeMap::new();
        while let Some(joined) = set.join_next().await {
            if let Ok((name, lookup)) = joined {
                out.insert(name, lookup);
            }
        }
        out
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
