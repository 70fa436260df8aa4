//! DNP3 identification against simulated outstations built from IEEE 1815-2012 clause 9 (FT3 link
//! frames, CRC-16/DNP): the outstation answers Request Link Status only when addressed (and, like
//! stacks that route by address pair, only from its configured master), ignores everything else.

mod common;

use common::{always, assert_unidentified, echo, ledger, scan, tcp_device, Handler};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

fn crc16(data: &[u8]) -> [u8; 2] {
    let mut crc = 0u16;
    for &b in data {
        crc ^= b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA6BC } else { crc >> 1 };
        }
    }
    (!crc).to_le_bytes()
}

/// A header-only frame (no user data).
fn header(control: u8, destination: u16, source: u16) -> Vec<u8> {
    let mut f = vec![0x05, 0x64, 0x05, control];
    f.extend_from_slice(&destination.to_le_bytes());
    f.extend_from_slice(&source.to_le_bytes());
    let crc = crc16(&f);
    f.extend_from_slice(&crc);
    f
}

#[derive(Clone)]
struct Outstation {
    address: u16,
    /// The master address it accepts frames from; `None` accepts any.
    master: Option<u16>,
    /// Link status requests received (destination, source).
    seen: Arc<Mutex<Vec<(u16, u16)>>>,
}

impl Outstation {
    fn handler(&self) -> Handler {
        let o = self.clone();
        Box::new(move |bytes: &[u8]| {
            let mut replies = Vec::new();
            let mut rest = bytes;
            // Parse the stream frame by frame; a bad start or CRC ends the parse (a real stack resyncs).
            while rest.len() >= 10 {
                if rest[..2] != [0x05, 0x64] || crc16(&rest[..8]) != rest[8..10] || rest[2] < 5 {
                    break;
                }
                let data = (rest[2] - 5) as usize;
                let size = 10 + data + 2 * data.div_ceil(16);
                if rest.len() < size {
                    break;
                }
                let control = rest[3];
                let destination = u16::from_le_bytes([rest[4], rest[5]]);
                let source = u16::from_le_bytes([rest[6], rest[7]]);
                rest = &rest[size..];
                let from_master = control & 0x80 != 0;
                let for_me = destination == o.address;
                if !from_master || !for_me || o.master.is_some_and(|m| m != source) {
                    continue; // not addressed to this outstation: ignored, as the standard requires
                }
                if control & 0x4F == 0x49 {
                    o.seen.lock().unwrap().push((destination, source));
                    // Link Status: DIR=0, PRM=0, DFC=0, function 11.
                    replies.extend_from_slice(&header(0x0B, source, o.address));
                }
            }
            (!replies.is_empty()).then_some(replies)
        })
    }
}

fn attributes(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outstation_at_address_10_answers_its_own_address_only() {
    let o = Outstation { address: 10, master: None, seen: Default::default() };
    let d = o.clone();
    let _r = tcp_device("127.120.2.1:20000", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.2.1,c\n");
    let findings = scan(&path, "20000", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics, f.port), ("dnp3", true, 20000));
    assert_eq!(
        common::attributes_with_rules(f),
        attributes(json!({"source_address": 10, "destination_address": 1, "link_function": "link_status",
            "device_type": "DNP3 outstation", "tags": ["telecontrol"]}))
    );
    // Its address from masters 1, 3 and 0, all in the one batch: it answered the first.
    assert_eq!(*o.seen.lock().unwrap(), [(10, 1), (10, 3), (10, 0)]);
    assert_eq!((f.vendor.as_deref(), f.rule.as_deref()), (None, Some("dnp3.outstation.link_status")));
    assert!(f.evidence.starts_with("0564050b01000a00"), "{}", f.evidence);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outstation_that_only_accepts_master_3_is_found_in_the_same_batch() {
    let o = Outstation { address: 4, master: Some(3), seen: Default::default() };
    let d = o.clone();
    let _r = tcp_device("127.120.2.2:20000", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.2.2,c\n");
    let findings = scan(&path, "20000", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].protocol, "dnp3");
    assert_eq!(
        common::attributes_with_rules(&findings[0]),
        attributes(json!({"source_address": 4, "destination_address": 3, "link_function": "link_status",
            "device_type": "DNP3 outstation", "tags": ["telecontrol"]}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outstation_that_answers_with_an_ack_is_dnp3() {
    // Some stacks answer any primary frame for them with ACK (DIR=0, PRM=0, function 0).
    let _r = tcp_device("127.120.2.3:20000", || {
        Box::new(|req: &[u8]| {
            let mut rest = req;
            while rest.len() >= 10 {
                let (frame, tail) = rest.split_at(10);
                rest = tail;
                if frame[4..6] == 1024u16.to_le_bytes() {
                    return Some(header(0x00, u16::from_le_bytes([frame[6], frame[7]]), 1024));
                }
            }
            None
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.2.3,c\n");
    let findings = scan(&path, "20000", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        common::attributes_with_rules(&findings[0]),
        attributes(json!({"source_address": 1024, "destination_address": 1, "link_function": "ack",
            "device_type": "DNP3 outstation", "tags": ["telecontrol"]}))
    );
}

async fn not_dnp3(addr: &str, make: impl Fn() -> Handler + Send + Sync + 'static) {
    assert_unidentified(addr, 20000, make, "source_address").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_server_is_not_dnp3() {
    not_dnp3("127.120.2.10", echo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_server_is_not_dnp3() {
    not_dnp3("127.120.2.11", || always(b"\x00\x01garbage\xff\xfe")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_status_with_a_bad_crc_is_not_dnp3() {
    not_dnp3("127.120.2.12", || {
        Box::new(|req: &[u8]| {
            let mut r = header(0x0B, 1, u16::from_le_bytes([req[4], req[5]]));
            r[9] ^= 0xFF;
            Some(r)
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflector_that_swaps_addresses_but_keeps_dir_is_not_dnp3() {
    // Valid CRCs, but every frame claims to come from a master (DIR=1): no outstation answered.
    not_dnp3("127.120.2.13", || {
        Box::new(|req: &[u8]| {
            let mut out = Vec::new();
            for frame in req.chunks_exact(10) {
                let (d, s) = (u16::from_le_bytes([frame[4], frame[5]]), u16::from_le_bytes([frame[6], frame[7]]));
                out.extend_from_slice(&header(0xC9, s, d));
            }
            Some(out)
        })
    })
    .await;
}
