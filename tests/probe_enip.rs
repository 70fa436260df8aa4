//! EtherNet/IP identification against simulated devices that follow the encapsulation spec.

mod common;

use common::{echo, ledger, scan, tcp_device, udp_device, Handler};
use otscope::findings::Finding;
use otscope::scope::Transport;
use otscope_lab::enip::Identity;
use serde_json::json;

/// A device answering ListIdentity with this identity.
fn device(name: &str, vendor: u16, device_type: u16, product_code: u16, revision: [u8; 2], serial: u32) -> Handler {
    Identity { product_name: name.into(), vendor, device_type, product_code, revision, serial }.handler()
}

fn find(findings: &[Finding], ip: &str, port: u16, transport: Transport) -> Finding {
    findings
        .iter()
        .find(|f| f.ip.to_string() == ip && f.port == port && f.transport == transport)
        .unwrap_or_else(|| panic!("no finding for {ip}:{port}/{transport:?} in {findings:#?}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_identity_over_tcp_and_udp() {
    let _tcp = tcp_device("127.122.0.1:44818", || Identity::controllogix(0x00C0_FFEE).handler()).await;
    let _udp = udp_device("127.122.0.1:44818", || Identity::controllogix(0x00C0_FFEE).handler()).await;
    let _io = udp_device("127.122.0.2:2222", || device("NJ501-1300", 47, 0x0C, 1618, [1, 10], 0x1234_ABCD)).await;
    let _gw = tcp_device("127.122.0.3:44818", || device("NT 100-RE-EN", 283, 0x0C, 259, [5, 1], 0x0000_4D2A)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.0.1-127.122.0.3,c\n");
    let findings = scan(&path, "44818,44818/udp,2222/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 4, "{findings:#?}");

    let expected = json!({
        "encapsulation_version": 1, "vendor_id": 1,
        // The matching rule's device_type output ("PLC") takes the place of the CIP number (14).
        "device_type": "PLC",
        "device_type_name": "Programmable Logic Controller", "product_code": 54, "revision": "20.11",
        "status": 0x3060, "serial_number": "0x00c0ffee", "product_name": "1756-L61/B LOGIX5561", "state": 3,
        "socket_address": "10.20.30.40:44818",
        // No CPE: the rule gives none whose name can be traced to a published source.
        "tags": ["plc", "controllogix"]
    });
    for transport in [Transport::Tcp, Transport::Udp] {
        let f = find(&findings, "127.122.0.1", 44818, transport);
        assert_eq!((f.protocol.as_str(), f.ics), ("enip", true), "{f:#?}");
        assert_eq!(serde_json::Value::Object(common::attributes_with_rules(&f)), expected, "{transport:?}");
        assert_eq!(f.vendor.as_deref(), Some("Rockwell Automation"));
        assert_eq!(f.product.as_deref(), Some("ControlLogix 1756-L61"));
        assert_eq!(f.version.as_deref(), Some("20.11"));
        assert_eq!(f.rule.as_deref(), Some("enip.rockwell.1756-l61"));
    }

    let io = find(&findings, "127.122.0.2", 2222, Transport::Udp);
    assert_eq!((io.protocol.as_str(), io.ics), ("enip", true));
    assert_eq!(io.attributes["vendor_id"], 47);
    assert_eq!(io.attributes["device_type_name"], "Communications Adapter");
    assert_eq!(io.attributes["product_name"], "NJ501-1300");
    assert_eq!(io.attributes["revision"], "1.10");
    assert_eq!(io.attributes["serial_number"], "0x1234abcd");
    assert_eq!(io.rule.as_deref(), Some("enip.omron.sysmac-nj-nx"));
    assert_eq!(
        (io.vendor.as_deref(), io.product.as_deref(), io.version.as_deref()),
        (Some("Omron"), Some("Sysmac NJ501-1300"), Some("1.10"))
    );

    // No specific rule: the generic one names the vendor from the ODVA vendor table.
    let gw = find(&findings, "127.122.0.3", 44818, Transport::Tcp);
    assert_eq!((gw.protocol.as_str(), gw.rule.as_deref()), ("enip", Some("enip.generic")));
    assert_eq!(
        (gw.vendor.as_deref(), gw.product.as_deref(), gw.version.as_deref()),
        (Some("Hilscher GmbH"), Some("NT 100-RE-EN"), Some("5.1"))
    );
    assert_eq!(gw.attributes["device_type"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_garbage_and_lying_lengths_are_not_enip() {
    // Echoes every request back.
    let _echo = tcp_device("127.122.0.11:44818", echo).await;
    let _echo_udp = udp_device("127.122.0.11:44818", echo).await;
    // Answers with an HTTP error page.
    let _http = tcp_device("127.122.0.12:44818", || {
        Box::new(|_: &[u8]| Some(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec()))
    })
    .await;
    // A ListIdentity header claiming 1000 bytes of data, then only 6 of them.
    let _short = tcp_device("127.122.0.13:44818", || {
        Box::new(|req: &[u8]| {
            let mut r = req.get(..24)?.to_vec();
            r[2..4].copy_from_slice(&1000u16.to_le_bytes());
            r.extend_from_slice(&[1, 0, 0x0C, 0, 0xFF, 0x00]);
            Some(r)
        })
    })
    .await;
    // A header claiming 65000 bytes: refused at once.
    let _huge = udp_device("127.122.0.13:44818", || {
        Box::new(|req: &[u8]| {
            let mut r = req.get(..24)?.to_vec();
            r[2..4].copy_from_slice(&65000u16.to_le_bytes());
            r.extend_from_slice(&[1, 0, 0x0C, 0]);
            Some(r)
        })
    })
    .await;
    // An identity item whose product name runs past the item.
    let _overrun = udp_device("127.122.0.14:44818", || {
        Box::new(|req: &[u8]| {
            let mut r = req.get(..24)?.to_vec();
            let mut item = vec![0u8; 33];
            item[32] = 250; // name length
            item.extend_from_slice(b"1756");
            let mut data = vec![1, 0, 0x0C, 0];
            data.extend_from_slice(&(item.len() as u16).to_le_bytes());
            data.extend_from_slice(&item);
            r[2..4].copy_from_slice(&(data.len() as u16).to_le_bytes());
            r.extend_from_slice(&data);
            Some(r)
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.0.11-127.122.0.14,c\n");
    let findings = scan(&path, "44818,44818/udp", &Default::default(), common::options()).await;
    // UDP peers whose replies validate as nothing are open: `unknown`, with their evidence.
    let (udp, findings): (Vec<_>, Vec<_>) = findings.into_iter().partition(|f| f.transport.as_str() == "udp");
    assert!(udp.iter().all(|f| f.protocol == "unknown" && !f.ics && !f.evidence.is_empty()), "{udp:#?}");
    assert_eq!(udp.len(), 3, "{udp:#?}");
    // TCP: open but unidentified, except the web server, which its 400 page names (every reply is evidence).
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        let expected = if f.ip.to_string() == "127.122.0.12" { "http" } else { "unknown" };
        assert_eq!(f.protocol, expected, "{f:#?}");
        assert!(!f.ics);
    }
}
