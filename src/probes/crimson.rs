//! Red Lion Crimson v3 (789/tcp): the configuration protocol of Red Lion HMIs (G3, Graphite, Data
//! Station Plus, FlexEdge).
//!
//! Facts (`cr3-fingerprint.nse` and the Crimson v3 Wireshark dissector of internetofallthethings, whose
//! fingerprints Shodan adopted; Praetorian's crimsonv3 plugin sends the same frames):
//! - A frame is a 2-byte big-endian length counting the bytes after it, a 2-byte register number,
//!   a 2-byte type, then data.
//! - The identity reads are `00 04 01 2B 1B 00` (register 0x012B: manufacturer) and
//!   `00 04 01 2A 1A 00` (register 0x012A: model). The panel answers on the same register with type
//!   `03 00` and a NUL-terminated string.
//!
//! Both requests read one identity string each; nothing is written and no download starts.

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, NetError, Session};

pub const PROTOCOL: &str = "crimson";

pub const REGISTER_MANUFACTURER: u16 = 0x012b;
pub const REGISTER_MODEL: u16 = 0x012a;
/// The type of a reply carrying a string.
const TYPE_STRING: u16 = 0x0300;
const HEADER_LEN: usize = 6;
/// Identity strings are short; a larger length claim is not this protocol.
const MAX_FRAME: usize = 1024;

fn read_request(register: u16, kind: u8) -> Vec<u8> {
    let mut r = vec![0x00, 0x04];
    r.extend_from_slice(&register.to_be_bytes());
    r.extend_from_slice(&[kind, 0x00]);
    r
}

/// Reads the manufacturer string.
pub fn manufacturer_request() -> Vec<u8> {
    read_request(REGISTER_MANUFACTURER, 0x1b)
}

/// Reads the model string.
pub fn model_request() -> Vec<u8> {
    read_request(REGISTER_MODEL, 0x1a)
}

/// One frame, delimited by its length field.
pub fn frame(buf: &[u8]) -> Frame {
    let Some(len) = buf.get(..2).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else {
        return Frame::Incomplete;
    };
    if !(4..=MAX_FRAME).contains(&len) {
        return Frame::Invalid(format!("frame length {len} out of range"));
    }
    if buf.len() >= 2 + len {
        Frame::Complete(2 + len)
    } else {
        Frame::Incomplete
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("frame of {0} bytes is truncated")]
    Truncated(usize),
    #[error("length field {field} disagrees with the {actual}-byte frame")]
    BadLength { field: usize, actual: usize },
    #[error("reply is on register {got:#06x}, not {expected:#06x}")]
    WrongRegister { expected: u16, got: u16 },
    #[error("reply type {0:#06x} carries no string")]
    NotString(u16),
    #[error("string is not printable text")]
    NotText,
    #[error("string is empty")]
    Empty,
}

/// Parses the reply to a string read of `register`: the string, trimmed.
pub fn parse_string_reply(buf: &[u8], register: u16) -> Result<String, ParseError> {
    let header = buf.get(..HEADER_LEN).ok_or(ParseError::Truncated(buf.len()))?;
    let len = u16::from_be_bytes([header[0], header[1]]) as usize;
    if len + 2 != buf.len() {
        return Err(ParseError::BadLength { field: len, actual: buf.len() });
    }
    let got = u16::from_be_bytes([header[2], header[3]]);
    if got != register {
        return Err(ParseError::WrongRegister { expected: register, got });
    }
    // Our own request echoed has type 1B00 / 1A00 and fails here.
    let kind = u16::from_be_bytes([header[4], header[5]]);
    if kind != TYPE_STRING {
        return Err(ParseError::NotString(kind));
    }
    let data = &buf[HEADER_LEN..];
    let data = data.iter().position(|&b| b == 0).map_or(data, |nul| &data[..nul]);
    if !data.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Err(ParseError::NotText);
    }
    let s = String::from_utf8_lossy(data).trim().to_string();
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(s)
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[789]);

fn not_this(e: impl ToString) -> ProbeError {
    ProbeError::not(PROTOCOL, e.to_string())
}

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let reply = session.conn().exchange(&manufacturer_request(), frame).await.map_err(|e| match e {
        NetError::Invalid(why) => not_this(why),
        e => e.into(),
    })?;
    let manufacturer = parse_string_reply(&reply, REGISTER_MANUFACTURER).map_err(not_this)?;
    let mut identity = Identity::new(PROTOCOL, true);
    identity.field("manufacturer", manufacturer);
    // The model read; a panel that hung up after the first read gets it on one fresh connection.
    let model = match session.conn().exchange(&model_request(), frame).await {
        Err(NetError::Closed(_)) => match session.reconnect().await {
            Ok(conn) => conn.exchange(&model_request(), frame).await,
            Err(e) => Err(e),
        },
        other => other,
    };
    if let Ok(Ok(model)) = model.map(|r| parse_string_reply(&r, REGISTER_MODEL)) {
        identity.field("model", model);
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string reply as the dissector lays it out.
    fn reply(register: u16, s: &str) -> Vec<u8> {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        let mut r = ((4 + data.len()) as u16).to_be_bytes().to_vec();
        r.extend_from_slice(&register.to_be_bytes());
        r.extend_from_slice(&TYPE_STRING.to_be_bytes());
        r.extend_from_slice(&data);
        r
    }

    #[test]
    fn requests_are_the_known_reads() {
        assert_eq!(manufacturer_request(), [0x00, 0x04, 0x01, 0x2b, 0x1b, 0x00]);
        assert_eq!(model_request(), [0x00, 0x04, 0x01, 0x2a, 0x1a, 0x00]);
    }

    #[test]
    fn parses_the_identity_strings() {
        let m = reply(REGISTER_MANUFACTURER, "Red Lion Controls");
        assert_eq!(frame(&m), Frame::Complete(m.len()));
        assert_eq!(parse_string_reply(&m, REGISTER_MANUFACTURER).as_deref(), Ok("Red Lion Controls"));
        let model = reply(REGISTER_MODEL, "G310C2");
        assert_eq!(parse_string_reply(&model, REGISTER_MODEL).as_deref(), Ok("G310C2"));
        // Without the NUL the string runs to the frame's end.
        let mut bare = model.clone();
        bare.pop();
        bare[1] -= 1;
        assert_eq!(parse_string_reply(&bare, REGISTER_MODEL).as_deref(), Ok("G310C2"));
    }

    #[test]
    fn framing_follows_the_length() {
        let m = reply(REGISTER_MANUFACTURER, "Red Lion Controls");
        assert_eq!(frame(&m[..1]), Frame::Incomplete);
        assert_eq!(frame(&m[..10]), Frame::Incomplete);
        let mut two = m.clone();
        two.extend_from_slice(&m);
        assert_eq!(frame(&two), Frame::Complete(m.len()));
        assert!(matches!(frame(b"HTTP/1.1 400 Bad Request"), Frame::Invalid(_)));
        assert!(matches!(frame(&[0x00, 0x01]), Frame::Invalid(_)));
        assert_eq!(frame(&[]), Frame::Incomplete);
    }

    #[test]
    fn echoes_and_malformed_replies_are_errors() {
        let echo = manufacturer_request();
        assert_eq!(frame(&echo), Frame::Complete(6));
        assert_eq!(parse_string_reply(&echo, REGISTER_MANUFACTURER), Err(ParseError::NotString(0x1b00)));
        let m = reply(REGISTER_MANUFACTURER, "Red Lion Controls");
        assert_eq!(parse_string_reply(&m[..4], REGISTER_MANUFACTURER), Err(ParseError::Truncated(4)));
        assert_eq!(
            parse_string_reply(&m[..10], REGISTER_MANUFACTURER),
            Err(ParseError::BadLength { field: 22, actual: 10 })
        );
        assert_eq!(
            parse_string_reply(&m, REGISTER_MODEL),
            Err(ParseError::WrongRegister { expected: REGISTER_MODEL, got: REGISTER_MANUFACTURER })
        );
        assert_eq!(parse_string_reply(&reply(REGISTER_MODEL, ""), REGISTER_MODEL), Err(ParseError::Empty));
        let mut binary = reply(REGISTER_MODEL, "G3");
        binary[7] = 0x05;
        assert_eq!(parse_string_reply(&binary, REGISTER_MODEL), Err(ParseError::NotText));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for len in 0..100usize {
            let mut buf: Vec<u8> = (0..len).map(|i| (i * 41 % 256) as u8).collect();
            if len >= 2 {
                buf[..2].copy_from_slice(&((len - 2) as u16).to_be_bytes());
            }
            let _ = frame(&buf);
            let _ = parse_string_reply(&buf, REGISTER_MODEL);
        }
    }
}
