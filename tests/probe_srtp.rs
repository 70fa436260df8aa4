//! GE SRTP controllers simulated from the protocol facts: the all-zero initialisation, the long status
//! service request and its replies, and devices that must not be taken for a controller.

mod common;

use common::{echo, scan_range, tcp_device, Handler};
use serde_json::json;

/// The controller's answer to the initialisation; `signature` sets byte 8 to 0F.
fn init_ack(signature: bool) -> Vec<u8> {
    let mut r = vec![0u8; 56];
    r[0] = 0x01;
    if signature {
        r[8] = 0x0f;
    }
    r
}

/// Whether `req` is a well-formed PLC long status request (service 01) to the CPU.
fn is_long_status(req: &[u8]) -> bool {
    req.len() == 56 && req[0] == 0x02 && req[31] == 0xc0 && req[36..38] == [0x10, 0x0e] && req[42] == 0x01
}

/// A reply mailbox echoing the request's sequence numbers.
fn reply_to(req: &[u8], mailbox_type: u8) -> Vec<u8> {
    let mut r = vec![0u8; 56];
    r[0] = 0x03;
    r[2..4].copy_from_slice(&req[2..4]);
    r[30] = req[30];
    r[31] = mailbox_type;
    r[32..36].copy_from_slice(&req[36..40]);
    r
}

/// A completion ACK with text buffer: privilege level, status word, program name at text offset 18.
fn long_status_ack(req: &[u8], privilege: u8, status_word: u16, program: &str) -> Vec<u8> {
    let mut text = vec![0u8; 48];
    text[18..18 + program.len()].copy_from_slice(program.as_bytes());
    let mut r = reply_to(req, 0x94);
    r[4..6].copy_from_slice(&(text.len() as u16).to_le_bytes());
    r[42..44].copy_from_slice(&(text.len() as u16).to_le_bytes());
    r[48] = 0x01;
    r[49] = 0x01;
    r[51] = privilege;
    r[52..54].copy_from_slice(&4u16.to_le_bytes());
    r[54..56].copy_from_slice(&status_word.to_le_bytes());
    r.extend_from_slice(&text);
    r
}

/// How a simulated controller answers the long status request.
#[derive(Clone, Copy)]
enum Status {
    Ack,
    Nack,
    Silent,
}

/// A controller: the all-zero initialisation first, then service requests; anything else is ignored.
fn controller(signature: bool, status: Status) -> impl Fn() -> Handler + Send + Sync + 'static {
    move || {
        let mut initialised = false;
        Box::new(move |req: &[u8]| {
            if !initialised {
                initialised = req.len() == 56 && req.iter().all(|&b| b == 0);
                return initialised.then(|| init_ack(signature));
            }
            if !is_long_status(req) {
                return None;
            }
            match status {
                // Run/stop switch in RUN, state "Run I/O enabled", privilege level 2.
                Status::Ack => Some(long_status_ack(req, 2, 0x0100, "LIFTSTN3")),
                Status::Nack => {
                    let mut r = reply_to(req, 0xd1);
                    r[42] = 0x02; // insufficient privilege
                    r[43] = 0xfe; // no privilege for attempted operation
                    Some(r)
                }
                Status::Silent => None,
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_reports_its_state_and_program() {
    let _device = tcp_device("127.125.4.1:18245", controller(true, Status::Ack)).await;
    let findings = scan_range("127.125.4.1", "18245", common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("srtp", true));
    let expected = json!({
        "plc_state": "Run I/O enabled",
        "privilege_level": 2,
        "program_name": "LIFTSTN3",
        "device_type": "PLC",
        "tags": ["plc", "srtp", "running"],
    });
    assert_eq!(common::attributes_with_rules(f), *expected.as_object().unwrap());
    assert_eq!((f.vendor.as_deref(), f.rule.as_deref()), (Some("GE Fanuc / Emerson"), Some("srtp.ge.running")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_reply_and_a_silent_service_still_prove_srtp() {
    let _nack = tcp_device("127.125.4.2:18245", controller(false, Status::Nack)).await;
    let _silent = tcp_device("127.125.4.3:18245", controller(true, Status::Silent)).await;
    let findings = scan_range("127.125.4.2-127.125.4.3", "18245", common::options()).await;
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert_eq!((findings[0].protocol.as_str(), findings[0].ics), ("srtp", true));
    let expected = json!({
        "major_error_status": 2,
        "minor_error_status": 254,
        "device_type": "PLC",
        "tags": ["plc", "srtp"],
    });
    assert_eq!(common::attributes_with_rules(&findings[0]), *expected.as_object().unwrap());
    assert_eq!((findings[1].protocol.as_str(), findings[1].ics), ("srtp", true));
    let expected = json!({"device_type": "PLC", "tags": ["plc", "srtp"]});
    assert_eq!(common::attributes_with_rules(&findings[1]), *expected.as_object().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_garbage_and_lookalike_devices_are_not_controllers() {
    let _echo = tcp_device("127.125.4.10:18245", echo).await;
    let _garbage = tcp_device("127.125.4.11:18245", || Box::new(|_: &[u8]| Some(vec![0x55; 80]))).await;
    // Answers the initialisation with a first byte of 01 but neither the signature nor a service reply.
    let _lookalike = tcp_device("127.125.4.12:18245", controller(false, Status::Silent)).await;
    // A mailbox claiming a 64 KiB text buffer.
    let _liar = tcp_device("127.125.4.13:18245", || {
        Box::new(|_: &[u8]| {
            let mut r = init_ack(true);
            r[4..6].copy_from_slice(&[0xff, 0xff]);
            Some(r)
        })
    })
    .await;
    let findings = scan_range("127.125.4.10-127.125.4.13", "18245", common::options()).await;
    assert_eq!(findings.len(), 4, "{findings:#?}");
    for f in &findings {
        assert_eq!((f.protocol.as_str(), f.ics), ("unknown", false), "{f:#?}");
    }
}
