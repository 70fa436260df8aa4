//! S7comm-plus on port 102 against simulated S7-1200/1500 CPUs built from the protocol layout:
//! TPKT, COTP class 0, and 0x72 frames (CreateObject / InitSsl responses).

mod common;

use common::{ledger, scan, tcp_device, Handler};
use otscope_lab::iso::{self, cotp, tsaps};
use serde_json::json;

/// The CPU's COTP references.
const DST_REF: u16 = 0x0002;
const SRC_REF: u16 = 0x0007;

fn cc(calling: &[u8], called: &[u8]) -> Vec<u8> {
    iso::connection_confirm(DST_REF, SRC_REF, &[iso::TPDU_SIZE_1024, (0xC1, calling), (0xC2, called)])
}

fn dr() -> Vec<u8> {
    iso::disconnect_request(DST_REF, SRC_REF, 0x80)
}

/// (function, sequence number) of a 0x72 V1 request.
fn plus_request(p: &[u8]) -> Option<(u16, u16)> {
    (p.len() >= 18 && p[0] == 0x72 && p[1] == 0x01 && p[4] == 0x31)
        .then(|| (u16::from_be_bytes([p[7], p[8]]), u16::from_be_bytes([p[11], p[12]])))
}

fn frame(data: &[u8]) -> Vec<u8> {
    let mut pdu = vec![0x72, 0x01];
    pdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
    pdu.extend_from_slice(data);
    pdu.extend_from_slice(&[0x72, 0x01, 0x00, 0x00]);
    pdu
}

fn response_head(function: u16, seq: u16) -> Vec<u8> {
    let mut d = vec![0x32, 0x00, 0x00];
    d.extend_from_slice(&function.to_be_bytes());
    d.extend_from_slice(&[0x00, 0x00]);
    d.extend_from_slice(&seq.to_be_bytes());
    d.push(0x00); // transport flags
    d.push(0x00); // return value: VLQ 0
    d
}

/// A CreateObject response: two object ids (VLQ), the ServerSession object (0xA1, relation id,
/// class 287 as VLQ 82 1F, flags, attribute id), attribute 306 (82 32) ServerSessionVersion as a
/// struct (flags 00, type 17) 314 (82 3A) with element 315 (82 3B, UDInt 1) and the PAOM strings
/// 319 (82 3F) and 320 (82 40) as WStrings (type 15), then 0xA2 and the fill bytes.
fn create_object_response(seq: u16, paom: &str) -> Vec<u8> {
    let mut d = response_head(0x04CA, seq);
    d.extend_from_slice(&[0x02, 0x87, 0x33, 0x87, 0x34]);
    d.extend_from_slice(&[0xA1, 0x00, 0x00, 0x03, 0xB3, 0x82, 0x1F, 0x00, 0x00]);
    d.extend_from_slice(&[0xA3, 0x82, 0x32, 0x00, 0x17, 0x82, 0x3A]);
    d.extend_from_slice(&[0x82, 0x3B, 0x00, 0x04, 0x01]);
    d.extend_from_slice(&[0x82, 0x3F, 0x00, 0x15, paom.len() as u8]);
    d.extend_from_slice(paom.as_bytes());
    d.extend_from_slice(&[0x82, 0x40, 0x00, 0x15, 0x08]);
    d.extend_from_slice(b"2;811810");
    d.extend_from_slice(&[0x00, 0xA2, 0x00, 0x00, 0x00, 0x00]);
    iso::data(&frame(&d))
}

fn init_ssl_response(seq: u16) -> Vec<u8> {
    let mut d = response_head(0x05B3, seq);
    d.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]);
    iso::data(&frame(&d))
}

/// An S7-1500 CPU 1516-3 PN/DP: confirms any COTP connection, hangs up (DR) on classic S7 and
/// answers the S7comm-plus session request.
fn s7_1500() -> Handler {
    Box::new(|req: &[u8]| {
        if let Some((calling, called)) = cotp(req).and_then(tsaps) {
            return Some(cc(&calling, &called));
        }
        let payload = iso::data_payload(req)?;
        if payload.first() == Some(&0x32) {
            return Some(dr());
        }
        match plus_request(payload)? {
            (0x04CA, seq) => Some(create_object_response(seq, "1;6ES7 516-3AN01-0AB0 ;V2.6")),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_refusing_classic_s7_is_identified_as_s7commplus() {
    let cpu = tcp_device("127.121.1.1:102", s7_1500).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.1.1,c\n");
    let findings = scan(&path, "102", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("s7commplus", true), "{f:#?}");
    let a = &f.attributes;
    assert_eq!(a["calling_tsap"], json!(0x0600));
    assert_eq!(a["called_tsap"], json!("SIMATIC-ROOT-HMI"));
    assert_eq!(a["protocol_version"], json!(1));
    assert_eq!(a["return_value"], json!(0));
    assert_eq!(a["version_string"], json!("1;6ES7 516-3AN01-0AB0 ;V2.6"));
    assert_eq!(a["order_number"], json!("6ES7 516-3AN01-0AB0"));
    assert_eq!(a["firmware_version"], json!("V2.6"));
    assert!(cpu.connections() >= 2, "s7comm tried first, then s7commplus");
    assert_eq!(f.vendor.as_deref(), Some("Siemens"));
    assert_eq!(f.product.as_deref(), Some("SIMATIC S7-1500 CPU 1516"));
    assert_eq!(f.version.as_deref(), Some("V2.6"));
}

/// Firmware that hangs up on an unencrypted CreateObject still answers InitSsl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_ssl_proves_the_protocol_when_create_object_is_refused() {
    let _cpu = tcp_device("127.121.1.2:102", || {
        Box::new(|req: &[u8]| {
            if let Some((calling, called)) = cotp(req).and_then(tsaps) {
                return Some(if called == b"SIMATIC-ROOT-HMI" { cc(&calling, &called) } else { dr() });
            }
            match plus_request(iso::data_payload(req)?)? {
                (0x05B3, seq) => Some(init_ssl_response(seq)),
                _ => Some(dr()),
            }
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.1.2,c\n");
    let findings = scan(&path, "102", &Default::default(), common::options()).await;
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("s7commplus", true), "{f:#?}");
    assert_eq!(f.attributes["protocol_version"], json!(1));
    assert!(!f.attributes.contains_key("order_number"));
}

/// After a COTP confirm: an echo of every data request, and a server that answers 0x72 requests
/// with a classic S7 PDU. Neither is S7comm-plus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_and_classic_answers_are_not_s7commplus() {
    let _echo = tcp_device("127.121.1.10:102", || {
        Box::new(|req: &[u8]| match cotp(req).and_then(tsaps) {
            Some((calling, called)) => Some(cc(&calling, &called)),
            None => Some(req.to_vec()),
        })
    })
    .await;
    let _classic = tcp_device("127.121.1.11:102", || {
        Box::new(|req: &[u8]| {
            if let Some((calling, called)) = cotp(req).and_then(tsaps) {
                return Some(cc(&calling, &called));
            }
            iso::data_payload(req)?;
            // ACK with error class 0x85 (not the answer to any S7 job we sent: wrong PDU reference).
            Some(iso::data(&[0x32, 0x02, 0x00, 0x00, 0x7F, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x85, 0x00]))
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.1.10-127.121.1.11,c\n");
    let findings = scan(&path, "102", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 2, "{findings:#?}");
    for f in &findings {
        assert_eq!(f.protocol, "unknown", "{f:#?}");
    }
}
