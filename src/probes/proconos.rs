//! ProConOS / MULTIPROG runtime (KW-Software, now Phoenix Contact) on 20547/tcp.
//!
//! Facts (Digital Bond Redpoint `proconos-info.nse`; a real ProConOS V4.2 runtime's reply from a public
//! capture whose request is byte for byte the script's):
//! - The information request is the 10-byte message `CC 01 00 0B 40 02 00 00 47 EE`.
//! - The reply starts with `CC`. It carries NUL-terminated strings: the ladder-logic runtime at
//!   offset 12, the PLC type at offset 44, then from offset 77 the project name, the boot project and
//!   the project source-code status, one after the other.
//!
//! The request only reads the runtime's description (it is all the public identification scripts
//! send); it neither starts, stops nor loads anything.

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, NetError, Session};
use std::time::Duration;

pub const PROTOCOL: &str = "proconos";

const MAGIC: u8 = 0xcc;
const RUNTIME_AT: usize = 12;
const PLC_TYPE_AT: usize = 44;
const PROJECT_AT: usize = 77;
/// Longest string accepted after the project-name offset.
const MAX_STRING: usize = 64;
/// A reply whose strings are not terminated within this many bytes is not this protocol.
const MAX_REPLY: usize = PROJECT_AT + 3 * (MAX_STRING + 1);

/// The information request.
pub fn info_request() -> Vec<u8> {
    vec![0xcc, 0x01, 0x00, 0x0b, 0x40, 0x02, 0x00, 0x00, 0x47, 0xee]
}

/// The NUL-terminated string at `at`, which must end before `limit`: `Ok(None)` when the bytes so far
/// stop before its NUL, `Err` when it is not terminated in time.
fn zstring(buf: &[u8], at: usize, limit: usize) -> Result<Option<(&[u8], usize)>, ParseError> {
    let Some(rest) = buf.get(at..) else {
        return Ok(None);
    };
    let window = &rest[..rest.len().min(limit.saturating_sub(at))];
    match window.iter().position(|&b| b == 0) {
        Some(nul) => Ok(Some((&window[..nul], at + nul + 1))),
        None if at + window.len() >= limit => Err(ParseError::Unterminated(at)),
        None => Ok(None),
    }
}

/// Where the three strings after the project-name offset end, once all are there.
fn trailing_end(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut at = PROJECT_AT;
    for _ in 0..3 {
        match zstring(buf, at, at + MAX_STRING + 1)? {
            Some((_, next)) => at = next,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

/// One reply: complete once its last string is terminated.
pub fn frame(buf: &[u8]) -> Frame {
    match buf.first() {
        None => Frame::Incomplete,
        Some(&MAGIC) => match trailing_end(buf) {
            Ok(Some(end)) => Frame::Complete(end),
            Ok(None) if buf.len() >= MAX_REPLY => Frame::Invalid("reply strings never end".into()),
            Ok(None) => Frame::Incomplete,
            Err(e) => Frame::Invalid(e.to_string()),
        },
        Some(b) => Frame::Invalid(format!("first byte {b:#04x}, not the ProConOS reply byte 0xcc")),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProconosInfo {
    pub runtime: String,
    pub plc_type: String,
    pub project_name: Option<String>,
    pub boot_project: Option<String>,
    pub project_source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("reply does not start with 0xcc")]
    BadMagic,
    #[error("reply is our own request")]
    Echo,
    #[error("reply of {0} bytes is truncated")]
    Truncated(usize),
    #[error("string at offset {0} is not terminated")]
    Unterminated(usize),
    #[error("string at offset {0} is not printable text")]
    NotText(usize),
    #[error("reply names no runtime")]
    NoRuntime,
}

fn text(raw: &[u8], at: usize) -> Result<String, ParseError> {
    if !raw.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Err(ParseError::NotText(at));
    }
    Ok(String::from_utf8_lossy(raw).trim().to_string())
}

/// Parses an information reply. The runtime and PLC type are required; the project strings are
/// taken as far as the reply carries them.
pub fn parse_reply(buf: &[u8]) -> Result<ProconosInfo, ParseError> {
    if buf.first() != Some(&MAGIC) {
        return Err(ParseError::BadMagic);
    }
    if buf.starts_with(&info_request()) {
        return Err(ParseError::Echo);
    }
    let (runtime, _) = zstring(buf, RUNTIME_AT, PLC_TYPE_AT)?.ok_or(ParseError::Truncated(buf.len()))?;
    let runtime = text(runtime, RUNTIME_AT)?;
    if runtime.is_empty() {
        return Err(ParseError::NoRuntime);
    }
    let (plc_type, _) = zstring(buf, PLC_TYPE_AT, PROJECT_AT)?.ok_or(ParseError::Truncated(buf.len()))?;
    let mut info = ProconosInfo { runtime, plc_type: text(plc_type, PLC_TYPE_AT)?, ..Default::default() };
    let mut at = PROJECT_AT;
    let slots = [&mut info.project_name, &mut info.boot_project, &mut info.project_source];
    for slot in slots {
        let Ok(Some((raw, next))) = zstring(buf, at, at + MAX_STRING + 1) else {
            break;
        };
        let value = text(raw, at)?;
        *slot = (!value.is_empty()).then_some(value);
        at = next;
    }
    Ok(info)
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[20547]);

fn not_this(e: impl ToString) -> ProbeError {
    ProbeError::not(PROTOCOL, e.to_string())
}

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let conn = session.conn();
    let reply = match conn.exchange(&info_request(), frame).await {
        Ok(reply) => reply,
        // The reply carries no length: one that stops short of its project strings is judged on
        // what arrived (the bytes stay buffered in the connection).
        Err(NetError::Timeout(_)) | Err(NetError::Closed(_)) => {
            conn.recv_passive(Duration::from_millis(1), MAX_REPLY).await.unwrap_or_default()
        }
        Err(NetError::Invalid(why)) => return Err(not_this(why)),
        Err(e) => return Err(e.into()),
    };
    let info = parse_reply(&reply).map_err(not_this)?;
    let mut identity = Identity::new(PROTOCOL, true);
    identity.field("runtime", info.runtime).field("plc_type", info.plc_type);
    for (name, value) in [
        ("project_name", info.project_name),
        ("boot_project", info.boot_project),
        ("project_source", info.project_source),
    ] {
        if let Some(v) = value {
            identity.field(name, v);
        }
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ProConOS V4.2.0214 runtime's reply, from a public capture.
    const REAL_REPLY: &str = "cc003030303030303030300050726f436f6e4f532056342e322e30323134204f63742032382032303131\
00205620332e3935412e36202020202020204d6172202039203230313200202020202020517569636b4d697800517569636b4d6978006e2f6100";

    /// A reply laid out as the script reads it.
    fn reply(runtime: &str, plc_type: &str, trailing: &[&str]) -> Vec<u8> {
        let mut r = vec![0u8; PROJECT_AT];
        r[0] = MAGIC;
        r[RUNTIME_AT..RUNTIME_AT + runtime.len()].copy_from_slice(runtime.as_bytes());
        r[PLC_TYPE_AT..PLC_TYPE_AT + plc_type.len()].copy_from_slice(plc_type.as_bytes());
        for s in trailing {
            r.extend_from_slice(s.as_bytes());
            r.push(0);
        }
        r
    }

    #[test]
    fn request_is_the_known_one() {
        assert_eq!(info_request(), hex::decode("cc01000b4002000047ee").unwrap());
    }

    #[test]
    fn parses_a_real_reply() {
        let r = hex::decode(REAL_REPLY).unwrap();
        assert_eq!(frame(&r), Frame::Complete(r.len()));
        let info = parse_reply(&r).unwrap();
        assert_eq!(info.runtime, "ProConOS V4.2.0214 Oct 28 2011");
        assert_eq!(info.plc_type, "V 3.95A.6       Mar  9 2012");
        assert_eq!(info.project_name.as_deref(), Some("QuickMix"));
        assert_eq!(info.boot_project.as_deref(), Some("QuickMix"));
        assert_eq!(info.project_source.as_deref(), Some("n/a"));
    }

    #[test]
    fn parses_a_built_reply() {
        let r = reply(
            "ProConOS V3.0.1040 Oct 29 2002",
            "ADAM5510KW 1.24 Build 005",
            &["510-projec", "510-projec", "Exist"],
        );
        let info = parse_reply(&r).unwrap();
        assert_eq!(info.runtime, "ProConOS V3.0.1040 Oct 29 2002");
        assert_eq!(info.plc_type, "ADAM5510KW 1.24 Build 005");
        assert_eq!(info.project_name.as_deref(), Some("510-projec"));
        assert_eq!(info.project_source.as_deref(), Some("Exist"));
    }

    #[test]
    fn framing_waits_for_the_last_string() {
        let r = hex::decode(REAL_REPLY).unwrap();
        for cut in [1, 40, 77, 80, 90, 99] {
            assert_eq!(frame(&r[..cut]), Frame::Incomplete, "cut at {cut}");
        }
        assert_eq!(frame(&[]), Frame::Incomplete);
        assert!(matches!(frame(b"HTTP/1.0 200 OK"), Frame::Invalid(_)));
        let mut endless = reply("ProConOS", "X", &[]);
        endless.extend_from_slice(&[b'A'; 200]);
        assert!(matches!(frame(&endless), Frame::Invalid(_)));
        // Our own request echoed stays incomplete (and fails to parse).
        assert_eq!(frame(&info_request()), Frame::Incomplete);
    }

    #[test]
    fn a_short_reply_keeps_what_it_has() {
        let r = hex::decode(REAL_REPLY).unwrap();
        let info = parse_reply(&r[..90]).unwrap();
        assert_eq!(info.project_name.as_deref(), Some("QuickMix"));
        assert_eq!(info.boot_project, None);
        let info = parse_reply(&r[..PROJECT_AT]).unwrap();
        assert_eq!(info.plc_type, "V 3.95A.6       Mar  9 2012");
        assert_eq!(info.project_name, None);
    }

    #[test]
    fn truncated_and_malformed_replies_are_errors() {
        let r = hex::decode(REAL_REPLY).unwrap();
        assert_eq!(parse_reply(&r[..30]), Err(ParseError::Truncated(30)));
        assert_eq!(parse_reply(&r[..60]), Err(ParseError::Truncated(60)));
        assert_eq!(parse_reply(&[]), Err(ParseError::BadMagic));
        assert_eq!(parse_reply(&info_request()), Err(ParseError::Echo));
        let mut bad = r.clone();
        bad[0] = 0x00;
        assert_eq!(parse_reply(&bad), Err(ParseError::BadMagic));
        let mut binary = r.clone();
        binary[RUNTIME_AT + 1] = 0x02;
        assert_eq!(parse_reply(&binary), Err(ParseError::NotText(RUNTIME_AT)));
        let mut unterminated = r.clone();
        unterminated[RUNTIME_AT..PLC_TYPE_AT].fill(b'A');
        assert_eq!(parse_reply(&unterminated), Err(ParseError::Unterminated(RUNTIME_AT)));
        assert_eq!(parse_reply(&reply("", "X", &[])), Err(ParseError::NoRuntime));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for len in 0..300usize {
            let mut buf: Vec<u8> = (0..len).map(|i| (i * 31 % 7) as u8 + b'0').collect();
            if let Some(b) = buf.first_mut() {
                *b = MAGIC;
            }
            for (i, b) in buf.iter_mut().enumerate() {
                if i % 23 == 0 && i > 0 {
                    *b = 0;
                }
            }
            let _ = frame(&buf);
            let _ = parse_reply(&buf);
        }
    }
}
