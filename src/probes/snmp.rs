//! SNMP v2c (RFC 3416 PDUs in the RFC 1901 community message, BER-encoded per X.690), and SNMPv1
//! (RFC 1157) when v2c gets no answer: agents that speak only v1 drop v2c messages silently, so the
//! v2c retry goes out with the v1 request beside it (a silent port costs the v2c tries alone).
//!
//! One GetRequest with community `public` for sysDescr.0, sysObjectID.0 and sysName.0 (RFC 3418).
//! A Get reads three scalars of the system group: it changes nothing on the agent. An agent that
//! answers without some of them (emulators that answer only the first variable, or a v1 agent's
//! noSuchName, which voids the whole response) is asked for each missing one alone, once.
//!
//! ```text
//! Message     ::= SEQUENCE { version INTEGER (1 = v2c), community OCTET STRING, data PDUs }
//! GetRequest  ::= [0] IMPLICIT PDU   (A0)      Response ::= [2] IMPLICIT PDU   (A2)
//! PDU         ::= SEQUENCE { request-id INTEGER, error-status INTEGER, error-index INTEGER,
//!                            variable-bindings SEQUENCE OF SEQUENCE { name OID, value ANY } }
//! ```

use super::{printable, Identity, Probe, ProbeError};
use crate::net::{Conn, Frame, NetError, Session};

pub const PROTOCOL: &str = "snmp";
pub const COMMUNITY: &[u8] = b"public";
/// msgVersion of SNMPv2c.
pub const VERSION_2C: i64 = 1;
/// msgVersion of SNMPv1.
pub const VERSION_1: i64 = 0;

pub const SYS_DESCR: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 1, 0];
pub const SYS_OBJECT_ID: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 2, 0];
pub const SYS_NAME: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 5, 0];

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const PDU_GET_REQUEST: u8 = 0xA0;
const PDU_RESPONSE: u8 = 0xA2;
/// RFC 3416 exception values in a varbind.
const NO_SUCH_OBJECT: u8 = 0x80;
const NO_SUCH_INSTANCE: u8 = 0x81;
const END_OF_MIB_VIEW: u8 = 0x82;

/// Varbinds read from one response.
const MAX_VARBINDS: usize = 64;
/// Sub-identifiers accepted in one OID (RFC 2578 allows 128).
const MAX_OID_ARCS: usize = 128;
/// Characters kept of one string value.
const MAX_TEXT_CHARS: usize = 1024;

// ---------------------------------------------------------------------------------------------
// BER writer

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_length(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A two's-complement INTEGER in its minimal form.
fn integer(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(TAG_INTEGER, &bytes[start..])
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        _ => (0, &[][..]),
    };
    for &arc in std::iter::once(&first).chain(rest) {
        let mut groups = vec![(arc & 0x7F) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            groups.push((v & 0x7F) as u8 | 0x80);
            v >>= 7;
        }
        content.extend(groups.iter().rev());
    }
    tlv(TAG_OID, &content)
}

/// The variables read: the system group's description, object id and name.
pub const SYSTEM: [&[u64]; 3] = [SYS_DESCR, SYS_OBJECT_ID, SYS_NAME];

/// The GetRequest of message `version` for `names` with community `public`.
pub fn get_request(version: i64, request_id: i32, names: &[&[u64]]) -> Vec<u8> {
    let varbinds: Vec<u8> =
        names.iter().flat_map(|name| tlv(TAG_SEQUENCE, &[oid(name), tlv(TAG_NULL, &[])].concat())).collect();
    let pdu = [integer(request_id.into()), integer(0), integer(0), tlv(TAG_SEQUENCE, &varbinds)].concat();
    let message = [integer(version), tlv(TAG_OCTET_STRING, COMMUNITY), tlv(PDU_GET_REQUEST, &pdu)].concat();
    tlv(TAG_SEQUENCE, &message)
}

// ---------------------------------------------------------------------------------------------
// BER reader: definite lengths only, every length checked against the bytes that hold it.

pub use super::ParseError;

/// One TLV: its tag, its content, and what follows it.
fn read_tlv(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), ParseError> {
    let (&tag, rest) = buf.split_first().ok_or_else(|| ParseError::new("truncated TLV"))?;
    if tag & 0x1F == 0x1F {
        return Err(ParseError::new("multi-byte tags are not used by SNMP"));
    }
    let (&first, rest) = rest.split_first().ok_or_else(|| ParseError::new("truncated length"))?;
    let (len, rest) = match first {
        0..=0x7F => (first as usize, rest),
        0x80 => return Err(ParseError::new("indefinite lengths are not allowed in SNMP")),
        _ => {
            let n = (first & 0x7F) as usize;
            if n > 4 {
                return Err(ParseError::new("length field too long"));
            }
            let digits = rest.get(..n).ok_or_else(|| ParseError::new("truncated length"))?;
            (digits.iter().fold(0usize, |acc, &d| (acc << 8) | d as usize), &rest[n..])
        }
    };
    if len > rest.len() {
        return Err(ParseError::new("length larger than the datagram"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(buf: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), ParseError> {
    let (t, content, rest) = read_tlv(buf)?;
    if t != tag {
        return Err(ParseError::new(format!("{what}: tag {t:#04x}, expected {tag:#04x}")));
    }
    Ok((content, rest))
}

fn decode_integer(content: &[u8]) -> Result<i64, ParseError> {
    if content.is_empty() || content.len() > 8 {
        return Err(ParseError::new("INTEGER of an invalid size"));
    }
    let sign = if content[0] & 0x80 != 0 { -1i64 } else { 0 };
    Ok(content.iter().fold(sign, |acc, &b| (acc << 8) | b as i64))
}

fn decode_oid(content: &[u8]) -> Result<Vec<u64>, ParseError> {
    if content.is_empty() {
        return Err(ParseError::new("empty OBJECT IDENTIFIER"));
    }
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    let mut pending = false;
    for &b in content {
        if value > (u64::MAX >> 7) {
            return Err(ParseError::new("OBJECT IDENTIFIER arc too large"));
        }
        value = (value << 7) | (b & 0x7F) as u64;
        pending = true;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            if arcs.len() > MAX_OID_ARCS {
                return Err(ParseError::new("OBJECT IDENTIFIER too long"));
            }
            value = 0;
            pending = false;
        }
    }
    if pending {
        return Err(ParseError::new("truncated OBJECT IDENTIFIER"));
    }
    Ok(arcs)
}

/// A varbind value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    OctetString(Vec<u8>),
    Oid(Vec<u64>),
    Integer(i64),
    Null,
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
    /// Any other type (counters, timeticks, addresses, ...), raw.
    Other(u8, Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub version: i64,
    pub community: Vec<u8>,
    pub pdu_type: u8,
    pub request_id: i64,
    pub error_status: i64,
    pub error_index: i64,
    pub varbinds: Vec<(Vec<u64>, VarValue)>,
}

impl Message {
    pub fn value(&self, name: &[u64]) -> Option<&VarValue> {
        self.varbinds.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Parses one SNMP message (the whole datagram); returns it and the bytes it spans.
pub fn parse_message(buf: &[u8]) -> Result<(Message, usize), ParseError> {
    let (message, rest) = expect(buf, TAG_SEQUENCE, "message")?;
    let used = buf.len() - rest.len();
    let (version, m) = expect(message, TAG_INTEGER, "version")?;
    let version = decode_integer(version)?;
    let (community, m) = expect(m, TAG_OCTET_STRING, "community")?;
    let (pdu_type, pdu, _) = read_tlv(m)?;
    if !(0xA0..=0xA8).contains(&pdu_type) {
        return Err(ParseError::new(format!("unknown PDU type {pdu_type:#04x}")));
    }
    let (request_id, p) = expect(pdu, TAG_INTEGER, "request-id")?;
    let (error_status, p) = expect(p, TAG_INTEGER, "error-status")?;
    let (error_index, p) = expect(p, TAG_INTEGER, "error-index")?;
    let (mut list, _) = expect(p, TAG_SEQUENCE, "variable-bindings")?;
    let mut varbinds = Vec::new();
    while !list.is_empty() {
        if varbinds.len() >= MAX_VARBINDS {
            return Err(ParseError::new("too many variable bindings"));
        }
        let (varbind, rest) = expect(list, TAG_SEQUENCE, "variable binding")?;
        list = rest;
        let (name, v) = expect(varbind, TAG_OID, "variable name")?;
        let (tag, content, _) = read_tlv(v)?;
        let value = match tag {
            TAG_OCTET_STRING => VarValue::OctetString(content.to_vec()),
            TAG_OID => VarValue::Oid(decode_oid(content)?),
            TAG_INTEGER => VarValue::Integer(decode_integer(content)?),
            TAG_NULL => VarValue::Null,
            NO_SUCH_OBJECT => VarValue::NoSuchObject,
            NO_SUCH_INSTANCE => VarValue::NoSuchInstance,
            END_OF_MIB_VIEW => VarValue::EndOfMibView,
            other => VarValue::Other(other, content.to_vec()),
        };
        varbinds.push((decode_oid(name)?, value));
    }
    Ok((
        Message {
            version,
            community: community.to_vec(),
            pdu_type,
            request_id: decode_integer(request_id)?,
            error_status: decode_integer(error_status)?,
            error_index: decode_integer(error_index)?,
            varbinds,
        },
        used,
    ))
}

/// Whether `m` is the agent's answer to our request `request_id` of message `version`.
pub fn check_reply(m: &Message, version: i64, request_id: i32) -> Result<(), ParseError> {
    if m.pdu_type != PDU_RESPONSE {
        return Err(ParseError::new(format!("PDU type {:#04x} is not a Response", m.pdu_type)));
    }
    if m.version != version {
        return Err(ParseError::new(format!("message version {} is not the {version} sent", m.version)));
    }
    if m.community != COMMUNITY {
        return Err(ParseError::new("the community is not the one sent"));
    }
    if m.request_id != i64::from(request_id) {
        return Err(ParseError::new("request-id does not match"));
    }
    Ok(())
}

/// The framing function for one datagram: our Response, or not a frame at all.
pub fn frame(datagram: &[u8], version: i64, request_id: i32) -> Frame {
    match parse_message(datagram) {
        Ok((m, used)) => match check_reply(&m, version, request_id) {
            Ok(()) => Frame::Complete(used),
            Err(e) => Frame::Invalid(e.0),
        },
        Err(e) => Frame::Invalid(e.0),
    }
}

pub fn dotted(arcs: &[u64]) -> String {
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

fn text(bytes: &[u8]) -> String {
    let s = printable(bytes);
    s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).chars().take(MAX_TEXT_CHARS).collect()
}

/// What the agent answered: the system group's values, and the error of its first response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    pub version: i64,
    pub values: Vec<(Vec<u64>, VarValue)>,
    pub error: Option<(i64, i64)>,
}

impl Answers {
    /// The first response's values (none when a v1 agent voided it with an error) and its error.
    pub fn of(m: &Message) -> Answers {
        let voided = m.version == VERSION_1 && m.error_status != 0;
        let values = if voided { Vec::new() } else { m.varbinds.clone() };
        let error = (m.error_status != 0).then_some((m.error_status, m.error_index));
        Answers { version: m.version, values, error }
    }

    fn value(&self, name: &[u64]) -> Option<&VarValue> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The variables of the system group the agent has not answered (an exception is an answer).
    pub fn missing(&self) -> Vec<&'static [u64]> {
        SYSTEM.into_iter().filter(|name| self.value(name).is_none()).collect()
    }

    /// Adds a single-variable response: its value, unless the agent said there is none.
    pub fn add(&mut self, m: &Message) {
        if m.error_status == 0 {
            self.values.extend(m.varbinds.iter().cloned());
        }
    }
}

/// The identity the agent's answers establish.
pub fn identity(a: &Answers) -> Identity {
    let mut id = Identity::new(PROTOCOL, false);
    id.field("community_public", true);
    id.field("snmp_version", if a.version == VERSION_1 { "v1" } else { "v2c" });
    if let Some(VarValue::OctetString(s)) = a.value(SYS_DESCR) {
        id.field("sys_descr", text(s));
    }
    if let Some(VarValue::Oid(o)) = a.value(SYS_OBJECT_ID) {
        id.field("sys_object_id", dotted(o));
    }
    if let Some(VarValue::OctetString(s)) = a.value(SYS_NAME) {
        id.field("sys_name", text(s));
    }
    if let Some((status, index)) = a.error {
        id.field("error_status", status);
        id.field("error_index", index);
    }
    id
}

/// A request id in 0x01000000..=0x7FFFFFFF (always four bytes in BER), unpredictable to the peer.
fn new_request_id() -> i32 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = nanos.subsec_nanos().to_be_bytes();
    }
    ((u32::from_be_bytes(b) & 0x7FFF_FFFF) | 0x0100_0000) as i32
}

pub const PROBE: Probe = Probe::service(PROTOCOL, |session| Box::pin(run(session))).udp(&[161]);

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let conn = session.conn();
    let first = system_group(conn).await?;
    let mut answers = Answers::of(&first);
    for name in answers.missing() {
        match get(conn, first.version, &[name]).await {
            Ok(m) => answers.add(&m),
            // The agent answered once: a variable it keeps to itself does not undo that.
            Err(_) => break,
        }
    }
    Ok(identity(&answers))
}

/// The system group in v2c, re-sent on silence; the last send goes out with the same request in v1
/// beside it, since an agent that speaks only v1 drops v2c without a word. A silent port so costs the
/// v2c tries alone, not one more read timeout for v1. The first valid response to either is taken.
async fn system_group(conn: &mut Conn) -> Result<Message, ProbeError> {
    let tries = 1 + conn.limits().udp_retries;
    let ids = [(VERSION_2C, new_request_id()), (VERSION_1, new_request_id())];
    let [v2c, v1] = ids.map(|(version, id)| get_request(version, id, &SYSTEM));
    let either = |d: &[u8]| {
        let mut verdicts = ids.iter().map(|&(version, id)| frame(d, version, id));
        let v2c = verdicts.next().expect("two versions");
        match v2c {
            Frame::Complete(_) => v2c,
            _ => verdicts.next().expect("two versions"),
        }
    };
    for attempt in 1..=tries {
        conn.send(&v2c).await?;
        if attempt == tries {
            conn.send(&v1).await?;
        }
        match conn.recv_frame(either).await {
            Ok(reply) => {
                let (message, _) = parse_message(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.0))?;
                return Ok(message);
            }
            Err(NetError::Timeout(_)) if attempt < tries => {}
            Err(NetError::Timeout(_)) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProbeError::not(PROTOCOL, "no answer in v2c or v1"))
}

/// One GetRequest of `version` for `names`, sent once, and the agent's validated Response.
async fn get(conn: &mut Conn, version: i64, names: &[&[u64]]) -> Result<Message, ProbeError> {
    let request_id = new_request_id();
    conn.send(&get_request(version, request_id, names)).await?;
    let reply = conn.recv_frame(|d: &[u8]| frame(d, version, request_id)).await?;
    let (message, _) = parse_message(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.0))?;
    check_reply(&message, version, request_id).map_err(|e| ProbeError::not(PROTOCOL, e.0))?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The request of net-snmp's `snmpget -v2c -c public <host> sysDescr.0 sysObjectID.0 sysName.0`
    /// with request-id 0x12345678, written out from X.690.
    const REQUEST: &[u8] = &[
        0x30, 0x45, // message, 69 bytes
        0x02, 0x01, 0x01, // version 1 (v2c)
        0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', // community
        0xA0, 0x38, // GetRequest-PDU, 56 bytes
        0x02, 0x04, 0x12, 0x34, 0x56, 0x78, // request-id
        0x02, 0x01, 0x00, // error-status
        0x02, 0x01, 0x00, // error-index
        0x30, 0x2A, // varbind list, 42 bytes
        0x30, 0x0C, 0x06, 0x08, 0x2B, 0x06, 0x01, 0x02, 0x01, 0x01, 0x01, 0x00, 0x05, 0x00, // sysDescr.0
        0x30, 0x0C, 0x06, 0x08, 0x2B, 0x06, 0x01, 0x02, 0x01, 0x01, 0x02, 0x00, 0x05, 0x00, // sysObjectID.0
        0x30, 0x0C, 0x06, 0x08, 0x2B, 0x06, 0x01, 0x02, 0x01, 0x01, 0x05, 0x00, 0x05, 0x00, // sysName.0
    ];

    /// A Response built field by field (what an agent answering `public` sends).
    fn response(request_id: i64, community: &[u8], error_status: i64, values: [Vec<u8>; 3]) -> Vec<u8> {
        let [descr, object_id, name] = values;
        let vb = |arcs: &[u64], v: Vec<u8>| tlv(TAG_SEQUENCE, &[oid(arcs), v].concat());
        let list = [vb(SYS_DESCR, descr), vb(SYS_OBJECT_ID, object_id), vb(SYS_NAME, name)].concat();
        let pdu = [integer(request_id), integer(error_status), integer(0), tlv(TAG_SEQUENCE, &list)].concat();
        tlv(TAG_SEQUENCE, &[integer(1), tlv(TAG_OCTET_STRING, community), tlv(PDU_RESPONSE, &pdu)].concat())
    }

    const SCALANCE: &str = "Siemens, SIMATIC NET, SCALANCE X204IRT, 6GK5 204-0BA00-2BA3, HW: Version 9, FW: Version V05.04.02, SVPL6147920";

    fn scalance_reply(id: i64) -> Vec<u8> {
        response(
            id,
            b"public",
            0,
            [
                tlv(TAG_OCTET_STRING, SCALANCE.as_bytes()),
                oid(&[1, 3, 6, 1, 4, 1, 4196, 1, 1, 5, 2, 22]),
                tlv(TAG_OCTET_STRING, b"sw-line3\0"),
            ],
        )
    }

    #[test]
    fn request_bytes_are_exact() {
        assert_eq!(get_request(VERSION_2C, 0x1234_5678, &SYSTEM), REQUEST);
        let (m, used) = parse_message(REQUEST).unwrap();
        assert_eq!((m.pdu_type, m.request_id, used), (PDU_GET_REQUEST, 0x1234_5678, REQUEST.len()));
        assert!(m.varbinds.iter().all(|(_, v)| *v == VarValue::Null));
    }

    #[test]
    fn ber_primitives() {
        assert_eq!(integer(0), [0x02, 0x01, 0x00]);
        assert_eq!(integer(127), [0x02, 0x01, 0x7F]);
        assert_eq!(integer(128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(-1), [0x02, 0x01, 0xFF]);
        assert_eq!(integer(-129), [0x02, 0x02, 0xFF, 0x7F]);
        for v in [0i64, 1, 127, 128, 255, 256, -1, -128, -129, 0x7FFF_FFFF, -0x8000_0000] {
            assert_eq!(decode_integer(&integer(v)[2..]).unwrap(), v);
        }
        assert_eq!(oid(&[1, 3, 6, 1, 4, 1, 8691, 7, 50]), [0x06, 0x09, 0x2B, 6, 1, 4, 1, 0xC3, 0x73, 7, 50]);
        assert_eq!(decode_oid(&oid(&[1, 3, 6, 1, 4, 1, 8691, 7, 50])[2..]).unwrap(), [1, 3, 6, 1, 4, 1, 8691, 7, 50]);
        assert_eq!(decode_oid(&[0x88, 0x37]).unwrap(), [2, 999]);
        let long = tlv(TAG_OCTET_STRING, &[b'x'; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(read_tlv(&long).unwrap().1.len(), 300);
    }

    #[test]
    fn a_response_yields_the_system_group() {
        let reply = scalance_reply(0x0123_4567);
        assert_eq!(frame(&reply, VERSION_2C, 0x0123_4567), Frame::Complete(reply.len()));
        let (m, _) = parse_message(&reply).unwrap();
        check_reply(&m, VERSION_2C, 0x0123_4567).unwrap();
        let id = identity(&Answers::of(&m));
        assert_eq!((id.protocol, id.ics), ("snmp", false));
        assert_eq!(
            serde_json::Value::Object(id.fields),
            json!({
                "community_public": true,
                "snmp_version": "v2c",
                "sys_descr": SCALANCE,
                "sys_object_id": "1.3.6.1.4.1.4196.1.1.5.2.22",
                "sys_name": "sw-line3"
            })
        );
    }

    #[test]
    fn exceptions_are_absent_and_errors_still_prove_snmp() {
        let reply = response(
            0x0100_0001,
            b"public",
            0,
            [tlv(NO_SUCH_OBJECT, &[]), tlv(END_OF_MIB_VIEW, &[]), tlv(NO_SUCH_INSTANCE, &[])],
        );
        let (m, _) = parse_message(&reply).unwrap();
        assert_eq!(
            serde_json::Value::Object(identity(&Answers::of(&m)).fields),
            json!({ "community_public": true, "snmp_version": "v2c" })
        );

        let reply = response(0x0100_0001, b"public", 5, [tlv(TAG_NULL, &[]), tlv(TAG_NULL, &[]), tlv(TAG_NULL, &[])]);
        assert_eq!(frame(&reply, VERSION_2C, 0x0100_0001), Frame::Complete(reply.len()));
        let (m, _) = parse_message(&reply).unwrap();
        let fields = serde_json::Value::Object(identity(&Answers::of(&m)).fields);
        assert_eq!(
            fields,
            json!({ "community_public": true, "snmp_version": "v2c", "error_status": 5, "error_index": 0 })
        );
    }

    #[test]
    fn foreign_echoed_and_mismatched_datagrams_are_refused() {
        let id = 0x0123_4567;
        // Our own request echoed back.
        assert!(matches!(frame(&get_request(VERSION_2C, id, &SYSTEM), VERSION_2C, id), Frame::Invalid(_)));
        // Another request id, another community, another version.
        assert!(matches!(frame(&scalance_reply(id as i64 + 1), VERSION_2C, id), Frame::Invalid(_)));
        let other = response(id as i64, b"private", 0, [tlv(TAG_NULL, &[]), tlv(TAG_NULL, &[]), tlv(TAG_NULL, &[])]);
        assert!(matches!(frame(&other, VERSION_2C, id), Frame::Invalid(_)));
        let mut v1 = scalance_reply(id as i64);
        v1[4] = 0x00;
        assert!(matches!(frame(&v1, VERSION_2C, id), Frame::Invalid(_)));
        for junk in
            [&b""[..], b"\x30", b"\x30\x80\x00\x00", b"\x30\x84\xff\xff\xff\xff", b"hello world", b"\x1f\x01\x00"]
        {
            assert!(matches!(frame(junk, VERSION_2C, id), Frame::Invalid(_)), "{junk:?}");
        }
        // Every truncation of a valid reply is refused without a panic.
        let reply = scalance_reply(id as i64);
        for n in 0..reply.len() {
            assert!(parse_message(&reply[..n]).is_err(), "at {n}");
        }
    }

    #[test]
    fn lying_inner_lengths_and_huge_oids_are_refused() {
        let id = 0x0123_4567;
        let mut reply = scalance_reply(id);
        // The sysDescr string claims more bytes than its varbind holds.
        let pos = reply.windows(2).position(|w| w == [0x04, SCALANCE.len() as u8]).unwrap();
        reply[pos + 1] = 0x7F;
        assert!(parse_message(&reply).is_err());
        assert!(decode_oid(&[0xFF; 20]).is_err());
        assert!(decode_oid(&[0x81; 5]).is_err());
        assert!(decode_oid(&[0x01; 200]).is_err());
        assert!(decode_integer(&[1; 9]).is_err());
    }
}
