//! Modbus/TCP identification against simulated devices built from the MODBUS Application Protocol
//! Specification V1.1b3 and the Modbus/TCP implementation guide: exact findings, unit-id sweeps,
//! exception replies, the holding-register fallback, and peers that must not be taken for Modbus.

mod common;

use common::{always, assert_unidentified, echo, ledger, scan, tcp_device, Handler};
use otscope_lab::modbus::{self, Device, Identification};
use serde_json::{json, Value};
use std::sync::Arc;

/// A device that logs every (unit id, function code) it receives.
fn logging(units: Vec<u8>, absent_units: Vec<u8>, identification: Identification, holding_register: bool) -> Device {
    Device { units, absent_units, identification, holding_register, server_id: None, seen: Some(Arc::default()) }
}

/// What `device` has received so far.
fn seen(device: &Device) -> Vec<(u8, u8)> {
    device.seen.as_ref().unwrap().lock().unwrap().clone()
}

fn attributes(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_answers_only_unit_1_is_identified_with_its_regular_objects() {
    let device = logging(
        vec![1],
        vec![],
        Identification::Serve { conformity: 0x82, objects: modbus::M340.to_vec(), per_reply: 4 },
        true,
    );
    let d = device.clone();
    let _r = tcp_device("127.120.1.1:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.1,c\n");
    let findings = scan(&path, "502", &Default::default(), common::options()).await;
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
    // Units 0 (silent), 1 and 255 basic at once, unit 1 regular in two transactions ("more follows");
    // no register read.
    assert_eq!(seen(&device), [(0, 0x2B), (1, 0x2B), (255, 0x2B), (1, 0x2B), (1, 0x2B)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_only_device_keeps_its_basic_identification() {
    let device = logging(
        vec![0, 1, 255],
        vec![],
        Identification::Serve {
            conformity: 0x01,
            objects: vec![(0, "KBR GmbH"), (1, "multicomp F144-3"), (2, "2.00r016")],
            per_reply: 8,
        },
        true,
    );
    let d = device.clone();
    let _r = tcp_device("127.120.1.2:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.2,c\n");
    let findings = scan(&path, "502", &Default::default(), common::options()).await;
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
    let device = logging(
        vec![0],
        vec![],
        Identification::Serve { conformity: 0x02, objects: modbus::M340.to_vec(), per_reply: 8 },
        true,
    );
    let d = device.clone();
    // The regular read (read code 02) is echoed back instead of answered.
    let _r = tcp_device("127.120.1.7:502", move || {
        let mut inner = d.handler();
        Box::new(move |req: &[u8]| if req.get(9) == Some(&0x02) { Some(req.to_vec()) } else { inner(req) })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.7,c\n");
    let findings = scan(&path, "502", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.rule.as_deref()), ("modbus", Some("modbus.schneider.m340")));
    assert_eq!(f.attributes["product_code"], "BMX P34 2020");
    assert_eq!(f.attributes["unit_id"], 0);
    assert!(!f.attributes.contains_key("product_name"), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_illegal_function_exception_still_proves_modbus() {
    let device = logging(vec![0, 1, 255], vec![], Identification::Exception(0x01), true);
    let d = device.clone();
    let _r = tcp_device("127.120.1.3:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.3,c\n");
    let findings = scan(&path, "502", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("modbus", true));
    assert_eq!(
        common::attributes_with_rules(f),
        attributes(json!({"unit_id": 0, "function_code": 43, "exception_code": 1}))
    );
    assert_eq!((f.vendor.as_deref(), f.rule.as_deref()), (None, None));
    // The unit ids go together; the exception is proof enough: nothing more is asked of the device.
    assert_eq!(seen(&device), [(0, 0x2B), (1, 0x2B), (255, 0x2B)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_drops_identification_is_proven_by_one_register_read() {
    let device = logging(vec![1, 255], vec![], Identification::Silent, true);
    let d = device.clone();
    let _r = tcp_device("127.120.1.4:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.4,c\n");
    let findings = scan(&path, "502", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("modbus", true));
    assert_eq!(common::attributes_with_rules(f), attributes(json!({"unit_id": 1, "function_code": 3})));
    // The identification requests together, then the register reads together.
    assert_eq!(seen(&device), [(0, 0x2B), (1, 0x2B), (255, 0x2B), (1, 0x03), (255, 0x03)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_is_asked_again_for_another_unit() {
    let device = logging(
        vec![1],
        vec![0, 255],
        Identification::Serve {
            conformity: 0x01,
            objects: vec![(0, "Schneider Electric"), (1, "METSEPM5560"), (2, "002.001.003")],
            per_reply: 8,
        },
        true,
    );
    let d = device.clone();
    let _r = tcp_device("127.120.1.5:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.5,c\n");
    let findings = scan(&path, "502", &Default::default(), common::options()).await;
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
    let device = logging(vec![], vec![0, 1, 255], Identification::Silent, false);
    let d = device.clone();
    let _r = tcp_device("127.120.1.6:502", move || d.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.120.1.6,c\n");
    let findings = scan(&path, "502", &Default::default(), common::options()).await;
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
    assert_unidentified(addr, 502, make, "vendor_name").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_server_is_not_modbus() {
    not_modbus("127.120.1.10", echo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_server_is_not_modbus() {
    // Every reply is evidence: the 400 page names a web server, never Modbus.
    let _r = tcp_device("127.120.1.11:502", || always(b"HTTP/1.1 400 Bad Request\r\n\r\n")).await;
    let findings = common::scan_range("127.120.1.11", "502", common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!((findings[0].protocol.as_str(), findings[0].ics), ("http", false), "{findings:#?}");
    assert!(!findings[0].attributes.contains_key("vendor_name"), "{findings:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_with_a_foreign_transaction_id_is_not_modbus() {
    // Well-formed MBAP and a plausible identification PDU, but always transaction id 0x1234.
    not_modbus("127.120.1.12", || {
        Box::new(|req: &[u8]| {
            let mut pdu = vec![0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x04];
            pdu.extend_from_slice(b"ACME");
            Some(modbus::adu([0x12, 0x34], req.get(6).copied().unwrap_or(0), &pdu))
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
            Some(modbus::adu(tid, req.get(6).map_or(0, |u| u.wrapping_add(1)), req.get(7..).unwrap_or_default()))
        })
    })
    .await;
}
