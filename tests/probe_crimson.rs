//! Red Lion Crimson v3 panels simulated from the protocol facts: the manufacturer and model reads, and
//! devices that must not be taken for a panel.

mod common;

use common::{echo, scan_range, tcp_device, Handler};
use serde_json::json;

const MANUFACTURER_READ: [u8; 6] = [0x00, 0x04, 0x01, 0x2b, 0x1b, 0x00];
const MODEL_READ: [u8; 6] = [0x00, 0x04, 0x01, 0x2a, 0x1a, 0x00];

/// A string reply: length (big-endian, bytes after it), the register read, type 03 00, the string.
fn string_reply(register: &[u8], s: &str) -> Vec<u8> {
    let mut data = s.as_bytes().to_vec();
    data.push(0);
    let mut r = ((4 + data.len()) as u16).to_be_bytes().to_vec();
    r.extend_from_slice(register);
    r.extend_from_slice(&[0x03, 0x00]);
    r.extend_from_slice(&data);
    r
}

/// A panel answering the two identity reads; anything else is ignored.
fn panel(manufacturer: &'static str, model: &'static str) -> impl Fn() -> Handler + Send + Sync + 'static {
    move || {
        Box::new(move |req: &[u8]| match req {
            r if r == MANUFACTURER_READ => Some(string_reply(&r[2..4], manufacturer)),
            r if r == MODEL_READ => Some(string_reply(&r[2..4], model)),
            _ => None,
        })
    }
}

/// The port to test on: Crimson's own (789) when this process may bind it; otherwise a high port
/// scanned with `--deep`, so that the probe is still tried.
fn test_port() -> (u16, otscope::pipeline::ScanOptions) {
    // Decided once per test binary: the tests run in parallel and would race for the trial bind.
    static PORT: std::sync::OnceLock<(u16, bool)> = std::sync::OnceLock::new();
    let (port, deep) = *PORT.get_or_init(|| match std::net::TcpListener::bind("127.125.5.250:789") {
        Ok(_) => (789, false),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => (7890, true),
        Err(e) => panic!("bind 127.125.5.250:789: {e}"),
    });
    (port, if deep { common::deep() } else { common::options() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panel_reports_its_manufacturer_and_model() {
    let (port, extra) = test_port();
    let _device = tcp_device(&format!("127.125.5.1:{port}"), panel("Red Lion Controls", "G310C2")).await;
    let findings = scan_range("127.125.5.1", &port.to_string(), extra).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("crimson", true));
    let expected = json!({
        "manufacturer": "Red Lion Controls",
        "model": "G310C2",
        "device_type": "HMI",
        "tags": ["hmi", "crimson"],
    });
    assert_eq!(common::attributes_with_rules(f), *expected.as_object().unwrap());
    assert_eq!((f.vendor.as_deref(), f.product.as_deref()), (Some("Red Lion Controls"), Some("G3 HMI G310C2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_garbage_and_wrong_register_devices_are_not_panels() {
    let (port, extra) = test_port();
    let _echo = tcp_device(&format!("127.125.5.10:{port}"), echo).await;
    let _garbage = tcp_device(&format!("127.125.5.11:{port}"), || {
        Box::new(|_: &[u8]| Some(b"\x00\x09\xff\xfe\xfd\xfc\xfb\xfa\x00\x00\x00".to_vec()))
    })
    .await;
    // A well-formed string reply, but on a register that was not read.
    let _wrong = tcp_device(&format!("127.125.5.12:{port}"), || {
        Box::new(|_: &[u8]| Some(string_reply(&[0x01, 0x00], "Red Lion Controls")))
    })
    .await;
    let findings = scan_range("127.125.5.10-127.125.5.12", &port.to_string(), extra).await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        assert_ne!(f.protocol, "crimson", "{f:#?}");
        assert!(!f.ics, "{f:#?}");
    }
}
