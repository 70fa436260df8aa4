//! Veeder-Root ATG: a simulated TLS-350 console on 10001/tcp and impostors, scanned end to end.
//! Every test also checks that no setting command (`<SOH>S...`) ever reached a device.

mod common;

use common::{ledger, scan, tcp_device, Handler};
use serde_json::json;
use std::sync::{Arc, Mutex};

const REPORT: &str = "\x01\r\nI20100\r\nMAR 18, 2024  3:41 PM\r\n\r\nQUICK STOP 1147\r\n1200 MAIN ST\r\nSPRINGFIELD IL 62701\r\n\r\n\r\nIN-TANK INVENTORY       \r\n\r\nTANK PRODUCT             VOLUME TC VOLUME   ULLAGE   HEIGHT    WATER     TEMP\r\n  1  UNLEADED              6344      6288     3679    52.34     0.00    61.20\r\n  2  PREMIUM               2183      2164     3819    28.91     0.00    60.85\r\n  3  DIESEL                4377      4351     5646    40.02     0.41    58.11\r\n  4  E85                   1022      1013     4978    18.62     0.00    60.02\r\n\r\n\x03";

/// All bytes a device received, across connections.
type Received = Arc<Mutex<Vec<Vec<u8>>>>;

fn recording(received: &Received, mut inner: impl FnMut(&[u8]) -> Option<Vec<u8>> + Send + 'static) -> Handler {
    let received = received.clone();
    Box::new(move |req: &[u8]| {
        received.lock().unwrap().push(req.to_vec());
        inner(req)
    })
}

/// A console in display format: `<SOH>` + function; known inquiries get their report, anything
/// else it cannot parse gets `<SOH>9999<ETX>`.
fn console(req: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(req);
    let cmd = text.strip_prefix('\x01')?.trim_end();
    Some(if cmd == "I20100" { REPORT.as_bytes().to_vec() } else { b"\x019999\x03".to_vec() })
}

fn assert_no_setting_command(received: &Received) {
    for chunk in received.lock().unwrap().iter() {
        assert!(!chunk.windows(2).any(|w| w == b"\x01S" || w == b"\x01s"), "a setting command was sent: {chunk:?}");
        assert!(!chunk.starts_with(b"S"), "{chunk:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tank_gauge_inventory_is_read() {
    let received: Received = Default::default();
    let r = received.clone();
    let _dev = tcp_device("127.126.2.1:10001", move || recording(&r, console)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.2.1,c\n");
    let findings = scan(&path, "10001", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("atg", true));
    assert_eq!(
        serde_json::Value::Object(f.attributes.clone()),
        json!({
            "station_name": "QUICK STOP 1147, 1200 MAIN ST, SPRINGFIELD IL 62701",
            "report": "IN-TANK INVENTORY",
            "tanks": 4,
            "products": ["UNLEADED", "PREMIUM", "DIESEL", "E85"],
        })
    );
    assert_eq!(*received.lock().unwrap(), vec![b"\x01I20100\n".to_vec()]);
    assert_no_setting_command(&received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_with_a_security_code_rejects_but_is_still_a_tank_gauge() {
    let received: Received = Default::default();
    let r = received.clone();
    let _dev = tcp_device("127.126.2.2:10001", move || recording(&r, |_| Some(b"\x019999\x03".to_vec()))).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.2.2,c\n");
    let findings = scan(&path, "10001", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].protocol, "atg");
    assert_eq!(serde_json::Value::Object(findings[0].attributes.clone()), json!({"exception_code": 9999}));
    assert_no_setting_command(&received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_and_garbage_are_not_tank_gauges() {
    let received: Received = Default::default();
    let (r1, r2, r3) = (received.clone(), received.clone(), received.clone());
    let _echo = tcp_device("127.126.2.3:10001", move || recording(&r1, |req| Some(req.to_vec()))).await;
    let _telnet =
        tcp_device("127.126.2.4:10001", move || recording(&r2, |_| Some(b"\xff\xfb\x01\xff\xfb\x03login: ".to_vec())))
            .await;
    // Echoes the command and stops: no report heading, no ETX.
    let _half = tcp_device("127.126.2.5:10001", move || {
        recording(&r3, |_| Some(b"\x01\r\nI20100\r\n01/01/2024 00:00\r\n\x03".to_vec()))
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.126.2.3-127.126.2.5,c\n");
    let findings = scan(&path, "10001", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        // Every reply is evidence: the telnet negotiation names a telnet server, not a tank gauge.
        let expected = if f.ip.to_string() == "127.126.2.4" { "telnet" } else { "unknown" };
        assert_eq!((f.protocol.as_str(), f.ics), (expected, false), "{f:#?}");
        assert!(f.attributes.get("station_name").is_none());
    }
    assert_no_setting_command(&received);
    assert!(!received.lock().unwrap().is_empty());
}
