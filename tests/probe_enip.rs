//! EtherNet/IP identification against simulated devices that follow the encapsulation spec.

mod common;

use common::{ledger, scan, tcp_device, udp_device, Handler};
use otscope::findings::Finding;
use otscope::scope::Transport;
use serde_json::json;

/// A device answering ListIdentity: validates the 24-byte header (command 0x0063, no data), echoes
/// the sender context, and answers other commands with status 0x0001 (invalid or unsupported
/// command), as the encapsulation spec requires.
fn device(name: &'static str, vendor: u16, device_type: u16, code: u16, rev: [u8; 2], serial: u32) -> Handler {
    Box::new(move |req: &[u8]| {
        if req.len() < 24 {
            return None; // not a whole encapsulation header: a real stack waits for more
        }
        let command = u16::from_le_bytes([req[0], req[1]]);
        let length = u16::from_le_bytes([req[2], req[3]]);
        let mut header = req[..24].to_vec();
        if command != 0x0063 || length != 0 {
            header[2..4].copy_from_slice(&0u16.to_le_bytes());
            header[8..12].copy_from_slice(&1u32.to_le_bytes());
            return Some(header);
        }
        let mut item = Vec::new();
        item.extend_from_slice(&1u16.to_le_bytes()); // encapsulation protocol version
        item.extend_from_slice(&[0x00, 0x02, 0xAF, 0x12, 10, 20, 30, 40]); // AF_INET, 44818, 10.20.30.40
        item.extend_from_slice(&[0; 8]);
        item.extend_from_slice(&vendor.to_le_bytes());
        item.extend_from_slice(&device_type.to_le_bytes());
        item.extend_from_slice(&code.to_le_bytes());
        item.extend_from_slice(&rev);
        item.extend_from_slice(&0x3060u16.to_le_bytes()); // status: owned, configured, run mode
        item.extend_from_slice(&serial.to_le_bytes());
        item.push(name.len() as u8);
        item.extend_from_slice(name.as_bytes());
        item.push(0x03); // state: operational
        let mut data = Vec::new();
        data.extend_from_slice(&1u16.to_le_bytes());
        data.extend_from_slice(&0x000Cu16.to_le_bytes());
        data.extend_from_slice(&(item.len() as u16).to_le_bytes());
        data.extend_from_slice(&item);
        header[2..4].copy_from_slice(&(data.len() as u16).to_le_bytes());
        header.extend_from_slice(&data);
        Some(header)
    })
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
    let _tcp =
        tcp_device("127.122.0.1:44818", || device("1756-L61/B LOGIX5561", 1, 0x0E, 54, [20, 11], 0x00C0_FFEE)).await;
    let _udp =
        udp_device("127.122.0.1:44818", || device("1756-L61/B LOGIX5561", 1, 0x0E, 54, [20, 11], 0x00C0_FFEE)).await;
    let _io = udp_device("127.122.0.2:2222", || device("NJ501-1300", 47, 0x0C, 1618, [1, 10], 0x1234_ABCD)).await;
    let _gw = tcp_device("127.122.0.3:44818", || device("NT 100-RE-EN", 283, 0x0C, 259, [5, 1], 0x0000_4D2A)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.0.1-127.122.0.3,c\n");
    let findings = scan(&path, "44818,44818/udp,2222/udp", &Default::default(), &[]).await;
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
    let _echo = tcp_device("127.122.0.11:44818", || Box::new(|req: &[u8]| Some(req.to_vec()))).await;
    let _echo_udp = udp_device("127.122.0.11:44818", || Box::new(|req: &[u8]| Some(req.to_vec()))).await;
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
    let findings = scan(&path, "44818,44818/udp", &Default::default(), &[]).await;
    // UDP: no valid reply, no finding. TCP: open but unidentified, except the web server, which its
    // 400 page names (every reply is evidence).
    assert!(findings.iter().all(|f| f.transport == Transport::Tcp), "{findings:#?}");
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        let expected = if f.ip.to_string() == "127.122.0.12" { "http" } else { "unknown" };
        assert_eq!(f.protocol, expected, "{f:#?}");
        assert!(!f.ics);
    }
}
