//! Asks the lab's DNS server directly (A records over UDP), without the machine's resolver
//! configuration. Messages are kubeforge's own ([`kubeforge_core::dns_wire`]).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use kubeforge_core::dns_wire::{self, Answer};

/// Asks `server` (port 53) for `name`'s A records.
pub fn query_a(server: Ipv4Addr, name: &str, timeout: Duration) -> std::io::Result<Answer> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.connect(SocketAddr::from((server, 53)))?;
    let id = dns_wire::random_id();
    socket.send(&dns_wire::a_query(id, name).map_err(std::io::Error::other)?)?;
    let mut buf = [0u8; 1500];
    loop {
        let n = socket.recv(&mut buf)?;
        if let Some(answer) = dns_wire::parse_answer(id, &buf[..n]) {
            return Ok(answer);
        }
    }
}
