//! SNMP v2c: simulated agents that answer community `public` only, an agent that answers with an
//! error-status, and datagrams that must not pass for SNMP.

mod common;

use common::{always, echo, ledger, scan, udp_device, Handler};
use serde_json::json;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend_from_slice(&[0x81, n as u8]),
        n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// Reads one TLV (lengths in short form or 0x81/0x82 long form): (tag, content, rest).
fn read(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *buf.first()?;
    let (len, hdr) = match *buf.get(1)? {
        n if n < 0x80 => (n as usize, 2),
        0x81 => (*buf.get(2)? as usize, 3),
        0x82 => (((*buf.get(2)? as usize) << 8) | *buf.get(3)? as usize, 4),
        _ => return None,
    };
    let content = buf.get(hdr..hdr + len)?;
    Some((tag, content, &buf[hdr + len..]))
}

/// A GetRequest as an agent sees it: (community, raw request-id INTEGER content, requested OIDs).
type Get = (Vec<u8>, Vec<u8>, Vec<Vec<u8>>);

fn decode_get(datagram: &[u8]) -> Option<Get> {
    let (0x30, msg, _) = read(datagram)? else { return None };
    let (0x02, version, rest) = read(msg)? else { return None };
    if version != [0x01] {
        return None; // a v2c agent drops other versions
    }
    let (0x04, community, rest) = read(rest)? else { return None };
    let (0xA0, pdu, _) = read(rest)? else { return None };
    let (0x02, request_id, rest) = read(pdu)? else { return None };
    let (0x02, _, rest) = read(rest)? else { return None };
    let (0x02, _, rest) = read(rest)? else { return None };
    let (0x30, mut list, _) = read(rest)? else { return None };
    let mut oids = Vec::new();
    while !list.is_empty() {
        let (0x30, vb, rest) = read(list)? else { return None };
        let (0x06, oid, _) = read(vb)? else { return None };
        oids.push(oid.to_vec());
        list = rest;
    }
    Some((community.to_vec(), request_id.to_vec(), oids))
}

const SYS_DESCR: &[u8] = &[0x2B, 6, 1, 2, 1, 1, 1, 0];
const SYS_OBJECT_ID: &[u8] = &[0x2B, 6, 1, 2, 1, 1, 2, 0];
const SYS_NAME: &[u8] = &[0x2B, 6, 1, 2, 1, 1, 5, 0];

const S7_DESCR: &str =
    "Siemens, SIMATIC S7, CPU315-2 PN/DP, 6ES7 315-2EH14-0AB0 , HW: 7, FW: V3.2.11, S C-H4C233962016";

fn response(community: &[u8], request_id: &[u8], error_status: u8, varbinds: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let list: Vec<u8> = varbinds.iter().flat_map(|(oid, v)| tlv(0x30, &[tlv(0x06, oid), v.clone()].concat())).collect();
    let pdu = [tlv(0x02, request_id), tlv(0x02, &[error_status]), tlv(0x02, &[0]), tlv(0x30, &list)].concat();
    tlv(0x30, &[tlv(0x02, &[1]), tlv(0x04, community), tlv(0xA2, &pdu)].concat())
}

/// An S7-300 CPU's agent: it answers community `public` and silently drops anything else.
fn s7_agent() -> Handler {
    Box::new(|datagram: &[u8]| {
        let (community, request_id, oids) = decode_get(datagram)?;
        if community != b"public" {
            return None;
        }
        let varbinds: Vec<(&[u8], Vec<u8>)> = oids
            .iter()
            .map(|oid| {
                let value = match oid.as_slice() {
                    SYS_DESCR => tlv(0x04, S7_DESCR.as_bytes()),
                    // 1.3.6.1.4.1.4329.6.1.2 (Siemens enterprise subtree)
                    SYS_OBJECT_ID => tlv(0x06, &[0x2B, 6, 1, 4, 1, 0xA1, 0x69, 6, 1, 2]),
                    SYS_NAME => tlv(0x04, b"PLC-Pump-Station-2"),
                    _ => tlv(0x80, &[]), // noSuchObject
                };
                (oid.as_slice(), value)
            })
            .collect();
        Some(response(&community, &request_id, 0, &varbinds))
    })
}

/// An agent that refuses the Get with genErr (5), echoing the names with NULL values.
fn failing_agent() -> Handler {
    Box::new(|datagram: &[u8]| {
        let (community, request_id, oids) = decode_get(datagram)?;
        if community != b"public" {
            return None;
        }
        let varbinds: Vec<(&[u8], Vec<u8>)> = oids.iter().map(|o| (o.as_slice(), tlv(0x05, &[]))).collect();
        Some(response(&community, &request_id, 5, &varbinds))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answering_public_reveals_its_system_group() {
    let agent = udp_device("127.124.1.1:161", s7_agent).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.1.1,c\n");
    let findings = scan(&path, "161/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics, f.port, f.transport.as_str()), ("snmp", false, 161, "udp"));
    assert_eq!(f.attributes.get("community_public"), Some(&json!(true)));
    assert_eq!(f.attributes.get("sys_descr"), Some(&json!(S7_DESCR)));
    assert_eq!(f.attributes.get("sys_object_id"), Some(&json!("1.3.6.1.4.1.4329.6.1.2")));
    assert_eq!(f.attributes.get("sys_name"), Some(&json!("PLC-Pump-Station-2")));
    assert!(f.attributes.get("error_status").is_none());
    assert_eq!(f.severity.as_str(), "medium");
    assert_eq!(f.rule.as_deref(), Some("snmp.siemens.simatic_s7"));
    assert_eq!(
        (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref()),
        (Some("Siemens"), Some("SIMATIC S7 CPU315-2 PN/DP (6ES7 315-2EH14-0AB0)"), Some("3.2.11"))
    );
    assert_eq!(f.device_type.as_deref(), Some("PLC"));
    assert_eq!(agent.requests(), 1, "one request, answered at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_status_reply_still_proves_snmp() {
    let _agent = udp_device("127.124.1.2:161", failing_agent).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.1.2,c\n");
    let findings = scan(&path, "161/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.protocol, "snmp");
    assert_eq!(f.attributes.get("error_status"), Some(&json!(5)));
    assert_eq!(f.attributes.get("community_public"), Some(&json!(true)));
    assert!(f.attributes.get("sys_descr").is_none() && f.attributes.get("sys_name").is_none());
    assert_eq!((f.vendor.as_deref(), f.rule.as_deref()), (None, None), "nothing to classify: {f:#?}");
    assert_eq!(f.severity.as_str(), "medium");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_echoing_and_lying_peers_give_no_snmp_finding() {
    // An agent configured with another community: silent, as real agents are.
    let private = udp_device("127.124.1.3:161", || {
        Box::new(|d: &[u8]| {
            let (community, request_id, _) = decode_get(d)?;
            (community == b"s3cret").then(|| response(&community, &request_id, 0, &[]))
        }) as Handler
    })
    .await;
    let echo = udp_device("127.124.1.4:161", echo).await;
    let garbage = udp_device("127.124.1.5:161", || always(b"\x30\x03\x02\x01")).await;
    // A Response with another request-id (a stale or spoofed answer).
    let wrong_id = udp_device("127.124.1.6:161", || {
        Box::new(|d: &[u8]| {
            let (community, _, _) = decode_get(d)?;
            Some(response(&community, &[0x01, 0x02, 0x03, 0x04], 0, &[(SYS_NAME, tlv(0x04, b"x"))]))
        }) as Handler
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.1.3-127.124.1.6,c\n");
    let findings = scan(&path, "161/udp", &Default::default(), common::options()).await;
    // UDP peers whose replies validate as nothing are open: `unknown`, with their evidence.
    let (udp, findings): (Vec<_>, Vec<_>) = findings.into_iter().partition(|f| f.transport.as_str() == "udp");
    assert!(udp.iter().all(|f| f.protocol == "unknown" && !f.ics && !f.evidence.is_empty()), "{udp:#?}");
    assert_eq!(udp.len(), 3, "{udp:#?}");
    assert!(findings.is_empty(), "the silent agent: {findings:#?}");
    // Silence is asked again in v2c with v1 beside it; a reply that is no answer of ours ends the probe.
    assert_eq!(private.requests(), 3, "v2c, then v2c again with v1 once");
    for dev in [&echo, &garbage, &wrong_id] {
        assert!(dev.requests() >= 1 && dev.requests() <= 2, "one request and at most one retry");
    }
}
