//! Mitsubishi Electric MELSEC CPUs (Q/L/iQ series): "read CPU model name", command 0101.
//!
//! Two framings carry that command, and a CPU's built-in Ethernet port may speak either:
//!
//! * **MELSOFT** (the GX Works engineering connection; built-in Ethernet ports answer it on
//!   5007/tcp and 5006/udp). The request is the fixed 41-byte "get CPU info" message of the
//!   public `melsecq-discover` NSE scripts, which embeds command 0101 at offset 33; a real Q03UDECPU
//!   capture confirms it byte for byte. Request marker `57 00`, reply marker `D7 00`; byte 19-20
//!   (little-endian) is the number of bytes after offset 21; the reply's CPU model name is 16 ASCII
//!   bytes at offset 41 (space padded), followed by the 2-byte model code (little-endian,
//!   0x0268 for the Q03UDECPU capture).
//! * **MC protocol, binary 3E frame** (SLMP; MC protocol ports opened by the user). Request:
//!   subheader `50 00`, network 00, PC FF, request destination module I/O 03FF (LE), station 00,
//!   data length (LE, from the monitoring timer on), monitoring timer (LE, 250 ms units), command
//!   0101 (LE), subcommand 0000. Reply: subheader `D0 00`, the same routing bytes, data length
//!   (LE, from the end code on), end code (LE, 0 = success), then 16 ASCII bytes of model name and
//!   the 2-byte model code (LE). A nonzero end code is an MC protocol error reply: still MELSEC.
//!
//! Command 0101 only reads the CPU's model name: it changes nothing in the CPU (no device memory,
//! program, parameter or run-state access). MELSOFT is tried first; MC 3E only when MELSOFT got no
//! valid reply.

use super::{Identity, Probe, ProbeError};
use crate::net::{Conn, Frame, NetError, Session};
use crate::scope::Transport;

pub const PROTOCOL: &str = "melsec";

/// MELSOFT frames carry a 21-byte header before the bytes their length field counts.
const MELSOFT_HEADER: usize = 21;
/// Offset and width of the CPU model name in a MELSOFT "get CPU info" reply.
const MELSOFT_MODEL_AT: usize = 41;
const MODEL_LEN: usize = 16;
/// MC 3E reply header up to and including the data length field.
const MC3E_HEADER: usize = 9;
/// Neither framing has replies anywhere near this long for command 0101.
const MAX_REPLY: usize = 2048;

/// The fixed MELSOFT "get CPU info" request (command 0101 at offset 33-34, little-endian).
pub fn melsoft_cpu_info_request() -> Vec<u8> {
    let mut r = vec![
        0x57, 0x00, // request marker
        0x00, 0x00, 0x00, 0x11, 0x11, 0x07, 0x00, 0x00, // header fields as sent by GX Works
        0xff, 0xff, 0x03, 0x00, // destination
        0x00, 0xfe, 0x03, 0x00, // source
        0x00,
    ];
    let body: [u8; 20] = [
        0x1c, 0x08, 0x0a, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, // request header
        0x01, 0x01, // command 0101: read CPU model name
        0x01, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];
    r.extend_from_slice(&(body.len() as u16).to_le_bytes());
    r.extend_from_slice(&body);
    r
}

/// MC protocol binary 3E frame: command 0101 (read CPU model name), subcommand 0000.
pub fn mc3e_cpu_model_request() -> Vec<u8> {
    let timer: u16 = 4; // 4 x 250 ms for the CPU to answer
    let payload: Vec<u8> = [timer.to_le_bytes(), 0x0101u16.to_le_bytes(), 0x0000u16.to_le_bytes()].concat();
    let mut r = vec![0x50, 0x00]; // subheader
    r.extend_from_slice(&MC3E_ROUTE);
    r.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    r.extend_from_slice(&payload);
    r
}

/// Network 00, PC FF, destination module I/O 03FF (the CPU itself, LE), station 00.
const MC3E_ROUTE: [u8; 5] = [0x00, 0xff, 0xff, 0x03, 0x00];

fn le16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// Framing of MELSOFT replies: marker `D7 00`, then 21 + the length at 19-20.
pub fn frame_melsoft(buf: &[u8]) -> Frame {
    match buf.first() {
        None => return Frame::Incomplete,
        Some(0xd7) => {}
        Some(b) => return Frame::Invalid(format!("first byte {b:#04x} is not the MELSOFT reply marker d7")),
    }
    if let Some(&b) = buf.get(1) {
        if b != 0 {
            return Frame::Invalid("second byte of a MELSOFT reply must be 00".into());
        }
    }
    let Some(len) = le16(buf, 19) else { return Frame::Incomplete };
    let total = MELSOFT_HEADER + len as usize;
    if total > MAX_REPLY {
        return Frame::Invalid(format!("MELSOFT length {len} is implausible"));
    }
    if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Complete(total)
    }
}

/// Framing of MC 3E replies: subheader `D0 00`, then 9 + the data length at 7-8.
pub fn frame_mc3e(buf: &[u8]) -> Frame {
    for (i, want) in [0xd0u8, 0x00].iter().enumerate() {
        match buf.get(i) {
            None => return Frame::Incomplete,
            Some(b) if b != want => {
                return Frame::Invalid(format!("byte {i} is {b:#04x}, not an MC 3E reply subheader"))
            }
            _ => {}
        }
    }
    let Some(len) = le16(buf, 7) else { return Frame::Incomplete };
    let total = MC3E_HEADER + len as usize;
    if len < 2 || total > MAX_REPLY {
        return Frame::Invalid(format!("MC 3E data length {len} is implausible"));
    }
    if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Complete(total)
    }
}

pub use super::ParseError;

/// What a CPU said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// `melsoft` or `mc3e`.
    pub frame: &'static str,
    /// MC 3E end code (0 = success); MELSOFT replies carry none we rely on.
    pub end_code: Option<u16>,
    pub cpu_model: Option<String>,
    pub cpu_model_code: Option<u16>,
}

/// The 16-byte model name: ASCII, padded with spaces (or cut at a NUL). Anything else is not a name.
fn model_name(field: &[u8]) -> Result<String, ParseError> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let text = &field[..end];
    if !text.iter().all(|&b| b == b' ' || b.is_ascii_graphic()) {
        return Err(ParseError::new("CPU model name is not printable ASCII"));
    }
    let name = String::from_utf8_lossy(text).trim().to_string();
    if !name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()) {
        return Err(ParseError::new("CPU model name is empty"));
    }
    Ok(name)
}

/// Parses a MELSOFT "get CPU info" reply.
pub fn parse_melsoft(buf: &[u8]) -> Result<CpuInfo, ParseError> {
    if buf.get(..2) != Some(&[0xd7, 0x00][..]) {
        return Err(ParseError::new("no MELSOFT reply marker"));
    }
    let len = le16(buf, 19).ok_or_else(|| ParseError::new("MELSOFT reply truncated in its header"))? as usize;
    if buf.len() != MELSOFT_HEADER + len {
        return Err(ParseError::new(format!("MELSOFT length {len} disagrees with {} bytes received", buf.len())));
    }
    let field = buf
        .get(MELSOFT_MODEL_AT..MELSOFT_MODEL_AT + MODEL_LEN)
        .ok_or_else(|| ParseError::new("MELSOFT reply too short for a CPU model name"))?;
    let cpu_model = model_name(field)?;
    Ok(CpuInfo {
        frame: "melsoft",
        end_code: None,
        cpu_model: Some(cpu_model),
        cpu_model_code: le16(buf, MELSOFT_MODEL_AT + MODEL_LEN),
    })
}

/// Parses an MC 3E reply to command 0101.
pub fn parse_mc3e(buf: &[u8]) -> Result<CpuInfo, ParseError> {
    if buf.get(..2) != Some(&[0xd0, 0x00][..]) {
        return Err(ParseError::new("no MC 3E reply subheader"));
    }
    if buf.get(2..7) != Some(&MC3E_ROUTE[..]) {
        return Err(ParseError::new("MC 3E reply routing does not echo the request's"));
    }
    let len = le16(buf, 7).ok_or_else(|| ParseError::new("MC 3E reply truncated"))? as usize;
    if buf.len() != MC3E_HEADER + len || len < 2 {
        return Err(ParseError::new(format!("MC 3E data length {len} disagrees with {} bytes received", buf.len())));
    }
    let end_code = le16(buf, MC3E_HEADER).ok_or_else(|| ParseError::new("MC 3E reply has no end code"))?;
    let data = &buf[MC3E_HEADER + 2..];
    if end_code != 0 {
        // Error replies carry the responder's routing and the failed command; no model.
        return Ok(CpuInfo { frame: "mc3e", end_code: Some(end_code), cpu_model: None, cpu_model_code: None });
    }
    let field = data.get(..MODEL_LEN).ok_or_else(|| ParseError::new("MC 3E reply too short for a CPU model name"))?;
    Ok(CpuInfo {
        frame: "mc3e",
        end_code: Some(0),
        cpu_model: Some(model_name(field)?),
        cpu_model_code: le16(data, MODEL_LEN),
    })
}

fn identity(info: CpuInfo) -> Identity {
    let mut id = Identity::new(PROTOCOL, true);
    id.field("frame", info.frame);
    if let Some(model) = info.cpu_model {
        id.field("cpu_model", model);
    }
    if let Some(code) = info.cpu_model_code {
        id.field("cpu_model_code", code);
    }
    if let Some(code) = info.end_code.filter(|&c| c != 0) {
        id.field("end_code", code);
    }
    id
}

async fn try_melsoft(conn: &mut Conn) -> Result<CpuInfo, ProbeError> {
    let reply = conn.exchange(&melsoft_cpu_info_request(), frame_melsoft).await?;
    parse_melsoft(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.0))
}

async fn try_mc3e(conn: &mut Conn) -> Result<CpuInfo, ProbeError> {
    let reply = conn.exchange(&mc3e_cpu_model_request(), frame_mc3e).await?;
    parse_mc3e(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.0))
}

/// MELSEC over TCP (MELSOFT 5007/tcp; MC protocol ports where configured) and over UDP (MELSOFT
/// 5006/udp). Each transport lists the other's port too, because scan port lists commonly pair
/// them the other way round.
pub const PROBE: Probe =
    Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[5007, 5006]).udp(&[5006, 5007]);

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let first = try_melsoft(session.conn()).await;
    let first_err = match first {
        Ok(info) => return Ok(identity(info)),
        Err(e) => e,
    };
    tracing::debug!("melsec: MELSOFT got no valid reply ({first_err}); trying MC 3E");
    // Over TCP a fresh connection: the peer may have hung up, or left unread bytes behind.
    let conn = match session.conn().transport() {
        Transport::Tcp => match session.reconnect().await {
            Ok(c) => c,
            Err(NetError::Invalid(_)) => return Err(first_err),
            Err(e) => return Err(e.into()),
        },
        Transport::Udp => session.conn(),
    };
    try_mc3e(conn).await.map(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    /// A real Q03UDECPU's reply to the MELSOFT "get CPU info" request (public capture).
    const REAL_REPLY: &str = "d700c80000111107000000e40300ffff03000038009c000c080000000010040000000001010100000051303355444543505520202020202020680200 08baba081020210316002002000101e802";

    #[test]
    fn melsoft_request_is_the_known_get_cpu_info_message() {
        assert_eq!(
            melsoft_cpu_info_request(),
            hex("57000000001111070000ffff030000fe03000014001c080a0800000000000000040101010000000001")
        );
        assert_eq!(melsoft_cpu_info_request().len(), 41);
    }

    #[test]
    fn mc3e_request_bytes() {
        assert_eq!(mc3e_cpu_model_request(), hex("5000 00 ff ff03 00 0600 0400 0101 0000"));
    }

    #[test]
    fn real_melsoft_reply_parses() {
        let r = hex(REAL_REPLY);
        assert_eq!(r.len(), 77);
        assert_eq!(frame_melsoft(&r), Frame::Complete(77));
        assert_eq!(frame_melsoft(&r[..40]), Frame::Incomplete);
        let info = parse_melsoft(&r).unwrap();
        assert_eq!(info.cpu_model.as_deref(), Some("Q03UDECPU"));
        assert_eq!(info.cpu_model_code, Some(0x0268));
        assert_eq!(info.frame, "melsoft");
    }

    #[test]
    fn melsoft_rejects_echo_truncation_and_garbage() {
        let req = melsoft_cpu_info_request();
        assert!(matches!(frame_melsoft(&req), Frame::Invalid(_)));
        assert!(parse_melsoft(&req).is_err());
        let r = hex(REAL_REPLY);
        for cut in [0, 1, 2, 20, 21, 40, 50, 76] {
            assert!(parse_melsoft(&r[..cut]).is_err(), "cut at {cut}");
        }
        // A length field that promises more than arrives, or a lie about the size.
        let mut lie = r.clone();
        lie[19] = 0xff;
        assert!(parse_melsoft(&lie).is_err());
        assert!(matches!(
            frame_melsoft(&[0xd7, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]),
            Frame::Invalid(_)
        ));
        // Unprintable model bytes.
        let mut bad = r.clone();
        bad[42] = 0x01;
        assert!(parse_melsoft(&bad).is_err());
        // A blank model.
        let mut blank = r;
        blank[41..57].fill(b' ');
        assert!(parse_melsoft(&blank).is_err());
        assert!(matches!(frame_melsoft(b"HTTP/1.1 400 Bad Request\r\n"), Frame::Invalid(_)));
    }

    fn mc3e_reply(end_code: u16, data: &[u8]) -> Vec<u8> {
        let mut r = vec![0xd0, 0x00, 0x00, 0xff, 0xff, 0x03, 0x00];
        r.extend_from_slice(&((2 + data.len()) as u16).to_le_bytes());
        r.extend_from_slice(&end_code.to_le_bytes());
        r.extend_from_slice(data);
        r
    }

    #[test]
    fn mc3e_reply_parses() {
        let mut data = b"Q06UDEHCPU      ".to_vec();
        data.extend_from_slice(&0x026au16.to_le_bytes());
        let r = mc3e_reply(0, &data);
        assert_eq!(frame_mc3e(&r), Frame::Complete(r.len()));
        let info = parse_mc3e(&r).unwrap();
        assert_eq!(info.cpu_model.as_deref(), Some("Q06UDEHCPU"));
        assert_eq!(info.cpu_model_code, Some(0x026a));
        assert_eq!(info.end_code, Some(0));
    }

    #[test]
    fn mc3e_error_reply_still_proves_the_protocol() {
        // End code C059 (command not supported) with the error information block.
        let r = mc3e_reply(0xc059, &[0x00, 0xff, 0xff, 0x03, 0x00, 0x01, 0x01, 0x00, 0x00]);
        let info = parse_mc3e(&r).unwrap();
        assert_eq!(info.end_code, Some(0xc059));
        assert_eq!(info.cpu_model, None);
        let id = identity(info);
        assert_eq!(id.fields["end_code"], serde_json::json!(0xc059));
    }

    #[test]
    fn mc3e_rejects_echo_truncation_and_lies() {
        let req = mc3e_cpu_model_request();
        assert!(matches!(frame_mc3e(&req), Frame::Invalid(_)));
        assert!(parse_mc3e(&req).is_err());
        let mut data = b"L02CPU          ".to_vec();
        data.extend_from_slice(&[0x41, 0x05]);
        let r = mc3e_reply(0, &data);
        for cut in 0..r.len() {
            assert!(parse_mc3e(&r[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_route = r.clone();
        wrong_route[3] = 0x01;
        assert!(parse_mc3e(&wrong_route).is_err());
        assert!(matches!(frame_mc3e(&[0xd0, 0x00, 0, 0xff, 0xff, 0x03, 0, 0xff, 0xff]), Frame::Invalid(_)));
        assert!(matches!(frame_mc3e(&[0xd0, 0x00, 0, 0xff, 0xff, 0x03, 0, 0x01, 0x00]), Frame::Invalid(_)));
        // Success with no model bytes.
        assert!(parse_mc3e(&mc3e_reply(0, &[])).is_err());
    }
}
