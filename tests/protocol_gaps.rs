//! Stacks that answer differently from the common case, built here from the specifications:
//! an SNMP agent that speaks only v1 (RFC 1157) and one that answers only the first variable of a
//! GetRequest, an MQTT broker that accepts only MQTT 5, a DNP3 outstation over UDP that answers
//! from another port, and a HART-IP server over UDP (opt-in).

mod common;

use common::{tcp_device, udp_device, Handler};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------------------------
// SNMP (X.690 BER, definite lengths)

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        out.extend([0x81, content.len() as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// One TLV: (tag, content, rest).
fn read(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7F => (first as usize, rest),
        0x81 => (*rest.first()? as usize, &rest[1..]),
        _ => return None,
    };
    Some((tag, rest.get(..len)?, &rest[len..]))
}

/// A GetRequest: (version, request id bytes, the variables' encoded names).
fn decode_get(datagram: &[u8]) -> Option<(u8, Vec<u8>, Vec<Vec<u8>>)> {
    let (_, message, _) = read(datagram)?;
    let (_, version, m) = read(message)?;
    let (_, _community, m) = read(m)?;
    let (pdu_type, pdu, _) = read(m)?;
    if pdu_type != 0xA0 {
        return None;
    }
    let (_, request_id, p) = read(pdu)?;
    let (_, _, p) = read(p)?;
    let (_, _, p) = read(p)?;
    let (_, mut list, _) = read(p)?;
    let mut names = Vec::new();
    while !list.is_empty() {
        let (_, varbind, rest) = read(list)?;
        let (_, name, _) = read(varbind)?;
        names.push(name.to_vec());
        list = rest;
    }
    Some((*version.first()?, request_id.to_vec(), names))
}

const SYS_DESCR: &[u8] = &[0x2B, 6, 1, 2, 1, 1, 1, 0];
const SYS_NAME: &[u8] = &[0x2B, 6, 1, 2, 1, 1, 5, 0];

fn response(version: u8, request_id: &[u8], error: (u8, u8), varbinds: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let list: Vec<u8> =
        varbinds.iter().flat_map(|(name, value)| tlv(0x30, &[tlv(0x06, name), value.clone()].concat())).collect();
    let pdu = [tlv(0x02, request_id), tlv(0x02, &[error.0]), tlv(0x02, &[error.1]), tlv(0x30, &list)].concat();
    tlv(0x30, &[tlv(0x02, &[version]), tlv(0x04, b"public"), tlv(0xA2, &pdu)].concat())
}

/// The agent's system group: sysDescr and sysName; it has no sysObjectID (1.3.6.1.2.1.1.2.0).
fn value_of(name: &[u8]) -> Option<Vec<u8>> {
    match name {
        SYS_DESCR => Some(tlv(0x04, b"Lab RTU 3000, firmware 2.4")),
        SYS_NAME => Some(tlv(0x04, b"rtu-north")),
        _ => None,
    }
}

/// An SNMPv1 agent (RFC 1157): v2c messages are dropped unanswered; a GetRequest naming a variable
/// it lacks gets noSuchName (2) with that variable's index, and no values.
fn v1_agent(versions_seen: Arc<Mutex<Vec<u8>>>) -> impl Fn() -> Handler + Send + Sync + 'static {
    move || {
        let seen = versions_seen.clone();
        Box::new(move |datagram: &[u8]| {
            let (version, request_id, names) = decode_get(datagram)?;
            seen.lock().unwrap().push(version);
            if version != 0 {
                return None;
            }
            match names.iter().position(|n| value_of(n).is_none()) {
                Some(i) => {
                    let echoed: Vec<_> = names.iter().map(|n| (n.as_slice(), tlv(0x05, &[]))).collect();
                    Some(response(0, &request_id, (2, i as u8 + 1), &echoed))
                }
                None => {
                    let values: Vec<_> = names.iter().map(|n| (n.as_slice(), value_of(n).unwrap())).collect();
                    Some(response(0, &request_id, (0, 0), &values))
                }
            }
        })
    }
}

/// A v2c agent that answers only the first variable of each GetRequest (as conpot 0.6.0 does).
fn first_variable_agent() -> Handler {
    Box::new(|datagram: &[u8]| {
        let (version, request_id, names) = decode_get(datagram)?;
        let first = names.first()?;
        let value = value_of(first).unwrap_or_else(|| tlv(0x80, &[]));
        Some(response(version, &request_id, (0, 0), &[(first.as_slice(), value)]))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_snmp_v1_agent_is_asked_again_in_v1_and_each_variable_alone() {
    let versions = Arc::new(Mutex::new(Vec::new()));
    let _agent = udp_device("127.127.0.1:161", v1_agent(versions.clone())).await;
    let (_dir, ledger) = common::ledger("G-1,gaps,d,s,important,127.127.0.1,c\n");
    let findings = common::scan(&ledger, "161/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.protocol, "snmp");
    assert_eq!(
        Value::Object(f.attributes.clone()),
        json!({
            "community_public": true,
            "snmp_version": "v1",
            "sys_descr": "Lab RTU 3000, firmware 2.4",
            "sys_name": "rtu-north",
            "error_status": 2,
            "error_index": 2,
        })
    );
    let versions = versions.lock().unwrap().clone();
    // v2c first, sent twice (one retry); then v1 once for the three variables, and once for each.
    assert_eq!(versions, [1, 1, 0, 0, 0, 0], "{versions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answering_only_the_first_variable_is_asked_for_the_others() {
    let _agent = udp_device("127.127.0.2:161", first_variable_agent).await;
    let (_dir, ledger) = common::ledger("G-2,gaps,d,s,important,127.127.0.2,c\n");
    let findings = common::scan(&ledger, "161/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        Value::Object(findings[0].attributes.clone()),
        json!({
            "community_public": true,
            "snmp_version": "v2c",
            "sys_descr": "Lab RTU 3000, firmware 2.4",
            "sys_name": "rtu-north",
        })
    );
}

// ---------------------------------------------------------------------------------------------
// MQTT 5.0

/// A broker that speaks only MQTT 5: a level-4 CONNECT is refused with the 3.1.1 CONNACK return code
/// 1 (unacceptable protocol version); a level-5 CONNECT without credentials gets reason code 0x87
/// (not authorized) with a Reason String and a Receive Maximum.
fn mqtt5_only_broker(levels: Arc<Mutex<Vec<u8>>>) -> impl Fn() -> Handler + Send + Sync + 'static {
    move || {
        let levels = levels.clone();
        Box::new(move |packet: &[u8]| {
            // 10 <remaining> 00 04 'MQTT' <level> ...
            if packet.first() != Some(&0x10) || packet.get(4..8) != Some(b"MQTT") {
                return None;
            }
            let level = *packet.get(8)?;
            levels.lock().unwrap().push(level);
            if level != 5 {
                return Some(vec![0x20, 0x02, 0x00, 0x01]);
            }
            let mut props = vec![0x1F, 0x00, 0x0E];
            props.extend_from_slice(b"login required");
            props.extend_from_slice(&[0x21, 0x00, 0x14]);
            let mut reply = vec![0x20, (3 + props.len()) as u8, 0x00, 0x87, props.len() as u8];
            reply.extend(props);
            Some(reply)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_5_only_broker_is_asked_again_at_level_5() {
    let levels = Arc::new(Mutex::new(Vec::new()));
    let _broker = tcp_device("127.127.0.3:1883", mqtt5_only_broker(levels.clone())).await;
    let (_dir, ledger) = common::ledger("G-3,gaps,d,s,important,127.127.0.3,c\n");
    let findings = common::scan(&ledger, "1883", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("mqtt", false));
    assert_eq!(
        Value::Object(f.attributes.clone()),
        json!({
            "reason_code": 0x87,
            "anonymous": false,
            "session_present": false,
            "protocol_level": 5,
            "reason_string": "login required",
        })
    );
    assert_eq!(f.severity.as_str(), "low", "a broker refusing anonymous clients");
    assert_eq!(*levels.lock().unwrap(), vec![4, 5]);
}

// ---------------------------------------------------------------------------------------------
// DNP3 over UDP (IEEE 1815-2012 clause 9 link frames, one per datagram)

fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &byte in data {
        crc ^= byte as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA6BC } else { crc >> 1 };
        }
    }
    !crc
}

/// A Link Status response (secondary, function 11) from outstation `source` to master `destination`.
fn link_status(source: u16, destination: u16) -> Vec<u8> {
    let mut header = vec![0x05, 0x64, 0x05, 0x0B];
    header.extend_from_slice(&destination.to_le_bytes());
    header.extend_from_slice(&source.to_le_bytes());
    let crc = crc16(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dnp3_outstation_over_udp_answering_from_another_port_is_found() {
    // Outstation 7: it answers only Request Link Status frames addressed to it, from port 20001.
    let inbound = tokio::net::UdpSocket::bind("127.127.0.4:20000").await.unwrap();
    let outbound = tokio::net::UdpSocket::bind("127.127.0.4:20001").await.unwrap();
    let datagrams = Arc::new(Mutex::new(0usize));
    let count = datagrams.clone();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        for _ in 0..64 {
            let Ok((n, from)) = inbound.recv_from(&mut buf).await else { return };
            *count.lock().unwrap() += 1;
            let frame = &buf[..n];
            // One Request Link Status per datagram: 05 64 05 C9 <dest> <src> <crc>.
            if n == 10 && frame[..4] == [0x05, 0x64, 0x05, 0xC9] && frame[4..6] == 7u16.to_le_bytes() {
                let master = u16::from_le_bytes([frame[6], frame[7]]);
                let _ = outbound.send_to(&link_status(7, master), from).await;
            }
        }
    });
    let (_dir, ledger) = common::ledger("G-4,gaps,d,s,important,127.127.0.4,c\n");
    let findings = common::scan(&ledger, "20000/udp", &Default::default(), common::options()).await;
    task.abort();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("dnp3", true), "{f:#?}");
    assert_eq!(f.attributes.get("source_address"), Some(&json!(7)));
    assert_eq!(f.attributes.get("destination_address"), Some(&json!(1)));
    assert!(*datagrams.lock().unwrap() >= 8, "one datagram per request");
}

// ---------------------------------------------------------------------------------------------
// HART-IP over UDP (HCF_SPEC-085): session initiate, command 0, session close, one datagram each

fn hartip_reply(request: &[u8], body: &[u8]) -> Vec<u8> {
    let mut r = vec![1, 1, request[2], 0, request[4], request[5]];
    r.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// A HART 7 device behind a HART-IP server: manufacturer 0x6002, expanded device type 0xE1C2,
/// device id 0x0ABCDE.
fn hartip_server() -> Handler {
    Box::new(|request: &[u8]| {
        if request.len() < 8 || request[0] != 1 || request[1] != 0 {
            return None;
        }
        match request[2] {
            0 => Some(hartip_reply(request, &request[8..13])),
            1 => Some(hartip_reply(request, &[])),
            3 => {
                let data =
                    [254, 0xE1, 0xC2, 5, 7, 3, 2, 0x08, 0, 0x0A, 0xBC, 0xDE, 5, 4, 0, 1, 0, 0x60, 0x02, 0x60, 0x02, 1];
                let mut frame = vec![0x06, 0x80, 0x00, 2 + data.len() as u8, 0x00, 0x00];
                frame.extend_from_slice(&data);
                let check = frame.iter().fold(0u8, |a, b| a ^ b);
                frame.push(check);
                Some(hartip_reply(request, &frame))
            }
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hartip_over_udp_is_read_when_enabled_and_left_alone_otherwise() {
    let server = udp_device("127.127.0.5:5094", hartip_server).await;
    let (_dir, ledger) = common::ledger("G-5,gaps,d,s,important,127.127.0.5,c\n");
    let findings = common::scan(&ledger, "5094/udp", &Default::default(), common::options()).await;
    assert!(findings.is_empty(), "hartip is opt-in: {findings:#?}");
    assert_eq!(server.requests(), 0, "nothing was sent without --enable-probe hartip");

    let mut enabled = common::options();
    enabled.probe.enabled = vec!["hartip".into()];
    let findings = common::scan(&ledger, "5094/udp", &Default::default(), enabled).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.transport.as_str()), ("hartip", "udp"));
    for (key, want) in [
        ("manufacturer_id", json!(0x6002)),
        ("expanded_device_type", json!(0xE1C2)),
        ("device_id", json!(0x0A_BCDE)),
        ("universal_command_revision", json!(7)),
        ("device_revision", json!(3)),
    ] {
        assert_eq!(f.attributes.get(key), Some(&want), "{key}: {f:#?}");
    }
    assert_eq!(server.requests(), 3, "session initiate, command 0, session close");
}
