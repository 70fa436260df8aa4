//! Omron FINS identification against simulated controllers (FINS over UDP, FINS/TCP with its node
//! address handshake), built from the FINS frame layout.

mod common;

use common::{ledger, scan, tcp_device, udp_device, Handler};
use otscope::findings::Finding;
use otscope::scope::Transport;
use serde_json::json;

const OWN_NODE: u8 = 10;

fn padded(s: &str, len: usize) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(len, b' ');
    v
}

/// Answers one FINS command frame as a CPU unit would: Controller Data Read gets the model and
/// version (or `end_code` when it is not 0); commands that are not FINS commands get nothing.
fn respond(frame: &[u8], model: &str, version: &str, end_code: u16) -> Option<Vec<u8>> {
    if frame.len() < 12 || frame[0] & 0x40 != 0 || frame[0] & 0x80 == 0 {
        return None; // not a command (or a response): dropped
    }
    let (dna, da1, da2, sna, sa1, sa2, sid) = (frame[3], frame[4], frame[5], frame[6], frame[7], frame[8], frame[9]);
    if dna != 0 || (da1 != 0 && da1 != OWN_NODE) || da2 != 0 {
        return None; // addressed to another node or unit
    }
    let mut r = vec![0xC0, 0x00, 0x02, sna, sa1, sa2, 0x00, OWN_NODE, 0x00, sid, frame[10], frame[11]];
    if frame[10..12] != [0x05, 0x01] {
        r.extend_from_slice(&0x0401u16.to_be_bytes()); // undefined command
        return Some(r);
    }
    r.extend_from_slice(&end_code.to_be_bytes());
    if end_code == 0 {
        r.extend_from_slice(&padded(model, 20));
        r.extend_from_slice(&padded(version, 20));
        r.extend_from_slice(&[0; 40]); // for system use
    }
    Some(r)
}

fn udp_plc(model: &'static str, version: &'static str, end_code: u16) -> Handler {
    Box::new(move |req: &[u8]| respond(req, model, version, end_code))
}

/// A FINS/TCP server: the node address handshake (assigning client node 239), then FINS frames in
/// command 2 addressed from the assigned node to its own.
fn tcp_plc(model: &'static str, version: &'static str) -> Handler {
    let mut client: Option<u8> = None;
    Box::new(move |req: &[u8]| {
        if req.len() < 16 || &req[..4] != b"FINS" {
            return None;
        }
        let len = u32::from_be_bytes(req[4..8].try_into().unwrap()) as usize;
        let command = u32::from_be_bytes(req[8..12].try_into().unwrap());
        let header = |command: u32, error: u32, data: &[u8]| {
            let mut r = b"FINS".to_vec();
            r.extend_from_slice(&(8 + data.len() as u32).to_be_bytes());
            r.extend_from_slice(&command.to_be_bytes());
            r.extend_from_slice(&error.to_be_bytes());
            r.extend_from_slice(data);
            r
        };
        if len + 8 != req.len() {
            return Some(header(3, 0x02, &[])); // data length error
        }
        match (command, client) {
            (0, None) => {
                let asked = u32::from_be_bytes(req[16..20].try_into().ok()?);
                let node = if asked == 0 { 239 } else { asked as u8 };
                client = Some(node);
                Some(header(1, 0, &[0, 0, 0, node, 0, 0, 0, OWN_NODE]))
            }
            (2, Some(node)) => {
                let frame = &req[16..];
                if frame.get(4) != Some(&OWN_NODE) || frame.get(7) != Some(&node) {
                    return None; // not addressed from the assigned node to this one
                }
                Some(header(2, 0, &respond(frame, model, version, 0)?))
            }
            _ => Some(header(3, 0x03, &[])), // command not supported in this state
        }
    })
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
    let _u = udp_device("127.122.2.1:9600", || udp_plc("CJ2M-CPU32", "02.01", 0)).await;
    let _t = tcp_device("127.122.2.1:9600", || tcp_plc("CJ2M-CPU32", "02.01")).await;
    // A controller refusing the command in its current mode (end code 2201): FINS all the same.
    let _e = udp_device("127.122.2.2:9600", || udp_plc("", "", 0x2201)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.2.1-127.122.2.2,c\n");
    let findings = scan(&path, "9600,9600/udp", &Default::default(), &[]).await;
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
    let _echo_udp = udp_device("127.122.2.11:9600", || Box::new(|req: &[u8]| Some(req.to_vec()))).await;
    let _echo_tcp = tcp_device("127.122.2.11:9600", || Box::new(|req: &[u8]| Some(req.to_vec()))).await;
    // A response with another service id.
    let _sid = udp_device("127.122.2.12:9600", || {
        Box::new(|req: &[u8]| {
            let mut r = respond(req, "CJ1M-CPU12", "04.10", 0)?;
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
    let findings = scan(&path, "9600,9600/udp", &Default::default(), &[]).await;
    assert!(findings.iter().all(|f| f.transport == Transport::Tcp), "{findings:#?}");
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        assert_eq!(f.protocol, "unknown", "{f:#?}");
    }
}
