//! Modbus/TCP identification against simulated devices built from the MODBUS Application Protocol
//! Specification V1.1b3 and the Modbus/TCP implementation guide: exact findings, unit-id sweeps,
//! exception replies, the holding-register fallback, and peers that must not be taken for Modbus.

mod common;

use common::{ledger, scan, tcp_device, Handler};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// What a simulated device does with function 43/14.
#[derive(Clone)]
enum Fc43 {
    /// Serves these identification objects (basic 00-02, regular 03-06).
    Serve { conformity: u8, objects: Vec<(u8, &'static str)>, per_reply: usize },
    /// Answers with this exception code.
    Exception(u8),
    /// Drops the request without a reply (as some stacks do for functions they lack).
    Drop,
}

#[derive(Clone)]
struct Device {
    /// Unit ids the device answers; others are dropped silently.
    units: Vec<u8>,
    /// Unit ids for which a gateway answers exception 0B (target device failed to respond).
    absent_units: Vec<u8>,
    fc43: Fc43,
    /// Whether Read Holding Registers 0 is served (else exception 02, illegal data address).
    holding_register: bool,
    /// Function codes received, for assertions.
    seen: Arc<Mutex<Vec<(u8, u8)>>>,
}

fn adu(tid: [u8; 2], unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = vec![tid[0], tid[1], 0, 0];
    out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out.push(unit);
    out.extend_from_slice(pdu);
    out
}

impl Device {
    fn handler(&self) -> Handler {
        let device = self.clone();
        Box::new(move |bytes: &[u8]| {
            // A Modbus/TCP server parses the stream ADU by ADU.
            let mut replies = Vec::new();
            let mut rest = bytes;
            while rest.len() >= 7 {
                let len = u16::from_be_bytes([rest[4], rest[5]]) as usize;
                if rest[2..4] != [0, 0] || len < 2 || rest.len() < 6 + len {
                    break; // not Modbus: a real server drops it
                }
                let (one, tail) = rest.split_at(6 + len);
                rest = tail;
                if let Some(r) = device.answer(one) {
                    replies.extend_from_slice(&r);
                }
            }
            (!replies.is_empty()).then_some(replies)
        })
    }

    fn answer(&self, request: &[u8]) -> Option<Vec<u8>> {
        let tid = [request[0], request[1]];
        let unit = request[6];
        let pdu = &request[7..];
        self.seen.lock().unwrap().push((unit, pdu[0]));
        if self.absent_units.contains(&unit) {
            return Some(adu(tid, unit, &[pdu[0] | 0x80, 0x0B]));
        }
        if !self.units.contains(&unit) {
            return None;
        }
        let reply = match pdu {
            [0x2B, 0x0E, code, object] => match &self.fc43 {
                Fc43::Drop => return None,
                Fc43::Exception(e) => vec![0xAB, *e],
                Fc43::Serve { conformity, objects, per_reply } => {
                    let category: Vec<_> = match code {
                        1 => objects.iter().filter(|(id, _)| *id <= 2).collect(),
                        2 => objects.iter().filter(|(id, _)| *id <= 6).collect(),
                        _ => return Some(adu(tid, unit, &[0xAB, 0x03])),
                    };
                    if *code == 2 && conformity & 0x7F < 2 {
                        return Some(adu(tid, unit, &[0xAB, 0x03]));
                    }
                    // Stream access restarts at the first object when the id is not in the category.
                    let start = category.iter().position(|(id, _)| id == object).unwrap_or(0);
                    let chunk: Vec<_> = category.iter().skip(start).take(*per_reply).collect();
                    let next = category.get(start + chunk.len());
                    let mut r = vec![0x2B, 0x0E, *code, *conformity];
                    r.push(if next.is_some() { 0xFF } else { 0x00 });
                    r.push(next.map_or(0, |(id, _)| *id));
                    r.push(chunk.len() as u8);
                    for (id, value) in chunk {
                        r.push(*id);
                        r.push(value.len() as u8);
                        r.extend_from_slice(value.as_bytes());
                    }
                    r
                }
            },
            [0x03, 0x00, 0x00, 0x00, 0x01] if self.holding_register => vec![0x03, 0x02, 0x00, 0x2A],
            [0x03, ..] => vec![0x83, 0x02],
            [f, ..] => vec![f | 0x80, 0x01],
            [] => return None,
        };
        Some(adu(tid, unit, &reply))
    }
}

fn attributes(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

const M340: [(u8, &str); 6] = [
    (0, "Schneider Electric"),
    (1, "BMX P34 2020"),
    (2, "v2.8"),
    (3, "http://www.schneider-electric.com"),
    (4, "Modicon M340"),
    (5, "BMX P34 2020"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_answers_only_unit_1_is_identified_with_its_regular_objects() {
    let device = Device {
        units: vec![1],
        absent_units: vec![],
        fc43: Fc43::Serve { conformity: 0x82, objects: M340.to_vec(), per_reply: 4 },
        holding_register: true,
        seen: Default::default(),
    };
    let d = device.clone();
    let _r = tcp_device("127.120.1.1:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.1,c\n");
    let findings = scan(&path, "502", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics, f.port), ("modbus", true, 502));
    assert_eq!(
        common::attributes_with_rules(f),
        attributes(json!({
            "vendor_name": "Schneider Electric",
            "product_code": "BMX P34 2020",
            "revision": "v2.8",
            "vendor_url": "http://www.schneider-electric.com",
            "product_name": "Modicon M340",
            "model_name": "BMX P34 2020",
            "unit_id": 1,
            "conformity_level": 0x82,
            "device_type": "PLC",
            "cpe": "cpe:2.3:o:schneider-electric:modicon_m340_firmware:2.8:*:*:*:*:*:*:*",
            "tags": ["plc"],
        }))
    );
    assert_eq!(
        (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref(), f.rule.as_deref()),
        (Some("Schneider Electric"), Some("Modicon M340 BMX P34 2020"), Some("2.8"), Some("modbus.schneider.m340"))
    );
    // Unit 0 (silent), unit 1 basic, unit 1 regular in two transactions ("more follows"); no register read.
    assert_eq!(*device.seen.lock().unwrap(), [(0, 0x2B), (1, 0x2B), (1, 0x2B), (1, 0x2B)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_only_device_keeps_its_basic_identification() {
    let device = Device {
        units: vec![0, 1, 255],
        absent_units: vec![],
        fc43: Fc43::Serve {
            conformity: 0x01,
            objects: vec![(0, "KBR GmbH"), (1, "multicomp F144-3"), (2, "2.00r016")],
            per_reply: 8,
        },
        holding_register: true,
        seen: Default::default(),
    };
    let d = device.clone();
    let _r = tcp_device("127.120.1.2:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.2,c\n");
    let findings = scan(&path, "502", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].protocol, "modbus");
    assert_eq!(
        common::attributes_with_rules(&findings[0]),
        attributes(json!({
            "vendor_name": "KBR GmbH",
            "product_code": "multicomp F144-3",
            "revision": "2.00r016",
            "unit_id": 0,
            "conformity_level": 1,
        }))
    );
    let f = &findings[0];
    assert_eq!(
        (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref(), f.rule.as_deref()),
        (Some("KBR GmbH"), Some("multicomp F144-3"), Some("2.00r016"), Some("modbus.generic"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_regular_read_leaves_the_basic_identification_standing() {
    let device = Device {
        units: vec![0],
        absent_units: vec![],
        fc43: Fc43::Serve { conformity: 0x02, objects: M340.to_vec(), per_reply: 8 },
        holding_register: true,
        seen: Default::default(),
    };
    let d = device.clone();
    // The regular read (read code 02) is echoed back instead of answered.
    let _r = tcp_device("127.120.1.7:502", move || {
        let mut inner = d.handler();
        Box::new(move |req: &[u8]| if req.get(9) == Some(&0x02) { Some(req.to_vec()) } else { inner(req) })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.7,c\n");
    let findings = scan(&path, "502", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.rule.as_deref()), ("modbus", Some("modbus.schneider.m340")));
    assert_eq!(f.attributes["product_code"], "BMX P34 2020");
    assert_eq!(f.attributes["unit_id"], 0);
    assert!(!f.attributes.contains_key("product_name"), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_illegal_function_exception_still_proves_modbus() {
    let device = Device {
        units: vec![0, 1, 255],
        absent_units: vec![],
        fc43: Fc43::Exception(0x01),
        holding_register: true,
        seen: Default::default(),
    };
    let d = device.clone();
    let _r = tcp_device("127.120.1.3:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.3,c\n");
    let findings = scan(&path, "502", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("modbus", true));
    assert_eq!(
        common::attributes_with_rules(f),
        attributes(json!({"unit_id": 0, "function_code": 43, "exception_code": 1}))
    );
    assert_eq!((f.vendor.as_deref(), f.rule.as_deref()), (None, None));
    // The exception is proof enough: nothing more is asked of the device.
    assert_eq!(*device.seen.lock().unwrap(), [(0, 0x2B)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_drops_identification_is_proven_by_one_register_read() {
    let device = Device {
        units: vec![1, 255],
        absent_units: vec![],
        fc43: Fc43::Drop,
        holding_register: true,
        seen: Default::default(),
    };
    let d = device.clone();
    let _r = tcp_device("127.120.1.4:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.4,c\n");
    let findings = scan(&path, "502", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("modbus", true));
    assert_eq!(common::attributes_with_rules(f), attributes(json!({"unit_id": 1, "function_code": 3})));
    assert_eq!(*device.seen.lock().unwrap(), [(0, 0x2B), (1, 0x2B), (255, 0x2B), (1, 0x03)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_is_asked_again_for_another_unit() {
    let device = Device {
        units: vec![1],
        absent_units: vec![0, 255],
        fc43: Fc43::Serve {
            conformity: 0x01,
            objects: vec![(0, "Schneider Electric"), (1, "METSEPM5560"), (2, "002.001.003")],
            per_reply: 8,
        },
        holding_register: true,
        seen: Default::default(),
    };
    let d = device.clone();
    let _r = tcp_device("127.120.1.5:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.5,c\n");
    let findings = scan(&path, "502", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        common::attributes_with_rules(&findings[0]),
        attributes(json!({
            "vendor_name": "Schneider Electric",
            "product_code": "METSEPM5560",
            "revision": "002.001.003",
            "unit_id": 1,
            "conformity_level": 1,
            "device_type": "power meter",
            "tags": ["energy"],
        }))
    );
    let f = &findings[0];
    assert_eq!(
        (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref(), f.rule.as_deref()),
        (
            Some("Schneider Electric"),
            Some("PowerLogic PM5560"),
            Some("002.001.003"),
            Some("modbus.schneider.powerlogic")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_no_device_behind_it_is_reported_with_its_exception() {
    let device = Device {
        units: vec![],
        absent_units: vec![0, 1, 255],
        fc43: Fc43::Drop,
        holding_register: false,
        seen: Default::default(),
    };
    let d = device.clone();
    let _r = tcp_device("127.120.1.6:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.6,c\n");
    let findings = scan(&path, "502", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].protocol, "modbus");
    assert_eq!(
        common::attributes_with_rules(&findings[0]),
        attributes(json!({
            "unit_id": 0,
            "function_code": 43,
            "exception_code": 11,
            "device_type": "Modbus gateway",
            "tags": ["gateway"],
        }))
    );
    assert_eq!(findings[0].rule.as_deref(), Some("modbus.gateway.exception"));
}

/// Peers that reply without speaking Modbus: reported as `unknown`, never as Modbus.
async fn not_modbus(addr: &str, make: impl Fn() -> Handler + Send + Sync + 'static) {
    named_not_modbus(addr, "unknown", make).await;
}

/// A peer that replies without speaking Modbus, reported as what its reply names (or `unknown`).
async fn named_not_modbus(addr: &str, protocol: &str, make: impl Fn() -> Handler + Send + Sync + 'static) {
    let _r = tcp_device(&format!("{addr}:502"), make).await;
    let (_dir, path) = ledger(&format!("E1,ent,district,s,general,{addr},c\n"));
    let findings = scan(&path, "502", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), (protocol, false), "{f:#?}");
    assert!(!f.attributes.contains_key("vendor_name"), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_server_is_not_modbus() {
    not_modbus("127.120.1.10", || Box::new(|req: &[u8]| Some(req.to_vec()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_server_is_not_modbus() {
    // Every reply is evidence: the 400 page names a web server.
    let http_400 = || Box::new(|_: &[u8]| Some(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec())) as Handler;
    named_not_modbus("127.120.1.11", "http", http_400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_with_a_foreign_transaction_id_is_not_modbus() {
    // Well-formed MBAP and a plausible identification PDU, but always transaction id 0x1234.
    not_modbus("127.120.1.12", || {
        Box::new(|req: &[u8]| {
            let mut pdu = vec![0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x04];
            pdu.extend_from_slice(b"ACME");
            Some(adu([0x12, 0x34], req.get(6).copied().unwrap_or(0), &pdu))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_reply_is_not_modbus() {
    // The MBAP header promises 20 bytes; 3 arrive.
    not_modbus("127.120.1.13", || {
        Box::new(|req: &[u8]| {
            let mut r = req.get(..4).unwrap_or_default().to_vec();
            r.extend_from_slice(&[0x00, 0x14, 0x00, 0x2B, 0x0E]);
            Some(r)
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflector_that_alters_the_unit_id_is_not_modbus() {
    // Reflects the request PDU under a valid MBAP header with another unit id: it frames, it is not
    // byte-for-byte an echo, and it answers neither function 43 nor function 03.
    not_modbus("127.120.1.14", || {
        Box::new(|req: &[u8]| {
            let tid = [req[0], req[1]];
            Some(adu(tid, req.get(6).map_or(0, |u| u.wrapping_add(1)), req.get(7..).unwrap_or_default()))
        })
    })
    .await;
}
