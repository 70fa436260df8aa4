//! MQTT brokers simulated from the 3.1.1 specification (OASIS, 2014) byte by byte: one that accepts
//! anonymous clients, one that refuses them (return code 5), an old 3.1-only broker, one inside TLS on
//! 8883, and peers that are not MQTT.

mod common;

use common::{always, device, echo, ledger, scan, tcp_device, Handler, Session};
use otscope_lab::tls::Identity;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// A CONNECT as the broker parses it: (protocol name, level, flags, keep-alive, client id).
type Connect = (String, u8, u8, u16, String);

/// Parses a CONNECT packet per section 3.1; None when it is not one.
fn parse_connect(p: &[u8]) -> Option<Connect> {
    if *p.first()? != 0x10 {
        return None;
    }
    // Remaining length: variable byte integer (section 2.2.3).
    let (mut len, mut i) = (0usize, 1usize);
    for shift in 0..4 {
        let b = *p.get(i)?;
        len |= ((b & 0x7F) as usize) << (7 * shift);
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    if p.len() != i + len {
        return None;
    }
    let str16 = |at: usize| -> Option<(String, usize)> {
        let n = u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]) as usize;
        Some((String::from_utf8(p.get(at + 2..at + 2 + n)?.to_vec()).ok()?, at + 2 + n))
    };
    let (name, at) = str16(i)?;
    let level = *p.get(at)?;
    let flags = *p.get(at + 1)?;
    let keep_alive = u16::from_be_bytes([*p.get(at + 2)?, *p.get(at + 3)?]);
    let (id, end) = str16(at + 4)?;
    // No will, user name or password flags, so the payload is the client id alone.
    (end == p.len()).then_some((name, level, flags, keep_alive, id))
}

/// A broker that answers a valid CONNECT with `code` (when `accept(level)`) or 1 otherwise, and logs packets.
fn broker(log: Arc<Mutex<Vec<String>>>, code: u8, accept: fn(u8) -> bool) -> Handler {
    Box::new(move |p: &[u8]| {
        if p == [0xE0, 0x00] {
            log.lock().unwrap().push("DISCONNECT".into());
            return None;
        }
        let Some((name, level, flags, keep_alive, id)) = parse_connect(p) else {
            log.lock().unwrap().push(format!("bad {p:02x?}"));
            return None;
        };
        let valid_name = (name == "MQTT" && level == 4) || (name == "MQIsdp" && level == 3);
        let id_ok = id.starts_with("otscope") && !id.is_empty() && id.len() <= 23;
        log.lock()
            .unwrap()
            .push(format!("CONNECT {name} {level} {flags:#04x} {keep_alive} {}", &id[..8.min(id.len())]));
        if !valid_name || flags != 0x02 || !id_ok {
            return Some(vec![0x20, 0x02, 0x00, 0x02]);
        }
        Some(vec![0x20, 0x02, 0x00, if accept(level) { code } else { 0x01 }])
    })
}

async fn settled(log: &Arc<Mutex<Vec<String>>>, entries: usize) -> Vec<String> {
    for _ in 0..50 {
        if log.lock().unwrap().len() >= entries {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    log.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_accepting_broker_is_high() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let _dev = tcp_device("127.123.1.1:1883", move || broker(l.clone(), 0, |_| true)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.1.1,c\n");
    let findings = scan(&path, "1883", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("mqtt", false));
    assert_eq!(
        common::attributes_with_rules(f),
        json!({"return_code": 0, "anonymous": true, "session_present": false, "protocol_level": 4,
               "device_type": "MQTT broker", "tags": ["iiot"]})
        .as_object()
        .unwrap()
        .clone()
    );
    assert_eq!(f.severity.as_str(), "high");
    assert_eq!(f.evidence, "20020000");
    assert_eq!(
        (f.rule.as_deref(), f.vendor.as_deref()),
        (Some("mqtt.generic"), None),
        "brokers do not name themselves"
    );
    assert_eq!(settled(&log, 2).await, ["CONNECT MQTT 4 0x02 30 otscope-", "DISCONNECT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_refusing_anonymous_clients_is_low() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let _dev = tcp_device("127.123.1.2:1883", move || broker(l.clone(), 5, |_| true)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.1.2,c\n");
    let findings = scan(&path, "1883", &Default::default(), common::options()).await;
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("mqtt", false));
    assert_eq!(
        common::attributes_with_rules(f),
        json!({"return_code": 5, "anonymous": false, "session_present": false, "protocol_level": 4,
               "device_type": "MQTT broker", "tags": ["iiot"]})
        .as_object()
        .unwrap()
        .clone()
    );
    assert_eq!(f.severity.as_str(), "low");
    assert_eq!(settled(&log, 1).await, ["CONNECT MQTT 4 0x02 30 otscope-"], "no DISCONNECT after a refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_3_1_broker_gets_a_retry_at_level_5_then_with_mqisdp() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let _dev = tcp_device("127.123.1.3:1883", move || broker(l.clone(), 0, |level| level == 3)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.1.3,c\n");
    let findings = scan(&path, "1883", &Default::default(), common::options()).await;
    let f = &findings[0];
    assert_eq!(f.protocol, "mqtt");
    assert_eq!(f.attributes["return_code"], json!(0));
    assert_eq!(f.attributes["anonymous"], json!(true));
    assert_eq!(f.attributes["protocol_level"], json!(3));
    // An unacceptable protocol version gets MQTT 5 first (which this 3.x broker cannot parse and
    // leaves unanswered: level 5, clean start, keep-alive 30, no properties), then 3.1.
    let log = settled(&log, 4).await;
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log[0], "CONNECT MQTT 4 0x02 30 otscope-");
    assert!(log[1].starts_with("bad [10, 1d, 00, 04, 4d, 51, 54, 54, 05, 02, 00, 1e, 00, 00, 10,"), "{log:?}");
    assert_eq!(log[2..], ["CONNECT MQIsdp 3 0x02 30 otscope-", "DISCONNECT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_echo_are_not_mqtt() {
    let _junk = tcp_device("127.123.1.4:1883", || always(b"\x20\x05garbage!")).await;
    let _echo = tcp_device("127.123.1.5:1883", echo).await;
    let _text = tcp_device("127.123.1.6:1883", || always(b"ERROR unknown command\r\n")).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.1.4-127.123.1.6,c\n");
    let findings = scan(&path, "1883", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        assert_eq!(f.protocol, "unknown", "{f:#?}");
        assert!(!f.attributes.contains_key("anonymous"));
    }
}

// --- MQTT over TLS (8883) ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_inside_tls_on_8883() {
    let log = Arc::new(Mutex::new(Vec::new()));
    // The same broker conversation inside TLS, with open62541's test certificate.
    let l = log.clone();
    let _dev =
        device("127.123.1.7:8883", Session::tls(Identity::open62541()), move || broker(l.clone(), 0, |_| true)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.1.7,c\n");
    let findings = scan(&path, "8883", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("mqtt", false));
    assert_eq!(f.attributes["anonymous"], json!(true));
    assert_eq!(f.attributes["return_code"], json!(0));
    assert_eq!(f.attributes["tls"]["subject"], json!("C=DE, L=Here, O=open62541, CN=open62541Server@localhost"));
    assert_eq!(f.severity.as_str(), "high");
    assert_eq!(settled(&log, 2).await, ["CONNECT MQTT 4 0x02 30 otscope-", "DISCONNECT"]);
}
