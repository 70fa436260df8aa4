//! BACnet/IP identification against simulated devices built from ASHRAE 135 (Annex J, clauses
//! 6, 16 and 20): BVLC, NPDU, Who-Is / I-Am, ReadProperty with ComplexACK, Error, Reject.

mod common;

use common::{always, echo, ledger, scan, udp_device};
use otscope_lab::bacnet::Device;
use serde_json::json;
use std::collections::HashMap;

fn strings(pairs: &[(u32, &str)]) -> HashMap<u32, String> {
    pairs.iter().map(|(p, s)| (*p, s.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_then_read_property() {
    // Answers unicast Who-Is and rejects the wildcard instance (Error object / unknown-object).
    let jci = Device {
        instance: 1_210_001,
        vendor_id: 5,
        answers_who_is: true,
        accepts_wildcard: false,
        strings: strings(&[
            (77, "NAE-3-Boiler Plant"),
            (121, "Johnson Controls, Inc."),
            (70, "MS-NAE5510-2"),
            (44, "Release 9.0"),
            (12, "9.0.0.2036"),
            (58, "Mech Room B2"),
            (28, "Network Automation Engine"),
        ]),
    };
    let _a = udp_device("127.122.1.1:47808", move || jci.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.1.1,c\n");
    let findings = scan(&path, "47808/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("bacnet", true));
    assert_eq!(
        serde_json::Value::Object(common::attributes_with_rules(f)),
        json!({
            "instance": 1_210_001, "vendor_id": 5, "object_name": "NAE-3-Boiler Plant",
            "vendor_name": "Johnson Controls, Inc.",
            "model_name": "MS-NAE5510-2", "firmware_revision": "Release 9.0",
            "application_software_version": "9.0.0.2036", "location": "Mech Room B2",
            "description": "Network Automation Engine",
            // Outputs of the matching rule (bacnet.jci.metasys-nae).
            "device_type": "Building automation controller", "tags": ["bms", "metasys"]
        })
    );
    assert_eq!(
        (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref()),
        (Some("Johnson Controls"), Some("Metasys NAE MS-NAE5510-2"), Some("Release 9.0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_fallback_when_who_is_goes_unanswered() {
    // Silent to a unicast Who-Is; answers the wildcard instance; vendor-name read returns an Error PDU.
    let pxc = Device {
        instance: 2098,
        vendor_id: 7,
        answers_who_is: false,
        accepts_wildcard: true,
        strings: strings(&[(77, "PXC-AHU-01"), (70, "PXC001-E.D"), (44, "FW=03.03.12;")]),
    };
    let _b = udp_device("127.122.1.2:47808", move || pxc.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.1.2,c\n");
    let findings = scan(&path, "47808/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("bacnet", true));
    assert_eq!(
        serde_json::Value::Object(common::attributes_with_rules(f)),
        json!({
            "instance": 2098, "object_name": "PXC-AHU-01", "vendor_id": 7, "model_name": "PXC001-E.D",
            "firmware_revision": "FW=03.03.12;",
            // Outputs of the matching rule (bacnet.siemens.desigo-pxc).
            "device_type": "Building automation controller", "tags": ["bms", "desigo"]
        })
    );
    assert_eq!(
        (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref()),
        (Some("Siemens"), Some("Desigo PXC001-E.D"), Some("FW=03.03.12;"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_refusing_every_identification_is_still_bacnet() {
    // No I-Am, and the wildcard read gets Error object / unknown-object.
    let closed =
        Device { instance: 77, vendor_id: 8, answers_who_is: false, accepts_wildcard: false, strings: HashMap::new() };
    let _c = udp_device("127.122.1.3:47808", move || closed.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.1.3,c\n");
    let findings = scan(&path, "47808/udp", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].protocol, "bacnet");
    assert_eq!(
        serde_json::Value::Object(common::attributes_with_rules(&findings[0])),
        json!({"error_class": 1, "error_code": 31})
    );
    assert_eq!((findings[0].vendor.as_deref(), findings[0].product.as_deref()), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_and_garbage_are_not_bacnet() {
    let _echo = udp_device("127.122.1.11:47808", echo).await;
    let _junk = udp_device("127.122.1.12:47808", || always(b"\x81\x0a\xff\xff\x01\x00")).await;
    // A BVLC length that claims more than the datagram holds.
    let _short = udp_device("127.122.1.13:47808", || {
        Box::new(|req: &[u8]| {
            let mut r = req.to_vec();
            r[2..4].copy_from_slice(&1400u16.to_be_bytes());
            r.extend_from_slice(&[0x10, 0x00, 0xC4]);
            Some(r)
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.1.11-127.122.1.13,c\n");
    let findings = scan(&path, "47808/udp", &Default::default(), common::options()).await;
    // UDP peers whose replies validate as nothing are open: `unknown`, with their evidence.
    let (udp, findings): (Vec<_>, Vec<_>) = findings.into_iter().partition(|f| f.transport.as_str() == "udp");
    assert!(udp.iter().all(|f| f.protocol == "unknown" && !f.ics && !f.evidence.is_empty()), "{udp:#?}");
    assert_eq!(udp.len(), 3, "{udp:#?}");
    assert!(findings.is_empty(), "{findings:#?}");
}
