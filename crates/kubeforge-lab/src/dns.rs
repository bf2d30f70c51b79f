//! A small DNS client (A records over UDP) to ask the lab's DNS server directly, without the
//! machine's resolver configuration. Messages are encoded and decoded with hickory-proto.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

/// The answer to an A query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Response code: 0 NOERROR, 3 NXDOMAIN, ...
    pub rcode: u16,
    /// The server claims authority (AA flag).
    pub authoritative: bool,
    pub addresses: Vec<Ipv4Addr>,
}

/// A query for `name`'s A record (taken as fully qualified) with recursion desired.
pub fn build_query(id: u16, name: &str) -> std::io::Result<Vec<u8>> {
    let mut fqdn = Name::from_ascii(name).map_err(std::io::Error::other)?;
    fqdn.set_fqdn(true);
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(fqdn, RecordType::A));
    message.to_vec().map_err(std::io::Error::other)
}

/// Reads the response to the query with id `id`; `None` for anything else (another query's
/// answer, a query, garbage).
pub fn parse_response(id: u16, bytes: &[u8]) -> Option<Answer> {
    let message = Message::from_vec(bytes).ok()?;
    let meta = &message.metadata;
    if meta.id != id || meta.message_type != hickory_proto::op::MessageType::Response {
        return None;
    }
    Some(Answer {
        rcode: meta.response_code.into(),
        authoritative: meta.authoritative,
        addresses: message
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
    })
}

/// Asks `server` (port 53) for `name`'s A records.
pub fn query_a(server: Ipv4Addr, name: &str, timeout: Duration) -> std::io::Result<Answer> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.connect(SocketAddr::from((server, 53)))?;
    let id = (std::process::id() as u16) ^ (name.len() as u16).rotate_left(7);
    socket.send(&build_query(id, name)?)?;
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
    use hickory_proto::op::{MessageType, OpCode, ResponseCode};
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::A;

    use super::*;

    fn response(query: &[u8], code: ResponseCode, addresses: &[Ipv4Addr]) -> Vec<u8> {
        let query = Message::from_vec(query).unwrap();
        let mut reply = Message::response(query.metadata.id, OpCode::Query);
        reply.metadata.authoritative = true;
        reply.metadata.response_code = code;
        let name = query.queries[0].name().clone();
        reply.add_query(query.queries[0].clone());
        for ip in addresses {
            reply.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(*ip))));
        }
        reply.to_vec().unwrap()
    }

    #[test]
    fn query_asks_for_the_a_record_of_the_absolute_name() {
        let q =
            Message::from_vec(&build_query(0x1234, "k8scp.kubeforge.internal").unwrap()).unwrap();
        assert_eq!(q.metadata.id, 0x1234);
        assert_eq!(q.metadata.message_type, MessageType::Query);
        assert!(q.metadata.recursion_desired);
        assert_eq!(q.queries.len(), 1);
        assert_eq!(q.queries[0].name().to_ascii(), "k8scp.kubeforge.internal.");
        assert_eq!(q.queries[0].query_type(), RecordType::A);
        assert!(build_query(1, "bad..name").is_err());
    }

    #[test]
    fn reads_an_answer() {
        let query = build_query(7, "k8scp.kubeforge.internal").unwrap();
        let vip = Ipv4Addr::new(10, 213, 0, 10);
        let reply = response(&query, ResponseCode::NoError, &[vip]);
        assert_eq!(
            parse_response(7, &reply),
            Some(Answer {
                rcode: 0,
                authoritative: true,
                addresses: vec![vip],
            })
        );
        assert_eq!(parse_response(8, &reply), None, "another query's id");
        assert_eq!(parse_response(7, &query), None, "a query, not a response");
        assert_eq!(parse_response(7, b"\x00\x07garbage"), None);
    }

    #[test]
    fn reads_nxdomain() {
        let query = build_query(9, "nope.kubeforge.internal").unwrap();
        let answer = parse_response(9, &response(&query, ResponseCode::NXDomain, &[])).unwrap();
        assert_eq!(answer.rcode, 3);
        assert!(answer.addresses.is_empty());
    }
}
