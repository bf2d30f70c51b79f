//! A tiny DNS client (A records over UDP) to ask the lab's DNS server directly, without the
//! machine's resolver configuration.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// The answer to an A query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Response code: 0 NOERROR, 3 NXDOMAIN, ...
    pub rcode: u8,
    /// The server claims authority (AA flag).
    pub authoritative: bool,
    pub addresses: Vec<Ipv4Addr>,
}

/// Builds a query for `name`'s A record with recursion desired.
pub fn build_query(id: u16, name: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(32 + name.len());
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0x01, 0x00]); // RD
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question
    for label in name.trim_end_matches('.').split('.') {
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&[0, 1, 0, 1]); // A, IN
    msg
}

/// Skips a (possibly compressed) name starting at `pos`; returns the position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        if len & 0xC0 == 0xC0 {
            return Some(pos + 2);
        }
        if len == 0 {
            return Some(pos + 1);
        }
        pos += 1 + len as usize;
    }
}

/// Parses the response to a query with id `id`.
pub fn parse_response(id: u16, msg: &[u8]) -> Option<Answer> {
    if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id || msg[2] & 0x80 == 0 {
        return None;
    }
    let authoritative = msg[2] & 0x04 != 0;
    let rcode = msg[3] & 0x0F;
    let questions = u16::from_be_bytes([msg[4], msg[5]]);
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = 12;
    for _ in 0..questions {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        pos = skip_name(msg, pos)?;
        let header = msg.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([header[0], header[1]]);
        let len = u16::from_be_bytes([header[8], header[9]]) as usize;
        let data = msg.get(pos + 10..pos + 10 + len)?;
        if rtype == 1 && len == 4 {
            addresses.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        pos += 10 + len;
    }
    Some(Answer {
        rcode,
        authoritative,
        addresses,
    })
}

/// Asks `server` (port 53) for `name`'s A records.
pub fn query_a(server: Ipv4Addr, name: &str, timeout: Duration) -> std::io::Result<Answer> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.connect(SocketAddr::from((server, 53)))?;
    let id = (std::process::id() as u16) ^ (name.len() as u16).rotate_left(7);
    socket.send(&build_query(id, name))?;
    let mut buf = [0u8; 1500];
    loop {
        let n = socket.recv(&mut buf)?;
        if let Some(answer) = parse_response(id, &buf[..n]) {
            return Ok(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_wire_format() {
        let q = build_query(0x1234, "k8scp.kubeforge.internal");
        assert_eq!(&q[..12], &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..18], b"\x05k8scp");
        assert!(q.ends_with(b"\x08internal\x00\x00\x01\x00\x01"));
    }

    #[test]
    fn parses_a_compressed_answer() {
        let mut msg = build_query(7, "k8scp.kubeforge.internal");
        msg[2] = 0x85; // QR, AA, RD
        msg[3] = 0x80; // RA, NOERROR
        msg[7] = 1; // one answer
        // Name pointer to offset 12, A, IN, TTL 60, 4 bytes.
        msg.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 213, 0, 10]);
        let answer = parse_response(7, &msg).unwrap();
        assert_eq!(
            answer,
            Answer {
                rcode: 0,
                authoritative: true,
                addresses: vec![Ipv4Addr::new(10, 213, 0, 10)],
            }
        );
        assert_eq!(parse_response(8, &msg), None, "another query's id");
    }

    #[test]
    fn parses_nxdomain() {
        let mut msg = build_query(9, "nope.kubeforge.internal");
        msg[2] = 0x81;
        msg[3] = 0x83;
        let answer = parse_response(9, &msg).unwrap();
        assert_eq!(answer.rcode, 3);
        assert!(answer.addresses.is_empty());
    }
}
