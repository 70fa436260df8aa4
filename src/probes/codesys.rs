//! CODESYS V2 runtime identification (2455/tcp; runtimes before V2.3 listen on 1200/tcp).
//!
//! Facts (Digital Bond Redpoint `codesys-v2-discover.nse`, the scanner Shodan-like services follow):
//! - The runtime's block driver frames start with the magic `BB BB`. The identification query is
//!   `BB BB 01 00 00 00 01` for little-endian runtimes and `BB BB 01 00 00 01 01` for big-endian ones;
//!   the big-endian query is sent on the same connection when the little-endian one got no answer.
//! - The reply starts with `BB`. It carries three NUL-terminated strings in 32-byte fields:
//!   OS name at offset 64, OS type at offset 96, product type at offset 128.
//!
//! The query is the runtime's identification request: it carries no login and no command, reads
//! nothing but the runtime's description, and changes no controller state.

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, NetError, Session};

pub const PROTOCOL: &str = "codesys";

/// Offsets of the reply's string fields, each 32 bytes wide.
const OS_NAME_AT: usize = 64;
const OS_TYPE_AT: usize = 96;
const PRODUCT_TYPE_AT: usize = 128;
const FIELD_LEN: usize = 32;
/// The reply ends with the product type field at the latest.
const REPLY_END: usize = PRODUCT_TYPE_AT + FIELD_LEN;

/// The identification query for little-endian runtimes.
pub fn request_little_endian() -> Vec<u8> {
    vec![0xbb, 0xbb, 0x01, 0x00, 0x00, 0x00, 0x01]
}

/// The identification query for big-endian runtimes.
pub fn request_big_endian() -> Vec<u8> {
    vec![0xbb, 0xbb, 0x01, 0x00, 0x00, 0x01, 0x01]
}

/// One reply: complete once the product type string is terminated (or its field is full).
/// An echo of our 7-byte query can never reach the 129 bytes a reply needs.
pub fn frame(buf: &[u8]) -> Frame {
    match buf.first() {
        None => Frame::Incomplete,
        Some(0xbb) => {
            let product = buf.get(PRODUCT_TYPE_AT..buf.len().min(REPLY_END)).unwrap_or_default();
            match product.iter().position(|&b| b == 0) {
                Some(nul) => Frame::Complete(PRODUCT_TYPE_AT + nul + 1),
                None if buf.len() >= REPLY_END => Frame::Complete(REPLY_END),
                None => Frame::Incomplete,
            }
        }
        Some(b) => Frame::Invalid(format!("first byte {b:#04x}, not the CODESYS magic 0xbb")),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodesysInfo {
    pub os_name: String,
    pub os_type: String,
    pub product_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("reply does not start with the magic 0xbb")]
    BadMagic,
    #[error("reply of {0} bytes is too short for the identification fields")]
    Truncated(usize),
    #[error("field at offset {0} is not printable text")]
    NotText(usize),
    #[error("reply carries no identification string")]
    Empty,
}

/// The string of the 32-byte field at `at`: up to its NUL, the field's end or the reply's end.
fn field(buf: &[u8], at: usize) -> Result<String, ParseError> {
    let end = (at + FIELD_LEN).min(buf.len());
    let raw = buf.get(at..end).ok_or(ParseError::Truncated(buf.len()))?;
    let raw = raw.iter().position(|&b| b == 0).map_or(raw, |nul| &raw[..nul]);
    if !raw.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Err(ParseError::NotText(at));
    }
    Ok(String::from_utf8_lossy(raw).trim().to_string())
}

/// Parses an identification reply.
pub fn parse_reply(buf: &[u8]) -> Result<CodesysInfo, ParseError> {
    if buf.first() != Some(&0xbb) {
        return Err(ParseError::BadMagic);
    }
    if buf.len() <= PRODUCT_TYPE_AT {
        return Err(ParseError::Truncated(buf.len()));
    }
    let info = CodesysInfo {
        os_name: field(buf, OS_NAME_AT)?,
        os_type: field(buf, OS_TYPE_AT)?,
        product_type: field(buf, PRODUCT_TYPE_AT)?,
    };
    if info.os_name.is_empty() && info.os_type.is_empty() && info.product_type.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(info)
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[2455, 1200]);

async fn query(session: &mut Session<'_>) -> Result<Vec<u8>, ProbeError> {
    match session.conn().exchange(&request_little_endian(), frame).await {
        Ok(reply) => Ok(reply),
        // No answer: a big-endian runtime ignores the little-endian query; ask again, as the
        // known scanner does, on the same connection.
        Err(NetError::Timeout(_)) => Ok(session.conn().exchange(&request_big_endian(), frame).await?),
        // A runtime that hung up gets the big-endian query on a fresh connection.
        Err(NetError::Closed(0)) => {
            session.reconnect().await?;
            Ok(session.conn().exchange(&request_big_endian(), frame).await?)
        }
        Err(e) => Err(e.into()),
    }
}

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let reply = match query(session).await {
        Err(ProbeError::Net(NetError::Invalid(why))) => return Err(ProbeError::not(PROTOCOL, why)),
        other => other?,
    };
    let info = parse_reply(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.to_string()))?;
    let mut identity = Identity::new(PROTOCOL, true);
    identity.field("os_name", info.os_name).field("os_type", info.os_type).field("product_type", info.product_type);
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply laid out as the scanner reads it: magic, header bytes, then the three 32-byte fields.
    fn reply(os_name: &str, os_type: &str, product: &str) -> Vec<u8> {
        let mut r = vec![0u8; REPLY_END];
        r[0] = 0xbb;
        r[1] = 0xbb;
        r[OS_NAME_AT..OS_NAME_AT + os_name.len()].copy_from_slice(os_name.as_bytes());
        r[OS_TYPE_AT..OS_TYPE_AT + os_type.len()].copy_from_slice(os_type.as_bytes());
        r[PRODUCT_TYPE_AT..PRODUCT_TYPE_AT + product.len()].copy_from_slice(product.as_bytes());
        r
    }

    #[test]
    fn requests_are_the_known_queries() {
        assert_eq!(request_little_endian(), [0xbb, 0xbb, 0x01, 0x00, 0x00, 0x00, 0x01]);
        assert_eq!(request_big_endian(), [0xbb, 0xbb, 0x01, 0x00, 0x00, 0x01, 0x01]);
    }

    #[test]
    fn parses_the_three_strings() {
        let r = reply("Nucleus PLUS", "Nucleus PLUS version unknown", "3S-Smart Software Solutions");
        assert_eq!(frame(&r), Frame::Complete(PRODUCT_TYPE_AT + 27 + 1));
        let info = parse_reply(&r).unwrap();
        assert_eq!(info.os_name, "Nucleus PLUS");
        assert_eq!(info.os_type, "Nucleus PLUS version unknown");
        assert_eq!(info.product_type, "3S-Smart Software Solutions");
    }

    #[test]
    fn a_full_field_ends_at_its_boundary() {
        let long = "A".repeat(FIELD_LEN);
        let mut r = reply("", "", "");
        r[OS_NAME_AT..OS_TYPE_AT].copy_from_slice(long.as_bytes());
        r[OS_TYPE_AT..OS_TYPE_AT + 5].copy_from_slice(b"Linux");
        let info = parse_reply(&r).unwrap();
        assert_eq!(info.os_name, long);
        let mut full = r.clone();
        full[PRODUCT_TYPE_AT..REPLY_END].copy_from_slice(long.as_bytes());
        full.extend_from_slice(b"trailing");
        assert_eq!(frame(&full), Frame::Complete(REPLY_END));
        assert_eq!(parse_reply(&full[..REPLY_END]).unwrap().product_type, long);
        assert_eq!(info.os_type, "Linux");
        assert_eq!(info.product_type, "");
    }

    #[test]
    fn framing_waits_for_the_product_string() {
        let r = reply("Windows", "Windows CE", "WAGO");
        assert_eq!(frame(&r[..100]), Frame::Incomplete);
        assert_eq!(frame(&r[..PRODUCT_TYPE_AT + 4]), Frame::Incomplete);
        assert_eq!(frame(&r[..PRODUCT_TYPE_AT + 5]), Frame::Complete(PRODUCT_TYPE_AT + 5));
        assert_eq!(frame(&[]), Frame::Incomplete);
        assert!(matches!(frame(b"HTTP/1.1 400"), Frame::Invalid(_)));
        // An echo of the query stays incomplete forever.
        assert_eq!(frame(&request_little_endian()), Frame::Incomplete);
    }

    #[test]
    fn truncated_and_malformed_replies_are_errors() {
        let r = reply("Linux", "", "");
        assert_eq!(parse_reply(&r[..PRODUCT_TYPE_AT]), Err(ParseError::Truncated(PRODUCT_TYPE_AT)));
        assert_eq!(parse_reply(&r[..10]), Err(ParseError::Truncated(10)));
        assert_eq!(parse_reply(&[]), Err(ParseError::BadMagic));
        assert_eq!(parse_reply(&request_little_endian()), Err(ParseError::Truncated(7)));
        let mut bad = r.clone();
        bad[0] = 0x00;
        assert_eq!(parse_reply(&bad), Err(ParseError::BadMagic));
        let mut binary = r.clone();
        binary[OS_TYPE_AT] = 0x01;
        assert_eq!(parse_reply(&binary), Err(ParseError::NotText(OS_TYPE_AT)));
        assert_eq!(parse_reply(&reply("", "", "")), Err(ParseError::Empty));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for len in 0..200 {
            let mut buf: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = frame(&buf);
            let _ = parse_reply(&buf);
            if let Some(b) = buf.first_mut() {
                *b = 0xbb;
            }
            let _ = frame(&buf);
            let _ = parse_reply(&buf);
        }
    }
}
