//! DNS messages for A lookups, as bytes: the query kubeforge sends to a DNS server it asks
//! directly (`dns.server`, the lab's dnsmasq), and the parts of the answer it reads. Encoding
//! and decoding only; the caller sends and receives.

use std::net::Ipv4Addr;

use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, TYPE};

/// What an answer to an A query says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Response code: 0 NOERROR, 3 NXDOMAIN, ...
    pub rcode: u16,
    /// The server claims authority (AA flag).
    pub authoritative: bool,
    /// The answer did not fit (TC flag): the addresses may be incomplete.
    pub truncated: bool,
    /// The A records, in the server's order, repeats removed.
    pub addresses: Vec<Ipv4Addr>,
}

/// A fresh, unpredictable query id (so that an answer cannot be forged by guessing it), from
/// the standard library's per-process random hashing keys.
pub fn random_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish() as u16
}

/// Response code NXDOMAIN: the name does not exist.
pub const NXDOMAIN: u16 = 3;

/// A query for `name`'s A record, `name` taken as fully qualified, with recursion desired.
pub fn a_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let name = name.trim_end_matches('.');
    if name.is_empty()
        || name
            .split('.')
            .any(|label| label.is_empty() || label.len() > 63)
    {
        return Err(format!("`{name}` is not a domain name"));
    }
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        Name::new(name).map_err(|e| format!("`{name}`: {e}"))?,
        QTYPE::TYPE(TYPE::A),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet
        .build_bytes_vec()
        .map_err(|e| format!("`{name}`: {e}"))
}

/// Reads the response to the query with id `id`; `None` for anything else (another query's
/// answer, a query, garbage).
pub fn parse_answer(id: u16, bytes: &[u8]) -> Option<Answer> {
    let packet = Packet::parse(bytes).ok()?;
    if packet.id() != id || !packet.has_flags(PacketFlag::RESPONSE) {
        return None;
    }
    let mut addresses: Vec<Ipv4Addr> = Vec::new();
    for record in &packet.answers {
        if let RData::A(a) = &record.rdata {
            let ip = Ipv4Addr::from(a.address);
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
    }
    Some(Answer {
        rcode: packet.rcode() as u16,
        authoritative: packet.has_flags(PacketFlag::AUTHORITATIVE_ANSWER),
        truncated: packet.has_flags(PacketFlag::TRUNCATION),
        addresses,
    })
}

#[cfg(test)]
mod tests {
    use simple_dns::rdata::A;
    use simple_dns::{RCODE, ResourceRecord};

    use super::*;

    /// A server's reply to `query`, as a DNS server would write it.
    fn reply(query: &[u8], code: RCODE, addresses: &[Ipv4Addr]) -> Vec<u8> {
        let query = Packet::parse(query).unwrap();
        let mut reply = Packet::new_reply(query.id());
        reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
        *reply.rcode_mut() = code;
        let name = query.questions[0].qname.clone();
        reply.questions.push(query.questions[0].clone());
        for ip in addresses {
            reply.answers.push(ResourceRecord::new(
                name.clone(),
                CLASS::IN,
                60,
                RData::A(A::from(*ip)),
            ));
        }
        reply.build_bytes_vec().unwrap()
    }

    #[test]
    fn the_query_asks_for_the_a_record_of_the_name() {
        let bytes = a_query(0x1234, "k8scp.kubeforge.internal.").unwrap();
        let q = Packet::parse(&bytes).unwrap();
        assert_eq!(q.id(), 0x1234);
        assert!(!q.has_flags(PacketFlag::RESPONSE));
        assert!(q.has_flags(PacketFlag::RECURSION_DESIRED));
        assert_eq!(q.questions.len(), 1);
        assert_eq!(q.questions[0].qname.to_string(), "k8scp.kubeforge.internal");
        assert_eq!(q.questions[0].qtype, QTYPE::TYPE(TYPE::A));
        assert!(a_query(1, "bad..name").is_err());
        assert!(a_query(1, "").is_err());
    }

    #[test]
    fn reads_an_answer_and_only_the_answer_to_its_query() {
        let query = a_query(7, "k8scp.kubeforge.internal").unwrap();
        let vip = Ipv4Addr::new(10, 213, 0, 10);
        let other = Ipv4Addr::new(10, 213, 0, 11);
        let bytes = reply(&query, RCODE::NoError, &[vip, other, vip]);
        assert_eq!(
            parse_answer(7, &bytes),
            Some(Answer {
                rcode: 0,
                authoritative: true,
                truncated: false,
                addresses: vec![vip, other],
            })
        );
        assert_eq!(parse_answer(8, &bytes), None, "another query's id");
        assert_eq!(parse_answer(7, &query), None, "a query, not a response");
        assert_eq!(parse_answer(7, b"\x00\x07garbage"), None);
    }

    #[test]
    fn query_ids_are_not_predictable() {
        let ids: std::collections::BTreeSet<u16> = (0..64).map(|_| random_id()).collect();
        assert!(ids.len() > 32, "{ids:?}");
    }

    #[test]
    fn reads_nxdomain() {
        let query = a_query(9, "nope.kubeforge.internal").unwrap();
        let answer = parse_answer(9, &reply(&query, RCODE::NameError, &[])).unwrap();
        assert_eq!(answer.rcode, NXDOMAIN);
        assert!(answer.addresses.is_empty());
    }
}
