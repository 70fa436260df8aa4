//! MQTT 3.1.1 (and 5.0 and 3.1 as fallbacks), id `mqtt`: IIoT plumbing, not a control protocol.
//!
//! CONNECT without credentials -> CONNACK. Return code 0 means the broker accepts anonymous clients;
//! 4 (bad user name or password) and 5 (not authorized) mean it does not. Then DISCONNECT.
//!
//! A broker that refuses level 4 as an unacceptable protocol version (return code 1, or an MQTT 5
//! CONNACK with reason code 0x84) gets a level-5 CONNECT (MQTT 5.0 §3.1), whose CONNACK carries a
//! reason code (0x00 success; 0x86 bad user name or password and 0x87 not authorized refuse an
//! anonymous client) and properties; then, if that is refused too, a 3.1 CONNECT ("MQIsdp", level 3).
//!
//! Read-only: a clean-session CONNECT keeps no state on the broker once we disconnect; we never
//! SUBSCRIBE or PUBLISH, carry no will message, and disconnect cleanly (so no will would fire anyway).

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, Session};

pub const PROTOCOL: &str = "mqtt";

/// The DISCONNECT packet: type 14, no flags, remaining length 0.
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];
const KEEP_ALIVE_S: u16 = 30;
/// Connect flags: Clean Session only (no will, no user name, no password).
const CLEAN_SESSION: u8 = 0x02;
/// Largest CONNACK remaining length we frame: a 3.1.1 CONNACK has exactly 2, an MQTT 5 one 3 and
/// its properties (a reason string, an assigned client id, limits), well under this.
const MAX_CONNACK_REMAINING: usize = 1024;

pub use super::ParseError;

/// The protocol revision a CONNECT announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    V311,
    /// MQTT 5.0: protocol name "MQTT", level 5, and a properties field.
    V5,
    /// MQTT 3.1: protocol name "MQIsdp", level 3.
    V31,
}

impl Level {
    pub fn number(self) -> u8 {
        match self {
            Level::V311 => 4,
            Level::V5 => 5,
            Level::V31 => 3,
        }
    }
    fn name(self) -> &'static [u8] {
        match self {
            Level::V311 | Level::V5 => b"MQTT",
            Level::V31 => b"MQIsdp",
        }
    }
}

/// Encodes a remaining length as MQTT's variable byte integer (at most 4 bytes).
fn put_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    for _ in 0..4 {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

fn put_utf8(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// CONNECT: protocol name and level, clean session (MQTT 5: clean start), keep-alive, no properties
/// (MQTT 5), client id; no will, no credentials.
pub fn connect(client_id: &str, level: Level) -> Vec<u8> {
    let mut rest = Vec::with_capacity(16 + client_id.len());
    put_utf8(&mut rest, level.name());
    rest.push(level.number());
    rest.push(CLEAN_SESSION);
    rest.extend_from_slice(&KEEP_ALIVE_S.to_be_bytes());
    if level == Level::V5 {
        put_remaining_length(&mut rest, 0); // property length
    }
    put_utf8(&mut rest, client_id.as_bytes());
    let mut out = vec![0x10];
    put_remaining_length(&mut out, rest.len());
    out.extend_from_slice(&rest);
    out
}

/// A client id of at most 23 characters: `otscope-` and 8 hex digits, or without the dash for
/// brokers that allow only the 3.1.1 baseline alphabet [0-9a-zA-Z].
pub fn client_id(suffix: u32, alphanumeric: bool) -> String {
    if alphanumeric {
        format!("otscope{suffix:08x}")
    } else {
        format!("otscope-{suffix:08x}")
    }
}

fn random_suffix() -> u32 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    if ring::rand::SystemRandom::new().fill(&mut b).is_ok() {
        return u32::from_be_bytes(b);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.subsec_nanos() ^ std::process::id().rotate_left(16)
}

/// Decodes a variable byte integer: (value, bytes used), `Ok(None)` when more bytes are needed.
/// Refuses a fifth byte and non-minimal encodings (a trailing zero continuation).
fn remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, ParseError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else { return Ok(None) };
        value |= ((b & 0x7F) as usize) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(ParseError::new("non-minimal remaining length encoding"));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    Err(ParseError::new("remaining length longer than 4 bytes"))
}

/// Frames one CONNACK: the first byte must be 0x20 (type 2, reserved flags 0).
pub fn frame(buf: &[u8]) -> Frame {
    match buf.first() {
        None => return Frame::Incomplete,
        Some(0x20) => {}
        Some(b) => return Frame::Invalid(format!("first byte {b:#04x} is not a CONNACK")),
    }
    match remaining_length(&buf[1..]) {
        Err(e) => Frame::Invalid(e.0),
        Ok(None) => Frame::Incomplete,
        Ok(Some((len, _))) if len > MAX_CONNACK_REMAINING => {
            Frame::Invalid(format!("remaining length {len} is too long for a CONNACK"))
        }
        Ok(Some((len, n))) if buf.len() >= 1 + n + len => Frame::Complete(1 + n + len),
        Ok(Some(_)) => Frame::Incomplete,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connack {
    pub session_present: bool,
    /// The 3.1.1 / 3.1 return code (0-5), or the MQTT 5 reason code.
    pub return_code: u8,
    /// An MQTT 5 CONNACK (reason code and properties), not a 3.1.1 one.
    pub v5: bool,
    /// MQTT 5: the broker's Reason String property, when it sent one.
    pub reason_string: Option<String>,
}

impl Connack {
    /// Whether the broker let an anonymous client in: known only for 3.1.1 codes 0, 4 and 5 and
    /// MQTT 5 reason codes 0x00, 0x86 and 0x87.
    pub fn anonymous(&self) -> Option<bool> {
        match (self.v5, self.return_code) {
            (_, 0) => Some(true),
            (false, 4 | 5) | (true, 0x86 | 0x87) => Some(false),
            _ => None,
        }
    }

    /// Whether the broker refused the CONNECT's protocol level.
    pub fn unacceptable_version(&self) -> bool {
        matches!((self.v5, self.return_code), (false, 1) | (true, 0x84))
    }
}

/// The reason codes an MQTT 5 CONNACK may carry (MQTT 5.0 §3.2.2.2).
const V5_CONNACK_REASONS: [u8; 22] = [
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B,
    0x9C, 0x9D, 0x9F,
];

/// The properties an MQTT 5 CONNACK may carry, by identifier, and how their values are encoded.
#[derive(Clone, Copy)]
enum PropertyType {
    Byte,
    TwoBytes,
    FourBytes,
    Utf8,
    Utf8Pair,
    Binary,
}

fn connack_property(id: u8) -> Option<PropertyType> {
    use PropertyType::*;
    Some(match id {
        0x24 | 0x25 | 0x28 | 0x29 | 0x2A => Byte,
        0x13 | 0x21 | 0x22 => TwoBytes,
        0x11 | 0x27 => FourBytes,
        0x12 | 0x15 | 0x1A | 0x1C | 0x1F => Utf8,
        0x26 => Utf8Pair,
        0x16 => Binary,
        _ => return None,
    })
}

/// Reads the properties of an MQTT 5 CONNACK, every one checked; returns its Reason String.
fn parse_properties(mut props: &[u8]) -> Result<Option<String>, ParseError> {
    let mut reason = None;
    let take = |props: &mut &[u8], n: usize| -> Result<Vec<u8>, ParseError> {
        let value = props.get(..n).ok_or_else(|| ParseError::new("truncated property"))?.to_vec();
        *props = &props[n..];
        Ok(value)
    };
    let prefixed = |props: &mut &[u8]| -> Result<Vec<u8>, ParseError> {
        let len = take(props, 2)?;
        take(props, u16::from_be_bytes([len[0], len[1]]) as usize)
    };
    while let Some((&id, rest)) = props.split_first() {
        props = rest;
        let kind =
            connack_property(id).ok_or_else(|| ParseError::new(format!("property {id:#04x} is not a CONNACK's")))?;
        match kind {
            PropertyType::Byte => drop(take(&mut props, 1)?),
            PropertyType::TwoBytes => drop(take(&mut props, 2)?),
            PropertyType::FourBytes => drop(take(&mut props, 4)?),
            PropertyType::Binary => drop(prefixed(&mut props)?),
            PropertyType::Utf8Pair => {
                for _ in 0..2 {
                    String::from_utf8(prefixed(&mut props)?).map_err(|_| ParseError::new("property is not UTF-8"))?;
                }
            }
            PropertyType::Utf8 => {
                let text =
                    String::from_utf8(prefixed(&mut props)?).map_err(|_| ParseError::new("property is not UTF-8"))?;
                if id == 0x1F {
                    reason = Some(text);
                }
            }
        }
    }
    Ok(reason)
}

/// An MQTT 5 CONNACK: `20 <remaining> <flags> <reason code> <property length> <properties>`.
pub fn parse_connack_v5(reply: &[u8]) -> Result<Connack, ParseError> {
    let bad = |why: &str| Err(ParseError::new(why));
    match reply.first() {
        Some(0x20) => {}
        Some(0x10) => return bad("the reply is our own CONNECT echoed"),
        _ => return bad("not a CONNACK"),
    }
    let (len, n) = remaining_length(&reply[1..])?.ok_or_else(|| ParseError::new("truncated remaining length"))?;
    let body = &reply[1 + n..];
    if body.len() != len {
        return bad("CONNACK length does not match its remaining length");
    }
    let [flags, code, props @ ..] = body else { return bad("an MQTT 5 CONNACK has at least 3 bytes") };
    if flags & 0xFE != 0 {
        return bad("reserved CONNACK flag bits are set");
    }
    if !V5_CONNACK_REASONS.contains(code) {
        return Err(ParseError::new(format!("reason code {code:#04x} is not a CONNACK's")));
    }
    let session_present = flags & 0x01 != 0;
    if session_present && *code != 0 {
        return bad("session present with a refused connection");
    }
    let (props_len, m) = remaining_length(props)?.ok_or_else(|| ParseError::new("truncated property length"))?;
    if props.len() != m + props_len {
        return bad("property length does not match the CONNACK");
    }
    let reason_string = parse_properties(&props[m..])?;
    Ok(Connack { session_present, return_code: *code, v5: true, reason_string })
}

/// A 3.1.1 / 3.1 CONNACK: `20 02 <flags> <code>`, flags bits 7-1 reserved (0), code 0-5. A broker
/// must not report a present session to a clean-session client (MQTT-3.2.2-1), nor with a refusal.
pub fn parse_connack(reply: &[u8]) -> Result<Connack, ParseError> {
    let bad = |why: &str| Err(ParseError::new(why));
    match reply {
        [0x20, 0x02, flags, code] => {
            if flags & 0xFE != 0 {
                return bad("reserved CONNACK flag bits are set");
            }
            if *code > 5 {
                return Err(ParseError::new(format!("return code {code} is not defined")));
            }
            let session_present = flags & 0x01 != 0;
            if session_present && *code != 0 {
                return bad("session present with a refused connection");
            }
            Ok(Connack { session_present, return_code: *code, v5: false, reason_string: None })
        }
        [0x10, ..] => bad("the reply is our own CONNECT echoed"),
        [0x20, ..] => bad("CONNACK remaining length is not 2"),
        _ => bad("not a CONNACK"),
    }
}

pub const PROBE: Probe = Probe::service(PROTOCOL, |session| Box::pin(run(session))).tcp(&[1883]).tls(&[8883]);

/// One CONNECT/CONNACK exchange on the session's current connection. A level-5 CONNECT expects an
/// MQTT 5 CONNACK; a 3.x one accepts either (a 5-only broker may answer in its own format).
async fn attempt(session: &mut Session<'_>, id: &str, level: Level) -> Result<Connack, ProbeError> {
    let reply = session.conn().exchange(&connect(id, level), frame).await?;
    let parsed = match level {
        Level::V5 => parse_connack_v5(&reply),
        Level::V311 | Level::V31 => parse_connack(&reply).or_else(|e| parse_connack_v5(&reply).map_err(|_| e)),
    };
    let connack = parsed.map_err(|e| ProbeError::not(PROTOCOL, e.0))?;
    if connack.return_code == 0 {
        // Accepted: leave at once, cleanly.
        let _ = session.conn().send(&DISCONNECT).await;
    }
    Ok(connack)
}

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let suffix = random_suffix();
    let mut level = Level::V311;
    let mut connack = attempt(session, &client_id(suffix, false), level).await?;
    // A refusing broker closes the connection, so each retry uses a fresh one: at most two, for an
    // unacceptable protocol version (MQTT 5, then 3.1), one for a rejected client id.
    let retries: &[(Level, bool)] = if connack.unacceptable_version() {
        &[(Level::V5, false), (Level::V31, false)]
    } else if (connack.v5, connack.return_code) == (false, 2) {
        // Identifier rejected: a broker that allows only [0-9a-zA-Z] in client ids.
        &[(Level::V311, true)]
    } else {
        &[]
    };
    for &(retry_level, alphanumeric) in retries {
        if session.reconnect().await.is_err() {
            break;
        }
        let Ok(answer) = attempt(session, &client_id(suffix, alphanumeric), retry_level).await else { continue };
        let refused_version = answer.unacceptable_version();
        connack = answer;
        level = retry_level;
        if !refused_version {
            break;
        }
    }
    let mut identity = Identity::new(PROTOCOL, false);
    if connack.v5 {
        identity.field("reason_code", connack.return_code);
    } else {
        identity.field("return_code", connack.return_code);
    }
    if let Some(anonymous) = connack.anonymous() {
        identity.field("anonymous", anonymous);
    }
    identity.field("session_present", connack.session_present);
    identity.field("protocol_level", level.number());
    if let Some(reason) = &connack.reason_string {
        identity.field("reason_string", reason.chars().take(256).collect::<String>());
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_bytes_are_exact() {
        let c = connect("otscope-0a1b2c3d", Level::V311);
        let mut want = vec![0x10, 28, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x1E, 0x00, 16];
        want.extend_from_slice(b"otscope-0a1b2c3d");
        assert_eq!(c, want);

        let c = connect("otscope-0a1b2c3d", Level::V31);
        let mut want = vec![0x10, 30, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x1E, 0x00, 16];
        want.extend_from_slice(b"otscope-0a1b2c3d");
        assert_eq!(c, want);
    }

    #[test]
    fn a_level_5_connect_carries_an_empty_property_list() {
        let c = connect("otscope-0a1b2c3d", Level::V5);
        let mut want = vec![0x10, 29, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x1E, 0x00, 0x00, 16];
        want.extend_from_slice(b"otscope-0a1b2c3d");
        assert_eq!(c, want);
    }

    #[test]
    fn an_mqtt_5_connack_parses_per_spec() {
        // Success without properties.
        let ok = parse_connack_v5(&[0x20, 0x03, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!((ok.v5, ok.return_code, ok.anonymous(), ok.session_present), (true, 0, Some(true), false));
        // Not authorized, with a Reason String, Receive Maximum and a User Property.
        let mut p = vec![0x1F, 0x00, 0x0A];
        p.extend_from_slice(b"anonymous?");
        p.extend_from_slice(&[0x21, 0x00, 0x0A, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v']);
        let mut reply = vec![0x20, (3 + p.len()) as u8, 0x00, 0x87, p.len() as u8];
        reply.extend_from_slice(&p);
        assert_eq!(frame(&reply), Frame::Complete(reply.len()));
        let refused = parse_connack_v5(&reply).unwrap();
        assert_eq!((refused.return_code, refused.anonymous()), (0x87, Some(false)));
        assert_eq!(refused.reason_string.as_deref(), Some("anonymous?"));
        // Unsupported protocol version.
        assert!(parse_connack_v5(&[0x20, 0x03, 0x00, 0x84, 0x00]).unwrap().unacceptable_version());
        assert!(parse_connack(&[0x20, 0x02, 0x00, 0x01]).unwrap().unacceptable_version());
        assert!(!parse_connack(&[0x20, 0x02, 0x00, 0x05]).unwrap().unacceptable_version());
    }

    #[test]
    fn a_malformed_mqtt_5_connack_is_refused() {
        for bad in [
            &[0x20, 0x02, 0x00, 0x00][..],                     // a 3.1.1 CONNACK: no property length
            &[0x20, 0x03, 0x00, 0x01, 0x00],                   // 0x01 is no CONNACK reason code
            &[0x20, 0x03, 0x02, 0x00, 0x00],                   // reserved flag
            &[0x20, 0x03, 0x01, 0x87, 0x00],                   // session present with a refusal
            &[0x20, 0x04, 0x00, 0x00, 0x05, 0x24],             // properties longer than the packet
            &[0x20, 0x05, 0x00, 0x00, 0x02, 0x01, 0x00],       // property 0x01 belongs to PUBLISH
            &[0x20, 0x06, 0x00, 0x00, 0x03, 0x1F, 0x00, 0x05], // Reason String cut short
            &[0x20, 0x07, 0x00, 0x00, 0x04, 0x1F, 0x00, 0x01, 0xFF], // not UTF-8
            &[0x10, 0x03, 0x00, 0x00, 0x00],                   // our own CONNECT's type
        ] {
            assert!(parse_connack_v5(bad).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn client_ids_fit_the_baseline_length() {
        assert_eq!(client_id(0x0a1b2c3d, false), "otscope-0a1b2c3d");
        assert_eq!(client_id(0xffffffff, true), "otscopeffffffff");
        assert!(client_id(u32::MAX, false).len() <= 23);
    }

    #[test]
    fn remaining_length_encoding_round_trips_and_rejects_malformed() {
        for len in [0usize, 2, 127, 128, 16_383, 16_384, 2_097_151, 268_435_455] {
            let mut out = Vec::new();
            put_remaining_length(&mut out, len);
            assert_eq!(remaining_length(&out).unwrap(), Some((len, out.len())), "{len}");
        }
        assert_eq!(remaining_length(&[0x80]).unwrap(), None);
        assert!(remaining_length(&[0x82, 0x00]).is_err(), "non-minimal");
        assert!(remaining_length(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err(), "five bytes");
    }

    #[test]
    fn framing() {
        assert_eq!(frame(&[]), Frame::Incomplete);
        assert_eq!(frame(&[0x20]), Frame::Incomplete);
        assert_eq!(frame(&[0x20, 0x02, 0x00]), Frame::Incomplete);
        assert_eq!(frame(&[0x20, 0x02, 0x00, 0x00, 0xFF]), Frame::Complete(4));
        assert!(matches!(frame(b"HTTP/1.1 400"), Frame::Invalid(_)));
        assert!(matches!(frame(&connect("x", Level::V311)), Frame::Invalid(_)), "echo");
        assert!(matches!(frame(&[0x20, 0xFF, 0xFF, 0x7F]), Frame::Invalid(_)), "huge");
        assert!(matches!(frame(&[0x20, 0x82, 0x00]), Frame::Invalid(_)), "non-minimal");
        assert!(matches!(frame(&[0x21, 0x02, 0x00, 0x00]), Frame::Invalid(_)), "reserved flags");
    }

    #[test]
    fn connack_parses_per_spec() {
        assert_eq!(
            parse_connack(&[0x20, 0x02, 0x00, 0x00]).unwrap(),
            Connack { session_present: false, return_code: 0, v5: false, reason_string: None }
        );
        assert!(parse_connack(&[0x20, 0x02, 0x01, 0x00]).unwrap().session_present);
        let refused = parse_connack(&[0x20, 0x02, 0x00, 0x05]).unwrap();
        assert_eq!((refused.return_code, refused.anonymous()), (5, Some(false)));
        assert_eq!(parse_connack(&[0x20, 0x02, 0x00, 0x04]).unwrap().anonymous(), Some(false));
        assert_eq!(parse_connack(&[0x20, 0x02, 0x00, 0x00]).unwrap().anonymous(), Some(true));
        assert_eq!(parse_connack(&[0x20, 0x02, 0x00, 0x03]).unwrap().anonymous(), None);
    }

    #[test]
    fn connack_rejects_malformed() {
        for bad in [
            &[][..],
            &[0x20],
            &[0x20, 0x02, 0x00],
            &[0x20, 0x02, 0x02, 0x00],       // reserved flag
            &[0x20, 0x02, 0x00, 0x06],       // undefined code
            &[0x20, 0x02, 0x01, 0x05],       // session present with a refusal
            &[0x20, 0x03, 0x00, 0x00, 0x00], // 3 bytes of variable header
            &[0x10, 0x02, 0x00, 0x00],       // a CONNECT
            &[0x90, 0x03, 0x00, 0x01, 0x00], // a SUBACK
        ] {
            assert!(parse_connack(bad).is_err(), "{bad:02x?}");
        }
        assert!(parse_connack(&connect("otscope-1", Level::V311)).is_err());
    }
}
