//! Phoenix Contact PC WORX controllers simulated from the protocol facts: session setup, information
//! read, and devices that must not be taken for a controller.

mod common;

use common::{always, echo, scan_range, tcp_device, Handler};
use serde_json::json;

/// The session id this simulated controller assigns.
const SESSION_ID: u8 = 0x4c;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// A reply: `81`, service, total length (big-endian), the request's sequence, then `body`.
fn reply(service: u8, sequence: u16, body: &[u8]) -> Vec<u8> {
    let mut r = vec![0x81, service];
    r.extend_from_slice(&((6 + body.len()) as u16).to_be_bytes());
    r.extend_from_slice(&sequence.to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// The device-information reply body: strings at the documented offsets of the whole message.
fn info_body(plc_type: &str, firmware: &str, date: &str, time: &str, model: &str) -> Vec<u8> {
    let mut m = [0u8; 176];
    m[16..18].copy_from_slice(&[0x00, SESSION_ID]);
    for (at, s) in [(30, plc_type), (66, firmware), (79, date), (91, time), (152, model)] {
        m[at..at + s.len()].copy_from_slice(s.as_bytes());
    }
    m[6..].to_vec()
}

/// A controller: validates each request of the session (type, service, length, sequence, session id)
/// and answers it; anything else is ignored, as a real controller drops what it cannot parse.
fn controller(info: Vec<u8>, answer_info: bool) -> impl Fn() -> Handler + Send + Sync + 'static {
    move || {
        let info = info.clone();
        Box::new(move |req: &[u8]| {
            if req.len() < 6 || req[0] != 0x01 || u16::from_be_bytes([req[2], req[3]]) as usize != req.len() {
                return None;
            }
            let sequence = u16::from_be_bytes([req[4], req[5]]);
            match req[1] {
                0x01 if req[14..] == *b"IBETH01N0_M\0" => {
                    let mut body = vec![0u8; 14];
                    body[1] = 0x01;
                    body[7] = 0x02;
                    body[11] = SESSION_ID;
                    Some(reply(0x01, sequence, &body))
                }
                0x05 if req.get(11) == Some(&SESSION_ID) => {
                    Some(reply(0x05, sequence, &unhex("00010000000000020000004c")))
                }
                0x06 if answer_info && req.get(11) == Some(&SESSION_ID) && req.get(12..14) == Some(&[0x04, 0x00]) => {
                    Some(reply(0x06, sequence, &info))
                }
                _ => None,
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_reports_its_type_model_and_firmware() {
    let info = info_body("ILC 151 ETH", "4.41", "09/28/15", "14:35:01", "2700974");
    let device = tcp_device("127.125.2.1:1962", controller(info, true)).await;
    let findings = scan_range("127.125.2.1", "1962", common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("pcworx", true));
    let expected = json!({
        "plc_type": "ILC 151 ETH",
        "model_number": "2700974",
        "firmware_version": "4.41",
        "firmware_date": "09/28/15",
        "firmware_time": "14:35:01",
        "device_type": "PLC",
        "cpe": "cpe:2.3:h:phoenixcontact:ilc_151_eth:-:*:*:*:*:*:*:*",
        "tags": ["plc", "pcworx"],
    });
    assert_eq!(common::attributes_with_rules(f), *expected.as_object().unwrap());
    assert_eq!(device.connections(), 1, "the whole exchange runs on one connection");
    let classified = (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref(), f.rule.as_deref());
    assert_eq!(
        classified,
        (Some("Phoenix Contact"), Some("ILC 151 ETH"), Some("4.41"), Some("pcworx.phoenix.ilc151eth"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_withholds_its_information_is_still_pcworx() {
    let info = info_body("ILC 330 ETH", "3.95T", "Mar  2 2012", "09:39:02", "2737193");
    let _device = tcp_device("127.125.2.2:1962", controller(info, false)).await;
    let findings = scan_range("127.125.2.2", "1962", common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!((findings[0].protocol.as_str(), findings[0].ics), ("pcworx", true));
    let expected = json!({"device_type": "PLC", "tags": ["plc", "pcworx"]});
    assert_eq!(common::attributes_with_rules(&findings[0]), *expected.as_object().unwrap());
    assert_eq!((findings[0].vendor.as_deref(), findings[0].product.as_deref()), (Some("Phoenix Contact"), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_garbage_and_lying_devices_are_not_controllers() {
    let _echo = tcp_device("127.125.2.10:1962", echo).await;
    let _garbage = tcp_device("127.125.2.11:1962", || always(b"\xde\xad\xbe\xef junk")).await;
    // The right first byte, but a length that disagrees with the message.
    let _liar = tcp_device("127.125.2.12:1962", || {
        Box::new(|_: &[u8]| Some(unhex("81010030000000010000000000020000004c0000")))
    })
    .await;
    // A reply to another service than the one asked.
    let _confused = tcp_device("127.125.2.13:1962", || {
        Box::new(|_: &[u8]| Some(unhex("81060014000000010000000000020000004c0000")))
    })
    .await;
    let findings = scan_range("127.125.2.10-127.125.2.13", "1962", common::options()).await;
    assert_eq!(findings.len(), 4, "{findings:#?}");
    for f in &findings {
        assert_eq!((f.protocol.as_str(), f.ics), ("unknown", false), "{f:#?}");
    }
}
