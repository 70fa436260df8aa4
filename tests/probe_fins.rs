//! Omron FINS identification against simulated controllers (FINS over UDP, FINS/TCP with its node
//! address handshake), built from the FINS frame layout.

mod common;

use common::{echo, ledger, scan, tcp_device, udp_device};
use otscope::findings::Finding;
use otscope::scope::Transport;
use otscope_lab::fins::Controller;
use serde_json::json;

fn plc(model: &str, version: &str, end_code: u16) -> Controller {
    Controller { model: model.into(), version: version.into(), end_code }
}

fn find(findings: &[Finding], ip: &str, transport: Transport) -> Finding {
    findings
        .iter()
        .find(|f| f.ip.to_string() == ip && f.transport == transport)
        .unwrap_or_else(|| panic!("no finding for {ip}/{transport:?} in {findings:#?}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_data_read_over_udp_and_tcp() {
    let _u = udp_device("127.122.2.1:9600", || Controller::cj2m().udp_handler()).await;
    let _t = tcp_device("127.122.2.1:9600", || Controller::cj2m().tcp_handler()).await;
    // A controller refusing the command in its current mode (end code 2201): FINS all the same.
    let _e = udp_device("127.122.2.2:9600", || plc("", "", 0x2201).udp_handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.2.1-127.122.2.2,c\n");
    let findings = scan(&path, "9600,9600/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 3, "{findings:#?}");

    let udp = find(&findings, "127.122.2.1", Transport::Udp);
    assert_eq!((udp.protocol.as_str(), udp.ics), ("fins", true));
    assert_eq!(
        serde_json::Value::Object(common::attributes_with_rules(&udp)),
        json!({"controller_model": "CJ2M-CPU32", "controller_version": "02.01", "end_code": 0,
               "device_type": "PLC", "tags": ["plc", "sysmac"]})
    );
    assert_eq!(
        (udp.vendor.as_deref(), udp.product.as_deref(), udp.version.as_deref()),
        (Some("Omron"), Some("SYSMAC CJ2M-CPU32"), Some("02.01"))
    );
    let tcp = find(&findings, "127.122.2.1", Transport::Tcp);
    assert_eq!((tcp.protocol.as_str(), tcp.ics), ("fins", true));
    assert_eq!(
        serde_json::Value::Object(common::attributes_with_rules(&tcp)),
        json!({"controller_model": "CJ2M-CPU32", "controller_version": "02.01", "end_code": 0,
               "client_node": 239, "server_node": 10, "device_type": "PLC", "tags": ["plc", "sysmac"]})
    );
    let refused = find(&findings, "127.122.2.2", Transport::Udp);
    assert_eq!(refused.protocol, "fins");
    assert_eq!(serde_json::Value::Object(common::attributes_with_rules(&refused)), json!({"end_code": 0x2201}));
    assert_eq!((refused.vendor.as_deref(), refused.product.as_deref()), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_garbage_and_lying_lengths_are_not_fins() {
    let _echo_udp = udp_device("127.122.2.11:9600", echo).await;
    let _echo_tcp = tcp_device("127.122.2.11:9600", echo).await;
    // A response with another service id.
    let _sid = udp_device("127.122.2.12:9600", || {
        Box::new(|req: &[u8]| {
            let mut r = plc("CJ1M-CPU12", "04.10", 0).respond(req)?;
            r[9] ^= 0xFF;
            Some(r)
        })
    })
    .await;
    // FINS/TCP magic with a length claiming a megabyte.
    let _huge = tcp_device("127.122.2.12:9600", || {
        Box::new(|_: &[u8]| Some(b"FINS\x00\x10\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00".to_vec()))
    })
    .await;
    // FINS/TCP magic with a plausible length that never arrives.
    let _short = tcp_device("127.122.2.13:9600", || {
        Box::new(|_: &[u8]| Some(b"FINS\x00\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00".to_vec()))
    })
    .await;
    let _junk = udp_device("127.122.2.13:9600", || Box::new(|_: &[u8]| Some(vec![0xC0; 9]))).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.2.11-127.122.2.13,c\n");
    let findings = scan(&path, "9600,9600/udp", &Default::default(), common::options()).await;
    // UDP peers whose replies validate as nothing are open: `unknown`, with their evidence.
    let (udp, findings): (Vec<_>, Vec<_>) = findings.into_iter().partition(|f| f.transport.as_str() == "udp");
    assert!(udp.iter().all(|f| f.protocol == "unknown" && !f.ics && !f.evidence.is_empty()), "{udp:#?}");
    assert_eq!(udp.len(), 3, "{udp:#?}");
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        assert_eq!(f.protocol, "unknown", "{f:#?}");
    }
}
