//! EtherNet/IP (CIP over the ODVA encapsulation protocol), id `enip`: ListIdentity over TCP
//! (44818) and UDP (44818, 2222).
//!
//! ListIdentity (encapsulation command 0x0063) asks a device for its CIP Identity object: vendor,
//! device type, product code, revision, serial number and product name. It needs no session (no
//! RegisterSession), opens no CIP connection, changes nothing on the device, and is answered the
//! same way over TCP and UDP: it is the request commissioning tools broadcast to find devices.
//!
//! Encapsulation header (24 bytes, little-endian): command (2), length of the data that follows
//! (2), session handle (4), status (4), sender context (8), options (4).
//! Reply data: item count (2), then items of type (2), length (2), data. The CIP Identity item
//! (type 0x000C) holds: encapsulation protocol version (2, LE), socket address (16: sin_family,
//! sin_port, sin_addr big-endian, 8 zero bytes), vendor id (2), device type (2), product code (2),
//! revision (major 1, minor 1), status (2), serial number (4), product name (1-byte length + text),
//! state (1).

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, Session};
use std::net::Ipv4Addr;

const PROTOCOL: &str = "enip";

pub const CMD_LIST_IDENTITY: u16 = 0x0063;
pub const HEADER_LEN: usize = 24;
/// Item type of the CIP Identity item in a ListIdentity reply.
pub const ITEM_CIP_IDENTITY: u16 = 0x000C;
/// Echoed back by the device; not relied upon (some stacks zero it), only useful in captures.
const SENDER_CONTEXT: [u8; 8] = *b"otscope\x01";
/// A ListIdentity reply carries one identity item of at most ~300 bytes; a few items at most.
/// Longer claims are refused at once rather than waited for.
const MAX_DATA_LEN: usize = 2048;
/// The fixed part of the identity item, up to and including the product name's length byte.
const IDENTITY_FIXED_LEN: usize = 33;
/// Items parsed at most, whatever the item count claims.
const MAX_ITEMS: usize = 16;

pub use super::ParseError;

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The ListIdentity request: the 24-byte header alone (no data, no session).
pub fn list_identity_request() -> Vec<u8> {
    let mut r = Vec::with_capacity(HEADER_LEN);
    r.extend_from_slice(&CMD_LIST_IDENTITY.to_le_bytes());
    r.extend_from_slice(&0u16.to_le_bytes()); // length of the data: none
    r.extend_from_slice(&0u32.to_le_bytes()); // session handle: none needed
    r.extend_from_slice(&0u32.to_le_bytes()); // status
    r.extend_from_slice(&SENDER_CONTEXT);
    r.extend_from_slice(&0u32.to_le_bytes()); // options
    r
}

/// Framing for [`crate::net::Conn::recv_frame`]: a whole encapsulation message of command 0x0063.
pub fn frame(buf: &[u8]) -> Frame {
    if let Some(cmd) = u16_le(buf, 0) {
        if cmd != CMD_LIST_IDENTITY {
            return Frame::Invalid(format!("encapsulation command 0x{cmd:04x}, not ListIdentity"));
        }
    }
    let Some(len) = u16_le(buf, 2) else { return Frame::Incomplete };
    let len = len as usize;
    if len > MAX_DATA_LEN {
        return Frame::Invalid(format!("implausible ListIdentity length {len}"));
    }
    if buf.len() < HEADER_LEN + len {
        return Frame::Incomplete;
    }
    Frame::Complete(HEADER_LEN + len)
}

/// The CIP Identity item of a ListIdentity reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CipIdentity {
    pub encapsulation_version: u16,
    /// The device's own address and port as it reports them (big-endian sockaddr), when set.
    pub socket_address: Option<(Ipv4Addr, u16)>,
    pub vendor_id: u16,
    pub device_type: u16,
    pub product_code: u16,
    pub revision_major: u8,
    pub revision_minor: u8,
    pub status: u16,
    pub serial_number: u32,
    pub product_name: String,
    /// Absent on stacks that end the item after the product name.
    pub state: Option<u8>,
}

/// A validated reply to ListIdentity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListIdentityReply {
    Identity(CipIdentity),
    /// A well-formed ListIdentity reply with a non-zero encapsulation status (an error): still
    /// EtherNet/IP, but without an identity.
    Error {
        status: u32,
    },
}

/// Parses one encapsulation message as a reply to ListIdentity.
pub fn parse_list_identity(buf: &[u8]) -> Result<ListIdentityReply, ParseError> {
    let (Some(command), Some(length), Some(status)) = (u16_le(buf, 0), u16_le(buf, 2), u32_le(buf, 8)) else {
        return Err(ParseError::new(format!("{} bytes, shorter than the encapsulation header", buf.len())));
    };
    if buf.len() < HEADER_LEN {
        return Err(ParseError::new(format!("{} bytes, shorter than the encapsulation header", buf.len())));
    }
    if command != CMD_LIST_IDENTITY {
        return Err(ParseError::new(format!("command 0x{command:04x}, not ListIdentity")));
    }
    let data = &buf[HEADER_LEN..];
    if length as usize != data.len() {
        return Err(ParseError::new(format!("length field says {length} bytes, {} follow", data.len())));
    }
    if status != 0 {
        if length != 0 {
            return Err(ParseError::new(format!("status 0x{status:08x} with {length} bytes of data")));
        }
        return Ok(ListIdentityReply::Error { status });
    }
    let Some(count) = u16_le(data, 0) else { return Err(ParseError::new("no item count")) };
    if count == 0 {
        return Err(ParseError::new("item count 0"));
    }
    let mut pos = 2;
    for _ in 0..(count as usize).min(MAX_ITEMS) {
        let (Some(kind), Some(len)) = (u16_le(data, pos), u16_le(data, pos + 2)) else {
            return Err(ParseError::new("item header truncated"));
        };
        let start = pos + 4;
        let Some(body) = data.get(start..start + len as usize) else {
            return Err(ParseError::new(format!("item of {len} bytes overruns the reply")));
        };
        if kind == ITEM_CIP_IDENTITY {
            return parse_identity_item(body).map(ListIdentityReply::Identity);
        }
        pos = start + len as usize;
    }
    Err(ParseError::new("no CIP Identity item"))
}

fn parse_identity_item(b: &[u8]) -> Result<CipIdentity, ParseError> {
    if b.len() < IDENTITY_FIXED_LEN {
        return Err(ParseError::new(format!("identity item of {} bytes is too short", b.len())));
    }
    let name_len = b[IDENTITY_FIXED_LEN - 1] as usize;
    let Some(name) = b.get(IDENTITY_FIXED_LEN..IDENTITY_FIXED_LEN + name_len) else {
        return Err(ParseError::new(format!("product name of {name_len} bytes overruns the identity item")));
    };
    let word = |at| u16_le(b, at).unwrap_or(0);
    let port = u16::from_be_bytes([b[4], b[5]]);
    let addr = Ipv4Addr::new(b[6], b[7], b[8], b[9]);
    let socket_address = (!addr.is_unspecified() || port != 0).then_some((addr, port));
    Ok(CipIdentity {
        encapsulation_version: word(0),
        socket_address,
        vendor_id: word(18),
        device_type: word(20),
        product_code: word(22),
        revision_major: b[24],
        revision_minor: b[25],
        status: word(26),
        serial_number: u32_le(b, 28).unwrap_or(0),
        product_name: clean(name),
        state: b.get(IDENTITY_FIXED_LEN + name_len).copied(),
    })
}

/// Text as reported: invalid UTF-8 kept as replacement characters, NULs and padding trimmed.
fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string()
}

/// The CIP device profile names (CIP Volume 1, device type numbers).
pub fn device_type_name(device_type: u16) -> Option<&'static str> {
    Some(match device_type {
        0x00 => "Generic Device (deprecated)",
        0x02 => "AC Drive",
        0x03 => "Motor Overload",
        0x04 => "Limit Switch",
        0x05 => "Inductive Proximity Switch",
        0x06 => "Photoelectric Sensor",
        0x07 => "General Purpose Discrete I/O",
        0x09 => "Resolver",
        0x0C => "Communications Adapter",
        0x0E => "Programmable Logic Controller",
        0x10 => "Position Controller",
        0x13 => "DC Drive",
        0x15 => "Contactor",
        0x16 => "Motor Starter",
        0x17 => "Soft Start",
        0x18 => "Human-Machine Interface",
        0x1A => "Mass Flow Controller",
        0x1B => "Pneumatic Valve",
        0x1C => "Vacuum Pressure Gauge",
        0x1D => "Process Control Valve",
        0x1E => "Residual Gas Analyzer",
        0x1F => "DC Power Generator",
        0x20 => "RF Power Generator",
        0x21 => "Turbomolecular Vacuum Pump",
        0x22 => "Encoder",
        0x23 => "Safety Discrete I/O Device",
        0x24 => "Fluid Flow Controller",
        0x25 => "CIP Motion Drive",
        0x26 => "CompoNet Repeater",
        0x27 => "Mass Flow Controller, Enhanced",
        0x28 => "CIP Modbus Device",
        0x29 => "CIP Modbus Translator",
        0x2A => "Safety Analog I/O Device",
        0x2B => "Generic Device (keyable)",
        0x2C => "Managed Ethernet Switch",
        0x2D => "CIP Motion Safety Drive Device",
        0x2E => "Safety Drive Device",
        0x2F => "CIP Motion Encoder",
        0x30 => "CIP Motion Converter",
        0x31 => "CIP Motion I/O",
        0x32 => "ControlNet Physical Layer Component",
        0x33 => "Circuit Breaker",
        0x34 => "HART Device",
        0x35 => "CIP-HART Translator",
        0xC8 => "Embedded Component",
        _ => return None,
    })
}

/// The finding's fields for a validated reply.
pub fn identity_of(reply: &ListIdentityReply) -> Identity {
    let mut id = Identity::new(PROTOCOL, true);
    match reply {
        ListIdentityReply::Error { status } => {
            id.field("encapsulation_status", *status);
        }
        ListIdentityReply::Identity(c) => {
            id.field("encapsulation_version", c.encapsulation_version)
                .field("vendor_id", c.vendor_id)
                .field("device_type", c.device_type);
            if let Some(name) = device_type_name(c.device_type) {
                id.field("device_type_name", name);
            }
            id.field("product_code", c.product_code)
                .field("revision", format!("{}.{}", c.revision_major, c.revision_minor))
                .field("status", c.status)
                .field("serial_number", format!("0x{:08x}", c.serial_number))
                .field("product_name", c.product_name.as_str());
            if let Some(state) = c.state {
                id.field("state", state);
            }
            if let Some((addr, port)) = c.socket_address {
                id.field("socket_address", format!("{addr}:{port}"));
            }
        }
    }
    id
}

/// EtherNet/IP over TCP (an explicit-messaging connection) and over UDP (one datagram): the same
/// ListIdentity either way.
pub const PROBE: Probe =
    Probe::industrial(PROTOCOL, |session| Box::pin(list_identity(session))).tcp(&[44818]).udp(&[44818, 2222]);

async fn list_identity(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let request = list_identity_request();
    let reply = session.conn().exchange(&request, frame).await?;
    if reply == request {
        return Err(ProbeError::not(PROTOCOL, "the peer echoed the request"));
    }
    let parsed = parse_list_identity(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.0))?;
    Ok(identity_of(&parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A ListIdentity reply built field by field from the encapsulation spec.
    fn reply(item: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&1u16.to_le_bytes()); // item count
        data.extend_from_slice(&ITEM_CIP_IDENTITY.to_le_bytes());
        data.extend_from_slice(&(item.len() as u16).to_le_bytes());
        data.extend_from_slice(item);
        let mut r = Vec::new();
        r.extend_from_slice(&[0x63, 0x00]);
        r.extend_from_slice(&(data.len() as u16).to_le_bytes());
        r.extend_from_slice(&[0; 4]); // session
        r.extend_from_slice(&[0; 4]); // status
        r.extend_from_slice(&SENDER_CONTEXT);
        r.extend_from_slice(&[0; 4]); // options
        r.extend_from_slice(&data);
        r
    }

    /// An identity item with the values of the 1769-L32E documented in nmap's enip-info, field by field.
    fn item(name: &str, with_state: bool) -> Vec<u8> {
        let mut i = Vec::new();
        i.extend_from_slice(&1u16.to_le_bytes()); // encapsulation version
        i.extend_from_slice(&[0x00, 0x02, 0xaf, 0x12, 192, 168, 1, 123]); // AF_INET, port 44818, address
        i.extend_from_slice(&[0; 8]);
        i.extend_from_slice(&1u16.to_le_bytes()); // vendor
        i.extend_from_slice(&0x0cu16.to_le_bytes()); // device type
        i.extend_from_slice(&158u16.to_le_bytes()); // product code
        i.extend_from_slice(&[3, 7]); // revision
        i.extend_from_slice(&0x0030u16.to_le_bytes()); // status
        i.extend_from_slice(&0x0012_3456u32.to_le_bytes()); // serial
        i.push(name.len() as u8);
        i.extend_from_slice(name.as_bytes());
        if with_state {
            i.push(3);
        }
        i
    }

    #[test]
    fn request_bytes_are_exact() {
        assert_eq!(
            list_identity_request(),
            [
                0x63, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, b'o', b't', b's', b'c', b'o', b'p', b'e', 0x01, 0, 0,
                0, 0
            ]
        );
    }

    #[test]
    fn parses_an_identity_reply() {
        let r = reply(&item("1769-L32E Ethernet Port", true));
        assert_eq!(frame(&r), Frame::Complete(r.len()));
        let parsed = parse_list_identity(&r).unwrap();
        let ListIdentityReply::Identity(c) = &parsed else { panic!() };
        assert_eq!(c.product_name, "1769-L32E Ethernet Port");
        assert_eq!(c.socket_address, Some((Ipv4Addr::new(192, 168, 1, 123), 44818)));
        let id = identity_of(&parsed);
        assert_eq!(
            serde_json::Value::Object(id.fields),
            json!({
                "encapsulation_version": 1, "vendor_id": 1, "device_type": 12,
                "device_type_name": "Communications Adapter", "product_code": 158, "revision": "3.7",
                "status": 48, "serial_number": "0x00123456", "product_name": "1769-L32E Ethernet Port",
                "state": 3, "socket_address": "192.168.1.123:44818"
            })
        );
    }

    #[test]
    fn state_is_optional_and_padding_is_trimmed() {
        let r = reply(&item("1756-L61/B LOGIX5561\0\0", false));
        let ListIdentityReply::Identity(c) = parse_list_identity(&r).unwrap() else { panic!() };
        assert_eq!((c.product_name.as_str(), c.state), ("1756-L61/B LOGIX5561", None));
    }

    #[test]
    fn other_items_before_the_identity_are_skipped() {
        let mut data = Vec::new();
        data.extend_from_slice(&2u16.to_le_bytes());
        data.extend_from_slice(&[0x00, 0x01, 2, 0, 0xaa, 0xbb]); // some other item type
        let it = item("X", true);
        data.extend_from_slice(&ITEM_CIP_IDENTITY.to_le_bytes());
        data.extend_from_slice(&(it.len() as u16).to_le_bytes());
        data.extend_from_slice(&it);
        let mut r = reply(&[])[..HEADER_LEN].to_vec();
        r[2..4].copy_from_slice(&(data.len() as u16).to_le_bytes());
        r.extend_from_slice(&data);
        assert!(matches!(parse_list_identity(&r), Ok(ListIdentityReply::Identity(c)) if c.product_name == "X"));
    }

    #[test]
    fn an_error_status_still_proves_enip() {
        let mut r = list_identity_request();
        r[8] = 0x01;
        assert_eq!(parse_list_identity(&r), Ok(ListIdentityReply::Error { status: 1 }));
        assert_eq!(identity_of(&ListIdentityReply::Error { status: 1 }).fields["encapsulation_status"], 1);
    }

    #[test]
    fn malformed_replies_are_refused() {
        let good = reply(&item("1756-L61/B LOGIX5561", true));
        // The echo of our own request: no item count.
        assert!(parse_list_identity(&list_identity_request()).is_err());
        // Every truncation.
        for n in 0..good.len() {
            assert!(parse_list_identity(&good[..n]).is_err(), "truncated to {n}");
        }
        // Another command.
        let mut other = good.clone();
        other[0] = 0x64;
        assert!(parse_list_identity(&other).is_err());
        assert!(matches!(frame(&other), Frame::Invalid(_)));
        // Length field larger than the data.
        let mut long = good.clone();
        long[2] = long[2].wrapping_add(1);
        assert!(parse_list_identity(&long).is_err());
        // Zero items.
        let mut none = good[..HEADER_LEN].to_vec();
        none[2..4].copy_from_slice(&2u16.to_le_bytes());
        none.extend_from_slice(&[0, 0]);
        assert!(parse_list_identity(&none).is_err());
        // An item length past the end, and a product name longer than its item.
        let mut over = good.clone();
        over[HEADER_LEN + 4] = 0xff;
        assert!(parse_list_identity(&over).is_err());
        let mut it = item("ABC", true);
        it[IDENTITY_FIXED_LEN - 1] = 200;
        assert!(parse_list_identity(&reply(&it)).is_err());
        // Item too short for the identity's fixed part.
        assert!(parse_list_identity(&reply(&[0; 20])).is_err());
        // An item count claiming thousands of items is bounded.
        let mut many = good[..HEADER_LEN].to_vec();
        let mut data = vec![0xff, 0xff];
        for _ in 0..100 {
            data.extend_from_slice(&[0x00, 0x01, 0, 0]);
        }
        many[2..4].copy_from_slice(&(data.len() as u16).to_le_bytes());
        many.extend_from_slice(&data);
        assert!(parse_list_identity(&many).is_err());
    }

    #[test]
    fn framing_waits_for_the_whole_message_and_refuses_huge_claims() {
        let good = reply(&item("A", true));
        assert_eq!(frame(&good[..1]), Frame::Incomplete);
        assert_eq!(frame(&good[..30]), Frame::Incomplete);
        let mut with_extra = good.clone();
        with_extra.extend_from_slice(b"junk");
        assert_eq!(frame(&with_extra), Frame::Complete(good.len()));
        let mut huge = good.clone();
        huge[2..4].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert!(matches!(frame(&huge), Frame::Invalid(_)));
    }

    #[test]
    fn device_type_names_come_from_the_profile_list() {
        assert_eq!(device_type_name(0x0e), Some("Programmable Logic Controller"));
        assert_eq!(device_type_name(0x2b), Some("Generic Device (keyable)"));
        assert_eq!(device_type_name(0x7777), None);
    }
}
