//! HART-IP: a simulated HART-IP server (a Phoenix Contact gateway answering command 0) and
//! impostors, scanned end to end.

mod common;

use common::{always, echo, ledger, scan, tcp_device, Handler};
use serde_json::json;
use std::sync::{Arc, Mutex};

fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

fn reply_header(req: &[u8], status: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![req[0], 1, req[2], status, req[4], req[5]];
    r.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// A HART-IP server per the spec: a session must be initiated (primary host, 5-byte body) before
/// token-passing PDUs are answered; command 0 to polling address 0 returns the identity; a session
/// close is acknowledged. Messages it does not understand get no answer. Every message received is
/// logged (message id, in order).
fn hartip_server(log: Arc<Mutex<Vec<u8>>>) -> Handler {
    let mut open = false;
    Box::new(move |req: &[u8]| {
        if req.len() < 8 || req[0] != 1 || req[1] != 0 {
            return None;
        }
        if u16::from_be_bytes([req[6], req[7]]) as usize != req.len() {
            return None;
        }
        log.lock().unwrap().push(req[2]);
        match req[2] {
            0 if req.len() == 13 && req[8] == 1 => {
                open = true;
                Some(reply_header(req, 0, &req[8..13]))
            }
            1 if open => {
                open = false;
                Some(reply_header(req, 0, &[]))
            }
            3 if open => {
                let pdu = &req[8..];
                // Short frame STX to polling address 0, command 0, no data, valid check byte.
                if pdu.len() != 5 || pdu[0] != 0x02 || pdu[1] & 0x3f != 0 || pdu[2] != 0 || pdu[3] != 0 {
                    return None;
                }
                if xor(&pdu[..4]) != pdu[4] {
                    return None;
                }
                let data = [
                    254,
                    0xb0,
                    0x13, // expanded device type B013 (GW PL ETH/UNI-BUS)
                    5,
                    7,
                    1,
                    1,            // request preambles, HART 7, device revision 1, software revision 1
                    (2 << 3) | 6, // hardware revision 2, physical signalling: special (Ethernet)
                    0x00,
                    0xdd,
                    0x4e,
                    0xe3, // flags, device id
                    5,
                    0,
                    0x00,
                    0x03,
                    0x00, // response preambles, max device variables, change counter, ext status
                    0x00,
                    0xb0, // manufacturer: Phoenix Contact (176)
                    0x00,
                    0xb0, // private label distributor
                    0x00, // device profile
                ];
                let mut frame = vec![0x06, pdu[1], 0x00, (data.len() + 2) as u8, 0x00, 0x00];
                frame.extend_from_slice(&data);
                frame.push(xor(&frame));
                Some(reply_header(req, 0, &frame))
            }
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hartip_gateway_is_identified_and_the_session_closed() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let _dev = tcp_device("127.126.1.1:5094", move || hartip_server(l.clone())).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.1.1,c\n");
    let findings = scan(&path, "5094", &Default::default(), {
        let mut o = common::options();
        o.probe.enabled = vec!["hartip".into()];
        o
    })
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("hartip", true));
    assert_eq!(
        serde_json::Value::Object(f.attributes.clone()),
        json!({
            "hartip_version": 1,
            "manufacturer_id": 176,
            "expanded_device_type": 0xb013,
            "device_revision": 1,
            "software_revision": 1,
            "hardware_revision": 2,
            "device_id": 0xdd4ee3,
            "universal_command_revision": 7,
            "private_label_distributor": 176,
        })
    );
    // Session initiate, token-passing PDU (command 0), session close: nothing else.
    assert_eq!(*log.lock().unwrap(), vec![0, 3, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_is_still_hartip() {
    let _dev = tcp_device("127.126.1.2:5094", || {
        Box::new(|req: &[u8]| (req.len() == 13 && req[2] == 0).then(|| reply_header(req, 15, &req[8..13])))
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.1.2,c\n");
    let findings = scan(&path, "5094", &Default::default(), {
        let mut o = common::options();
        o.probe.enabled = vec!["hartip".into()];
        o
    })
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].protocol, "hartip");
    assert_eq!(
        serde_json::Value::Object(findings[0].attributes.clone()),
        json!({"hartip_version": 1, "session_status": 15})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_and_garbage_are_not_hartip() {
    let _echo = tcp_device("127.126.1.3:5094", echo).await;
    let _http = tcp_device("127.126.1.4:5094", || always(b"HTTP/1.0 400 Bad Request\r\n\r\n")).await;
    // A response header whose sequence number is not ours.
    let _stranger = tcp_device("127.126.1.5:5094", || {
        Box::new(|req: &[u8]| {
            let mut r = reply_header(req, 0, req.get(8..).unwrap_or(&[]));
            r[5] ^= 0x55;
            Some(r)
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.1.3-127.126.1.5,c\n");
    let findings = scan(&path, "5094", &Default::default(), {
        let mut o = common::options();
        o.probe.enabled = vec!["hartip".into()];
        o
    })
    .await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        // Every reply is evidence: the 400 page names a web server, the rest stay unknown.
        let expected = if f.ip.to_string() == "127.126.1.4" { "http" } else { "unknown" };
        assert_eq!((f.protocol.as_str(), f.ics), (expected, false), "{f:#?}");
        assert!(f.attributes.get("manufacturer_id").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hartip_is_opt_in_even_with_deep() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let _dev = tcp_device("127.126.1.9:5094", move || hartip_server(l.clone())).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.1.9,c\n");
    for options in [common::options(), common::deep()] {
        let findings = scan(&path, "5094", &Default::default(), options).await;
        assert!(findings.iter().all(|f| f.protocol != "hartip"), "{findings:#?}");
    }
    assert!(log.lock().unwrap().is_empty(), "no HART-IP session initiate may be sent unless enabled");
}
