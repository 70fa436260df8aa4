//! A small DNS server on loopback, for ledgers that register hostnames (`--resolver`).

use super::{udp_device, Handler, Responder};
use std::net::Ipv4Addr;

/// A DNS server on `addr` that answers A queries for the names in `records`; every other query gets an
/// empty NOERROR answer.
pub async fn dns_responder(addr: &str, records: &'static [(&'static str, Ipv4Addr)]) -> Responder {
    udp_device(addr, || dns_server(records)).await
}

fn dns_server(records: &'static [(&'static str, Ipv4Addr)]) -> Handler {
    Box::new(move |q: &[u8]| {
        let n = q.len();
        if n < 12 {
            return None;
        }
        // QNAME labels from offset 12, then QTYPE and QCLASS.
        let mut i = 12;
        let mut labels = Vec::new();
        while i < n && q[i] != 0 {
            let len = q[i] as usize;
            labels.push(String::from_utf8_lossy(&q[i + 1..(i + 1 + len).min(n)]).to_lowercase());
            i += 1 + len;
        }
        let question_end = i + 5;
        if question_end > n {
            return None;
        }
        let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
        let name = labels.join(".");
        let answer = records.iter().find(|(h, _)| *h == name).filter(|_| qtype == 1).map(|(_, a)| *a);
        let mut reply = Vec::new();
        reply.extend_from_slice(&q[0..2]);
        reply.extend_from_slice(&[0x81, 0x80, 0, 1, 0, answer.is_some() as u8, 0, 0, 0, 0]);
        reply.extend_from_slice(&q[12..question_end]);
        if let Some(a) = answer {
            reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            reply.extend_from_slice(&a.octets());
        }
        Some(reply)
    })
}
