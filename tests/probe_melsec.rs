//! MELSEC: simulated Q-series CPUs (MELSOFT on 5007/tcp and 5006/udp, MC protocol 3E) and
//! impostors, scanned end to end.

mod common;

use common::{always, echo, ledger, scan, tcp_device, udp_device, Handler};
use serde_json::json;

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// The MELSOFT "get CPU info" request a GX Works client sends (command 0101 at 33-34).
fn is_melsoft_cpu_info(req: &[u8]) -> bool {
    req.len() >= 21
        && req[..2] == [0x57, 0x00]
        && req.len() == 21 + u16::from_le_bytes([req[19], req[20]]) as usize
        && req.get(33..35) == Some(&[0x01, 0x01][..])
}

/// A real Q03UDECPU's reply to that request.
fn q03ude_melsoft_reply() -> Vec<u8> {
    hex("d700c80000111107000000e40300ffff03000038009c000c08000000001004000000000101010000005130335544454350552020202020202068020008baba081020210316002002000101e802")
}

/// A MELSOFT-speaking CPU: answers the CPU info request, ignores anything else (as CPUs drop
/// frames they cannot parse).
fn melsoft_cpu() -> Handler {
    Box::new(|req: &[u8]| is_melsoft_cpu_info(req).then(q03ude_melsoft_reply))
}

/// An MC protocol (3E binary) port: answers command 0101 with the model name, stays silent on
/// anything that is not a 3E request.
fn mc3e_cpu() -> Handler {
    Box::new(|req: &[u8]| {
        if req.len() < 15 || req[..2] != [0x50, 0x00] {
            return None;
        }
        let len = u16::from_le_bytes([req[7], req[8]]) as usize;
        if req.len() != 9 + len || req[11..15] != [0x01, 0x01, 0x00, 0x00] {
            return None;
        }
        let mut data = b"L02CPU          ".to_vec();
        data.extend_from_slice(&0x0541u16.to_le_bytes());
        let mut r = vec![0xd0, 0x00];
        r.extend_from_slice(&req[2..7]); // network, PC, I/O, station as addressed
        r.extend_from_slice(&((2 + data.len()) as u16).to_le_bytes());
        r.extend_from_slice(&[0x00, 0x00]); // end code: success
        r.extend_from_slice(&data);
        Some(r)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn melsoft_cpu_on_tcp_is_identified() {
    let dev = tcp_device("127.126.0.1:5007", melsoft_cpu).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.0.1,c\n");
    let findings = scan(&path, "5007", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("melsec", true));
    assert_eq!(
        serde_json::Value::Object(f.attributes.clone()),
        json!({"frame": "melsoft", "cpu_model": "Q03UDECPU", "cpu_model_code": 0x0268})
    );
    assert!(dev.connections() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mc3e_port_is_identified_after_melsoft_gets_no_answer() {
    let _dev = tcp_device("127.126.0.2:5007", mc3e_cpu).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.0.2,c\n");
    let findings = scan(&path, "5007", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("melsec", true));
    assert_eq!(
        serde_json::Value::Object(f.attributes.clone()),
        json!({"frame": "mc3e", "cpu_model": "L02CPU", "cpu_model_code": 0x0541})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn melsoft_cpu_on_udp_is_identified() {
    let _dev = udp_device("127.126.0.3:5006", melsoft_cpu).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.0.3,c\n");
    let findings = scan(&path, "5006/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.transport.as_str()), ("melsec", "udp"));
    assert_eq!(f.attributes["cpu_model"], json!("Q03UDECPU"));
    assert_eq!(f.attributes["cpu_model_code"], json!(616));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_and_garbage_are_not_melsec() {
    let _echo = tcp_device("127.126.0.4:5007", echo).await;
    // Starts like a MELSOFT reply, but the length lies and no model follows.
    let _liar = tcp_device("127.126.0.5:5007", || {
        Box::new(|_: &[u8]| Some(hex("d700 0000 0000000000000000000000000000 1000 00000000")))
    })
    .await;
    let _noise = tcp_device("127.126.0.6:5007", || always(b"\xd0\x00garbage!")).await;
    let _udp_echo = udp_device("127.126.0.7:5006", echo).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.0.4-127.126.0.7,c\n");
    let findings = scan(&path, "5007,5006/udp", &Default::default(), common::options()).await;
    // UDP peers whose replies validate as nothing are open: `unknown`, with their evidence.
    let (udp, findings): (Vec<_>, Vec<_>) = findings.into_iter().partition(|f| f.transport.as_str() == "udp");
    assert!(udp.iter().all(|f| f.protocol == "unknown" && !f.ics && !f.evidence.is_empty()), "{udp:#?}");
    assert_eq!(udp.len(), 1, "{udp:#?}");
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        assert_eq!(f.protocol, "unknown", "{f:#?}");
        assert_eq!(f.transport.as_str(), "tcp");
        assert!(f.attributes.get("cpu_model").is_none());
    }
}
