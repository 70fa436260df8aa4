//! Honeypots named end to end with the binary: a host serving conpot's default Modbus persona and
//! cpppo's default ListIdentity is marked on both services (the ENIP one only because the Modbus
//! persona corroborates it), while cpppo's defaults alone on another host are not; the marks reach
//! the JSONL, `check`'s table, the history's exports and the HTML report. The devices are built here
//! from the specifications, byte by byte, with the values conpot 0.6.0 and cpppo 5.2.5 ship.

mod common;

use async_trait::async_trait;
use common::{tcp_device, Handler, FAST};
use otscope::engine::{Observation, Outcome, Prober, Visit};
use otscope::pipeline::{self, Recording, RunOptions};
use otscope::probes::Identity;
use otscope::scope::{Selection, Target};
use otscope::store::{SqliteStore, Store};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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

/// conpot's default personas on one address, as identification reports them: cpppo's ListIdentity
/// defaults on 44818 (a persona that needs another protocol of the address to corroborate it) and
/// conpot's Modbus identification on 502. With `interrupt`, the scan is stopped (as by a signal)
/// while 44818 is being identified, so 502 is left for the resumed run.
struct ConpotPersonas {
    interrupt: Option<CancellationToken>,
}

#[async_trait]
impl Prober for ConpotPersonas {
    async fn probe(&self, target: &Target, _visit: &Visit) -> Outcome {
        let mut identity;
        if target.port() == 44818 {
            identity = Identity::new("enip", true);
            identity.field("vendor_id", 1).field("device_type", 14).field("product_code", 54);
            identity.field("revision", "20.11").field("serial_number", "0x006c061a");
            identity.field("product_name", "1756-L61/B LOGIX5561");
            if let Some(stop) = &self.interrupt {
                stop.cancel();
            }
        } else {
            identity = Identity::new("modbus", true);
            identity.field("vendor_name", "Siemens").field("product_code", "SIMATIC").field("revision", "S7-200");
        }
        Outcome::Found(Observation::new(target.clone(), identity, Vec::new(), time::OffsetDateTime::now_utc()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_scan_marks_a_persona_seen_before_its_interruption() {
    let (dir, ledger) = common::ledger("H-1,Decoy owner,Lab district,s,important,127.118.0.9,c\n");
    let scope = common::scope(&ledger, "502,44818", &Selection::default());
    // One target at a time, in an order where 44818 comes first.
    let mut options = common::options();
    options.engine.concurrency = 1;
    let mut plan = None;
    for seed in 1..64 {
        options.seed = Some(seed);
        let p = pipeline::plan(&scope, &options).await.unwrap();
        if p.stream().next().map(|t| t.port()) == Some(44818) {
            plan = Some(p);
            break;
        }
    }
    let plan = plan.expect("some seed puts 44818 first");
    let db = dir.path().join("otscope.db");

    let stop = CancellationToken::new();
    let store = SqliteStore::open(&db).unwrap();
    let recording = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("scan"))));
    let interrupted = ConpotPersonas { interrupt: Some(stop.clone()) };
    let run = RunOptions { stop, keep_findings: true, ..RunOptions::default() };
    let first = pipeline::run_with(&plan, Arc::new(interrupted), recording, Vec::new(), run).await.unwrap();
    assert!(!first.complete(), "the scan was interrupted");
    let id = first.scan_id.unwrap();
    assert_eq!(first.findings.len(), 1, "{:#?}", first.findings);
    assert!(!first.findings[0].attributes.contains_key("honeypot"), "nothing corroborated it yet");

    let store = SqliteStore::open(&db).unwrap();
    let position = store.resume_point(id).unwrap();
    assert_eq!(position, 1, "the resume starts after 44818");
    let recording = Some(Recording::Resume(Box::new(store), id, position));
    let run = RunOptions { keep_findings: true, ..RunOptions::default() };
    let resumed = pipeline::run_with(&plan, Arc::new(ConpotPersonas { interrupt: None }), recording, Vec::new(), run)
        .await
        .unwrap();
    assert!(resumed.complete());
    assert_eq!(resumed.findings.len(), 1, "the recalled finding is not written twice: {:#?}", resumed.findings);

    // The history has both marked: the Modbus persona and, corroborated by it, the one from before.
    let store = SqliteStore::open(&db).unwrap();
    let recorded = store.findings(id).unwrap();
    let marks: Vec<(u16, Option<&str>)> =
        recorded.iter().map(|f| (f.port, f.attributes.get("honeypot").and_then(|m| m["rule"].as_str()))).collect();
    assert_eq!(marks.len(), 2, "{recorded:#?}");
    assert!(marks.contains(&(502, Some("honeypot.conpot.default.modbus"))), "{marks:?}");
    assert!(marks.contains(&(44818, Some("honeypot.conpot.default.enip"))), "{marks:?}");
}
