//! Moxa NPort: a simulated NPort 5110 on 4800/udp and impostors, scanned end to end.

mod common;

use common::{always, echo, ledger, scan, udp_device, Handler};
use serde_json::json;

/// Device id of the simulated NPort: product line, model 0x5110 (LE), MAC 00:90:e8:2c:a8:59.
const DEVICE_ID: [u8; 12] = [0x10, 0x51, 0x00, 0x80, 0x10, 0x51, 0x00, 0x90, 0xe8, 0x2c, 0xa8, 0x59];

/// An NPort: answers the search (01) with its device id and IP, and the server name request (10)
/// for its own device id; ignores requests for other device ids and anything malformed.
fn nport() -> Handler {
    Box::new(|req: &[u8]| {
        if req.len() < 8 || u16::from_be_bytes([req[2], req[3]]) as usize != req.len() {
            return None;
        }
        let reply = |cmd: u8, payload: &[u8]| {
            let mut r = vec![cmd | 0x80, 0x00];
            r.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            r.extend_from_slice(&req[4..8]);
            r.extend_from_slice(payload);
            r
        };
        match req[0] {
            0x01 if req.len() == 8 => {
                let mut p = DEVICE_ID.to_vec();
                p.extend_from_slice(&[192, 168, 127, 254]);
                Some(reply(0x01, &p))
            }
            0x10 if req.len() == 20 && req[8..20] == DEVICE_ID => {
                let mut p = DEVICE_ID.to_vec();
                let mut name = b"NP5110_2439".to_vec();
                name.resize(40, 0);
                p.extend_from_slice(&name);
                Some(reply(0x10, &p))
            }
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nport_is_identified() {
    let _dev = udp_device("127.126.3.1:4800", nport).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.3.1,c\n");
    let findings = scan(&path, "4800/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics, f.transport.as_str()), ("moxa_nport", true, "udp"));
    assert_eq!(
        serde_json::Value::Object(f.attributes.clone()),
        json!({
            "model_id": 0x5110,
            "mac": "00:90:e8:2c:a8:59",
            "ip_address": "192.168.127.254",
            "server_name": "NP5110_2439",
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_and_garbage_are_not_moxa() {
    let _echo = udp_device("127.126.3.2:4800", echo).await;
    let _noise = udp_device("127.126.3.3:4800", || always(b"\x81\x00\x00\x40short and lying")).await;
    let _bad_status = udp_device("127.126.3.4:4800", || {
        Box::new(|_: &[u8]| {
            let mut r = vec![0x81, 0x04, 0x00, 0x18, 0, 0, 0, 0];
            r.extend_from_slice(&DEVICE_ID);
            r.extend_from_slice(&[10, 0, 0, 1]);
            Some(r)
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.3.2-127.126.3.4,c\n");
    let findings = scan(&path, "4800/udp", &Default::default(), common::options()).await;
    // UDP peers whose replies validate as nothing are open: `unknown`, with their evidence.
    let (udp, findings): (Vec<_>, Vec<_>) = findings.into_iter().partition(|f| f.transport.as_str() == "udp");
    assert!(udp.iter().all(|f| f.protocol == "unknown" && !f.ics && !f.evidence.is_empty()), "{udp:#?}");
    assert_eq!(udp.len(), 3, "{udp:#?}");
    assert!(findings.is_empty(), "{findings:#?}");
}
