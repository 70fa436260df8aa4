//! The fuzz targets' bodies, shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/*.rs`, nightly)
//! and the stable property tests and driver (`tests/fuzz_parsers.rs`).
//!
//! Each target feeds one input to every framing and parsing function of a family and panics only
//! when a function panics itself or returns something inconsistent with its input: a frame longer
//! than the bytes, or a parsed value out of proportion to them (an unbounded allocation).

#![allow(dead_code)]

use otscope::fingerprints::{unescape, Library, Template};
use otscope::ledger::Ledger;
use otscope::net::Frame;
use otscope::probes::parsers::*;
use otscope::scope::parse_ports;
use otscope::targets::Permutation;
use std::fmt::Debug;
use std::path::Path;

/// A target: it takes one input, and panics when something is wrong with how it was handled.
pub type Target = fn(&[u8]);

/// Every target by name, as `cargo fuzz run <name>` knows it.
pub const TARGETS: &[(&str, Target)] = &[
    ("atg", atg_target),
    ("bacnet", bacnet_target),
    ("codesys", codesys_target),
    ("crimson", crimson_target),
    ("dnp3", dnp3_target),
    ("enip", enip_target),
    ("fins", fins_target),
    ("fox", fox_target),
    ("hartip", hartip_target),
    ("http", http_target),
    ("banner", banner_target),
    ("iec104", iec104_target),
    ("iso_transport", iso_transport_target),
    ("melsec", melsec_target),
    ("mms", mms_target),
    ("modbus", modbus_target),
    ("moxa", moxa_target),
    ("mqtt", mqtt_target),
    ("opcua", opcua_target),
    ("pcworx", pcworx_target),
    ("proconos", proconos_target),
    ("s7comm", s7comm_target),
    ("s7commplus", s7commplus_target),
    ("snmp", snmp_target),
    ("srtp", srtp_target),
    ("ledger", ledger_target),
    ("ports", ports_target),
    ("rules_loader", rules_loader_target),
    ("unescape", unescape_target),
    ("template", template_target),
    ("permutation", permutation_target),
];

/// A framing verdict must never claim more bytes than it was given.
fn framed(what: &str, f: Frame, len: usize) {
    if let Frame::Complete(n) = f {
        assert!(n <= len, "{what}: Complete({n}) for {len} bytes");
    }
}

/// A parsed value must stay in proportion to its input: its debug text (which escapes every byte
/// in at most ten characters) is bounded by the input's size.
fn bounded<T: Debug, E: Debug>(what: &str, r: &Result<T, E>, len: usize) {
    let text = match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("{e:?}"),
    };
    assert!(text.len() <= 16 * len + 8192, "{what}: {} characters of result for {len} input bytes", text.len());
}

fn byte(data: &[u8], i: usize) -> u8 {
    data.get(i).copied().unwrap_or(0)
}

fn word(data: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([byte(data, i), byte(data, i + 1)])
}

pub fn atg_target(data: &[u8]) {
    framed("atg::frame", atg::frame(data), data.len());
    bounded("atg::parse_reply", &atg::parse_reply(data), data.len());
}

pub fn bacnet_target(data: &[u8]) {
    framed("bacnet::i_am_frame", bacnet::i_am_frame(data), data.len());
    bounded("bacnet::parse_i_am", &bacnet::parse_i_am(data), data.len());
    for property in [75, 77, 120, 121, 44, 70] {
        let r = bacnet::parse_read_property_reply(data, byte(data, 8), property);
        bounded("bacnet::parse_read_property_reply", &r, data.len());
    }
}

pub fn codesys_target(data: &[u8]) {
    framed("codesys::frame", codesys::frame(data), data.len());
    bounded("codesys::parse_reply", &codesys::parse_reply(data), data.len());
}

pub fn crimson_target(data: &[u8]) {
    framed("crimson::frame", crimson::frame(data), data.len());
    for register in [0x012b, 0x012a, word(data, 4)] {
        bounded("crimson::parse_string_reply", &crimson::parse_string_reply(data, register), data.len());
    }
}

pub fn dnp3_target(data: &[u8]) {
    framed("dnp3::frame", dnp3::frame(data), data.len());
    bounded("dnp3::parse_frame", &dnp3::parse_frame(data), data.len());
}

pub fn enip_target(data: &[u8]) {
    framed("enip::frame", enip::frame(data), data.len());
    bounded("enip::parse_list_identity", &enip::parse_list_identity(data), data.len());
}

pub fn fins_target(data: &[u8]) {
    framed("fins::udp_frame", fins::udp_frame(data), data.len());
    framed("fins::tcp_frame", fins::tcp_frame(data), data.len());
    bounded("fins::parse_controller_data", &fins::parse_controller_data(data, byte(data, 9)), data.len());
    bounded("fins::parse_tcp_message", &fins::parse_tcp_message(data), data.len());
    bounded("fins::parse_node_address_reply", &fins::parse_node_address_reply(data), data.len());
}

pub fn fox_target(data: &[u8]) {
    framed("fox::frame", fox::frame(data), data.len());
    bounded("fox::parse_message", &fox::parse_message(data), data.len());
}

pub fn hartip_target(data: &[u8]) {
    framed("hartip::frame", hartip::frame(data), data.len());
    let sequence = word(data, 4);
    for message_id in [0, 1, 3] {
        bounded("hartip::parse_header", &hartip::parse_header(data, message_id, sequence), data.len());
    }
    bounded("hartip::parse_session_initiate", &hartip::parse_session_initiate(data, sequence), data.len());
    bounded("hartip::parse_command0", &hartip::parse_command0(data, sequence), data.len());
}

pub fn http_target(data: &[u8]) {
    for cap in [64, 4096, 1 << 20] {
        framed("http::frame", http::frame(data, cap), data.len());
    }
    let r = http::parse_response(data);
    bounded("http::parse_response", &r, data.len());
    let text = String::from_utf8_lossy(data);
    let decoded = http::decode_entities(&text);
    // An entity decodes to at most four bytes of UTF-8 and is at least three characters long.
    assert!(decoded.len() <= 2 * text.len(), "decode_entities grew {} bytes to {}", text.len(), decoded.len());
    if let Some(t) = http::title(data, Some("text/html")) {
        assert!(t.len() <= 4 * data.len(), "title longer than its page");
    }
    if let Some(r) = http::realm(&text) {
        assert!(r.len() <= text.len(), "realm longer than its challenge");
    }
}

pub fn banner_target(data: &[u8]) {
    let id = identify::banner_identity(data);
    assert!(format!("{id:?}").len() <= 16 * data.len() + 8192);
    assert!(identify::printable(data).len() <= 4 * data.len());
}

pub fn iec104_target(data: &[u8]) {
    framed("iec104::frame", iec104::frame(data), data.len());
    bounded("iec104::parse_apdu", &iec104::parse_apdu(data), data.len());
}

pub fn iso_transport_target(data: &[u8]) {
    framed("iso_transport::tpkt_frame", iso_transport::tpkt_frame(data), data.len());
    bounded("iso_transport::parse", &iso_transport::parse(data), data.len());
}

pub fn melsec_target(data: &[u8]) {
    framed("melsec::frame_melsoft", melsec::frame_melsoft(data), data.len());
    framed("melsec::frame_mc3e", melsec::frame_mc3e(data), data.len());
    bounded("melsec::parse_melsoft", &melsec::parse_melsoft(data), data.len());
    bounded("melsec::parse_mc3e", &melsec::parse_mc3e(data), data.len());
}

pub fn mms_target(data: &[u8]) {
    bounded("mms::parse_associate_reply", &mms::parse_associate_reply(data), data.len());
    for invoke_id in [0, 1, u64::from(byte(data, 0))] {
        bounded("mms::parse_identify_reply", &mms::parse_identify_reply(data, invoke_id), data.len());
    }
}

pub fn modbus_target(data: &[u8]) {
    framed("modbus::frame", modbus::frame(data), data.len());
    bounded("modbus::parse_adu", &modbus::parse_adu(data), data.len());
    bounded("modbus::parse_device_id", &modbus::parse_device_id(data), data.len());
    for quantity in [0, 1, word(data, 0)] {
        let r = modbus::parse_read_holding_registers(data, quantity);
        bounded("modbus::parse_read_holding_registers", &r, data.len());
    }
}

pub fn moxa_target(data: &[u8]) {
    for command in [0x01, 0x10, byte(data, 0) & 0x7f] {
        framed("moxa::frame_for", moxa::frame_for(command)(data), data.len());
    }
    bounded("moxa::parse_search", &moxa::parse_search(data), data.len());
    let mut device_id = [0u8; moxa::DEVICE_ID_LEN];
    for (i, b) in device_id.iter_mut().enumerate() {
        *b = byte(data, 4 + i);
    }
    bounded("moxa::parse_server_name", &moxa::parse_server_name(data, &device_id), data.len());
}

pub fn mqtt_target(data: &[u8]) {
    framed("mqtt::frame", mqtt::frame(data), data.len());
    bounded("mqtt::parse_connack", &mqtt::parse_connack(data), data.len());
    bounded("mqtt::parse_connack_v5", &mqtt::parse_connack_v5(data), data.len());
}

pub fn opcua_target(data: &[u8]) {
    framed("opcua::frame", opcua::frame(data), data.len());
    bounded("opcua::parse_handshake", &opcua::parse_handshake(data), data.len());
    bounded("opcua::parse_open_response", &opcua::parse_open_response(data), data.len());
    let le = |i: usize| u32::from_le_bytes([byte(data, i), byte(data, i + 1), byte(data, i + 2), byte(data, i + 3)]);
    let channel = opcua::Channel { channel_id: le(8), token_id: le(12) };
    bounded("opcua::parse_message_chunk", &opcua::parse_message_chunk(data, channel, le(20)), data.len());
    bounded("opcua::parse_get_endpoints", &opcua::parse_get_endpoints(data), data.len());
}

pub fn pcworx_target(data: &[u8]) {
    framed("pcworx::frame", pcworx::frame(data), data.len());
    for service in [0x01, 0x05, 0x06] {
        bounded("pcworx::check_reply", &pcworx::check_reply(data, service, word(data, 4)), data.len());
    }
    bounded("pcworx::parse_connect_reply", &pcworx::parse_connect_reply(data), data.len());
    bounded("pcworx::parse_info_reply", &pcworx::parse_info_reply(data), data.len());
}

pub fn proconos_target(data: &[u8]) {
    framed("proconos::frame", proconos::frame(data), data.len());
    bounded("proconos::parse_reply", &proconos::parse_reply(data), data.len());
}

pub fn s7comm_target(data: &[u8]) {
    bounded("s7comm::parse_header", &s7comm::parse_header(data), data.len());
    let pdu_ref = word(data, 4);
    bounded("s7comm::parse_setup_reply", &s7comm::parse_setup_reply(data, pdu_ref), data.len());
    for szl_id in [0x0011, 0x001c, word(data, 14)] {
        bounded("s7comm::parse_szl_reply", &s7comm::parse_szl_reply(data, pdu_ref, szl_id), data.len());
    }
}

pub fn s7commplus_target(data: &[u8]) {
    if let Some((_, used)) = s7commplus::decode_vlq(data) {
        assert!(used >= 1 && used <= data.len().min(9), "decode_vlq used {used} of {} bytes", data.len());
    }
    for function in [0x04ca, 0x05b3, word(data, 7)] {
        bounded("s7commplus::parse_reply", &s7commplus::parse_reply(data, function, word(data, 9)), data.len());
    }
}

pub fn snmp_target(data: &[u8]) {
    let request_id = i32::from_be_bytes([byte(data, 0), byte(data, 1), byte(data, 2), byte(data, 3)]);
    let version = i64::from(byte(data, 4) & 1);
    framed("snmp::frame", snmp::frame(data, version, request_id), data.len());
    let r = snmp::parse_message(data);
    bounded("snmp::parse_message", &r, data.len());
    if let Ok((message, used)) = r {
        assert!(used <= data.len(), "parse_message used {used} of {} bytes", data.len());
        let _ = snmp::check_reply(&message, version, request_id);
    }
}

pub fn srtp_target(data: &[u8]) {
    framed("srtp::frame", srtp::frame(data), data.len());
    bounded("srtp::parse_init_reply", &srtp::parse_init_reply(data), data.len());
    bounded("srtp::parse_status_reply", &srtp::parse_status_reply(data, word(data, 2)), data.len());
}

pub fn ledger_target(data: &[u8]) {
    let r = Ledger::parse(&Path::new("fuzz.csv").into(), data);
    if let Ok(ledger) = &r {
        let rows = data.iter().filter(|&&b| b == b'\n').count() + 1;
        assert!(ledger.enterprises.len() <= rows, "{} enterprises from {rows} lines", ledger.enterprises.len());
    }
}

pub fn ports_target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(ports) = parse_ports(&text) {
        assert!(!ports.is_empty(), "{text:?}: an empty port list is not Ok");
        assert!(ports.windows(2).all(|w| w[0] < w[1]), "{text:?}: not sorted without duplicates");
        assert!(ports.iter().all(|p| p.port != 0), "{text:?}: port 0");
        assert!(ports.len() <= 2 * 65535);
    }
}

thread_local! {
    static RULES_DIR: tempfile::TempDir = tempfile::tempdir().expect("temporary folder");
}

pub fn rules_loader_target(data: &[u8]) {
    RULES_DIR.with(|dir| {
        std::fs::write(dir.path().join("fuzz.toml"), data).expect("write the rule file");
        if let Ok(library) = Library::load(dir.path()) {
            assert_eq!(library.files, 1);
        }
    });
}

pub fn unescape_target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(bytes) = unescape(&text) {
        assert!(bytes.len() <= text.len(), "{text:?}: unescaping grew the text");
        if !text.contains('\\') {
            assert_eq!(bytes, text.as_bytes());
        }
    }
}

pub fn template_target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = Template::parse(&text) {
        let rendered = t.render(|name| Some(name.to_string()), |table, key| Some(format!("{table}{key}")));
        if let Some(r) = rendered {
            assert!(r.len() <= 2 * text.len(), "{text:?}: rendered {r:?}");
        }
        assert_eq!(t.render(|_| None, |_, _| None).is_some(), !text.contains('{') && !text.trim().is_empty());
    } else {
        assert!(text.contains('{') || text.contains('}'), "{text:?}: plain text refused");
    }
}

pub fn permutation_target(data: &[u8]) {
    let mut n = [0u8; 8];
    let mut seed = [0u8; 8];
    for i in 0..8 {
        n[i] = byte(data, i);
        seed[i] = byte(data, 8 + i);
    }
    // Keep n below 2^40 so one case costs a few hash rounds, not a sweep.
    let n = u64::from_le_bytes(n) >> 24;
    let p = Permutation::new(n, u64::from_le_bytes(seed));
    assert_eq!(p.len(), n);
    for k in 0..4u64 {
        if n == 0 {
            break;
        }
        let i = u64::from(word(data, 16 + 2 * k as usize)).wrapping_mul(0x9e37_79b9) % n;
        let v = p.get(i);
        assert!(v < n, "get({i}) = {v} outside 0..{n}");
        assert_eq!(p.position(v), i, "position is not the inverse of get for n={n}");
    }
}

/// Valid inputs of each target, the starting points of the mutations (and of the cargo-fuzz corpus).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let h = |s: &str| hex::decode(s.replace(' ', "")).expect("seed hex");
    match target {
        "atg" => vec![b"\x01\nI20100\nNOV 28, 2026  8:00 AM\n\nSTATION NAME\n\nIN-TANK INVENTORY\n\nTANK PRODUCT \
VOLUME TC-VOLUME ULLAGE HEIGHT WATER TEMP\n  1  UNLEADED   4000   3990   6000  50.00  0.00  60.00\n\x03"
            .to_vec()],
        "dnp3" => vec![
            h("0564 05 0b 0200 1e00 ce0f"),
            h("0564 0a 44 0200 1e00 cdc7 c0ca810001 44e3"),
            h("0564 17 c4 1e00 0200 78b5 c0ca01320106 3c02063c03063c04063c 9df5 0106 75e1"),
        ],
        "fox" => vec![b"fox a 0 -1 fox hello\n{\nfox.version=s:1.0.1\nid=i:122\nhostName=s:10.17.40.40\n\
app.name=s:Station\napp.version=s:3.8.213\nos.name=s:QNX\nstation.name=s:Honeywell\n\
sysInfo=o:bog 61[<bog version=\"1.0\">\n<p m=\"b=baja\" t=\"b:Facets\" v=\"\"/>\n</bog>\n]\n};;\n"
            .to_vec()],
        "hartip" => vec![
            h("01 01 00 00 0001 000d 01 00004e20"),
            h("01 0f 00 00 0001 0009 01"),
            h("01 01 03 00 0002 0026 06 80 00 18 00 fe 26 4e 05 07 01 02 0c 08 00 00 00 05 00 01 01 00 00 00 00 00"),
        ],
        "http" | "banner" => vec![
            b"HTTP/1.1 200 OK\r\nServer: lighttpd/1.4.59\r\nContent-Type: text/html\r\nContent-Length: 48\r\n\r\n\
<html><head><title>WAGO &amp; Co</title></head>"
                .to_vec(),
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"PLC\"\r\nTransfer-Encoding: chunked\r\n\r\n\
5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\n<title>x</title>".to_vec(),
        ],
        "melsec" => vec![
            h("d700c80000111107000000e40300ffff03000038009c000c080000000010040000000001010100000051303355444543505520\
202020202020680200 08baba081020210316002002000101e802"),
            h("d000 00 ff ff03 00 1400 0000 4c30324350552020202020202020202020 4308"),
        ],
        "modbus" => vec![
            h("0001 0000 001a ff 2b 0e 01 01 00 00 03 00 04 41434d45 01 04 50313233 02 03 312e30"),
            h("0102 0000 0005 00 03 02 0001"),
            h("0001 0000 0003 ff ab 01"),
        ],
        "pcworx" => vec![
            h("81010014000000010000000000020000004c0000"),
            h("81050012000100010000000000020000004c"),
            h("810600b0000200010000000000020000004c0000000600988295004a0000494c4320313531204554480000000000000000000000\
0000000000000000000000000000342e343100000000000000000030392f32382f31350000000031343a33353a30310030340000000020000000\
000000000020000000000000000000000000000000200000000000000000200000000000000000303100323730303937340042310000002000000\
000200000000000"),
        ],
        "proconos" => vec![h(
            "cc003030303030303030300050726f436f6e4f532056342e322e30323134204f63742032382032303131\
00205620332e3935412e36202020202020204d6172202039203230313200202020202020517569636b4d697800517569636b4d6978006e2f6100",
        )],
        "codesys" => {
            let mut r = vec![0xbb, 0x00];
            r.resize(130, 0);
            for (at, s) in [(2usize, &b"eCos"[..]), (34, b"eCos 2.0"), (66, b"WAGO 750-841")] {
                r[at..at + s.len()].copy_from_slice(s);
            }
            vec![r]
        }
        "enip" => {
            let name = b"1756-L61/B LOGIX5561";
            let mut item = vec![0x01, 0x00, 0x02, 0xaf, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            item.extend_from_slice(&[0x01, 0x00, 0x0e, 0x00, 0x36, 0x00, 0x14, 0x0b, 0x60, 0x31, 0x1a, 0x06]);
            item.extend_from_slice(&[0x1a, 0x06, 0x26, 0x40]);
            item.push(name.len() as u8);
            item.extend_from_slice(name);
            item.push(0x03);
            let mut data = vec![0x01, 0x00, 0x0c, 0x00];
            data.extend_from_slice(&(item.len() as u16).to_le_bytes());
            data.extend_from_slice(&item);
            let mut r = vec![0x63, 0x00];
            r.extend_from_slice(&(data.len() as u16).to_le_bytes());
            r.extend_from_slice(&[0; 20]);
            r.extend_from_slice(&data);
            vec![r]
        }
        "snmp" => {
            let tlv = |tag: u8, content: &[u8]| [&[tag, content.len() as u8][..], content].concat();
            let descr = tlv(0x30, &[tlv(0x06, &h("2b06010201010100")), tlv(0x04, b"SCALANCE X204IRT")].concat());
            let name = tlv(0x30, &[tlv(0x06, &h("2b06010201010500")), tlv(0x04, b"sw-line3")].concat());
            let pdu = [tlv(0x02, &[1, 2, 3, 4]), tlv(0x02, &[0]), tlv(0x02, &[0]), tlv(0x30, &[descr, name].concat())];
            vec![tlv(0x30, &[tlv(0x02, &[1]), tlv(0x04, b"public"), tlv(0xa2, &pdu.concat())].concat())]
        }
        "crimson" => vec![h("0013 012b 0300 526564204c696f6e20436f6e74726f6c7300"), h("000b 012a 0300 47333130433200")],
        "srtp" => {
            let mut init = vec![0u8; 56];
            init[0] = 0x01;
            init[8] = 0x0f;
            let mut status = vec![0u8; 56];
            status[0] = 0x03;
            status[2..4].copy_from_slice(&7u16.to_le_bytes());
            status[4..6].copy_from_slice(&40u16.to_le_bytes());
            status[30] = 7;
            status[31] = 0x94;
            status[51] = 2;
            status[52..54].copy_from_slice(&12u16.to_le_bytes());
            status[54..56].copy_from_slice(&0x0100u16.to_le_bytes());
            let mut text = vec![0u8; 40];
            text[18..25].copy_from_slice(b"PROGRAM");
            status.extend_from_slice(&text);
            vec![init, status]
        }
        "bacnet" => vec![
            h("810b0014 0100 1000 c402000001 2201e0 9100 2105"),
            h("810a0019 0100 30 01 0c 0c02000001 194d 3e 7509 00 574147 4f2d31 3f"),
        ],
        "fins" => {
            let mut udp = h("c0 00 02 00 00 00 00 01 00 2a 05 01 00 00");
            udp.extend_from_slice(b"CJ2M-CPU31          02.01               ");
            vec![udp, h("46494e53 0000001 0 00000001 00000000 0000000a 00000001")]
        }
        "moxa" => vec![
            h("81 00 0018 00000000 000000000000 0090e8112233 0000 0001"),
            h("90 00 0024 00000000 000000000000 0090e8112233 4e50353131305f323433390000000000"),
        ],
        "opcua" => vec![
            h("41434b46 1c000000 00000000 ffff0000 ffff0000 00000000 00000000"),
            h("45524646 16000000 0a000000 00000000"),
            h("4f504e46 24000000 01000000 2f000000 687474703a2f2f6f7063666f756e646174696f6e2e6f72672f55412f536563757269747950"),
        ],
        "permutation" => vec![h("0001000000000000 2a00000000000000 0100 0200 0300 0400"), vec![0xff; 24], Vec::new()],
        "mqtt" => vec![h("20020000"), h("20020005"), h("20030000ff")],
        "iec104" => vec![h("680443000000"), h("680483000000"), h("680e00000000 64 01 07 00 0100 000000 14")],
        "iso_transport" | "s7comm" | "s7commplus" | "mms" => vec![
            h("0300001611d00001000100c0010ac1020100c2020102"),
            h("0300001b02f080320300000000000800000000f0000001000101e0"),
            h("03000019 02f080 72010000 32 0000 0000 00 00 00 00 00 00 00 00 0000"),
        ],
        "ledger" => vec![b"enterprise_id,enterprise,district,sector,level,targets,contact\n\
E1,Water Works,North,water,high,10.0.0.0/30;10.0.1.5,ops@example.org\n\
E2,Grid,South,energy,low,192.0.2.1,\n"
            .to_vec()],
        "ports" => vec![b"502,102,44818/udp,47808/udp,1000-1100".to_vec(), b"1-65535/udp".to_vec()],
        "rules_loader" => vec![include_bytes!("../fingerprints/codesys.toml").to_vec()],
        "unescape" => vec![b"\\x01I20100\\r\\n\\t\\0\\\\".to_vec()],
        "template" => vec![b"Modicon {product} v{rev@revs}".to_vec(), b"plain text".to_vec()],
        _ => Vec::new(),
    }
}
