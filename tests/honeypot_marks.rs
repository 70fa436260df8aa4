//! Honeypots named end to end with the binary: a host serving conpot's default Modbus persona and
//! cpppo's default ListIdentity is marked on both services (the ENIP one only because the Modbus
//! persona corroborates it), while cpppo's defaults alone on another host are not; the marks reach
//! the JSONL, `check`'s table, the history's exports and the HTML report. The devices are built here
//! from the specifications, byte by byte, with the values conpot 0.6.0 and cpppo 5.2.5 ship.

mod common;

use common::{tcp_device, Handler, FAST};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Modbus/TCP Read Device Identification (function 43, MEI 14) answered with conpot's default
/// basic objects (VendorName Siemens, ProductCode SIMATIC, MajorMinorRevision S7-200); the regular
/// category gets exception 02, anything else exception 01. Only the first ADU of what arrives is
/// read, framed by its MBAP length, as a simple embedded stack does with pipelined requests.
fn conpot_modbus() -> Handler {
    Box::new(|req: &[u8]| {
        let (mbap, rest) = req.split_at_checked(7)?;
        let length = usize::from(u16::from_be_bytes([mbap[4], mbap[5]]));
        let pdu = rest.get(..length.checked_sub(1)?)?;
        let pdu = match pdu {
            [0x2B, 0x0E, 0x01, 0x00] => {
                let mut p = vec![0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x03];
                for (id, value) in [(0u8, "Siemens"), (1, "SIMATIC"), (2, "S7-200")] {
                    p.extend([id, value.len() as u8]);
                    p.extend_from_slice(value.as_bytes());
                }
                p
            }
            [0x2B, ..] => vec![0xAB, 0x02],
            [function, ..] => vec![function | 0x80, 0x01],
            [] => return None,
        };
        let mut reply = mbap[..4].to_vec();
        reply.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
        reply.push(mbap[6]);
        reply.extend(pdu);
        Some(reply)
    })
}

/// EtherNet/IP ListIdentity (command 0x0063) answered with cpppo's default Identity object.
fn cpppo_defaults() -> Handler {
    Box::new(|req: &[u8]| {
        if req.len() < 24 || req[..2] != [0x63, 0x00] {
            return None;
        }
        let name = b"1756-L61/B LOGIX5561";
        let mut item = Vec::new();
        item.extend(1u16.to_le_bytes()); // encapsulation protocol version
        item.extend([0x00, 0x02, 0xAF, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // sockaddr, big-endian
        item.extend(1u16.to_le_bytes()); // vendor: Rockwell Automation/Allen-Bradley
        item.extend(14u16.to_le_bytes()); // device type: programmable logic controller
        item.extend(54u16.to_le_bytes()); // product code
        item.extend([20, 11]); // revision 20.11
        item.extend(0x3160u16.to_le_bytes()); // status
        item.extend(0x006C_061Au32.to_le_bytes()); // serial number
        item.push(name.len() as u8);
        item.extend_from_slice(name);
        item.push(0xFF); // state
        let mut data = 1u16.to_le_bytes().to_vec();
        data.extend(0x000Cu16.to_le_bytes());
        data.extend((item.len() as u16).to_le_bytes());
        data.extend(item);
        let mut reply = vec![0x63, 0x00];
        reply.extend((data.len() as u16).to_le_bytes());
        reply.extend([0u8; 8]); // session handle, status
        reply.extend_from_slice(&req[12..20]); // sender context, echoed
        reply.extend([0u8; 4]); // options
        reply.extend(data);
        Some(reply)
    })
}

fn run(args: &[&str], db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otscope")).args(args).arg("--db").arg(db).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_honeypot_persona_is_marked_in_every_output_and_cpppo_alone_is_not() {
    let _modbus = tcp_device("127.118.0.1:502", conpot_modbus).await;
    let _enip = tcp_device("127.118.0.1:44818", cpppo_defaults).await;
    let _plain_cpppo = tcp_device("127.118.0.2:44818", cpppo_defaults).await;
    let (dir, ledger) = common::ledger("H-1,Decoy owner,Lab district,s,important,127.118.0.1-127.118.0.2,c\n");
    let db = dir.path().join("otscope.db");
    let jsonl = dir.path().join("findings.jsonl");
    let ledger = ledger.to_str().unwrap();
    let ports = "502,44818";

    // The scan's JSONL: one line per service, marked where the persona is shown.
    let mut args = vec!["scan", "--targets", ledger, "--ports", ports, "--out", jsonl.to_str().unwrap()];
    args.extend(FAST);
    let scan = run(&args, &db);
    assert!(scan.status.success(), "{}", text(&scan));
    let lines: Vec<Value> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let mark = |ip: &str, port: u16| {
        let f = lines.iter().find(|f| f["ip"] == ip && f["port"] == port).unwrap();
        (f["protocol"].as_str().unwrap().to_string(), f["severity"].clone(), f["attributes"].get("honeypot").cloned())
    };
    let (protocol, severity, modbus) = mark("127.118.0.1", 502);
    assert_eq!((protocol.as_str(), severity.as_str()), ("modbus", Some("critical")));
    assert_eq!(modbus.as_ref().unwrap()["rule"], "honeypot.conpot.default.modbus");
    let (protocol, _, enip) = mark("127.118.0.1", 44818);
    assert_eq!(protocol, "enip");
    let enip = enip.expect("cpppo's defaults beside conpot's Modbus persona");
    assert_eq!((enip["name"].as_str(), enip["rule"].as_str()), (Some("conpot"), Some("honeypot.conpot.default.enip")));
    assert!(enip["reason"].as_str().unwrap().contains("502/tcp"), "{enip}");
    let (_, _, plain) = mark("127.118.0.2", 44818);
    assert_eq!(plain, None, "cpppo's defaults alone are no honeypot");

    // `check`'s table shows the marker beside the protocol.
    let mut args = vec!["check", "--targets", ledger, "--ports", ports];
    args.extend(FAST);
    let check = run(&args, &db);
    let table = text(&check);
    let row = |service: &str| table.lines().find(|l| l.contains(service)).unwrap_or_else(|| panic!("{table}"));
    assert!(row("127.118.0.1:502/tcp").contains(" modbus [honeypot: conpot] "), "{table}");
    assert!(row("127.118.0.1:44818/tcp").contains(" enip [honeypot: conpot] "), "{table}");
    assert!(!row("127.118.0.2:44818/tcp").contains("honeypot"), "{table}");

    // The history's exports and the HTML report carry it.
    let exports = dir.path().join("exports");
    let export = run(&["export", "--format", "jsonl", "--out", exports.to_str().unwrap()], &db);
    assert!(export.status.success(), "{}", text(&export));
    let exported: String =
        std::fs::read_dir(&exports).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
    assert_eq!(exported.matches("\"honeypot\":{").count(), 2, "{exported}");
    let report = dir.path().join("report.html");
    let rendered = run(&["report", "--out", report.to_str().unwrap()], &db);
    assert!(rendered.status.success(), "{}", text(&rendered));
    let html = std::fs::read_to_string(&report).unwrap();
    let findings = &html[html.find(r#"id="findings-table""#).unwrap()..];
    assert_eq!(findings.matches(r#"<span class="hp" title="#).count(), 2, "{findings}");
    assert!(findings.contains("honeypot conpot</span>"), "{findings}");
}
