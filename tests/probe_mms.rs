//! IEC 61850 MMS on port 102 against simulated IEDs built from the layered layout: TPKT, COTP
//! class 0, ISO 8327 session, ISO 8823 presentation, ACSE, MMS (BER).

mod common;

use common::{ledger, scan, tcp_device, Handler};
use otscope_lab::iso::{self, cotp, tsaps};
use serde_json::json;

const MMS_CONTEXT: [u8; 7] = [0x06, 0x05, 0x28, 0xCA, 0x22, 0x02, 0x03];

/// The IED's COTP references.
const DST_REF: u16 = 0x0003;
const SRC_REF: u16 = 0x0001;

/// A Connection Confirm with the called TSAP first, as this stack writes it.
fn cc(calling: &[u8], called: &[u8]) -> Vec<u8> {
    iso::connection_confirm(DST_REF, SRC_REF, &[iso::TPDU_SIZE_1024, (0xC2, called), (0xC1, calling)])
}

fn dr() -> Vec<u8> {
    iso::disconnect_request(DST_REF, SRC_REF, 0x80)
}

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if value.len() < 0x80 {
        out.push(value.len() as u8);
    } else if value.len() < 0x100 {
        out.extend_from_slice(&[0x81, value.len() as u8]);
    } else {
        out.push(0x82);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(value);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A CONNECT SPDU whose user data is a CP-type carrying an AARQ for MMS with an Initiate request.
fn is_associate_request(p: &[u8]) -> bool {
    p.len() > 40
        && p[0] == 0x0D
        && usize::from(p[1]) == p.len() - 2
        && contains(p, &[0x33, 0x02, 0x00, 0x01, 0x34, 0x02, 0x00, 0x01, 0xC1])
        && contains(p, &[0x31, 0x81])
        && contains(p, &MMS_CONTEXT)
        && contains(p, &[0xA8, 0x26, 0x80, 0x03])
}

/// The invokeID of an Identify request in MMS data (`01 00 01 00`, presentation, `A0 05 02 01 id 82 00`).
fn identify_invoke_id(p: &[u8]) -> Option<u8> {
    if !p.starts_with(&[0x01, 0x00, 0x01, 0x00, 0x61]) {
        return None;
    }
    let at = p.windows(5).position(|w| w[..4] == [0xA0, 0x05, 0x02, 0x01])?;
    (p.get(at + 5..at + 7)? == [0x82, 0x00]).then(|| p[at + 4])
}

/// ACCEPT ( CPA ( AARE ( result, Initiate-Response or nothing ) ) ).
fn associate_response(result: u8, mms: Option<Vec<u8>>) -> Vec<u8> {
    let mut aare =
        [tlv(0xA1, &MMS_CONTEXT), tlv(0xA2, &[0x02, 0x01, result]), tlv(0xA3, &tlv(0xA1, &[0x02, 0x01, 0x00]))]
            .concat();
    if let Some(pdu) = mms {
        aare.extend(tlv(0xBE, &tlv(0x28, &[&[0x02, 0x01, 0x03][..], &tlv(0xA0, &pdu)].concat())));
    }
    let aare = tlv(0x61, &aare);
    let results = [
        tlv(0x30, &[0x80, 0x01, 0x00, 0x81, 0x02, 0x51, 0x01]),
        tlv(0x30, &[0x80, 0x01, 0x00, 0x81, 0x02, 0x51, 0x01]),
    ]
    .concat();
    let normal = [
        vec![0x83, 0x04, 0x00, 0x00, 0x00, 0x01],
        tlv(0xA5, &results),
        tlv(0x61, &tlv(0x30, &[&[0x02, 0x01, 0x01][..], &tlv(0xA0, &aare)].concat())),
    ]
    .concat();
    let cpa = tlv(0x31, &[vec![0xA0, 0x03, 0x80, 0x01, 0x01], tlv(0xA2, &normal)].concat());
    let mut params =
        vec![0x05, 0x06, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x14, 0x02, 0x00, 0x02, 0x34, 0x02, 0x00, 0x01, 0xC1];
    params.push(cpa.len() as u8);
    params.extend(cpa);
    let mut spdu = vec![0x0E, params.len() as u8];
    spdu.extend(params);
    spdu
}

/// Initiate-ResponsePDU: max PDU 65000, 5/5 outstanding, nesting 4, version 1, CBB, services.
fn initiate_response() -> Vec<u8> {
    let detail = [
        &[0x80, 0x01, 0x01][..],
        &[0x81, 0x03, 0x05, 0xF1, 0x00],
        &[0x82, 0x0C, 0x03, 0xEE, 0x1C, 0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x79, 0xEF, 0x18],
    ]
    .concat();
    let body = [
        &[0x80, 0x03, 0x00, 0xFD, 0xE8][..],
        &[0x81, 0x01, 0x05],
        &[0x82, 0x01, 0x05],
        &[0x83, 0x01, 0x04],
        &tlv(0xA4, &detail),
    ]
    .concat();
    tlv(0xA9, &body)
}

fn mms_data(pdu: &[u8]) -> Vec<u8> {
    let pdv = [&[0x02, 0x01, 0x03][..], &tlv(0xA0, pdu)].concat();
    [&[0x01, 0x00, 0x01, 0x00][..], &tlv(0x61, &tlv(0x30, &pdv))].concat()
}

fn identify_response(invoke: u8, vendor: &str, model: &str, revision: &str) -> Vec<u8> {
    let fields = [tlv(0x80, vendor.as_bytes()), tlv(0x81, model.as_bytes()), tlv(0x82, revision.as_bytes())].concat();
    mms_data(&tlv(0xA1, &[&[0x02, 0x01, invoke][..], &tlv(0xA2, &fields)].concat()))
}

/// An IED on a libIEC61850-like stack: confirms COTP for short TSAPs (any value), drops the
/// transport connection (DR) on data that is not a session SPDU (S7, S7comm-plus) and on long
/// TSAPs, associates, and answers Identify. Replies go out in 64-byte DT segments.
fn ied(vendor: &'static str, model: &'static str, revision: &'static str) -> impl Fn() -> Handler + Send + Sync {
    move || {
        Box::new(move |req: &[u8]| {
            if let Some((calling, called)) = cotp(req).and_then(tsaps) {
                return Some(if called.len() < 5 { cc(&calling, &called) } else { dr() });
            }
            let p = iso::data_payload(req)?;
            if is_associate_request(p) {
                return Some(iso::data_segments(&associate_response(0, Some(initiate_response())), 64));
            }
            if let Some(id) = identify_invoke_id(p) {
                return Some(iso::data_segments(&identify_response(id, vendor, model, revision), 64));
            }
            Some(dr())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ied_is_identified_by_mms_identify() {
    let _ied = tcp_device("127.121.2.1:102", ied("MZ Automation", "libiec61850", "1.5.2")).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.2.1,c\n");
    let findings = scan(&path, "102", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("mms", true), "{f:#?}");
    let a = &f.attributes;
    assert_eq!(a["vendor_name"], json!("MZ Automation"));
    assert_eq!(a["model_name"], json!("libiec61850"));
    assert_eq!(a["revision"], json!("1.5.2"));
    assert_eq!(a["mms_version"], json!(1));
    assert_eq!(a["max_pdu_size"], json!(65000));
    assert_eq!(a["services_supported"], json!("ee1c00000408000079ef18"));
    assert_eq!((a["calling_tsap"].clone(), a["called_tsap"].clone()), (json!(1), json!(1)));
    assert!(!a.contains_key("order_number"), "not mistaken for S7");
    assert_eq!(f.vendor.as_deref(), Some("MZ Automation"));
    assert_eq!(f.product.as_deref(), Some("libIEC61850"));
    assert_eq!(f.version.as_deref(), Some("1.5.2"));
}

/// A relay that rejects the association (ACSE result 1) is still an MMS server; one that refuses
/// Identify (confirmed-ErrorPDU) too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_still_prove_mms() {
    let _rejecting = tcp_device("127.121.2.2:102", || {
        Box::new(|req: &[u8]| {
            if let Some((calling, called)) = cotp(req).and_then(tsaps) {
                return Some(cc(&calling, &called));
            }
            let p = iso::data_payload(req)?;
            Some(if is_associate_request(p) { iso::data_segments(&associate_response(1, None), 1024) } else { dr() })
        })
    })
    .await;
    let _no_identify = tcp_device("127.121.2.3:102", || {
        Box::new(|req: &[u8]| {
            if let Some((calling, called)) = cotp(req).and_then(tsaps) {
                return Some(cc(&calling, &called));
            }
            let p = iso::data_payload(req)?;
            if is_associate_request(p) {
                return Some(iso::data_segments(&associate_response(0, Some(initiate_response())), 1024));
            }
            let id = identify_invoke_id(p)?;
            // confirmed-ErrorPDU: invokeID, serviceError { errorClass service: other }.
            Some(iso::data_segments(&mms_data(&[0xA2, 0x08, 0x80, 0x01, id, 0xA1, 0x03, 0x83, 0x01, 0x00]), 1024))
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.2.2-127.121.2.3,c\n");
    let findings = scan(&path, "102", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert_eq!(findings[0].protocol, "mms", "{:#?}", findings[0]);
    assert_eq!(findings[0].attributes["association_result"], json!(1));
    assert_eq!(findings[1].protocol, "mms", "{:#?}", findings[1]);
    assert_eq!(findings[1].attributes["identify_refused"], json!(true));
    assert_eq!(findings[1].attributes["mms_version"], json!(1));
    assert!(!findings[1].attributes.contains_key("vendor_name"));
}

/// Not MMS: an OSI session that is refused, an AARE for another application without MMS data, a
/// session accept whose presentation layer is garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alikes_are_not_mms() {
    fn device(answer: fn() -> Vec<u8>) -> impl Fn() -> Handler + Send + Sync {
        move || {
            Box::new(move |req: &[u8]| {
                if let Some((calling, called)) = cotp(req).and_then(tsaps) {
                    return Some(cc(&calling, &called));
                }
                let p = iso::data_payload(req)?;
                Some(if is_associate_request(p) { iso::data_segments(&answer(), 1024) } else { dr() })
            })
        }
    }
    let _refused = tcp_device("127.121.2.10:102", device(|| vec![0x0C, 0x03, 0x32, 0x01, 0x00])).await;
    let _other_app = tcp_device(
        "127.121.2.11:102",
        device(|| {
            let mut r = associate_response(0, None);
            let at = r.windows(MMS_CONTEXT.len()).position(|w| w == MMS_CONTEXT).unwrap();
            r[at + 2..at + 7].copy_from_slice(&[0x2B, 0x06, 0x01, 0x04, 0x01]);
            r
        }),
    )
    .await;
    let _garbage =
        tcp_device("127.121.2.12:102", device(|| [&[0x0E, 0x08, 0xC1, 0x06][..], b"\x31\x10ABCD"].concat())).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.2.10-127.121.2.12,c\n");
    let findings = scan(&path, "102", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        assert_eq!(f.protocol, "unknown", "{f:#?}");
    }
}
