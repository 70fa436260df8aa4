//! Hostnames in the ledger are resolved through `--resolver` (here a small DNS responder on loopback),
//! scanned, and reported with the hostname.

mod common;

use common::{banner_device, ledger, udp_device, Handler};
use std::net::Ipv4Addr;

/// A DNS server: answers A queries for the names in `records`; every other query gets an empty
/// NOERROR answer.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostnames_resolve_through_the_named_server_and_are_reported() {
    static RECORDS: [(&str, Ipv4Addr); 1] = [("plc.lab.test", Ipv4Addr::new(127, 113, 0, 7))];
    let _dns = udp_device("127.113.0.53:5353", || dns_server(&RECORDS)).await;
    let plc = banner_device("127.113.0.7:2222", Some(b"220 ready\r\n")).await;
    let (_dir, path) = ledger("A-1,a,d,s,important,plc.lab.test;127.113.0.8,c\nB-2,b,d,s,general,nowhere.lab.test,c\n");
    let findings = common::scan(&path, "2222", &Default::default(), &["--resolver", "127.113.0.53:5353"]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].ip.to_string(), "127.113.0.7");
    assert_eq!(findings[0].hostname.as_deref(), Some("plc.lab.test"));
    assert_eq!(findings[0].enterprise_id, "A-1");
    assert_eq!(plc.connections(), 1);
}
