//! HART-IP (5094/tcp and 5094/udp): a session initiate, HART command 0 (Read Unique Identifier) in
//! a token-passing PDU, and a session close. Over UDP each message is one datagram, the same bytes.
//!
//! HART-IP header, 8 bytes, big-endian: version (1), message type (0 request, 1 response,
//! 2 publish, 3 error, 15 NAK), message id (0 session initiate, 1 session close, 2 keep alive,
//! 3 token-passing PDU), status, sequence number (2), byte count (2, the whole message including
//! the header). The session initiate body is the host type (1 = primary) and the inactivity close
//! timer in milliseconds (4); the server echoes both. Session status codes: 0 success; 2 invalid
//! host type, 5 too few bytes, 14 version not supported, 15 no session available, 16 session
//! already exists. Error/NAK bodies hold one error code (0 session closed, 1 primary session
//! unavailable, 2 service unavailable).
//!
//! The token-passing PDU is a HART frame without preambles: delimiter (bit 7: long address;
//! bits 6-5: expansion bytes; bits 2-0: frame type, 2 = request, 6 = response), address (1 byte
//! short / 5 bytes long), [expansion bytes], command, byte count, [response code, device status]
//! in responses, data, and a check byte: the XOR of every byte from the delimiter on. Command 0 to
//! polling address 0 from the primary master is `02 80 00 00 82`.
//!
//! Command 0 reply data: 0 = 254, 1-2 expanded device type (for HART 5/6: manufacturer id and
//! device type), 3 request preambles, 4 universal command revision, 5 device revision, 6 software
//! revision, 7 hardware revision (bits 7-3) and physical signalling code (bits 2-0), 8 flags, 9-11
//! device id, then (HART 6/7) 12 response preambles, 13 max device variables, 14-15 configuration
//! change counter, 16 extended device status, 17-18 manufacturer id, 19-20 private label
//! distributor, 21 device profile.
//!
//! Read-only: command 0 only reads the identity; the session is our own and is closed at the end.
//! Caution for the operator: the FieldComm Group reference HART-IP server locks an *unprovisioned*
//! HART-IP 2 device to version 1 (insecure) mode when a version 1 session is established on it,
//! until a factory reset. Every HART-IP version 1 host (and the public NSE script) does the same.

use super::{Identity, Probe, ProbeError};
use crate::net::{Conn, Frame, Session};

pub const PROTOCOL: &str = "hartip";

pub const HEADER_LEN: usize = 8;
/// HART-IP messages are at most 272 bytes (8 + 264); anything far beyond is not HART-IP.
const MAX_MESSAGE: usize = 2048;

const VERSION: u8 = 1;
const MSG_REQUEST: u8 = 0;
const MSG_RESPONSE: u8 = 1;
const MSG_PUBLISH: u8 = 2;
const MSG_ERROR: u8 = 3;
const MSG_NAK: u8 = 15;
const ID_SESSION_INITIATE: u8 = 0;
const ID_SESSION_CLOSE: u8 = 1;
const ID_TOKEN_PASSING: u8 = 3;
const HOST_PRIMARY: u8 = 1;
/// Inactivity close timer asked for: the server ends the session itself 20 s after our last word.
const INACTIVITY_MS: u32 = 20_000;
/// Session status "set to nearest possible value": a warning, the session is open.
const STATUS_WARN_NEAREST: u8 = 8;

fn header(message_id: u8, sequence: u16, body_len: usize) -> Vec<u8> {
    let mut h = vec![VERSION, MSG_REQUEST, message_id, 0];
    h.extend_from_slice(&sequence.to_be_bytes());
    h.extend_from_slice(&((HEADER_LEN + body_len) as u16).to_be_bytes());
    h
}

/// Session initiate: primary host, 20 s inactivity timer.
pub fn session_initiate_request(sequence: u16) -> Vec<u8> {
    let mut r = header(ID_SESSION_INITIATE, sequence, 5);
    r.push(HOST_PRIMARY);
    r.extend_from_slice(&INACTIVITY_MS.to_be_bytes());
    r
}

/// HART command 0 (Read Unique Identifier), short frame to polling address 0, primary master.
pub fn command0_request(sequence: u16) -> Vec<u8> {
    let mut pdu = vec![
        0x02, // delimiter: short address, no expansion bytes, master-to-slave (STX)
        0x80, // address: primary master (bit 7), not burst, polling address 0
        0x00, // command 0
        0x00, // byte count
    ];
    pdu.push(checksum(&pdu));
    let mut r = header(ID_TOKEN_PASSING, sequence, pdu.len());
    r.extend_from_slice(&pdu);
    r
}

/// Session close: header only.
pub fn session_close_request(sequence: u16) -> Vec<u8> {
    header(ID_SESSION_CLOSE, sequence, 0)
}

/// HART longitudinal parity: XOR of all bytes.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

/// Framing of HART-IP messages over TCP: the byte count at 6-7 covers the whole message.
pub fn frame(buf: &[u8]) -> Frame {
    if let Some(&v) = buf.first() {
        if v != 1 && v != 2 {
            return Frame::Invalid(format!("HART-IP version {v} is unknown"));
        }
    }
    if let Some(&t) = buf.get(1) {
        if ![MSG_REQUEST, MSG_RESPONSE, MSG_PUBLISH, MSG_ERROR, MSG_NAK].contains(&t) {
            return Frame::Invalid(format!("HART-IP message type {t} is unknown"));
        }
    }
    let Some(count) = buf.get(6..8).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else {
        return Frame::Incomplete;
    };
    if !(HEADER_LEN..=MAX_MESSAGE).contains(&count) {
        return Frame::Invalid(format!("HART-IP byte count {count} is implausible"));
    }
    if buf.len() < count {
        Frame::Incomplete
    } else {
        Frame::Complete(count)
    }
}

pub use super::ParseError;

/// A validated HART-IP message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub message_type: u8,
    pub message_id: u8,
    pub status: u8,
    pub sequence: u16,
    pub byte_count: u16,
}

/// Parses a whole message's header, checking it answers `message_id` with sequence `sequence`.
pub fn parse_header(buf: &[u8], message_id: u8, sequence: u16) -> Result<Header, ParseError> {
    let h = buf.get(..HEADER_LEN).ok_or_else(|| ParseError::new("shorter than a HART-IP header"))?;
    let hdr = Header {
        version: h[0],
        message_type: h[1],
        message_id: h[2],
        status: h[3],
        sequence: u16::from_be_bytes([h[4], h[5]]),
        byte_count: u16::from_be_bytes([h[6], h[7]]),
    };
    if hdr.version != 1 && hdr.version != 2 {
        return Err(ParseError::new(format!("HART-IP version {} is unknown", hdr.version)));
    }
    if hdr.message_type == MSG_REQUEST {
        return Err(ParseError::new("a request, not a reply (an echo?)"));
    }
    if ![MSG_RESPONSE, MSG_ERROR, MSG_NAK].contains(&hdr.message_type) {
        return Err(ParseError::new(format!("message type {} does not answer a request", hdr.message_type)));
    }
    if hdr.message_id != message_id {
        return Err(ParseError::new(format!("message id {} answers no request of ours", hdr.message_id)));
    }
    if hdr.sequence != sequence {
        return Err(ParseError::new(format!("sequence number {} is not ours ({sequence})", hdr.sequence)));
    }
    if hdr.byte_count as usize != buf.len() {
        return Err(ParseError::new(format!(
            "byte count {} disagrees with {} bytes received",
            hdr.byte_count,
            buf.len()
        )));
    }
    Ok(hdr)
}

/// The server's answer to our session initiate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReply {
    pub header: Header,
    /// Error code of an error/NAK reply.
    pub error_code: Option<u8>,
}

impl SessionReply {
    pub fn is_open(&self) -> bool {
        self.header.message_type == MSG_RESPONSE
            && (self.header.status == 0 || self.header.status == STATUS_WARN_NEAREST)
    }
}

pub fn parse_session_initiate(buf: &[u8], sequence: u16) -> Result<SessionReply, ParseError> {
    let header = parse_header(buf, ID_SESSION_INITIATE, sequence)?;
    let body = &buf[HEADER_LEN..];
    match header.message_type {
        MSG_RESPONSE => {
            // A successful reply echoes host type and timer; error statuses may omit the body.
            if header.status == 0 && body.len() != 5 {
                return Err(ParseError::new(format!("session initiate reply body of {} bytes, not 5", body.len())));
            }
            if body.len() > 5 {
                return Err(ParseError::new("session initiate reply body too long"));
            }
            Ok(SessionReply { header, error_code: None })
        }
        _ => {
            if body.len() > 1 {
                return Err(ParseError::new("error reply body too long"));
            }
            Ok(SessionReply { header, error_code: body.first().copied() })
        }
    }
}

/// HART command 0's reply, as far as the device sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UniqueId {
    pub response_code: u8,
    pub device_status: u8,
    pub expanded_device_type: Option<u16>,
    pub universal_command_revision: Option<u8>,
    pub device_revision: Option<u8>,
    pub software_revision: Option<u8>,
    pub hardware_revision: Option<u8>,
    pub physical_signaling_code: Option<u8>,
    pub device_id: Option<u32>,
    pub manufacturer_id: Option<u16>,
    pub private_label_distributor: Option<u16>,
}

/// Parses the reply to [`command0_request`]: the HART-IP header, then the HART response frame.
pub fn parse_command0(buf: &[u8], sequence: u16) -> Result<UniqueId, ParseError> {
    let header = parse_header(buf, ID_TOKEN_PASSING, sequence)?;
    if header.message_type != MSG_RESPONSE {
        return Err(ParseError::new(format!("token-passing reply of type {}", header.message_type)));
    }
    let pdu = &buf[HEADER_LEN..];
    // Preambles are not used over HART-IP, but a frame may still carry some.
    let start = pdu.iter().take(32).take_while(|&&b| b == 0xff).count();
    let frame = &pdu[start..];
    let delimiter = *frame.first().ok_or_else(|| ParseError::new("empty token-passing PDU"))?;
    if delimiter & 0x07 != 6 {
        return Err(ParseError::new(format!("delimiter {delimiter:#04x} is not a slave response (ACK)")));
    }
    let address_len = if delimiter & 0x80 != 0 { 5 } else { 1 };
    let expansion = ((delimiter >> 5) & 0x03) as usize;
    let at = 1 + address_len + expansion;
    let command = *frame.get(at).ok_or_else(|| ParseError::new("HART frame truncated before the command"))?;
    if command != 0 {
        return Err(ParseError::new(format!("reply to command {command}, not command 0")));
    }
    let count =
        *frame.get(at + 1).ok_or_else(|| ParseError::new("HART frame truncated before the byte count"))? as usize;
    let body_at = at + 2;
    let check_at = body_at + count;
    let check = *frame.get(check_at).ok_or_else(|| ParseError::new("HART frame shorter than its byte count"))?;
    if checksum(&frame[..check_at]) != check {
        return Err(ParseError::new("HART check byte mismatch"));
    }
    if count < 2 {
        return Err(ParseError::new("HART response without response code and device status"));
    }
    let body = &frame[body_at..check_at];
    let mut id = UniqueId { response_code: body[0], device_status: body[1], ..Default::default() };
    let data = &body[2..];
    // Communication errors (bit 7) and command errors carry no identity data.
    if id.response_code != 0 || data.len() < 12 {
        if id.response_code == 0 {
            return Err(ParseError::new(format!("command 0 data of {} bytes, at least 12 expected", data.len())));
        }
        return Ok(id);
    }
    if data[0] != 254 {
        return Err(ParseError::new(format!("command 0 data starts with {}, not 254", data[0])));
    }
    id.expanded_device_type = Some(u16::from_be_bytes([data[1], data[2]]));
    id.universal_command_revision = Some(data[4]);
    id.device_revision = Some(data[5]);
    id.software_revision = Some(data[6]);
    id.hardware_revision = Some(data[7] >> 3);
    id.physical_signaling_code = Some(data[7] & 0x07);
    id.device_id = Some(u32::from_be_bytes([0, data[9], data[10], data[11]]));
    id.manufacturer_id = match (data.get(17), data.get(18)) {
        (Some(&hi), Some(&lo)) => Some(u16::from_be_bytes([hi, lo])),
        // HART 5/6: byte 1 is the manufacturer id.
        _ if data[4] < 7 => Some(u16::from(data[1])),
        _ => None,
    };
    id.private_label_distributor = match (data.get(19), data.get(20)) {
        (Some(&hi), Some(&lo)) => Some(u16::from_be_bytes([hi, lo])),
        _ => None,
    };
    Ok(id)
}

fn not(e: ParseError) -> ProbeError {
    ProbeError::not(PROTOCOL, e.0)
}

/// Reads the next reply frame, skipping unsolicited publish messages (bounded).
async fn next_reply(conn: &mut Conn) -> Result<Vec<u8>, ProbeError> {
    for _ in 0..4 {
        let msg = conn.recv_frame(frame).await?;
        if msg.get(1) != Some(&MSG_PUBLISH) {
            return Ok(msg);
        }
    }
    Err(ProbeError::not(PROTOCOL, "only publish messages"))
}

pub const PROBE: Probe =
    Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[5094]).udp(&[5094]).opt_in();

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let conn = session.conn();
    conn.send(&session_initiate_request(1)).await?;
    let reply = next_reply(conn).await?;
    let init = parse_session_initiate(&reply, 1).map_err(not)?;
    let mut id = Identity::new(PROTOCOL, true);
    id.field("hartip_version", init.header.version);
    if !init.is_open() {
        // The server answered as HART-IP but opened no session (busy, version, ...).
        id.field("session_status", init.header.status);
        if let Some(code) = init.error_code {
            id.field("error_code", code);
        }
        return Ok(id);
    }

    let command0 = async {
        conn.send(&command0_request(2)).await?;
        let reply = next_reply(conn).await?;
        parse_command0(&reply, 2).map_err(not)
    }
    .await;
    match command0 {
        Ok(u) => {
            if u.response_code != 0 {
                id.field("response_code", u.response_code);
            }
            let numbers = [
                ("manufacturer_id", u.manufacturer_id.map(u32::from)),
                ("expanded_device_type", u.expanded_device_type.map(u32::from)),
                ("device_revision", u.device_revision.map(u32::from)),
                ("software_revision", u.software_revision.map(u32::from)),
                ("hardware_revision", u.hardware_revision.map(u32::from)),
                ("device_id", u.device_id),
                ("universal_command_revision", u.universal_command_revision.map(u32::from)),
                ("private_label_distributor", u.private_label_distributor.map(u32::from)),
            ];
            for (name, value) in numbers {
                if let Some(v) = value {
                    id.field(name, v);
                }
            }
        }
        // The session initiate already proved HART-IP; the device just did not identify.
        Err(e) => tracing::debug!("hartip: command 0 failed: {e}"),
    }

    // Close our own session; the reply only confirms it.
    let close = async {
        conn.send(&session_close_request(3)).await?;
        let reply = next_reply(conn).await?;
        parse_header(&reply, ID_SESSION_CLOSE, 3).map_err(not)
    }
    .await;
    if let Err(e) = close {
        tracing::debug!("hartip: session close not confirmed: {e}");
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn request_bytes() {
        assert_eq!(session_initiate_request(1), hex("01 00 00 00 0001 000d 01 00004e20"));
        assert_eq!(command0_request(2), hex("01 00 03 00 0002 000d 02 80 00 00 82"));
        assert_eq!(session_close_request(3), hex("01 00 01 00 0003 0008"));
    }

    /// A command 0 reply built from the spec: HART 7, Phoenix Contact (176), device type B013.
    fn command0_reply(seq: u16, data: &[u8], response_code: u8) -> Vec<u8> {
        let mut f = vec![0x06, 0x80, 0x00, (data.len() + 2) as u8, response_code, 0x00];
        f.extend_from_slice(data);
        f.push(checksum(&f));
        let mut r = vec![1, 1, 3, 0];
        r.extend_from_slice(&seq.to_be_bytes());
        r.extend_from_slice(&((8 + f.len()) as u16).to_be_bytes());
        r.extend_from_slice(&f);
        r
    }

    fn hart7_data() -> Vec<u8> {
        vec![
            254,
            0xb0,
            0x13,
            5,
            7,
            1,
            1,
            (3 << 3) | 6,
            0x00,
            0xdd,
            0x4e,
            0xe3,
            5,
            4,
            0x00,
            0x02,
            0x00,
            0x00,
            0xb0,
            0x00,
            0xb0,
            0x00,
        ]
    }

    #[test]
    fn session_initiate_reply() {
        let ok = hex("01 01 00 00 0001 000d 01 00004e20");
        assert_eq!(frame(&ok), Frame::Complete(13));
        let s = parse_session_initiate(&ok, 1).unwrap();
        assert!(s.is_open());
        let busy = hex("01 01 00 0f 0001 000d 01 00004e20");
        let s = parse_session_initiate(&busy, 1).unwrap();
        assert!(!s.is_open());
        assert_eq!(s.header.status, 15);
        let nak = hex("01 0f 00 00 0001 0009 01");
        let s = parse_session_initiate(&nak, 1).unwrap();
        assert_eq!(s.error_code, Some(1));
        assert!(!s.is_open());
    }

    #[test]
    fn session_initiate_rejects_echo_and_lies() {
        let echo = session_initiate_request(1);
        assert!(parse_session_initiate(&echo, 1).is_err());
        assert!(parse_session_initiate(&hex("01 01 00 00 0002 000d 01 00004e20"), 1).is_err(), "wrong sequence");
        assert!(parse_session_initiate(&hex("01 01 03 00 0001 000d 01 00004e20"), 1).is_err(), "wrong id");
        assert!(parse_session_initiate(&hex("01 01 00 00 0001 0020 01 00004e20"), 1).is_err(), "byte count");
        assert!(parse_session_initiate(&hex("05 01 00 00 0001 000d 01 00004e20"), 1).is_err(), "version");
        assert!(parse_session_initiate(&hex("01 01 00 00 0001 0009 01"), 1).is_err(), "short body");
        assert!(parse_session_initiate(&hex("01 01 00"), 1).is_err());
        assert!(matches!(frame(&hex("01 01 00 00 0001 0004")), Frame::Invalid(_)));
        assert!(matches!(frame(&hex("01 01 00 00 0001 ffff")), Frame::Invalid(_)));
        assert!(matches!(frame(b"HTTP/1.1 200 OK\r\n"), Frame::Invalid(_)));
        assert_eq!(frame(&hex("01 01 00 00")), Frame::Incomplete);
    }

    #[test]
    fn command0_hart7() {
        let r = command0_reply(2, &hart7_data(), 0);
        assert_eq!(frame(&r), Frame::Complete(r.len()));
        let u = parse_command0(&r, 2).unwrap();
        assert_eq!(u.expanded_device_type, Some(0xb013));
        assert_eq!(u.manufacturer_id, Some(0xb0));
        assert_eq!(u.universal_command_revision, Some(7));
        assert_eq!(u.device_revision, Some(1));
        assert_eq!(u.software_revision, Some(1));
        assert_eq!(u.hardware_revision, Some(3));
        assert_eq!(u.physical_signaling_code, Some(6));
        assert_eq!(u.device_id, Some(0xdd4ee3));
        assert_eq!(u.private_label_distributor, Some(0xb0));
    }

    #[test]
    fn command0_hart5_takes_the_manufacturer_from_byte_1() {
        // Rosemount (0x26) device type 0x06, HART 5: 12 data bytes only.
        let data = [254, 0x26, 0x06, 5, 5, 3, 12, 1 << 3, 0, 0x12, 0x34, 0x56];
        let u = parse_command0(&command0_reply(2, &data, 0), 2).unwrap();
        assert_eq!(u.manufacturer_id, Some(0x26));
        assert_eq!(u.expanded_device_type, Some(0x2606));
        assert_eq!(u.device_id, Some(0x123456));
        assert_eq!(u.universal_command_revision, Some(5));
    }

    #[test]
    fn command0_long_frame_with_preambles() {
        let data = hart7_data();
        let mut f = vec![0xff, 0xff, 0x86, 0xb0, 0x13, 0xdd, 0x4e, 0xe3, 0x00, (data.len() + 2) as u8, 0, 0];
        f.extend_from_slice(&data);
        f.push(checksum(&f[2..]));
        let mut r = vec![1, 1, 3, 0, 0, 2];
        r.extend_from_slice(&((8 + f.len()) as u16).to_be_bytes());
        r.extend_from_slice(&f);
        assert_eq!(parse_command0(&r, 2).unwrap().device_id, Some(0xdd4ee3));
    }

    #[test]
    fn command0_error_response_code() {
        let u = parse_command0(&command0_reply(2, &[], 64), 2).unwrap();
        assert_eq!(u.response_code, 64);
        assert_eq!(u.manufacturer_id, None);
    }

    #[test]
    fn command0_rejects_bad_frames() {
        let good = command0_reply(2, &hart7_data(), 0);
        for cut in 0..good.len() {
            assert!(parse_command0(&good[..cut], 2).is_err(), "cut at {cut}");
        }
        let mut bad_check = good.clone();
        let last = bad_check.len() - 1;
        bad_check[last] ^= 0xff;
        assert!(parse_command0(&bad_check, 2).is_err());
        assert!(parse_command0(&command0_request(2), 2).is_err(), "echo");
        let mut not_254 = hart7_data();
        not_254[0] = 0;
        assert!(parse_command0(&command0_reply(2, &not_254, 0), 2).is_err());
        assert!(parse_command0(&command0_reply(2, &hart7_data()[..8], 0), 2).is_err());
        // A byte count pointing past the end.
        let mut lie = good;
        lie[11] = 0xf0;
        assert!(parse_command0(&lie, 2).is_err());
    }
}
