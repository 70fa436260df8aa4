//! ProConOS runtimes simulated from the protocol facts: the information request and its reply, and
//! devices that must not be taken for a runtime.

mod common;

use common::{always, echo, scan_range, tcp_device, Handler};
use serde_json::json;

const INFO_REQUEST: [u8; 10] = [0xcc, 0x01, 0x00, 0x0b, 0x40, 0x02, 0x00, 0x00, 0x47, 0xee];

/// An information reply: `CC`, then the runtime at offset 12, the PLC type at 44, and from 77 the
/// project name, boot project and source status, each NUL-terminated.
fn reply(runtime: &str, plc_type: &str, trailing: &[&str]) -> Vec<u8> {
    let mut r = vec![0u8; 77];
    r[0] = 0xcc;
    r[2..11].copy_from_slice(b"000000000");
    r[12..12 + runtime.len()].copy_from_slice(runtime.as_bytes());
    r[44..44 + plc_type.len()].copy_from_slice(plc_type.as_bytes());
    for s in trailing {
        r.extend_from_slice(s.as_bytes());
        r.push(0);
    }
    r
}

/// A runtime: answers the information request with `answer`, ignores everything else.
fn runtime(answer: Vec<u8>) -> impl Fn() -> Handler + Send + Sync + 'static {
    move || {
        let answer = answer.clone();
        Box::new(move |req: &[u8]| (req == INFO_REQUEST).then(|| answer.clone()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_reports_its_runtime_plc_and_project() {
    let answer =
        reply("ProConOS V3.0.1040 Oct 29 2002", "ADAM5510KW 1.24 Build 005", &["510-projec", "510-projec", "Exist"]);
    let _device = tcp_device("127.125.3.1:20547", runtime(answer)).await;
    let findings = scan_range("127.125.3.1", "20547", common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("proconos", true));
    let expected = json!({
        "runtime": "ProConOS V3.0.1040 Oct 29 2002",
        "plc_type": "ADAM5510KW 1.24 Build 005",
        "project_name": "510-projec",
        "boot_project": "510-projec",
        "project_source": "Exist",
        "device_type": "PLC",
        "tags": ["plc", "proconos"],
    });
    assert_eq!(common::attributes_with_rules(f), *expected.as_object().unwrap());
    let classified = (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref());
    // The runtime's version is not the controller's firmware: it stays in attributes.runtime.
    assert_eq!(classified, (Some("Advantech"), Some("ADAM-5510KW"), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_without_project_strings_still_identifies_the_runtime() {
    let answer = reply("ProConOS V4.2.0214 Oct 28 2011", "V 3.95A.6       Mar  9 2012", &[]);
    let _device = tcp_device("127.125.3.2:20547", runtime(answer)).await;
    let findings = scan_range("127.125.3.2", "20547", common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.protocol, "proconos");
    let expected = json!({
        "runtime": "ProConOS V4.2.0214 Oct 28 2011",
        "plc_type": "V 3.95A.6       Mar  9 2012",
        "device_type": "PLC",
        "tags": ["plc", "proconos"],
    });
    assert_eq!(common::attributes_with_rules(f), *expected.as_object().unwrap());
    let classified = (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref());
    assert_eq!(classified, (Some("KW-Software (Phoenix Contact)"), Some("ProConOS"), Some("4.2.0214")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_garbage_and_truncated_devices_are_not_runtimes() {
    let _echo = tcp_device("127.125.3.10:20547", echo).await;
    let _garbage = tcp_device("127.125.3.11:20547", || always(b"220 FTP ready\r\n")).await;
    let truncated = reply("ProConOS V3.0.1040 Oct 29 2002", "ADAM5510KW", &["p"])[..30].to_vec();
    let _truncated = tcp_device("127.125.3.12:20547", runtime(truncated)).await;
    // The reply byte, then binary where the runtime string belongs.
    let mut binary = reply("x", "y", &["a", "b", "c"]);
    binary[12..44].fill(0x07);
    let _binary = tcp_device("127.125.3.13:20547", runtime(binary)).await;
    let findings = scan_range("127.125.3.10-127.125.3.13", "20547", common::options()).await;
    assert_eq!(findings.len(), 4, "{findings:#?}");
    for f in &findings {
        // Every reply is evidence: the FTP greeting names an FTP server, the rest stay unknown.
        let expected = if f.ip.to_string() == "127.125.3.11" { "ftp" } else { "unknown" };
        assert_eq!((f.protocol.as_str(), f.ics), (expected, false), "{f:#?}");
    }
}
