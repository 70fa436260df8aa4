//! IEC 60870-5-104 identification against simulated controlled stations built from IEC 60870-5-104
//! clause 5: TESTFR act is answered by TESTFR con; echoes and other frames are not proof.

mod common;

use common::{always, assert_unidentified, echo, ledger, scan, tcp_device, Handler};
use serde_json::json;
use std::sync::{Arc, Mutex};

const TESTFR_CON: [u8; 6] = [0x68, 0x04, 0x83, 0x00, 0x00, 0x00];
const STARTDT_CON: [u8; 6] = [0x68, 0x04, 0x0B, 0x00, 0x00, 0x00];

/// A controlled station in the stopped state: it answers TESTFR act and STARTDT/STOPDT act with the
/// matching con, and parses the stream APDU by APDU.
fn station(seen: Arc<Mutex<Vec<u8>>>, before_con: &'static [u8]) -> Handler {
    Box::new(move |bytes: &[u8]| {
        let mut out = Vec::new();
        let mut rest = bytes;
        while rest.len() >= 6 && rest[0] == 0x68 && rest[1] >= 4 && rest.len() >= 2 + rest[1] as usize {
            let (apdu, tail) = rest.split_at(2 + rest[1] as usize);
            rest = tail;
            seen.lock().unwrap().push(apdu[2]);
            match apdu[2..] {
                [0x43, 0, 0, 0] => {
                    out.extend_from_slice(before_con);
                    out.extend_from_slice(&TESTFR_CON);
                }
                [0x07, 0, 0, 0] => out.extend_from_slice(&STARTDT_CON),
                [0x13, 0, 0, 0] => out.extend_from_slice(&[0x68, 0x04, 0x23, 0x00, 0x00, 0x00]),
                _ => {}
            }
        }
        (!out.is_empty()).then_some(out)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_answers_testfr_act_with_testfr_con() {
    let seen: Arc<Mutex<Vec<u8>>> = Default::default();
    let s = seen.clone();
    let _r = tcp_device("127.120.3.1:2404", move || station(s.clone(), &[])).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.3.1,c\n");
    let findings = scan(&path, "2404", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics, f.port), ("iec104", true, 2404));
    assert_eq!(
        common::attributes_with_rules(f),
        json!({"testfr": "con", "device_type": "IEC 104 controlled station", "tags": ["telecontrol"]})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(f.evidence, hex::encode(TESTFR_CON));
    assert_eq!((f.vendor.as_deref(), f.rule.as_deref()), (None, Some("iec104.controlled_station")));
    // Only TESTFR act was sent: never STARTDT.
    assert_eq!(*seen.lock().unwrap(), [0x43]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_before_the_confirmation_are_skipped() {
    // A non-conforming station that pushes an S-frame and an I-frame (M_EI_NA_1) before TESTFR con.
    const NOISE: &[u8] = &[
        0x68, 0x04, 0x01, 0x00, 0x00, 0x00, // S-frame
        0x68, 0x0E, 0x00, 0x00, 0x00, 0x00, 0x46, 0x01, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let _r = tcp_device("127.120.3.2:2404", || station(Default::default(), NOISE)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.3.2,c\n");
    let findings = scan(&path, "2404", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].protocol, "iec104");
    assert_eq!(
        common::attributes_with_rules(&findings[0]),
        json!({"testfr": "con", "device_type": "IEC 104 controlled station", "tags": ["telecontrol"]})
            .as_object()
            .unwrap()
            .clone()
    );
}

async fn not_iec104(addr: &str, make: impl Fn() -> Handler + Send + Sync + 'static) {
    assert_unidentified(addr, 2404, make, "testfr").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_of_testfr_act_is_not_a_confirmation() {
    not_iec104("127.120.3.10", echo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_server_is_not_iec104() {
    // Every reply is evidence: the greeting names an SSH server, never IEC 104.
    let _r = tcp_device("127.120.3.11:2404", || always(b"SSH-2.0-dropbear\r\n")).await;
    let findings = common::scan_range("127.120.3.11", "2404", common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!((findings[0].protocol.as_str(), findings[0].ics), ("ssh", false), "{findings:#?}");
    assert!(!findings[0].attributes.contains_key("testfr"), "{findings:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_startdt_con_out_of_the_blue_does_not_answer_testfr() {
    not_iec104("127.120.3.12", || Box::new(|_: &[u8]| Some(STARTDT_CON.to_vec()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_confirmation_is_not_iec104() {
    // TESTFR con with a non-zero control octet 3, then a frame whose length octet lies.
    not_iec104("127.120.3.13", || Box::new(|_: &[u8]| Some(vec![0x68, 0x04, 0x83, 0x00, 0x01, 0x00]))).await;
    not_iec104("127.120.3.14", || Box::new(|_: &[u8]| Some(vec![0x68, 0x02, 0x83, 0x00]))).await;
}
