//! A minimal authoritative DNS server on loopback for tests: answers A queries for the names it
//! is given and NXDOMAIN for every other name. Test scaffolding only; messages are decoded
//! and encoded with simple-dns.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;

use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Packet, PacketFlag, QTYPE, RCODE, ResourceRecord, TYPE};

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
    let query = Packet::parse(query).ok()?;
    let question = query.questions.first()?.clone();
    let name = question.qname.to_string().to_ascii_lowercase();
    let found = records
        .iter()
        .find(|(n, _)| n.as_str() == name.trim_end_matches('.'));
    let mut reply = Packet::new_reply(query.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_AVAILABLE);
    if query.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    *reply.rcode_mut() = if found.is_some() {
        RCODE::NoError
    } else {
        RCODE::NameError
    };
    if let Some((_, ips)) = found
        && question.qtype == QTYPE::TYPE(TYPE::A)
    {
        for ip in ips {
            reply.answers.push(ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                60,
                RData::A(A::from(*ip)),
            ));
        }
    }
    reply.questions.push(question);
    reply.build_bytes_vec().ok()
}
