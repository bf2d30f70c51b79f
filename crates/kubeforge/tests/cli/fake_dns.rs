//! A minimal authoritative DNS server on loopback for tests: answers A queries for the names it
//! is given and NXDOMAIN for every other name. Test scaffolding only.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;

/// Starts the server on a free port and returns its address; it serves until the process ends.
pub fn start(records: &[(&str, &[&str])]) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    let address = socket.local_addr().expect("local address");
    let records: Vec<(String, Vec<Ipv4Addr>)> = records
        .iter()
        .map(|(name, ips)| {
            (
                name.to_ascii_lowercase(),
                ips.iter().map(|i| i.parse().unwrap()).collect(),
            )
        })
        .collect();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((len, peer)) = socket.recv_from(&mut buf) {
            if let Some(reply) = answer(&buf[..len], &records) {
                let _ = socket.send_to(&reply, peer);
            }
        }
    });
    address
}

fn answer(query: &[u8], records: &[(String, Vec<Ipv4Addr>)]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: labels up to the zero byte, then type and class.
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question_end = pos + 4;
    let name = labels.join(".");
    let found = records.iter().find(|(n, _)| *n == name);
    let ips: &[Ipv4Addr] = match found {
        Some((_, ips)) if qtype == 1 => ips,
        _ => &[],
    };
    let mut reply = Vec::with_capacity(512);
    reply.extend_from_slice(&query[0..2]); // id
    let rcode = if found.is_some() { 0 } else { 3 };
    reply.extend_from_slice(&[0x85, 0x80 | rcode]); // QR, AA, RD, RA; NOERROR or NXDOMAIN
    reply.extend_from_slice(&1u16.to_be_bytes());
    reply.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(query.get(12..question_end)?);
    for ip in ips {
        reply.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}
