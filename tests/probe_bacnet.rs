//! BACnet/IP identification against simulated devices built from ASHRAE 135 (Annex J, clauses
//! 6, 16 and 20): BVLC, NPDU, Who-Is / I-Am, ReadProperty with ComplexACK, Error, Reject.

mod common;

use common::{ledger, scan, udp_device, Handler};
use serde_json::json;
use std::collections::HashMap;

const WILDCARD: u32 = 4_194_303;

/// A simulated BACnet/IP device.
#[derive(Clone)]
struct Device {
    instance: u32,
    vendor_id: u16,
    /// Whether it answers a unicast Who-Is with I-Am.
    answers_who_is: bool,
    /// Whether ReadProperty accepts the wildcard instance 4194303.
    accepts_wildcard: bool,
    /// Character-string properties it holds, by property identifier (charset 0: UTF-8).
    strings: HashMap<u32, &'static str>,
}

fn bvlc(npdu_apdu: &[u8]) -> Vec<u8> {
    let mut r = vec![0x81, 0x0A];
    r.extend_from_slice(&((4 + npdu_apdu.len()) as u16).to_be_bytes());
    r.extend_from_slice(npdu_apdu);
    r
}

fn oid(object_type: u32, instance: u32) -> [u8; 4] {
    ((object_type << 22) | instance).to_be_bytes()
}

fn unsigned_app(tag: u8, v: u32) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take(3).take_while(|&&x| x == 0).count();
    let mut r = vec![(tag << 4) | (4 - skip) as u8];
    r.extend_from_slice(&b[skip..]);
    r
}

fn char_string(s: &str) -> Vec<u8> {
    let len = s.len() + 1;
    let mut r = if len < 5 { vec![0x70 | len as u8] } else { vec![0x75, len as u8] };
    r.push(0x00); // ANSI X3.4 / UTF-8
    r.extend_from_slice(s.as_bytes());
    r
}

impl Device {
    fn i_am(&self) -> Vec<u8> {
        let mut apdu = vec![0x01, 0x00, 0x10, 0x00, 0xC4];
        apdu.extend_from_slice(&oid(8, self.instance));
        apdu.extend_from_slice(&unsigned_app(2, 1476)); // max APDU length accepted
        apdu.extend_from_slice(&[0x91, 0x03]); // segmentation: none
        apdu.extend_from_slice(&unsigned_app(2, u32::from(self.vendor_id)));
        bvlc(&apdu)
    }

    fn error(invoke: u8, class: u8, code: u8) -> Vec<u8> {
        bvlc(&[0x01, 0x00, 0x50, invoke, 0x0C, 0x91, class, 0x91, code])
    }

    /// Answers one datagram as a device would; anything it does not understand is dropped.
    fn answer(&self, req: &[u8]) -> Option<Vec<u8>> {
        if req.len() < 6 || req[0] != 0x81 || req[1] != 0x0A {
            return None;
        }
        if u16::from_be_bytes([req[2], req[3]]) as usize != req.len() || req[4] != 0x01 {
            return None;
        }
        let control = req[5];
        if control & 0x80 != 0 || control & 0x28 != 0 {
            return None; // network messages and routed requests: not for this test device
        }
        let apdu = &req[6..];
        match *apdu.first()? >> 4 {
            // Unconfirmed Who-Is without a range (or with one that covers us).
            1 if apdu.get(1) == Some(&0x08) => self.answers_who_is.then(|| self.i_am()),
            0 => self.read_property(apdu),
            _ => None,
        }
    }

    fn read_property(&self, apdu: &[u8]) -> Option<Vec<u8>> {
        let invoke = *apdu.get(2)?;
        if apdu.get(3) != Some(&0x0C) {
            // Any other confirmed service: reject as unrecognized-service (9).
            return Some(bvlc(&[0x01, 0x00, 0x60, invoke, 0x09]));
        }
        if apdu.get(4) != Some(&0x0C) {
            return Some(bvlc(&[0x01, 0x00, 0x60, invoke, 0x04])); // invalid tag
        }
        let o = u32::from_be_bytes(apdu.get(5..9)?.try_into().ok()?);
        let (object_type, instance) = (o >> 22, o & 0x3F_FFFF);
        let (tag, rest) = (*apdu.get(9)?, apdu.get(10..)?);
        let property = match tag {
            0x19 => u32::from(*rest.first()?),
            0x1A => u32::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            _ => return Some(bvlc(&[0x01, 0x00, 0x60, invoke, 0x04])),
        };
        let addressed =
            object_type == 8 && (instance == self.instance || (instance == WILDCARD && self.accepts_wildcard));
        if !addressed {
            return Some(Self::error(invoke, 1, 31)); // object, unknown-object
        }
        let value = match property {
            75 => {
                let mut v = vec![0xC4];
                v.extend_from_slice(&oid(8, self.instance));
                v
            }
            120 => unsigned_app(2, u32::from(self.vendor_id)),
            p => match self.strings.get(&p) {
                Some(text) => char_string(text),
                None => return Some(Self::error(invoke, 2, 32)), // property, unknown-property
            },
        };
        let mut ack = vec![0x01, 0x00, 0x30, invoke, 0x0C, 0x0C];
        ack.extend_from_slice(&oid(8, self.instance));
        ack.push(tag);
        ack.extend_from_slice(&rest[..if tag == 0x19 { 1 } else { 2 }]);
        ack.push(0x3E);
        ack.extend_from_slice(&value);
        ack.push(0x3F);
        Some(bvlc(&ack))
    }

    fn handler(self) -> Handler {
        Box::new(move |req: &[u8]| self.answer(req))
    }
}

fn strings(pairs: &[(u32, &'static str)]) -> HashMap<u32, &'static str> {
    pairs.iter().copied().collect()
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
    let _a = udp_device("127.122.1.1:47808", move || jci.clone().handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.1.1,c\n");
    let findings = scan(&path, "47808/udp", &Default::default(), &[]).await;
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
    let _b = udp_device("127.122.1.2:47808", move || pxc.clone().handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.1.2,c\n");
    let findings = scan(&path, "47808/udp", &Default::default(), &[]).await;
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
    let _c = udp_device("127.122.1.3:47808", move || closed.clone().handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.122.1.3,c\n");
    let findings = scan(&path, "47808/udp", &Default::default(), &[]).await;
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
    let _echo = udp_device("127.122.1.11:47808", || Box::new(|req: &[u8]| Some(req.to_vec()))).await;
    let _junk =
        udp_device("127.122.1.12:47808", || Box::new(|_: &[u8]| Some(b"\x81\x0a\xff\xff\x01\x00".to_vec()))).await;
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
    let findings = scan(&path, "47808/udp", &Default::default(), &[]).await;
    assert!(findings.is_empty(), "{findings:#?}");
}
