//! CODESYS V2 runtimes simulated from the protocol facts: the identification query, both byte orders,
//! and devices that must not be taken for a runtime.

mod common;

use common::{always, echo, ledger, scan, scan_range, tcp_device, Handler};
use otscope::findings::Finding;
use serde_json::{json, Value};

const QUERY_LE: [u8; 7] = [0xbb, 0xbb, 0x01, 0x00, 0x00, 0x00, 0x01];
const QUERY_BE: [u8; 7] = [0xbb, 0xbb, 0x01, 0x00, 0x00, 0x01, 0x01];

/// An identification reply: magic, then OS name, OS type and product type in 32-byte fields at
/// offsets 64, 96 and 128, NUL-terminated.
fn reply(os_name: &str, os_type: &str, product: &str) -> Vec<u8> {
    let mut r = vec![0u8; 160];
    r[..2].copy_from_slice(&[0xbb, 0xbb]);
    for (at, s) in [(64, os_name), (96, os_type), (128, product)] {
        r[at..at + s.len()].copy_from_slice(s.as_bytes());
    }
    r
}

/// A runtime that answers only the query of its byte order and ignores everything else.
fn runtime(query: [u8; 7], answer: Vec<u8>) -> impl Fn() -> Handler + Send + Sync + 'static {
    move || {
        let answer = answer.clone();
        Box::new(move |req: &[u8]| (req == query).then(|| answer.clone()))
    }
}

async fn scan_one(ip: &str, port: u16) -> Finding {
    let mut findings = scan_range(ip, &port.to_string(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    findings.remove(0)
}

fn attributes(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_little_endian_runtime_is_identified() {
    let answer = reply("Nucleus PLUS", "Nucleus PLUS version unknown", "3S-Smart Software Solutions");
    let device = tcp_device("127.125.1.1:2455", runtime(QUERY_LE, answer)).await;
    let f = scan_one("127.125.1.1", 2455).await;
    assert_eq!((f.protocol.as_str(), f.ics), ("codesys", true));
    assert_eq!(
        common::attributes_with_rules(&f),
        attributes(json!({
            "os_name": "Nucleus PLUS",
            "os_type": "Nucleus PLUS version unknown",
            "product_type": "3S-Smart Software Solutions",
            "device_type": "PLC",
            "tags": ["plc", "codesys"],
        }))
    );
    assert!(device.connections() >= 1);
    let classified = (f.vendor.as_deref(), f.product.as_deref(), f.rule.as_deref());
    assert_eq!(classified, (Some("CODESYS"), Some("3S-Smart Software Solutions"), Some("codesys.runtime")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_endian_runtime_answers_the_second_query() {
    let answer = reply("VxWorks", "VxWorks 5.5", "Festo CPX-CEC");
    let _device = tcp_device("127.125.1.2:2455", runtime(QUERY_BE, answer)).await;
    let f = scan_one("127.125.1.2", 2455).await;
    assert_eq!((f.protocol.as_str(), f.ics), ("codesys", true));
    assert_eq!(
        common::attributes_with_rules(&f),
        attributes(
            json!({"os_name": "VxWorks", "os_type": "VxWorks 5.5", "product_type": "Festo CPX-CEC", "device_type": "PLC", "tags": ["plc", "codesys"]})
        )
    );
    assert_eq!((f.vendor.as_deref(), f.product.as_deref()), (Some("Festo"), Some("Festo CPX-CEC")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_runtime_on_port_1200_is_identified() {
    let answer = reply("Windows", "Windows CE 5.0", "ABB AC500");
    let _device = tcp_device("127.125.1.3:1200", runtime(QUERY_LE, answer)).await;
    let f = scan_one("127.125.1.3", 1200).await;
    assert_eq!(f.protocol, "codesys");
    assert_eq!(
        common::attributes_with_rules(&f),
        attributes(
            json!({"os_name": "Windows", "os_type": "Windows CE 5.0", "product_type": "ABB AC500", "device_type": "PLC", "tags": ["plc", "codesys"]})
        )
    );
    assert_eq!((f.vendor.as_deref(), f.rule.as_deref()), (Some("ABB"), Some("codesys.abb.ac500")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_garbage_and_truncated_devices_are_not_runtimes() {
    let _echo = tcp_device("127.125.1.10:2455", echo).await;
    let _garbage = tcp_device("127.125.1.11:2455", || always(b"\x00\x17garbage \xff\xfe")).await;
    let _truncated = tcp_device("127.125.1.12:2455", || {
        let mut sent = false;
        Box::new(move |_: &[u8]| {
            let first = !sent;
            sent = true;
            first.then(|| reply("Linux", "Linux 2.6", "WAGO")[..100].to_vec())
        })
    })
    .await;
    // A magic byte followed by binary junk where the strings belong.
    let _binary = tcp_device("127.125.1.13:2455", || {
        Box::new(|_: &[u8]| {
            let mut r: Vec<u8> = (0..160u32).map(|i| (i * 7 % 256) as u8).collect();
            r[0] = 0xbb;
            Some(r)
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.125.1.10-127.125.1.13,c\n");
    let findings = scan(&path, "2455", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 4, "{findings:#?}");
    for f in &findings {
        assert_eq!((f.protocol.as_str(), f.ics), ("unknown", false), "{f:#?}");
        assert!(f.attributes.get("os_name").is_none());
    }
}
