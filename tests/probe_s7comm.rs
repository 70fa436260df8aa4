//! S7comm on port 102 against simulated CPUs built from the protocol layout: TPKT (RFC 1006),
//! COTP class 0, S7 header, setup communication and Read SZL.

mod common;

use common::{always, echo, ledger, scan, tcp_device, Handler};
use otscope_lab::iso;
use otscope_lab::s7::{
    self, component_record, is_setup, module_record, pdu_of, setup_ack, szl_reply, szl_request, Cpu,
};
use serde_json::json;

/// An S7-1200 CPU 1214C: refuses PG TSAP 0x0102 (DR, reason 0x85) and answers OP TSAP 0x0200.
fn s7_1200() -> Handler {
    Cpu { called_tsap: Some(vec![0x02, 0x00]), serial: "S C-H6M312345678".into(), ..Cpu::s7_1200(1) }.handler()
}

/// A Connection Confirm (with the TPDU size) to any Connection Request.
fn confirm_any(req: &[u8]) -> Option<Vec<u8>> {
    iso::cotp(req).and_then(iso::tsaps).map(|(calling, called)| s7::confirm(&calling, &called, true))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_that_refuses_the_first_tsap_is_identified_on_the_next() {
    let cpu = tcp_device("127.121.0.1:102", s7_1200).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.0.1,c\n");
    let findings = scan(&path, "102", &Default::default(), common::options()).await;
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
    assert!(cpu.connections() >= 2, "the refused TSAP costs one connection");
    assert_eq!(f.vendor.as_deref(), Some("Siemens"));
    assert_eq!(f.product.as_deref(), Some("SIMATIC S7-1200 CPU 1214C DC/DC/DC"));
    assert_eq!(f.version.as_deref(), Some("V4.2.1"));
    assert_eq!(f.rule.as_deref(), Some("s7comm.siemens.s7_1200.cpu_1214c_dc_dc_dc"));
}

/// A Conpot-like server: 8-byte userdata parameters, nothing for SZL 0x0011 index 0, one record
/// for index 1, and 0x001C records with zero length and count in the header.
fn conpot_like() -> Handler {
    Box::new(|req: &[u8]| {
        if let Some((calling, called)) = iso::cotp(req).and_then(iso::tsaps) {
            return Some(s7::confirm(&calling, &called, false));
        }
        let pdu = pdu_of(req)?;
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
            (0x0011, _) => Some(s7::pdu(0x07, r, None, &short, &[])),
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
    let findings = scan(&path, "102", &Default::default(), common::options()).await;
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
            if let Some(cc) = confirm_any(req) {
                return Some(cc);
            }
            let pdu = pdu_of(req)?;
            is_setup(pdu).then(|| s7::pdu(0x03, [pdu[4], pdu[5]], Some([0x81, 0x04]), &[], &[]))
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.0.3,c\n");
    let findings = scan(&path, "102", &Default::default(), common::options()).await;
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
    let _echo = tcp_device("127.121.0.10:102", echo).await;
    let _garbage = tcp_device("127.121.0.11:102", || always(b"HTTP/1.0 400 Bad Request\r\n\r\n")).await;
    let _cotp_only = tcp_device("127.121.0.12:102", || Box::new(confirm_any)).await;
    let _truncated = tcp_device("127.121.0.13:102", || {
        Box::new(|req: &[u8]| {
            if let Some(cc) = confirm_any(req) {
                return Some(cc);
            }
            let pdu = pdu_of(req)?;
            let mut ack = setup_ack(pdu, 240);
            ack.truncate(14);
            let len = ack.len() as u16;
            ack[2..4].copy_from_slice(&len.to_be_bytes());
            Some(ack)
        })
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.0.10-127.121.0.13,c\n");
    let findings = scan(&path, "102", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 4, "{findings:#?}");
    for f in &findings {
        // Every reply is evidence: the 400 page names a web server, the rest stay unknown.
        let expected = if f.ip.to_string() == "127.121.0.11" { "http" } else { "unknown" };
        assert_eq!(f.protocol, expected, "{f:#?}");
        assert!(!f.ics);
        assert!(!f.attributes.contains_key("order_number"));
    }
}
