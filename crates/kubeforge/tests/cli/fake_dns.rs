//! A minimal authoritative DNS server on loopback for tests: answers A queries for the names it
//! is given and NXDOMAIN for every other name. Test scaffolding only; messages are decoded
//! and encoded with hickory-proto.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

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
    let query = Message::from_vec(query).ok()?;
    let question = query.queries.first()?.clone();
    let name = question.name().to_ascii().to_ascii_lowercase();
    let found = records
        .iter()
        .find(|(n, _)| n.as_str() == name.trim_end_matches('.'));
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = if found.is_some() {
        ResponseCode::NoError
    } else {
        ResponseCode::NXDomain
    };
    if let Some((_, ips)) = found
        && question.query_type() == RecordType::A
    {
        for ip in ips {
            reply.add_answer(Record::from_rdata(
                question.name().clone(),
                60,
                RData::A(A(*ip)),
            ));
        }
    }
    reply.add_query(question);
    reply.to_vec().ok()
}
