//! Siemens S7comm-plus (protocol id `0x72`) over ISO-on-TCP, port 102: the S7-1200 / S7-1500
//! family, which accepts COTP but may refuse classic S7 (the `s7comm` probe runs first on the
//! port; this one runs when it found nothing).
//!
//! Conversation:
//! 1. COTP Connection Request with calling TSAP `0x0600` and the string TSAP `SIMATIC-ROOT-HMI`
//!    (what HMI drivers use); when refused, once more with the numeric pair `0x0600`/`0x0600`.
//! 2. One S7comm-plus V1 **CreateObject** request for a server session, unencrypted: the first
//!    message every client (TIA Portal, HMIs, public S7comm-plus scanners) sends. Its answer
//!    describes the server session, including the `ServerSessionVersion` struct whose element 319
//!    (`LID_SessionVersionSystemPAOMString`) reads e.g. `1;6ES7 214-1AG40-0XB0 ;V4.5`: the order
//!    number and firmware of the CPU.
//! 3. When the CreateObject gets no 0x72 answer (firmware that insists on TLS may hang up), a fresh
//!    connection sends the V1 **InitSsl** request instead: its 0x72 answer proves the protocol,
//!    with no identity. The TLS handshake it would announce is never started.
//!
//! Why CreateObject is read-only: it asks the CPU's communication layer for a new *session
//! object* (the S7comm-plus equivalent of a connection); it reads, writes and starts nothing in the
//! program, the process image or the operating state. The session is left unconfirmed (no
//! SetMultiVariables echo of the session version, no legitimation) and the CPU discards it when the
//! TCP connection closes, as it does for every HMI that disconnects.
//!
//! Frame: `72 <version> <data length: u16> <data> [72 <version> 00 00]` (the trailer closes the last
//! fragment). Request data: opcode `31`, reserved (2), function (2), reserved (2), sequence number
//! (2), session id (4), transport flags (1), payload. Response data: opcode `32`, reserved (2),
//! function (2), reserved (2), sequence number (2), transport flags (1), return value (VLQ), ...
//! Numbers marked VLQ are 7 bits a byte, most significant first, high bit = more follows.

use super::iso_transport::{self, IsoError};
use super::{Identity, Probe, ProbeError};
use crate::net::Session;

pub const PROTOCOL: &str = "s7commplus";
pub const PROTOCOL_ID: u8 = 0x72;
pub const VERSION_1: u8 = 0x01;
/// Protocol "version" of system event frames (no opcode, a short status).
pub const VERSION_SYSTEM_EVENT: u8 = 0xFE;

pub const OPCODE_REQUEST: u8 = 0x31;
pub const OPCODE_RESPONSE: u8 = 0x32;

pub const FUNCTION_ERROR: u16 = 0x04B1;
pub const FUNCTION_CREATE_OBJECT: u16 = 0x04CA;
pub const FUNCTION_ERROR2: u16 = 0x05A9;
pub const FUNCTION_INIT_SSL: u16 = 0x05B3;

// Object model ids and element markers.
const OBJECT_SERVER_SESSION_CONTAINER: u32 = 285;
const OBJECT_NULL_SERVER_SESSION: u32 = 288;
const GET_NEW_RID_ON_SERVER: u32 = 211;
const CLASS_SERVER_SESSION: u32 = 287;
const CLASS_SUBSCRIPTIONS: u32 = 255;
const SERVER_SESSION_CLIENT_RID: u32 = 300;
/// Element 319 of the ServerSessionVersion struct: the "PAOM" description string.
const SESSION_VERSION_SYSTEM_PAOM_STRING: u32 = 319;
const START_OF_OBJECT: u8 = 0xA1;
const TERMINATING_OBJECT: u8 = 0xA2;
const ATTRIBUTE: u8 = 0xA3;
const DATATYPE_UDINT: u8 = 0x04;
const DATATYPE_RID: u8 = 0x12;
const DATATYPE_WSTRING: u8 = 0x15;
/// The client relation id public clients send with the session request.
const CLIENT_RID: u32 = 0x80C3_C901;

/// The (calling, called) TSAPs tried, one connection each.
pub const TSAPS: [(&[u8], &[u8]); 2] = [(&[0x06, 0x00], b"SIMATIC-ROOT-HMI"), (&[0x06, 0x00], &[0x06, 0x00])];
const SRC_REF: u16 = 0x0002;

/// The COTP Connection Request for a TSAP pair.
fn connect_request(calling: &[u8], called: &[u8]) -> Vec<u8> {
    iso_transport::connect_request(SRC_REF, calling, called, iso_transport::TPDU_SIZE_1024)
}

/// Encodes an unsigned VLQ.
pub fn vlq(value: u32) -> Vec<u8> {
    let mut groups = vec![(value & 0x7F) as u8];
    let mut v = value >> 7;
    while v > 0 {
        groups.push(0x80 | (v & 0x7F) as u8);
        v >>= 7;
    }
    groups.reverse();
    groups
}

/// Decodes an unsigned 64-bit VLQ at the start of `b`: (value, bytes used). Eight 7-bit groups
/// at most, then one full 8-bit byte when the eighth still says "more".
pub fn decode_vlq(b: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &octet) in b.iter().enumerate().take(8) {
        value = (value << 7) | u64::from(octet & 0x7F);
        if octet & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    let last = *b.get(8)?;
    Some(((value << 8) | u64::from(last), 9))
}

fn frame(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    let mut pdu = vec![PROTOCOL_ID, VERSION_1];
    pdu.extend_from_slice(&len.to_be_bytes());
    pdu.extend_from_slice(data);
    pdu.extend_from_slice(&[PROTOCOL_ID, VERSION_1, 0x00, 0x00]);
    pdu
}

fn request_header(function: u16, seq: u16, session: u32, transport_flags: u8) -> Vec<u8> {
    let mut data = vec![OPCODE_REQUEST, 0x00, 0x00];
    data.extend_from_slice(&function.to_be_bytes());
    data.extend_from_slice(&[0x00, 0x00]);
    data.extend_from_slice(&seq.to_be_bytes());
    data.extend_from_slice(&session.to_be_bytes());
    data.push(transport_flags);
    data
}

fn object_start(data: &mut Vec<u8>, class: u32) {
    data.push(START_OF_OBJECT);
    data.extend_from_slice(&GET_NEW_RID_ON_SERVER.to_be_bytes());
    data.extend_from_slice(&vlq(class));
    data.extend_from_slice(&[0x00, 0x00]); // class flags, attribute id (VLQ 0 each)
}

/// The V1 CreateObject request for a server session (whole 0x72 PDU, header and trailer):
/// request id ObjectServerSessionContainer, value UDInt 0, then a ServerSession object (relation
/// "new RID on server") with its ServerSessionClientRID attribute and an empty Subscriptions
/// child object.
pub fn create_object_request(seq: u16) -> Vec<u8> {
    let mut data = request_header(FUNCTION_CREATE_OBJECT, seq, OBJECT_NULL_SERVER_SESSION, 0x36);
    data.extend_from_slice(&OBJECT_SERVER_SESSION_CONTAINER.to_be_bytes());
    data.extend_from_slice(&[0x00, DATATYPE_UDINT, 0x00]); // flags, UDInt, VLQ 0
    data.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]);
    object_start(&mut data, CLASS_SERVER_SESSION);
    data.push(ATTRIBUTE);
    data.extend_from_slice(&vlq(SERVER_SESSION_CLIENT_RID));
    data.extend_from_slice(&[0x00, DATATYPE_RID]);
    data.extend_from_slice(&CLIENT_RID.to_be_bytes());
    object_start(&mut data, CLASS_SUBSCRIPTIONS);
    data.push(TERMINATING_OBJECT);
    data.push(TERMINATING_OBJECT);
    data.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]);
    frame(&data)
}

/// The V1 InitSsl request (whole 0x72 PDU): session 0, transport flags 0x30, four fill bytes.
pub fn init_ssl_request(seq: u16) -> Vec<u8> {
    let mut data = request_header(FUNCTION_INIT_SSL, seq, 0, 0x30);
    data.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]);
    frame(&data)
}

pub use super::ParseError;

/// What a 0x72 reply shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlusReply {
    pub protocol_version: u8,
    /// The function answered (CreateObject, InitSsl, or an error function); `None` for a system event.
    pub function: Option<u16>,
    pub return_value: Option<u64>,
    /// The session version ("PAOM") string, e.g. `1;6ES7 214-1AG40-0XB0 ;V4.5`.
    pub version_string: Option<String>,
}

impl PlusReply {
    fn part(&self, n: usize) -> Option<String> {
        let s = self.version_string.as_deref()?;
        let part = s.split(';').nth(n)?.trim();
        (!part.is_empty() && s.split(';').count() >= 3).then(|| part.to_string())
    }

    pub fn order_number(&self) -> Option<String> {
        self.part(1)
    }

    pub fn firmware_version(&self) -> Option<String> {
        self.part(2)
    }
}

fn printable(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|c| (0x20..=0x7E).contains(c))
}

fn looks_like_paom(s: &str) -> bool {
    let parts: Vec<&str> = s.split(';').collect();
    parts.len() >= 3 && parts.len() <= 6 && parts[1].trim().len() >= 4
}

/// Finds the PAOM string: struct element 319 (`82 3F`), flags, WString (`15`), VLQ length, text;
/// failing that, the first printable run of the form `<id>;<order number>;<firmware>`.
fn find_version_string(body: &[u8]) -> Option<String> {
    let marker = vlq(SESSION_VERSION_SYSTEM_PAOM_STRING);
    let structured = body.windows(marker.len() + 2).enumerate().find_map(|(at, w)| {
        if w[..marker.len()] != marker[..] || w[marker.len() + 1] != DATATYPE_WSTRING {
            return None;
        }
        let rest = body.get(at + w.len()..)?;
        let (len, used) = decode_vlq(rest)?;
        let text = rest.get(used..used + usize::try_from(len).ok().filter(|&l| l <= 256)?)?;
        printable(text).then(|| String::from_utf8_lossy(text).into_owned())
    });
    structured.filter(|s| looks_like_paom(s)).or_else(|| {
        body.split(|c| !(0x20..=0x7E).contains(c))
            .filter(|run| run.len() >= 8 && run.len() <= 256)
            .map(|run| String::from_utf8_lossy(run).into_owned())
            .find(|s| looks_like_paom(s))
    })
}

/// Validates a 0x72 reply to a request with function `function` and sequence number `seq`.
pub fn parse_reply(pdu: &[u8], function: u16, seq: u16) -> Result<PlusReply, ParseError> {
    if pdu.first() != Some(&PROTOCOL_ID) {
        return Err(ParseError::new("no S7comm-plus protocol id 0x72"));
    }
    let Some(&version) = pdu.get(1) else { return Err(ParseError::new("truncated header")) };
    let Some(len) = pdu.get(2..4).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) else {
        return Err(ParseError::new("truncated header"));
    };
    let Some(body) = pdu.get(4..4 + len).filter(|b| !b.is_empty()) else {
        return Err(ParseError::new(format!("data length {len} does not fit the {}-byte frame", pdu.len())));
    };
    match version {
        VERSION_SYSTEM_EVENT => {
            if len > 64 {
                return Err(ParseError::new("oversized system event"));
            }
            return Ok(PlusReply { protocol_version: version, ..Default::default() });
        }
        0x01..=0x03 => {}
        other => return Err(ParseError::new(format!("unknown protocol version {other:#04x}"))),
    }
    match body[0] {
        OPCODE_RESPONSE => {}
        OPCODE_REQUEST => return Err(ParseError::new("a request, not a response (an echo?)")),
        other => return Err(ParseError::new(format!("opcode {other:#04x} where a response was expected"))),
    }
    let (Some(answered), Some(reply_seq)) = (
        body.get(3..5).map(|b| u16::from_be_bytes([b[0], b[1]])),
        body.get(7..9).map(|b| u16::from_be_bytes([b[0], b[1]])),
    ) else {
        return Err(ParseError::new("truncated response header"));
    };
    if answered != function && answered != FUNCTION_ERROR && answered != FUNCTION_ERROR2 {
        return Err(ParseError::new(format!("function {answered:#06x} in the answer to {function:#06x}")));
    }
    if reply_seq != seq {
        return Err(ParseError::new(format!("sequence number {reply_seq} in the answer to {seq}")));
    }
    Ok(PlusReply {
        protocol_version: version,
        function: Some(answered),
        return_value: body.get(10..).and_then(decode_vlq).map(|(v, _)| v),
        version_string: find_version_string(body),
    })
}

fn tsap_value(tsap: &[u8]) -> serde_json::Value {
    match tsap {
        [a, b] => u16::from_be_bytes([*a, *b]).into(),
        text if printable(text) => String::from_utf8_lossy(text).into_owned().into(),
        other => other.iter().map(|b| format!("{b:02x}")).collect::<String>().into(),
    }
}

/// The finding: protocol version, the TSAPs that worked, and the CPU's self-description.
pub fn identity(reply: &PlusReply, calling: &[u8], called: &[u8]) -> Identity {
    let mut id = Identity::new(PROTOCOL, true);
    id.field("calling_tsap", tsap_value(calling));
    id.field("called_tsap", tsap_value(called));
    id.field("protocol_version", reply.protocol_version);
    if let Some(v) = reply.return_value {
        id.field("return_value", v);
    }
    if let Some(s) = &reply.version_string {
        id.field("version_string", s.as_str());
    }
    if let Some(s) = reply.order_number() {
        id.field("order_number", s);
    }
    if let Some(s) = reply.firmware_version() {
        id.field("firmware_version", s);
    }
    id
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[102]);

fn not(why: impl Into<String>) -> ProbeError {
    ProbeError::not(PROTOCOL, why)
}

/// Sends one 0x72 request on a confirmed connection and validates the answer. `Ok(None)` when the
/// peer hung up or stayed silent (worth the InitSsl fallback); `Err` for an answer that is not 0x72.
async fn ask(
    session: &mut Session<'_>,
    request: &[u8],
    function: u16,
    seq: u16,
) -> Result<Option<PlusReply>, ProbeError> {
    match iso_transport::exchange(session.conn(), request).await {
        Ok(reply) => parse_reply(&reply, function, seq).map(Some).map_err(|e| not(e.0)),
        Err(IsoError::Malformed(why)) => Err(not(why)),
        Err(e) => {
            tracing::debug!("S7comm-plus {function:#06x} got no answer: {e}");
            Ok(None)
        }
    }
}

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let (calling, called) =
        iso_transport::connect_first(session, &TSAPS, |(calling, called)| connect_request(calling, called))
            .await
            .map_err(not)?;
    // A COTP confirm alone proves nothing: only a validated 0x72 answer does.
    if let Some(reply) = ask(session, &create_object_request(1), FUNCTION_CREATE_OBJECT, 1).await? {
        return Ok(identity(&reply, calling, called));
    }
    session.reconnect().await.map_err(|e| not(format!("no answer to CreateObject; {e}")))?;
    iso_transport::connect(session.conn(), &connect_request(calling, called)).await.map_err(|e| not(e.to_string()))?;
    match ask(session, &init_ssl_request(1), FUNCTION_INIT_SSL, 1).await? {
        Some(reply) => Ok(identity(&reply, calling, called)),
        None => Err(not("no S7comm-plus answer to CreateObject nor to InitSsl after COTP CC")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CreateObject response shaped like a real CPU's: return value 0, two object ids, the
    /// ServerSession object with its ServerSessionVersion struct (314) carrying elements 315 and
    /// the PAOM strings 319 / 320, then the fill bytes.
    pub(crate) fn create_object_response(seq: u16, paom: &str) -> Vec<u8> {
        let mut d = vec![OPCODE_RESPONSE, 0x00, 0x00, 0x04, 0xCA, 0x00, 0x00];
        d.extend_from_slice(&seq.to_be_bytes());
        d.push(0x00); // transport flags
        d.push(0x00); // return value VLQ 0
        d.push(0x02); // object id count
        d.extend_from_slice(&vlq(0x3B3));
        d.extend_from_slice(&vlq(0x3B4));
        d.push(START_OF_OBJECT);
        d.extend_from_slice(&[0x00, 0x00, 0x03, 0xB3]);
        d.extend_from_slice(&vlq(CLASS_SERVER_SESSION));
        d.extend_from_slice(&[0x00, 0x00]);
        d.push(ATTRIBUTE);
        d.extend_from_slice(&vlq(306));
        d.extend_from_slice(&[0x00, 0x17]);
        d.extend_from_slice(&vlq(314));
        d.extend_from_slice(&vlq(315));
        d.extend_from_slice(&[0x00, DATATYPE_UDINT, 0x01]);
        d.extend_from_slice(&vlq(319));
        d.extend_from_slice(&[0x00, DATATYPE_WSTRING]);
        d.extend_from_slice(&vlq(paom.len() as u32));
        d.extend_from_slice(paom.as_bytes());
        d.extend_from_slice(&vlq(320));
        d.extend_from_slice(&[0x00, DATATYPE_WSTRING, 0x08]);
        d.extend_from_slice(b"2;811810");
        d.push(0x00); // struct end
        d.push(TERMINATING_OBJECT);
        d.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]);
        frame(&d)
    }

    #[test]
    fn vlq_round_trips() {
        assert_eq!(vlq(0), [0x00]);
        assert_eq!(vlq(287), [0x82, 0x1F]);
        assert_eq!(vlq(319), [0x82, 0x3F]);
        assert_eq!(vlq(255), [0x81, 0x7F]);
        for v in [0u32, 1, 127, 128, 300, 16_383, 16_384, 0x80C3_C901, u32::MAX] {
            assert_eq!(decode_vlq(&vlq(v)), Some((u64::from(v), vlq(v).len())));
        }
        assert_eq!(decode_vlq(&[0x80, 0x80]), None);
        assert_eq!(decode_vlq(&[0xFF; 9]), Some((u64::MAX, 9)));
    }

    #[test]
    fn create_object_request_bytes() {
        let expected: Vec<u8> = [
            &[0x72, 0x01, 0x00, 0x3A][..],
            &[0x31, 0x00, 0x00, 0x04, 0xCA, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x20, 0x36],
            &[0x00, 0x00, 0x01, 0x1D, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00],
            &[0xA1, 0x00, 0x00, 0x00, 0xD3, 0x82, 0x1F, 0x00, 0x00],
            &[0xA3, 0x82, 0x2C, 0x00, 0x12, 0x80, 0xC3, 0xC9, 0x01],
            &[0xA1, 0x00, 0x00, 0x00, 0xD3, 0x81, 0x7F, 0x00, 0x00, 0xA2, 0xA2],
            &[0x00, 0x00, 0x00, 0x00],
            &[0x72, 0x01, 0x00, 0x00],
        ]
        .concat();
        assert_eq!(create_object_request(1), expected);
    }

    #[test]
    fn init_ssl_request_bytes() {
        assert_eq!(
            init_ssl_request(1),
            [
                0x72, 0x01, 0x00, 0x12, 0x31, 0x00, 0x00, 0x05, 0xB3, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                0x30, 0x00, 0x00, 0x00, 0x00, 0x72, 0x01, 0x00, 0x00
            ]
        );
    }

    #[test]
    fn reads_the_session_version_of_a_s7_1200() {
        let reply = create_object_response(1, "1;6ES7 214-1AG40-0XB0 ;V4.5");
        let r = parse_reply(&reply, FUNCTION_CREATE_OBJECT, 1).unwrap();
        assert_eq!(r.protocol_version, 1);
        assert_eq!(r.function, Some(FUNCTION_CREATE_OBJECT));
        assert_eq!(r.return_value, Some(0));
        assert_eq!(r.version_string.as_deref(), Some("1;6ES7 214-1AG40-0XB0 ;V4.5"));
        assert_eq!(r.order_number().as_deref(), Some("6ES7 214-1AG40-0XB0"));
        assert_eq!(r.firmware_version().as_deref(), Some("V4.5"));
        let plcsim = create_object_response(1, "1;6ES7 SIM-01500-APLC;S4.1");
        let r = parse_reply(&plcsim, FUNCTION_CREATE_OBJECT, 1).unwrap();
        assert_eq!(
            (r.order_number().as_deref(), r.firmware_version().as_deref()),
            (Some("6ES7 SIM-01500-APLC"), Some("S4.1"))
        );
    }

    #[test]
    fn the_string_is_found_without_the_struct_marker_too() {
        let mut d = vec![OPCODE_RESPONSE, 0x00, 0x00, 0x04, 0xCA, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x05];
        d.push(0x1B);
        d.extend_from_slice(b"1;6ES7 511-1AK02-0AB0 ;V2.9");
        d.extend_from_slice(&[0xA2, 0x00, 0x00, 0x00, 0x00]);
        let r = parse_reply(&frame(&d), FUNCTION_CREATE_OBJECT, 1).unwrap();
        assert_eq!(r.order_number().as_deref(), Some("6ES7 511-1AK02-0AB0"));
    }

    #[test]
    fn init_ssl_and_error_answers_prove_the_protocol() {
        let mut d = vec![OPCODE_RESPONSE, 0x00, 0x00, 0x05, 0xB3, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
        d.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]);
        let r = parse_reply(&frame(&d), FUNCTION_INIT_SSL, 1).unwrap();
        assert_eq!((r.function, r.return_value, r.version_string), (Some(FUNCTION_INIT_SSL), Some(0), None));
        let mut e = vec![OPCODE_RESPONSE, 0x00, 0x00, 0x04, 0xB1, 0x00, 0x00, 0x00, 0x01, 0x00];
        e.extend_from_slice(&[0xC0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        let r = parse_reply(&frame(&e), FUNCTION_CREATE_OBJECT, 1).unwrap();
        assert_eq!(r.function, Some(FUNCTION_ERROR));
        assert!(r.return_value.unwrap() > 0);
        let event = [0x72, 0xFE, 0x00, 0x02, 0x00, 0x01];
        assert_eq!(parse_reply(&event, FUNCTION_CREATE_OBJECT, 1).unwrap().function, None);
    }

    #[test]
    fn echoes_classic_s7_and_garbage_are_not_s7commplus() {
        assert!(parse_reply(&create_object_request(1), FUNCTION_CREATE_OBJECT, 1).is_err(), "echo");
        assert!(parse_reply(&[0x32, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00], FUNCTION_CREATE_OBJECT, 1).is_err());
        let good = create_object_response(7, "1;6ES7 214-1AG40-0XB0 ;V4.5");
        assert!(parse_reply(&good, FUNCTION_CREATE_OBJECT, 1).is_err(), "wrong sequence number");
        assert!(parse_reply(&good, FUNCTION_INIT_SSL, 7).is_err(), "wrong function");
        for n in 0..good.len() {
            let _ = parse_reply(&good[..n], FUNCTION_CREATE_OBJECT, 7);
        }
        for n in 0..12 {
            assert!(parse_reply(&good[..n], FUNCTION_CREATE_OBJECT, 7).is_err(), "truncated at {n}");
        }
        let mut bad_version = good.clone();
        bad_version[1] = 0x09;
        assert!(parse_reply(&bad_version, FUNCTION_CREATE_OBJECT, 7).is_err());
        let mut lying = good.clone();
        lying[2..4].copy_from_slice(&0xFFFFu16.to_be_bytes());
        assert!(parse_reply(&lying, FUNCTION_CREATE_OBJECT, 7).is_err());
        for n in 0..48 {
            let junk: Vec<u8> = [0x72, 0x01].into_iter().chain((0..n).map(|i| (i * 53 + 11) as u8)).collect();
            let _ = parse_reply(&junk, FUNCTION_CREATE_OBJECT, 1);
        }
    }

    #[test]
    fn identity_fields() {
        let r =
            parse_reply(&create_object_response(1, "1;6ES7 515-2AM01-0AB0;V2.8"), FUNCTION_CREATE_OBJECT, 1).unwrap();
        let id = identity(&r, &[0x06, 0x00], b"SIMATIC-ROOT-HMI");
        assert_eq!((id.protocol, id.ics), ("s7commplus", true));
        assert_eq!(id.fields["calling_tsap"], 0x0600);
        assert_eq!(id.fields["called_tsap"], "SIMATIC-ROOT-HMI");
        assert_eq!(id.fields["protocol_version"], 1);
        assert_eq!(id.fields["order_number"], "6ES7 515-2AM01-0AB0");
        assert_eq!(id.fields["firmware_version"], "V2.8");
    }
}
