//! BACnet/IP (ASHRAE 135, Annex J), id `bacnet`, 47808/udp.
//!
//! 1. A unicast Who-Is (unconfirmed service 0x08, no range): the device answers I-Am (unconfirmed
//!    service 0x00) with its device object identifier, max APDU, segmentation and vendor id.
//! 2. When no I-Am comes (some devices answer Who-Is only by broadcast, or not at all to a unicast),
//!    a ReadProperty of object-identifier on the wildcard device instance 4194303 names the instance.
//! 3. ReadProperty (confirmed service 0x0C) of the device object's identification properties, one
//!    request each with its own invoke id. An Error, Reject or Abort for one property only skips it.
//!
//! Who-Is and ReadProperty are read-only: they query, they never write a property, reinitialise a
//! device or change its communication state.
//!
//! Frames: BVLC (type 0x81, function, length of the whole datagram, 2 bytes BE), NPDU (version 0x01,
//! control, optional DNET/DADR, SNET/SADR, hop count), APDU. Application tags: tag number in the high
//! nibble, bit 3 context class, low 3 bits length (5 = extended length byte follows).

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, NetError, Session};

const PROTOCOL: &str = "bacnet";

pub const BVLC_TYPE: u8 = 0x81;
pub const BVLC_FORWARDED_NPDU: u8 = 0x04;
pub const BVLC_UNICAST_NPDU: u8 = 0x0A;
pub const BVLC_BROADCAST_NPDU: u8 = 0x0B;

const PDU_CONFIRMED_REQUEST: u8 = 0x0;
const PDU_UNCONFIRMED_REQUEST: u8 = 0x1;
const PDU_COMPLEX_ACK: u8 = 0x3;
const PDU_ERROR: u8 = 0x5;
const PDU_REJECT: u8 = 0x6;
const PDU_ABORT: u8 = 0x7;

const SERVICE_I_AM: u8 = 0x00;
const SERVICE_WHO_IS: u8 = 0x08;
const SERVICE_READ_PROPERTY: u8 = 0x0C;

pub const OBJECT_DEVICE: u16 = 8;
/// The wildcard device instance: "the device that receives this request".
pub const WILDCARD_INSTANCE: u32 = 4_194_303;

pub const PROP_APPLICATION_SOFTWARE_VERSION: u32 = 12;
pub const PROP_DESCRIPTION: u32 = 28;
pub const PROP_FIRMWARE_REVISION: u32 = 44;
pub const PROP_LOCATION: u32 = 58;
pub const PROP_MODEL_NAME: u32 = 70;
pub const PROP_OBJECT_IDENTIFIER: u32 = 75;
pub const PROP_OBJECT_NAME: u32 = 77;
pub const PROP_VENDOR_IDENTIFIER: u32 = 120;
pub const PROP_VENDOR_NAME: u32 = 121;

/// The device object's properties read after the instance is known, with their field names.
const PROPERTIES: &[(u32, &str)] = &[
    (PROP_OBJECT_NAME, "object_name"),
    (PROP_VENDOR_NAME, "vendor_name"),
    (PROP_VENDOR_IDENTIFIER, "vendor_id"),
    (PROP_MODEL_NAME, "model_name"),
    (PROP_FIRMWARE_REVISION, "firmware_revision"),
    (PROP_APPLICATION_SOFTWARE_VERSION, "application_software_version"),
    (PROP_LOCATION, "location"),
    (PROP_DESCRIPTION, "description"),
];

/// Max segments accepted: unspecified (0); max APDU accepted: 5 = up to 1476 octets (BACnet/IP).
const MAX_SEGS_MAX_APDU: u8 = 0x05;
/// BACnet/IP datagrams are at most 1497 bytes; anything much larger is not BACnet.
const MAX_DATAGRAM: usize = 2048;

pub use super::ParseError;

fn bvlc(npdu_apdu: &[u8]) -> Vec<u8> {
    let len = (4 + npdu_apdu.len()) as u16;
    let mut r = vec![BVLC_TYPE, BVLC_UNICAST_NPDU];
    r.extend_from_slice(&len.to_be_bytes());
    r.extend_from_slice(npdu_apdu);
    r
}

/// Who-Is without a range, sent to the device's own address.
pub fn who_is_request() -> Vec<u8> {
    // NPDU: version 1, control 0 (an unconfirmed request expects no reply at the network layer).
    bvlc(&[0x01, 0x00, PDU_UNCONFIRMED_REQUEST << 4, SERVICE_WHO_IS])
}

fn object_identifier(object_type: u16, instance: u32) -> [u8; 4] {
    ((u32::from(object_type) << 22) | (instance & 0x3F_FFFF)).to_be_bytes()
}

/// ReadProperty of `property` of device object `instance`.
pub fn read_property_request(instance: u32, property: u32, invoke_id: u8) -> Vec<u8> {
    let mut p = vec![
        0x01,                       // NPDU version
        0x04,                       // control: expecting reply, normal priority
        PDU_CONFIRMED_REQUEST << 4, // not segmented, segmented response not accepted
        MAX_SEGS_MAX_APDU,
        invoke_id,
        SERVICE_READ_PROPERTY,
        0x0C, // context tag 0, length 4: object identifier
    ];
    p.extend_from_slice(&object_identifier(OBJECT_DEVICE, instance));
    // Context tag 1: property identifier, in as few octets as it takes.
    let bytes = property.to_be_bytes();
    let skip = bytes.iter().take(3).take_while(|&&b| b == 0).count();
    p.push(0x18 | (4 - skip) as u8);
    p.extend_from_slice(&bytes[skip..]);
    bvlc(&p)
}

/// The APDU of a BVLC datagram, and whether the NPDU names a source network (a device behind a
/// router rather than the one at this address).
fn apdu_of(buf: &[u8]) -> Result<(&[u8], bool), ParseError> {
    let (Some(&kind), Some(&function), Some(len)) =
        (buf.first(), buf.get(1), buf.get(2..4).map(|l| u16::from_be_bytes([l[0], l[1]])))
    else {
        return Err(ParseError::new("shorter than a BVLC header"));
    };
    if kind != BVLC_TYPE {
        return Err(ParseError::new(format!("BVLC type 0x{kind:02x}")));
    }
    if len as usize != buf.len() {
        return Err(ParseError::new(format!("BVLC length {len} for a {}-byte datagram", buf.len())));
    }
    let npdu_at = match function {
        BVLC_UNICAST_NPDU | BVLC_BROADCAST_NPDU => 4,
        BVLC_FORWARDED_NPDU => 10, // the original source's B/IP address (6 bytes) comes first
        other => return Err(ParseError::new(format!("BVLC function 0x{other:02x} carries no NPDU"))),
    };
    let (Some(&version), Some(&control)) = (buf.get(npdu_at), buf.get(npdu_at + 1)) else {
        return Err(ParseError::new("no NPDU"));
    };
    if version != 0x01 {
        return Err(ParseError::new(format!("NPDU version {version}")));
    }
    if control & 0x80 != 0 {
        return Err(ParseError::new("a network layer message, not an APDU"));
    }
    let mut pos = npdu_at + 2;
    let address = |pos: &mut usize| -> Result<(), ParseError> {
        let Some(&alen) = buf.get(*pos + 2) else { return Err(ParseError::new("NPDU address truncated")) };
        *pos += 3 + alen as usize;
        Ok(())
    };
    if control & 0x20 != 0 {
        address(&mut pos)?;
    }
    let routed = control & 0x08 != 0;
    if routed {
        address(&mut pos)?;
    }
    if control & 0x20 != 0 {
        pos += 1; // hop count
    }
    match buf.get(pos..) {
        Some(apdu) if !apdu.is_empty() => Ok((apdu, routed)),
        _ => Err(ParseError::new("no APDU")),
    }
}

/// One decoded tag header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag {
    number: u8,
    context: bool,
    kind: TagKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagKind {
    /// Content of this many octets follows (for application booleans: the value, no content).
    Length(usize),
    Opening,
    Closing,
}

/// Reads the tag at `*pos` and returns it with its content, advancing past both.
fn read_tag<'a>(b: &'a [u8], pos: &mut usize) -> Result<(Tag, &'a [u8]), ParseError> {
    let Some(&first) = b.get(*pos) else { return Err(ParseError::new("tag expected, data ended")) };
    let mut at = *pos + 1;
    let mut number = first >> 4;
    if number == 0x0F {
        let Some(&n) = b.get(at) else { return Err(ParseError::new("extended tag number truncated")) };
        number = n;
        at += 1;
    }
    let context = first & 0x08 != 0;
    let lvt = first & 0x07;
    let kind = match lvt {
        6 if context => TagKind::Opening,
        7 if context => TagKind::Closing,
        _ if !context && number == 1 => TagKind::Length(0), // application boolean: value in the tag
        5 => {
            let Some(&ext) = b.get(at) else { return Err(ParseError::new("extended length truncated")) };
            at += 1;
            let len = match ext {
                254 => {
                    let Some(l) = b.get(at..at + 2) else { return Err(ParseError::new("extended length truncated")) };
                    at += 2;
                    u16::from_be_bytes([l[0], l[1]]) as usize
                }
                255 => {
                    let Some(l) = b.get(at..at + 4) else { return Err(ParseError::new("extended length truncated")) };
                    at += 4;
                    u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize
                }
                n => n as usize,
            };
            TagKind::Length(len)
        }
        n => TagKind::Length(n as usize),
    };
    let content = match kind {
        TagKind::Length(n) => match at.checked_add(n).and_then(|end| b.get(at..end)) {
            Some(c) => c,
            None => return Err(ParseError::new(format!("tag content of {n} octets overruns the APDU"))),
        },
        _ => b.get(at..at).unwrap_or_default(),
    };
    *pos = at + content.len();
    Ok((Tag { number, context, kind }, content))
}

fn unsigned(content: &[u8]) -> Result<u64, ParseError> {
    if content.is_empty() || content.len() > 8 {
        return Err(ParseError::new(format!("unsigned of {} octets", content.len())));
    }
    Ok(content.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// An application-tagged property value, as far as identification needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Unsigned(u64),
    Enumerated(u64),
    Text(String),
    ObjectId {
        object_type: u16,
        instance: u32,
    },
    /// Any other datatype (by application tag number).
    Other(u8),
}

fn decode_value(tag: Tag, content: &[u8]) -> Result<Value, ParseError> {
    if tag.context {
        return Err(ParseError::new("context-tagged value where an application tag was expected"));
    }
    Ok(match tag.number {
        2 => Value::Unsigned(unsigned(content)?),
        7 => Value::Text(decode_string(content)?),
        9 => Value::Enumerated(unsigned(content)?),
        12 => {
            let Ok(raw) = <[u8; 4]>::try_from(content) else {
                return Err(ParseError::new("object identifier not 4 octets"));
            };
            let v = u32::from_be_bytes(raw);
            Value::ObjectId { object_type: (v >> 22) as u16, instance: v & 0x3F_FFFF }
        }
        n => Value::Other(n),
    })
}

/// A CharacterString: a character set octet, then the text.
fn decode_string(content: &[u8]) -> Result<String, ParseError> {
    let Some((&charset, text)) = content.split_first() else {
        return Err(ParseError::new("character string without its character set"));
    };
    let latin1 = |b: &[u8]| b.iter().map(|&c| char::from(c)).collect::<String>();
    let s = match charset {
        // ANSI X3.4 / UTF-8.
        0 => String::from_utf8_lossy(text).into_owned(),
        // IBM/Microsoft DBCS: a 2-octet code page, then the text; best effort.
        1 => {
            let t = text.get(2..).unwrap_or_default();
            std::str::from_utf8(t).map(str::to_string).unwrap_or_else(|_| latin1(t))
        }
        // ISO 10646 UCS-4, big-endian.
        3 => text
            .chunks_exact(4)
            .map(|q| char::from_u32(u32::from_be_bytes([q[0], q[1], q[2], q[3]])).unwrap_or('\u{FFFD}'))
            .collect(),
        // ISO 10646 UCS-2, big-endian.
        4 => {
            let units = text.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]]));
            char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')).collect()
        }
        // ISO 8859-1, and best effort (JIS X 0208 and unknown sets) for the rest.
        _ => std::str::from_utf8(text).map(str::to_string).unwrap_or_else(|_| latin1(text)),
    };
    Ok(s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string())
}

/// A validated I-Am.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IAm {
    pub instance: u32,
    pub max_apdu: u64,
    pub segmentation: u64,
    pub vendor_id: u64,
    /// The I-Am came from behind a router (its NPDU names a source network).
    pub routed: bool,
}

/// Parses a datagram as an I-Am of a device object.
pub fn parse_i_am(buf: &[u8]) -> Result<IAm, ParseError> {
    let (apdu, routed) = apdu_of(buf)?;
    let (Some(&pdu), Some(&service)) = (apdu.first(), apdu.get(1)) else {
        return Err(ParseError::new("APDU truncated"));
    };
    if pdu >> 4 != PDU_UNCONFIRMED_REQUEST || service != SERVICE_I_AM {
        return Err(ParseError::new(format!("APDU 0x{pdu:02x} service 0x{service:02x} is not I-Am")));
    }
    let mut pos = 2;
    let mut next = |want: u8| -> Result<Value, ParseError> {
        let (tag, content) = read_tag(apdu, &mut pos)?;
        if tag.context || tag.number != want {
            return Err(ParseError::new(format!("I-Am: application tag {want} expected, tag {} found", tag.number)));
        }
        decode_value(tag, content)
    };
    let Value::ObjectId { object_type, instance } = next(12)? else { unreachable!("tag 12 decodes as an object id") };
    if object_type != OBJECT_DEVICE {
        return Err(ParseError::new(format!("I-Am of object type {object_type}, not a device")));
    }
    let Value::Unsigned(max_apdu) = next(2)? else { unreachable!("tag 2 decodes as unsigned") };
    let Value::Enumerated(segmentation) = next(9)? else { unreachable!("tag 9 decodes as enumerated") };
    let Value::Unsigned(vendor_id) = next(2)? else { unreachable!("tag 2 decodes as unsigned") };
    Ok(IAm { instance, max_apdu, segmentation, vendor_id, routed })
}

/// A validated reply to one ReadProperty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyReply {
    /// ComplexACK: the (first) value of the property.
    Value(Value),
    Error {
        class: Option<u64>,
        code: Option<u64>,
    },
    Reject {
        reason: u8,
    },
    Abort {
        reason: u8,
    },
}

/// Parses a datagram as the reply to the ReadProperty of `property` sent with `invoke_id`.
pub fn parse_read_property_reply(buf: &[u8], invoke_id: u8, property: u32) -> Result<PropertyReply, ParseError> {
    let (apdu, _) = apdu_of(buf)?;
    let (Some(&pdu), Some(&invoke)) = (apdu.first(), apdu.get(1)) else {
        return Err(ParseError::new("APDU truncated"));
    };
    let kind = pdu >> 4;
    if ![PDU_COMPLEX_ACK, PDU_ERROR, PDU_REJECT, PDU_ABORT].contains(&kind) {
        return Err(ParseError::new(format!("APDU type {kind} is not a reply to a confirmed request")));
    }
    if invoke != invoke_id {
        return Err(ParseError::new(format!("invoke id {invoke}, expected {invoke_id}")));
    }
    let Some(&third) = apdu.get(2) else { return Err(ParseError::new("APDU truncated")) };
    match kind {
        PDU_REJECT => return Ok(PropertyReply::Reject { reason: third }),
        PDU_ABORT => return Ok(PropertyReply::Abort { reason: third }),
        _ => {}
    }
    if third != SERVICE_READ_PROPERTY {
        return Err(ParseError::new(format!("service 0x{third:02x}, not ReadProperty")));
    }
    let mut pos = 3;
    if kind == PDU_ERROR {
        let mut enumerated = || match read_tag(apdu, &mut pos) {
            Ok((t, c)) if !t.context && t.number == 9 => unsigned(c).ok(),
            _ => None,
        };
        let class = enumerated();
        let code = enumerated();
        return Ok(PropertyReply::Error { class, code });
    }
    if pdu & 0x08 != 0 {
        return Err(ParseError::new("segmented ComplexACK (segmentation was not offered)"));
    }
    // Context 0: object identifier; context 1: property identifier; optional context 2: array index.
    let (t0, _) = read_tag(apdu, &mut pos)?;
    if !(t0.context && t0.number == 0 && t0.kind == TagKind::Length(4)) {
        return Err(ParseError::new("ReadProperty-ACK without its object identifier"));
    }
    let (t1, c1) = read_tag(apdu, &mut pos)?;
    if !(t1.context && t1.number == 1) {
        return Err(ParseError::new("ReadProperty-ACK without its property identifier"));
    }
    let echoed = unsigned(c1)?;
    if echoed != u64::from(property) {
        return Err(ParseError::new(format!("ReadProperty-ACK for property {echoed}, asked {property}")));
    }
    let (mut t, _) = read_tag(apdu, &mut pos)?;
    if t.context && t.number == 2 && matches!(t.kind, TagKind::Length(_)) {
        t = read_tag(apdu, &mut pos)?.0;
    }
    if !(t.context && t.number == 3 && t.kind == TagKind::Opening) {
        return Err(ParseError::new("ReadProperty-ACK without its property value"));
    }
    let (vt, content) = read_tag(apdu, &mut pos)?;
    if vt.context && vt.number == 3 && vt.kind == TagKind::Closing {
        return Err(ParseError::new("empty property value"));
    }
    let value = decode_value(vt, content)?;
    // The value ends with closing tag 3 (a list or an array may hold more values first).
    for _ in 0..64 {
        let (t, _) = read_tag(apdu, &mut pos)?;
        if t.context && t.number == 3 && t.kind == TagKind::Closing {
            return Ok(PropertyReply::Value(value));
        }
    }
    Err(ParseError::new("property value without its closing tag"))
}

/// Frames a datagram answering the Who-Is broadcast: complete when it holds an I-Am.
pub fn i_am_frame(buf: &[u8]) -> Frame {
    if buf.len() > MAX_DATAGRAM {
        return Frame::Invalid(format!("{}-byte datagram", buf.len()));
    }
    match parse_i_am(buf) {
        // A routed I-Am names a device behind this one, not the device at this address.
        Ok(i_am) if i_am.routed => Frame::Invalid("I-Am of a device behind a router".into()),
        Ok(_) => Frame::Complete(buf.len()),
        Err(e) => Frame::Invalid(e.0),
    }
}

/// What the probe learned, before it becomes fields.
#[derive(Debug, Default)]
struct Device {
    instance: Option<u32>,
    vendor_id: Option<u64>,
    /// The reply that proved BACnet when no I-Am nor ACK did (an Error, Reject or Abort).
    refusal: Option<PropertyReply>,
    properties: Vec<(&'static str, Value)>,
}

async fn read_property(
    session: &mut Session<'_>,
    instance: u32,
    property: u32,
    invoke_id: u8,
) -> Result<PropertyReply, NetError> {
    let request = read_property_request(instance, property, invoke_id);
    let framing = |b: &[u8]| {
        if b.len() > MAX_DATAGRAM {
            return Frame::Invalid(format!("{}-byte datagram", b.len()));
        }
        match parse_read_property_reply(b, invoke_id, property) {
            Ok(_) => Frame::Complete(b.len()),
            Err(e) => Frame::Invalid(e.0),
        }
    };
    let reply = session.conn().exchange(&request, framing).await?;
    parse_read_property_reply(&reply, invoke_id, property).map_err(|e| NetError::Invalid(e.0))
}

async fn identify(session: &mut Session<'_>) -> Result<Device, ProbeError> {
    let mut device = Device::default();
    let mut proven = false;
    match session.conn().exchange(&who_is_request(), i_am_frame).await {
        Ok(reply) => {
            let i_am = parse_i_am(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.0))?;
            proven = true;
            device.instance = Some(i_am.instance);
            device.vendor_id = Some(i_am.vendor_id);
        }
        // Silence, or only datagrams that are no I-Am: try the wildcard instance.
        Err(NetError::Timeout(_)) | Err(NetError::Invalid(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut invoke_id: u8 = 0;
    if device.instance.is_none() {
        invoke_id += 1;
        match read_property(session, WILDCARD_INSTANCE, PROP_OBJECT_IDENTIFIER, invoke_id).await {
            Ok(PropertyReply::Value(Value::ObjectId { object_type: OBJECT_DEVICE, instance })) => {
                proven = true;
                device.instance = Some(instance);
            }
            Ok(other) => {
                proven = true;
                if !matches!(other, PropertyReply::Value(_)) {
                    device.refusal = Some(other);
                }
            }
            Err(NetError::Timeout(_)) | Err(NetError::Invalid(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !proven {
        return Err(ProbeError::not(PROTOCOL, "no I-Am and no reply to ReadProperty"));
    }
    let Some(instance) = device.instance else { return Ok(device) };
    for &(property, name) in PROPERTIES {
        invoke_id = invoke_id.wrapping_add(1);
        match read_property(session, instance, property, invoke_id).await {
            Ok(PropertyReply::Value(v)) => device.properties.push((name, v)),
            // This property is unknown, unreadable or refused: the others may still answer.
            Ok(_) => {}
            // The device stopped answering (or the socket failed): keep what it told so far.
            Err(_) => break,
        }
    }
    Ok(device)
}

fn identity_of(device: &Device) -> Identity {
    let mut id = Identity::new(PROTOCOL, true);
    if let Some(instance) = device.instance {
        id.field("instance", instance);
    }
    if let Some(vendor) = device.vendor_id {
        id.field("vendor_id", vendor);
    }
    for (name, value) in &device.properties {
        match value {
            Value::Text(s) if *name != "vendor_id" => {
                id.field(name, s.as_str());
            }
            Value::Unsigned(n) if *name == "vendor_id" && device.vendor_id.is_none() => {
                id.field(name, *n);
            }
            _ => {}
        }
    }
    match device.refusal {
        Some(PropertyReply::Error { class, code }) => {
            if let Some(c) = class {
                id.field("error_class", c);
            }
            if let Some(c) = code {
                id.field("error_code", c);
            }
        }
        Some(PropertyReply::Reject { reason }) => {
            id.field("reject_reason", reason);
        }
        Some(PropertyReply::Abort { reason }) => {
            id.field("abort_reason", reason);
        }
        _ => {}
    }
    id
}

/// BACnet/IP over UDP.
/// Some stacks answer from another port than 47808: the reply is matched by content and address.
pub const PROBE: Probe =
    Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).udp(&[47808]).udp_replies_from_any_port();

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let device = identify(session).await?;
    Ok(identity_of(&device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn datagram(function: u8, npdu_apdu: &[u8]) -> Vec<u8> {
        let mut r = vec![BVLC_TYPE, function];
        r.extend_from_slice(&((4 + npdu_apdu.len()) as u16).to_be_bytes());
        r.extend_from_slice(npdu_apdu);
        r
    }

    /// I-Am of device 260001 (BACnet Stack at SourceForge, vendor 260), max APDU 1476, no segmentation.
    fn i_am() -> Vec<u8> {
        datagram(
            BVLC_BROADCAST_NPDU,
            &[0x01, 0x00, 0x10, 0x00, 0xC4, 0x02, 0x03, 0xF7, 0xA1, 0x22, 0x05, 0xC4, 0x91, 0x03, 0x22, 0x01, 0x04],
        )
    }

    fn ack(invoke: u8, property: u8, value: &[u8]) -> Vec<u8> {
        let mut p = vec![0x01, 0x00, 0x30, invoke, 0x0C, 0x0C, 0x02, 0x03, 0xF7, 0xA1, 0x19, property, 0x3E];
        p.extend_from_slice(value);
        p.push(0x3F);
        datagram(BVLC_UNICAST_NPDU, &p)
    }

    #[test]
    fn request_bytes_are_exact() {
        assert_eq!(who_is_request(), [0x81, 0x0A, 0x00, 0x08, 0x01, 0x00, 0x10, 0x08]);
        assert_eq!(
            read_property_request(WILDCARD_INSTANCE, PROP_OBJECT_IDENTIFIER, 1),
            [0x81, 0x0A, 0x00, 0x11, 0x01, 0x04, 0x00, 0x05, 0x01, 0x0C, 0x0C, 0x02, 0x3F, 0xFF, 0xFF, 0x19, 0x4B]
        );
        assert_eq!(
            read_property_request(260001, PROP_VENDOR_NAME, 7),
            [0x81, 0x0A, 0x00, 0x11, 0x01, 0x04, 0x00, 0x05, 0x07, 0x0C, 0x0C, 0x02, 0x03, 0xF7, 0xA1, 0x19, 0x79]
        );
        // A property identifier above 255 takes two octets.
        assert_eq!(&read_property_request(1, 512, 1)[15..], [0x1A, 0x02, 0x00]);
    }

    #[test]
    fn parses_an_i_am() {
        let i = parse_i_am(&i_am()).unwrap();
        assert_eq!(i, IAm { instance: 260001, max_apdu: 1476, segmentation: 3, vendor_id: 260, routed: false });
        assert_eq!(i_am_frame(&i_am()), Frame::Complete(i_am().len()));
    }

    #[test]
    fn a_routed_i_am_is_parsed_but_not_taken_as_this_device() {
        // NPDU control 0x08: SNET 5, SLEN 1, SADR 0x0A.
        let mut p = vec![0x01, 0x08, 0x00, 0x05, 0x01, 0x0A];
        p.extend_from_slice(&i_am()[6..]);
        let d = datagram(BVLC_UNICAST_NPDU, &p);
        assert!(parse_i_am(&d).unwrap().routed);
        assert!(matches!(i_am_frame(&d), Frame::Invalid(_)));
    }

    #[test]
    fn forwarded_npdus_are_understood() {
        let mut p = vec![10, 0, 0, 9, 0xBA, 0xC0];
        p.extend_from_slice(&i_am()[4..]);
        assert_eq!(parse_i_am(&datagram(BVLC_FORWARDED_NPDU, &p)).unwrap().instance, 260001);
    }

    #[test]
    fn parses_property_values() {
        // Character string, UTF-8, "SimpleServer".
        let mut v = vec![0x75, 13, 0x00];
        v.extend_from_slice(b"SimpleServer");
        assert_eq!(
            parse_read_property_reply(&ack(3, 77, &v), 3, 77),
            Ok(PropertyReply::Value(Value::Text("SimpleServer".into())))
        );
        // Unsigned vendor identifier 260.
        assert_eq!(
            parse_read_property_reply(&ack(4, 120, &[0x22, 0x01, 0x04]), 4, 120),
            Ok(PropertyReply::Value(Value::Unsigned(260)))
        );
        // Object identifier (the wildcard's answer).
        assert_eq!(
            parse_read_property_reply(&ack(1, 75, &[0xC4, 0x02, 0x03, 0xF7, 0xA1]), 1, 75),
            Ok(PropertyReply::Value(Value::ObjectId { object_type: 8, instance: 260001 }))
        );
        // Short string, length in the tag; ISO 8859-1.
        assert_eq!(
            parse_read_property_reply(&ack(2, 58, &[0x75, 5, 0x05, b'K', 0xF6, b'l', b'n']), 2, 58),
            Ok(PropertyReply::Value(Value::Text("Köln".into())))
        );
        // UCS-2 big-endian.
        assert_eq!(
            parse_read_property_reply(&ack(2, 28, &[0x75, 5, 0x04, 0x00, b'H', 0x00, b'i']), 2, 28),
            Ok(PropertyReply::Value(Value::Text("Hi".into())))
        );
        // An array index before the value.
        let mut p = vec![0x01, 0x00, 0x30, 9, 0x0C, 0x0C, 0x02, 0x03, 0xF7, 0xA1, 0x19, 70, 0x29, 0x00, 0x3E];
        p.extend_from_slice(&[0x73, 0x00, b'A', b'B', 0x3F]);
        assert_eq!(
            parse_read_property_reply(&datagram(BVLC_UNICAST_NPDU, &p), 9, 70),
            Ok(PropertyReply::Value(Value::Text("AB".into())))
        );
    }

    #[test]
    fn error_reject_and_abort_are_replies() {
        // Error: class object (1), code unknown-object (31).
        let e = datagram(BVLC_UNICAST_NPDU, &[0x01, 0x00, 0x50, 5, 0x0C, 0x91, 0x01, 0x91, 0x1F]);
        assert_eq!(parse_read_property_reply(&e, 5, 75), Ok(PropertyReply::Error { class: Some(1), code: Some(31) }));
        let r = datagram(BVLC_UNICAST_NPDU, &[0x01, 0x00, 0x60, 5, 0x09]);
        assert_eq!(parse_read_property_reply(&r, 5, 75), Ok(PropertyReply::Reject { reason: 9 }));
        let a = datagram(BVLC_UNICAST_NPDU, &[0x01, 0x00, 0x71, 5, 0x04]);
        assert_eq!(parse_read_property_reply(&a, 5, 75), Ok(PropertyReply::Abort { reason: 4 }));
        // But not for another invoke id.
        assert!(parse_read_property_reply(&e, 6, 75).is_err());
    }

    #[test]
    fn fields_from_a_device() {
        let device = Device {
            instance: Some(260001),
            vendor_id: Some(260),
            refusal: None,
            properties: vec![
                ("object_name", Value::Text("SimpleServer".into())),
                ("vendor_id", Value::Unsigned(999)),
                ("model_name", Value::Text("GNU".into())),
                ("location", Value::Text("".into())),
            ],
        };
        assert_eq!(
            serde_json::Value::Object(identity_of(&device).fields),
            json!({"instance": 260001, "vendor_id": 260, "object_name": "SimpleServer", "model_name": "GNU"})
        );
        let refused =
            Device { refusal: Some(PropertyReply::Error { class: Some(1), code: Some(31) }), ..Default::default() };
        assert_eq!(
            serde_json::Value::Object(identity_of(&refused).fields),
            json!({"error_class": 1, "error_code": 31})
        );
    }

    #[test]
    fn malformed_datagrams_are_refused() {
        let good = i_am();
        for n in 0..good.len() {
            assert!(parse_i_am(&good[..n]).is_err(), "truncated to {n}");
        }
        // Our own Who-Is echoed.
        assert!(parse_i_am(&who_is_request()).is_err());
        // Our own ReadProperty echoed: a confirmed request, not a reply.
        let rp = read_property_request(WILDCARD_INSTANCE, PROP_OBJECT_IDENTIFIER, 1);
        assert!(parse_read_property_reply(&rp, 1, 75).is_err());
        // Wrong BVLC type, or a length that disagrees with the datagram.
        let mut t = good.clone();
        t[0] = 0x82;
        assert!(parse_i_am(&t).is_err());
        let mut l = good.clone();
        l[3] = 0xFF;
        assert!(parse_i_am(&l).is_err());
        // An I-Am of something that is not a device.
        let mut o = good.clone();
        o[9] = 0x00;
        assert!(parse_i_am(&o).is_err());
        // A string whose length runs past the datagram.
        let big = ack(3, 77, &[0x75, 0xFE, 0x7F, 0xFF, 0x00, b'a']);
        assert!(parse_read_property_reply(&big, 3, 77).is_err());
        let huge = ack(3, 77, &[0x75, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]);
        assert!(parse_read_property_reply(&huge, 3, 77).is_err());
        // An ACK for another property.
        let mut v = vec![0x75, 2, 0x00, b'x'];
        assert!(parse_read_property_reply(&ack(3, 77, &v), 3, 121).is_err());
        // Every truncation of an ACK, with a BVLC length that agrees with the truncated datagram.
        v = vec![0x75, 4, 0x00, b'a', b'b', b'c'];
        let a = ack(3, 77, &v);
        assert!(parse_read_property_reply(&a, 3, 77).is_ok());
        for n in 0..a.len() - 4 {
            let cut = datagram(BVLC_UNICAST_NPDU, &a[4..4 + n]);
            assert!(parse_read_property_reply(&cut, 3, 77).is_err(), "truncated to {n}");
        }
        for n in 0..good.len() - 4 {
            assert!(parse_i_am(&datagram(BVLC_UNICAST_NPDU, &good[4..4 + n])).is_err(), "truncated to {n}");
        }
        // A network layer message.
        assert!(parse_i_am(&datagram(BVLC_UNICAST_NPDU, &[0x01, 0x80, 0x00])).is_err());
    }
}
