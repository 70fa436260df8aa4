//! Phoenix Contact PC WORX (1962/tcp): the engineering protocol of Phoenix Contact ILC/AXC controllers.
//!
//! Facts (Digital Bond Redpoint `pcworx-info.nse`; the replies of a real ILC 151 ETH, from a public
//! capture whose client requests are the script's, and of a real ILC 191 ETH 2TX):
//! - Every message starts with a 4-byte header: byte 0 is `01` in requests and `81` in replies,
//!   byte 1 the service, bytes 2-3 the message's total length (big-endian, header included);
//!   bytes 4-5 carry a sequence number (big-endian) that the controller echoes in its reply.
//! - Service `01` opens a session for the client name `IBETH01N0_M`; the reply carries the session id
//!   the controller assigned at offset 17. Service `05` with that id completes the session setup;
//!   service `06` (`04 00`) asks for the device information.
//! - The device information reply carries NUL-terminated strings: PLC type at offset 30, firmware
//!   version at 66, firmware date at 79, firmware time at 91, model (order) number at 152.
//!
//! These three requests are the whole exchange of the public identification scripts: a session setup
//! and one information read. None writes a variable, loads a program or changes the run state.

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, NetError, Session};

pub const PROTOCOL: &str = "pcworx";

const REQUEST: u8 = 0x01;
const REPLY: u8 = 0x81;
pub const SERVICE_CONNECT: u8 = 0x01;
pub const SERVICE_SESSION: u8 = 0x05;
pub const SERVICE_INFO: u8 = 0x06;
const HEADER_LEN: usize = 6;
/// Where the connect reply carries the session id.
const SESSION_ID_AT: usize = 17;
/// No reply of the identification exchange comes close; a larger length claim is not this protocol.
const MAX_MESSAGE: usize = 4096;

const PLC_TYPE_AT: usize = 30;
const FIRMWARE_VERSION_AT: usize = 66;
const FIRMWARE_DATE_AT: usize = 79;
const FIRMWARE_TIME_AT: usize = 91;
const MODEL_NUMBER_AT: usize = 152;
/// Longest string read from one field.
const MAX_FIELD: usize = 36;

/// Builds a request: header (type, service, total length, sequence) then `body`.
fn request(service: u8, sequence: u16, body: &[u8]) -> Vec<u8> {
    let len = (4 + 2 + body.len()) as u16;
    let mut r = vec![REQUEST, service];
    r.extend_from_slice(&len.to_be_bytes());
    r.extend_from_slice(&sequence.to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// Service 01, sequence 0: opens a session for the client `IBETH01N0_M`.
pub fn connect_request() -> Vec<u8> {
    let mut body = vec![0x00, 0x00, 0x78, 0x80, 0x00, 0x03, 0x00, 0x0c];
    body.extend_from_slice(b"IBETH01N0_M\0");
    request(SERVICE_CONNECT, 0, &body)
}

/// Service 05, sequence 1: completes the session setup for `session_id`.
pub fn session_request(session_id: u8) -> Vec<u8> {
    let body = [0x00, 0x00, 0x78, 0x80, 0x00, session_id, 0x00, 0x00, 0x00, 0x06, 0x00, 0x04, 0x02, 0x95, 0x00, 0x00];
    request(SERVICE_SESSION, 1, &body)
}

/// Service 06, sequence 2: reads the device information.
pub fn info_request(session_id: u8) -> Vec<u8> {
    let body = [0x00, 0x00, 0x00, 0x00, 0x00, session_id, 0x04, 0x00];
    request(SERVICE_INFO, 2, &body)
}

/// One reply message, delimited by its length field.
pub fn frame(buf: &[u8]) -> Frame {
    if let Some(&b) = buf.first() {
        if b != REPLY {
            return Frame::Invalid(format!("first byte {b:#04x}, not a PC WORX reply (0x81)"));
        }
    }
    let Some(len) = buf.get(2..4).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else {
        return Frame::Incomplete;
    };
    if !(HEADER_LEN..=MAX_MESSAGE).contains(&len) {
        return Frame::Invalid(format!("message length {len} out of range"));
    }
    if buf.len() >= len {
        Frame::Complete(len)
    } else {
        Frame::Incomplete
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("reply of {0} bytes is truncated")]
    Truncated(usize),
    #[error("byte 0 is {0:#04x}, not a reply (0x81)")]
    NotReply(u8),
    #[error("reply to service {got:#04x}, expected {expected:#04x}")]
    WrongService { expected: u8, got: u8 },
    #[error("length field {field} disagrees with the {actual}-byte message")]
    BadLength { field: usize, actual: usize },
    #[error("sequence {got} does not echo the request's {expected}")]
    WrongSequence { expected: u16, got: u16 },
}

/// Validates a reply's header: reply type, the service and sequence of our request, and its length.
pub fn check_reply(buf: &[u8], service: u8, sequence: u16) -> Result<(), ParseError> {
    let header = buf.get(..HEADER_LEN).ok_or(ParseError::Truncated(buf.len()))?;
    if header[0] != REPLY {
        return Err(ParseError::NotReply(header[0]));
    }
    if header[1] != service {
        return Err(ParseError::WrongService { expected: service, got: header[1] });
    }
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    if len != buf.len() {
        return Err(ParseError::BadLength { field: len, actual: buf.len() });
    }
    let seq = u16::from_be_bytes([header[4], header[5]]);
    if seq != sequence {
        return Err(ParseError::WrongSequence { expected: sequence, got: seq });
    }
    Ok(())
}

/// Parses the connect reply and returns the session id the controller assigned.
pub fn parse_connect_reply(buf: &[u8]) -> Result<u8, ParseError> {
    check_reply(buf, SERVICE_CONNECT, 0)?;
    buf.get(SESSION_ID_AT).copied().ok_or(ParseError::Truncated(buf.len()))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcworxInfo {
    pub plc_type: Option<String>,
    pub model_number: Option<String>,
    pub firmware_version: Option<String>,
    pub firmware_date: Option<String>,
    pub firmware_time: Option<String>,
}

/// The NUL-terminated string at `at`, if it is printable text (absent otherwise).
fn text_at(buf: &[u8], at: usize) -> Option<String> {
    let raw = buf.get(at..)?;
    let raw = &raw[..raw.len().min(MAX_FIELD)];
    let raw = raw.iter().position(|&b| b == 0).map_or(raw, |nul| &raw[..nul]);
    if !raw.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    let s = String::from_utf8_lossy(raw).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Parses the device information reply (service 06, sequence 2).
pub fn parse_info_reply(buf: &[u8]) -> Result<PcworxInfo, ParseError> {
    check_reply(buf, SERVICE_INFO, 2)?;
    if buf.len() <= PLC_TYPE_AT {
        return Err(ParseError::Truncated(buf.len()));
    }
    Ok(PcworxInfo {
        plc_type: text_at(buf, PLC_TYPE_AT),
        model_number: text_at(buf, MODEL_NUMBER_AT),
        firmware_version: text_at(buf, FIRMWARE_VERSION_AT),
        firmware_date: text_at(buf, FIRMWARE_DATE_AT),
        firmware_time: text_at(buf, FIRMWARE_TIME_AT),
    })
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[1962]);

fn not_this(e: impl ToString) -> ProbeError {
    ProbeError::not(PROTOCOL, e.to_string())
}

fn net(e: NetError) -> ProbeError {
    match e {
        NetError::Invalid(why) => not_this(why),
        e => e.into(),
    }
}

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let conn = session.conn();
    let reply = conn.exchange(&connect_request(), frame).await.map_err(net)?;
    let session_id = parse_connect_reply(&reply).map_err(not_this)?;
    // The connect reply proves the protocol; the rest only adds the device's description.
    let mut identity = Identity::new(PROTOCOL, true);
    let Ok(reply) = conn.exchange(&session_request(session_id), frame).await else {
        return Ok(identity);
    };
    if check_reply(&reply, SERVICE_SESSION, 1).is_err() {
        return Ok(identity);
    }
    let Ok(reply) = conn.exchange(&info_request(session_id), frame).await else {
        return Ok(identity);
    };
    if let Ok(info) = parse_info_reply(&reply) {
        let fields = [
            ("plc_type", info.plc_type),
            ("model_number", info.model_number),
            ("firmware_version", info.firmware_version),
            ("firmware_date", info.firmware_date),
            ("firmware_time", info.firmware_time),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                identity.field(name, v);
            }
        }
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// Real replies of an ILC 151 ETH (connect, session, info), from a public capture.
    const ILC151_CONNECT: &str = "81010014000000010000000000020000004c0000";
    const ILC151_SESSION: &str = "81050012000100010000000000020000004c";
    const ILC151_INFO: &str = "810600b0000200010000000000020000004c0000000600988295004a0000494c4320313531204554480000000000000000000000000000000000\
0000000000000000342e343100000000000000000030392f32382f31350000000031343a33353a30310030340000000020000000000000000020\
00000000000000000000000000000020000000000000000020000000000000000030310032373030393734004231000000200000000020000000\
0000";
    /// The info reply of an ILC 191 ETH 2TX (sequence 0x000c in that capture), from a public capture.
    const ILC191_INFO: &str = "810600b0000c00010000000000020000004c0000000000988295004a0000494c4320313931204554482032545800000000000000000000000000\
0000000000000000342e343200000000000000000031312f32362f31350000000031383a34363a35350030340000000020000000000000000020\
00000000000000000000000000000020000000000000000020000000000000000030310032373030393736004230000000200000000020000000\
0000";

    #[test]
    fn requests_are_the_known_ones() {
        assert_eq!(connect_request(), unhex("0101001a0000000078800003000c494245544830314e305f4d00"));
        assert_eq!(session_request(0x4c), unhex(concat!("0105001600010000788000", "4c", "00000006000402950000")));
        assert_eq!(info_request(0x4c), unhex(concat!("0106000e00020000000000", "4c", "0400")));
    }

    #[test]
    fn parses_a_real_exchange() {
        let connect = unhex(ILC151_CONNECT);
        assert_eq!(frame(&connect), Frame::Complete(20));
        assert_eq!(parse_connect_reply(&connect), Ok(0x4c));
        let session = unhex(ILC151_SESSION);
        assert_eq!(frame(&session), Frame::Complete(18));
        assert_eq!(check_reply(&session, SERVICE_SESSION, 1), Ok(()));
        let info = unhex(ILC151_INFO);
        assert_eq!(frame(&info), Frame::Complete(176));
        let info = parse_info_reply(&info).unwrap();
        assert_eq!(info.plc_type.as_deref(), Some("ILC 151 ETH"));
        assert_eq!(info.model_number.as_deref(), Some("2700974"));
        assert_eq!(info.firmware_version.as_deref(), Some("4.41"));
        assert_eq!(info.firmware_date.as_deref(), Some("09/28/15"));
        assert_eq!(info.firmware_time.as_deref(), Some("14:35:01"));
    }

    #[test]
    fn parses_a_second_device_and_checks_the_sequence() {
        let mut info = unhex(ILC191_INFO);
        // That capture's client used sequence 0x000c; our request uses 2.
        assert_eq!(parse_info_reply(&info), Err(ParseError::WrongSequence { expected: 2, got: 0x0c }));
        info[5] = 0x02;
        let info = parse_info_reply(&info).unwrap();
        assert_eq!(info.plc_type.as_deref(), Some("ILC 191 ETH 2TX"));
        assert_eq!(info.model_number.as_deref(), Some("2700976"));
        assert_eq!(info.firmware_version.as_deref(), Some("4.42"));
        assert_eq!(info.firmware_date.as_deref(), Some("11/26/15"));
        assert_eq!(info.firmware_time.as_deref(), Some("18:46:55"));
    }

    #[test]
    fn framing_follows_the_length_field() {
        let connect = unhex(ILC151_CONNECT);
        assert_eq!(frame(&connect[..3]), Frame::Incomplete);
        assert_eq!(frame(&connect[..19]), Frame::Incomplete);
        let mut two = connect.clone();
        two.extend_from_slice(&connect);
        assert_eq!(frame(&two), Frame::Complete(20));
        assert!(matches!(frame(&connect_request()), Frame::Invalid(_)), "our own request echoed");
        assert!(matches!(frame(&[0x81, 0x01, 0x00, 0x02]), Frame::Invalid(_)));
        assert!(matches!(frame(&[0x81, 0x01, 0xff, 0xff]), Frame::Invalid(_)));
        assert!(matches!(frame(b"SSH-2.0"), Frame::Invalid(_)));
        assert_eq!(frame(&[]), Frame::Incomplete);
    }

    #[test]
    fn malformed_replies_are_errors() {
        let connect = unhex(ILC151_CONNECT);
        assert_eq!(parse_connect_reply(&connect[..17]), Err(ParseError::BadLength { field: 20, actual: 17 }));
        assert_eq!(parse_connect_reply(&connect[..4]), Err(ParseError::Truncated(4)));
        assert_eq!(parse_connect_reply(&connect_request()), Err(ParseError::NotReply(0x01)));
        let session = unhex(ILC151_SESSION);
        assert_eq!(parse_connect_reply(&session), Err(ParseError::WrongService { expected: 1, got: 5 }));
        // A well-formed but tiny reply without a session id.
        let tiny = unhex("810100100000000000000000000000ff");
        assert_eq!(parse_connect_reply(&tiny), Err(ParseError::Truncated(16)));
        // An info reply too short for any field.
        let short = unhex("8106000a0002000000ff");
        assert_eq!(parse_info_reply(&short), Err(ParseError::Truncated(10)));
    }

    #[test]
    fn fields_that_are_not_text_are_absent() {
        let mut info = unhex(ILC151_INFO);
        info[PLC_TYPE_AT] = 0x07;
        let parsed = parse_info_reply(&info).unwrap();
        assert_eq!(parsed.plc_type, None);
        assert_eq!(parsed.model_number.as_deref(), Some("2700974"));
        // A reply cut after the PLC type keeps what it has.
        let mut cut = unhex(ILC151_INFO)[..50].to_vec();
        cut[2..4].copy_from_slice(&50u16.to_be_bytes());
        let parsed = parse_info_reply(&cut).unwrap();
        assert_eq!(parsed.plc_type.as_deref(), Some("ILC 151 ETH"));
        assert_eq!(parsed.firmware_version, None);
        assert_eq!(parsed.model_number, None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for len in 0..200usize {
            let mut buf: Vec<u8> = (0..len).map(|i| (i * 53 % 253) as u8).collect();
            if len > 4 {
                buf[0] = REPLY;
                buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            }
            let _ = frame(&buf);
            let _ = parse_connect_reply(&buf);
            let _ = parse_info_reply(&buf);
        }
    }
}
