//! S7comm on port 102 against simulated CPUs built from the protocol layout: TPKT (RFC 1006),
//! COTP class 0, S7 header, setup communication and Read SZL.

mod common;

use common::iso::{cotp, tpkt};
use common::{ledger, scan, tcp_device, Handler};
use serde_json::json;

/// The called TSAP (parameter C2) of a Connection Request.
fn called_tsap(tpdu: &[u8]) -> Option<Vec<u8>> {
    if tpdu.get(1) != Some(&0xE0) {
        return None;
    }
    let li = usize::from(tpdu[0]);
    let mut params = tpdu.get(7..=li)?;
    while params.len() >= 2 {
        let (code, len) = (params[0], usize::from(params[1]));
        let value = params.get(2..2 + len)?;
        if code == 0xC2 {
            return Some(value.to_vec());
        }
        params = &params[2 + len..];
    }
    None
}

fn cc(calling: &[u8], called: &[u8], with_size: bool) -> Vec<u8> {
    let mut body = vec![0xD0, 0x00, 0x01, 0x44, 0x31, 0x00];
    if with_size {
        body.extend_from_slice(&[0xC0, 0x01, 0x0A]);
    }
    body.extend_from_slice(&[0xC1, calling.len() as u8]);
    body.extend_from_slice(calling);
    body.extend_from_slice(&[0xC2, called.len() as u8]);
    body.extend_from_slice(called);
    let mut tpdu = vec![body.len() as u8];
    tpdu.extend_from_slice(&body);
    tpkt(&tpdu)
}

fn dr(reason: u8) -> Vec<u8> {
    tpkt(&[0x06, 0x80, 0x00, 0x01, 0x44, 0x31, reason])
}

fn dt(payload: &[u8]) -> Vec<u8> {
    let mut tpdu = vec![0x02, 0xF0, 0x80];
    tpdu.extend_from_slice(payload);
    tpkt(&tpdu)
}

/// The S7 PDU inside a DT request.
fn s7_of(req: &[u8]) -> Option<&[u8]> {
    let tpdu = cotp(req)?;
    (tpdu.len() > 3 && tpdu[..3] == [0x02, 0xF0, 0x80] && tpdu[3] == 0x32).then(|| &tpdu[3..])
}

fn s7(rosctr: u8, pdu_ref: [u8; 2], error: Option<[u8; 2]>, param: &[u8], data: &[u8]) -> Vec<u8> {
    let mut pdu = vec![0x32, rosctr, 0x00, 0x00, pdu_ref[0], pdu_ref[1]];
    pdu.extend_from_slice(&(param.len() as u16).to_be_bytes());
    pdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
    if let Some(e) = error {
        pdu.extend_from_slice(&e);
    }
    pdu.extend_from_slice(param);
    pdu.extend_from_slice(data);
    dt(&pdu)
}

fn setup_ack(req: &[u8], pdu_length: u16) -> Vec<u8> {
    let mut param = vec![0xF0, 0x00, 0x00, 0x01, 0x00, 0x01];
    param.extend_from_slice(&pdu_length.to_be_bytes());
    s7(0x03, [req[4], req[5]], Some([0, 0]), &param, &[])
}

fn module_record(index: u16, mlfb: &str, ausbg: [u8; 2], ausbe: [u8; 2]) -> Vec<u8> {
    let mut r = index.to_be_bytes().to_vec();
    let mut name = mlfb.as_bytes().to_vec();
    name.resize(20, b' ');
    r.extend_from_slice(&name);
    r.extend_from_slice(&[0x00, 0xC0]);
    r.extend_from_slice(&ausbg);
    r.extend_from_slice(&ausbe);
    r
}

fn component_record(index: u16, text: &str) -> Vec<u8> {
    let mut r = index.to_be_bytes().to_vec();
    let mut s = text.as_bytes().to_vec();
    s.resize(32, 0);
    r.extend_from_slice(&s);
    r
}

/// A Read SZL response. `long_param`: the 12-byte response parameter of real CPUs (data unit
/// reference, last unit, error code); otherwise Conpot's 8 bytes.
fn szl_reply(
    pdu_ref: [u8; 2],
    long_param: bool,
    id: u16,
    index: u16,
    len: u16,
    count: u16,
    recs: &[Vec<u8>],
) -> Vec<u8> {
    let mut param = vec![0x00, 0x01, 0x12, if long_param { 0x08 } else { 0x04 }, 0x12, 0x84, 0x01, 0x01];
    if long_param {
        param.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]);
    }
    let mut body = id.to_be_bytes().to_vec();
    body.extend_from_slice(&index.to_be_bytes());
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(&count.to_be_bytes());
    for r in recs {
        body.extend_from_slice(r);
    }
    let mut data = vec![0xFF, 0x09];
    data.extend_from_slice(&(body.len() as u16).to_be_bytes());
    data.extend_from_slice(&body);
    s7(0x07, pdu_ref, None, &param, &data)
}

/// (SZL id, index) of a Read SZL request.
fn szl_request(pdu: &[u8]) -> Option<(u16, u16)> {
    let valid = pdu.len() >= 26
        && pdu[1] == 0x07
        && pdu[10..13] == [0x00, 0x01, 0x12]
        && pdu[14] == 0x11
        && pdu[15] == 0x44
        && pdu[16] == 0x01;
    valid.then(|| (u16::from_be_bytes([pdu[22], pdu[23]]), u16::from_be_bytes([pdu[24], pdu[25]])))
}

fn is_setup(pdu: &[u8]) -> bool {
    pdu.len() >= 18 && pdu[1] == 0x01 && pdu[10] == 0xF0
}

/// An S7-1200 CPU 1214C: refuses PG TSAP 0x0102 (DR, reason 0x85) and answers OP TSAP 0x0200.
fn s7_1200() -> Handler {
    Box::new(|req: &[u8]| {
        if let Some(tpdu) = cotp(req) {
            if let Some(called) = called_tsap(tpdu) {
                return Some(if called == [0x02, 0x00] { cc(&[0x01, 0x00], &called, true) } else { dr(0x85) });
            }
        }
        let pdu = s7_of(req)?;
        if is_setup(pdu) {
            return Some(setup_ack(pdu, 240));
        }
        let r = [pdu[4], pdu[5]];
        match szl_request(pdu)? {
            (0x0011, 0x0000) => Some(szl_reply(
                r,
                true,
                0x0011,
                0,
                28,
                3,
                &[
                    module_record(0x0001, "6ES7 214-1AG40-0XB0", [0x00, 0x01], [0x00, 0x01]),
                    module_record(0x0006, "6ES7 214-1AG40-0XB0", [0x00, 0x01], [0x00, 0x01]),
                    module_record(0x0007, "", [b'V', 4], [2, 1]),
                ],
            )),
            (0x001C, 0x0000) => Some(szl_reply(
                r,
                true,
                0x001C,
                0,
                34,
                6,
                &[
                    component_record(0x0001, "S71200/ET200MP station_1"),
                    component_record(0x0002, "PLC_1"),
                    component_record(0x0003, ""),
                    component_record(0x0004, "Original Siemens Equipment"),
                    component_record(0x0005, "S C-H6M312345678"),
                    component_record(0x0007, "CPU 1214C DC/DC/DC"),
                ],
            )),
            _ => Some(szl_reply(r, true, 0x0000, 0, 0, 0, &[])),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_that_refuses_the_first_tsap_is_identified_on_the_next() {
    let cpu = tcp_device("127.121.0.1:102", s7_1200).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.0.1,c\n");
    let findings = scan(&path, "102", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("s7comm", true), "{f:#?}");
    let a = &f.attributes;
    assert_eq!(a["calling_tsap"], json!(0x0100));
    assert_eq!(a["called_tsap"], json!(0x0200));
    assert_eq!((a["rack"].clone(), a["slot"].clone()), (json!(0), json!(0)));
    assert_eq!(a["pdu_length"], json!(240));
    assert_eq!(a["order_number"], json!("6ES7 214-1AG40-0XB0"));
    assert_eq!(a["hardware_version"], json!("1"));
    assert_eq!(a["firmware_version"], json!("V4.2.1"));
    assert_eq!(a["system_name"], json!("S71200/ET200MP station_1"));
    assert_eq!(a["module_name"], json!("PLC_1"));
    assert_eq!(a["copyright"], json!("Original Siemens Equipment"));
    assert_eq!(a["serial_number"], json!("S C-H6M312345678"));
    assert_eq!(a["module_type"], json!("CPU 1214C DC/DC/DC"));
    assert!(!a.contains_key("plant_id"), "empty strings stay unknown");
    assert!(cpu.count() >= 2, "the refused TSAP costs one connection");
    assert_eq!(f.vendor.as_deref(), Some("Siemens"));
    assert_eq!(f.product.as_deref(), Some("SIMATIC S7-1200 CPU 1214C DC/DC/DC"));
    assert_eq!(f.version.as_deref(), Some("V4.2.1"));
    assert_eq!(f.rule.as_deref(), Some("s7comm.siemens.s7_1200.cpu_1214c_dc_dc_dc"));
}

/// A Conpot-like server: 8-byte userdata parameters, nothing for SZL 0x0011 index 0, one record
/// for index 1, and 0x001C records with zero length and count in the header.
fn conpot_like() -> Handler {
    Box::new(|req: &[u8]| {
        if let Some(tpdu) = cotp(req) {
            if let Some(called) = called_tsap(tpdu) {
                return Some(cc(&[0x01, 0x00], &called, false));
            }
        }
        let pdu = s7_of(req)?;
        if is_setup(pdu) {
            return Some(setup_ack(pdu, 240));
        }
        let r = [pdu[4], pdu[5]];
        let short = vec![0x00, 0x01, 0x12, 0x04, 0x12, 0x84, 0x01, 0x01];
        match szl_request(pdu)? {
            (0x0011, 0x0001) => Some(szl_reply(
                r,
                false,
                0x0011,
                1,
                28,
                1,
                &[module_record(0x0001, "6ES7 151-8AB01-0AB0", [0, 0], [0, 0])],
            )),
            (0x0011, _) => Some(s7(0x07, r, None, &short, &[])),
            (0x001C, _) => Some(szl_reply(
                r,
                false,
                0x001C,
                0,
                0,
                0,
                &[
                    component_record(0x0001, "Technodrome"),
                    component_record(0x0002, "Siemens, SIMATIC, S7-200"),
                    component_record(0x0003, "Mouser Factory"),
                    component_record(0x0004, "Original Siemens Equipment"),
                    component_record(0x0005, "88111222"),
                    component_record(0x0007, "IM151-8 PN/DP CPU"),
                    component_record(0x000B, ""),
                ],
            )),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_counts_and_short_parameters_are_read_from_the_bytes_present() {
    let _cpu = tcp_device("127.121.0.2:102", conpot_like).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.0.2,c\n");
    let findings = scan(&path, "102", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("s7comm", true), "{f:#?}");
    let a = &f.attributes;
    assert_eq!(a["called_tsap"], json!(0x0102));
    assert_eq!(a["slot"], json!(2));
    assert_eq!(a["order_number"], json!("6ES7 151-8AB01-0AB0"));
    assert!(!a.contains_key("firmware_version") && !a.contains_key("hardware_version"), "{a:#?}");
    assert_eq!(a["system_name"], json!("Technodrome"));
    assert_eq!(a["module_name"], json!("Siemens, SIMATIC, S7-200"));
    assert_eq!(a["plant_id"], json!("Mouser Factory"));
    assert_eq!(a["serial_number"], json!("88111222"));
    assert_eq!(a["module_type"], json!("IM151-8 PN/DP CPU"));
    assert!(!a.contains_key("location"));
    assert_eq!(f.vendor.as_deref(), Some("Siemens"));
    assert_eq!(f.product.as_deref(), Some("SIMATIC ET 200S IM151-8 PN/DP CPU"));
    assert_eq!(f.version, None, "no firmware record, no version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s7_error_to_setup_still_proves_s7comm() {
    let _cpu = tcp_device("127.121.0.3:102", || {
        Box::new(|req: &[u8]| {
            if let Some(called) = cotp(req).and_then(called_tsap) {
                return Some(cc(&[0x01, 0x00], &called, true));
            }
            let pdu = s7_of(req)?;
            is_setup(pdu).then(|| s7(0x03, [pdu[4], pdu[5]], Some([0x81, 0x04]), &[], &[]))
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.0.3,c\n");
    let findings = scan(&path, "102", &Default::default(), &[]).await;
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("s7comm", true), "{f:#?}");
    assert_eq!(f.attributes["error_class"], json!(0x81));
    assert_eq!(f.attributes["error_code"], json!(0x04));
    assert!(!f.attributes.contains_key("pdu_length"));
}

/// Not S7: an echo service, a garbage generator, a COTP responder that never speaks S7, and one
/// whose setup reply is cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alikes_are_not_s7comm() {
    let _echo = tcp_device("127.121.0.10:102", || Box::new(|req: &[u8]| Some(req.to_vec()))).await;
    let _garbage =
        tcp_device("127.121.0.11:102", || Box::new(|_: &[u8]| Some(b"HTTP/1.0 400 Bad Request\r\n\r\n".to_vec())))
            .await;
    let _cotp_only = tcp_device("127.121.0.12:102", || {
        Box::new(|req: &[u8]| cotp(req).and_then(called_tsap).map(|called| cc(&[0x01, 0x00], &called, true)))
    })
    .await;
    let _truncated = tcp_device("127.121.0.13:102", || {
        Box::new(|req: &[u8]| {
            if let Some(called) = cotp(req).and_then(called_tsap) {
                return Some(cc(&[0x01, 0x00], &called, true));
            }
            let pdu = s7_of(req)?;
            let mut ack = setup_ack(pdu, 240);
            ack.truncate(14);
            let len = ack.len() as u16;
            ack[2..4].copy_from_slice(&len.to_be_bytes());
            Some(ack)
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.0.10-127.121.0.13,c\n");
    let findings = scan(&path, "102", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 4, "{findings:#?}");
    for f in &findings {
        // Every reply is evidence: the 400 page names a web server, the rest stay unknown.
        let expected = if f.ip.to_string() == "127.121.0.11" { "http" } else { "unknown" };
        assert_eq!(f.protocol, expected, "{f:#?}");
        assert!(!f.ics);
        assert!(!f.attributes.contains_key("order_number"));
    }
}
