//! MQTT 3.1.1 (and 3.1 as a fallback), id `mqtt`: IIoT plumbing, not a control protocol.
//!
//! CONNECT without credentials -> CONNACK. Return code 0 means the broker accepts anonymous clients;
//! 4 (bad user name or password) and 5 (not authorized) mean it does not. Then DISCONNECT.
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
/// Largest CONNACK remaining length we frame; a 3.1.1 CONNACK has exactly 2.
const MAX_CONNACK_REMAINING: usize = 16;

pub use super::ParseError;

/// The protocol revision a CONNECT announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    V311,
    /// MQTT 3.1: protocol name "MQIsdp", level 3.
    V31,
}

impl Level {
    pub fn number(self) -> u8 {
        match self {
            Level::V311 => 4,
            Level::V31 => 3,
        }
    }
    fn name(self) -> &'static [u8] {
        match self {
            Level::V311 => b"MQTT",
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

/// CONNECT: protocol name and level, clean session, keep-alive, client id; no will, no credentials.
pub fn connect(client_id: &str, level: Level) -> Vec<u8> {
    let mut rest = Vec::with_capacity(16 + client_id.len());
    put_utf8(&mut rest, level.name());
    rest.push(level.number());
    rest.push(CLEAN_SESSION);
    rest.extend_from_slice(&KEEP_ALIVE_S.to_be_bytes());
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connack {
    pub session_present: bool,
    pub return_code: u8,
}

impl Connack {
    /// Whether the broker let an anonymous client in: known only for codes 0, 4 and 5.
    pub fn anonymous(&self) -> Option<bool> {
        match self.return_code {
            0 => Some(true),
            4 | 5 => Some(false),
            _ => None,
        }
    }
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
            Ok(Connack { session_present, return_code: *code })
        }
        [0x10, ..] => bad("the reply is our own CONNECT echoed"),
        [0x20, ..] => bad("CONNACK remaining length is not 2"),
        _ => bad("not a CONNACK"),
    }
}

pub const PROBE: Probe = Probe::service(PROTOCOL, |session| Box::pin(run(session))).tcp(&[1883]).tls(&[8883]);

/// One CONNECT/CONNACK exchange on the session's current connection.
async fn attempt(session: &mut Session<'_>, id: &str, level: Level) -> Result<Connack, ProbeError> {
    let reply = session.conn().exchange(&connect(id, level), frame).await?;
    let connack = parse_connack(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.0))?;
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
    // A refusing broker closes the connection, so each retry uses a fresh one; at most one retry.
    let retry = match connack.return_code {
        // Unacceptable protocol version: an old broker that speaks only 3.1.
        1 => Some((Level::V31, client_id(suffix, false))),
        // Identifier rejected: a broker that allows only [0-9a-zA-Z] in client ids.
        2 => Some((Level::V311, client_id(suffix, true))),
        _ => None,
    };
    if let Some((retry_level, retry_id)) = retry {
        if session.reconnect().await.is_ok() {
            if let Ok(second) = attempt(session, &retry_id, retry_level).await {
                connack = second;
                level = retry_level;
            }
        }
    }
    let mut identity = Identity::new(PROTOCOL, false);
    identity.field("return_code", connack.return_code);
    if let Some(anonymous) = connack.anonymous() {
        identity.field("anonymous", anonymous);
    }
    identity.field("session_present", connack.session_present);
    identity.field("protocol_level", level.number());
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
            Connack { session_present: false, return_code: 0 }
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
