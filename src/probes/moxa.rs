//! Moxa NPort serial device servers: the configuration/search protocol on 4800/udp (what Moxa's
//! NPort Administrator and Device Search Utility speak).
//!
//! Every message starts with an 8-byte header: command (bit 7 set in replies), status (0 = ok),
//! total length (2 bytes, big-endian, header included), 4 bytes echoed from request to reply.
//! Requests other than the search carry the 12-byte device id that the search reply returned.
//!
//! * Search, command 01: the header alone, `01 00 00 08 00 00 00 00`. Reply 81 (24 bytes): header,
//!   device id = 4 bytes (product line), 2 bytes model id (little-endian; 0x5110 for an NPort 5110,
//!   0x511A for an NPort 5110A), 6 bytes MAC address; then the configured IPv4 address (4 bytes).
//! * Server name, command 10: header (length 20) + device id. Reply 90: header, device id, the
//!   server name as 40 bytes of NUL-padded ASCII.
//!
//! Both are reads: they return identification and change nothing (the protocol's setting commands
//! are never built here).

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, Session};
use std::net::Ipv4Addr;

pub const PROTOCOL: &str = "moxa_nport";

const HEADER_LEN: usize = 8;
pub const DEVICE_ID_LEN: usize = 12;
const CMD_SEARCH: u8 = 0x01;
const CMD_SERVER_NAME: u8 = 0x10;
const REPLY: u8 = 0x80;
const SEARCH_REPLY_LEN: usize = HEADER_LEN + DEVICE_ID_LEN + 4;
const NAME_LEN: usize = 40;
const MAX_MESSAGE: usize = 1500;

fn header(command: u8, total_len: usize) -> Vec<u8> {
    let mut h = vec![command, 0x00];
    h.extend_from_slice(&(total_len as u16).to_be_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

/// The search request: header only.
pub fn search_request() -> Vec<u8> {
    header(CMD_SEARCH, HEADER_LEN)
}

/// The server name request for the device the search found.
pub fn server_name_request(device_id: &[u8; DEVICE_ID_LEN]) -> Vec<u8> {
    let mut r = header(CMD_SERVER_NAME, HEADER_LEN + DEVICE_ID_LEN);
    r.extend_from_slice(device_id);
    r
}

/// A datagram is a reply to `command` when its first byte is the command with bit 7 set and its
/// length field matches its size.
pub fn frame_for(command: u8) -> impl Fn(&[u8]) -> Frame {
    move |buf: &[u8]| {
        let Some(&first) = buf.first() else { return Frame::Incomplete };
        if first != command | REPLY {
            return Frame::Invalid(format!("command byte {first:#04x} does not answer {command:#04x}"));
        }
        let Some(len) = buf.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else {
            return Frame::Incomplete;
        };
        if !(HEADER_LEN..=MAX_MESSAGE).contains(&len) || len > buf.len() {
            return Frame::Invalid(format!("length field {len} disagrees with {} bytes", buf.len()));
        }
        Frame::Complete(len)
    }
}

pub use super::ParseError;

/// What the search reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchReply {
    pub device_id: [u8; DEVICE_ID_LEN],
    pub model_id: u16,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
}

fn check_header(buf: &[u8], command: u8, min_len: usize) -> Result<(), ParseError> {
    let h = buf.get(..HEADER_LEN).ok_or_else(|| ParseError::new("shorter than a Moxa header"))?;
    if h[0] == command {
        return Err(ParseError::new("a request, not a reply (an echo?)"));
    }
    if h[0] != command | REPLY {
        return Err(ParseError::new(format!("command byte {:#04x} does not answer {command:#04x}", h[0])));
    }
    if h[1] != 0 {
        return Err(ParseError::new(format!("status {:#04x}", h[1])));
    }
    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
    if len != buf.len() {
        return Err(ParseError::new(format!("length field {len} disagrees with {} bytes", buf.len())));
    }
    if len < min_len {
        return Err(ParseError::new(format!("reply of {len} bytes, at least {min_len} expected")));
    }
    Ok(())
}

pub fn parse_search(buf: &[u8]) -> Result<SearchReply, ParseError> {
    check_header(buf, CMD_SEARCH, SEARCH_REPLY_LEN)?;
    let mut device_id = [0u8; DEVICE_ID_LEN];
    device_id.copy_from_slice(&buf[HEADER_LEN..HEADER_LEN + DEVICE_ID_LEN]);
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&device_id[6..]);
    if mac.iter().all(|&b| b == 0) || mac.iter().all(|&b| b == 0xff) {
        return Err(ParseError::new("no MAC address"));
    }
    let ip = &buf[HEADER_LEN + DEVICE_ID_LEN..HEADER_LEN + DEVICE_ID_LEN + 4];
    Ok(SearchReply {
        device_id,
        model_id: u16::from_le_bytes([device_id[4], device_id[5]]),
        mac,
        ip: Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]),
    })
}

/// Parses the server name reply; it must carry the device id we asked about.
pub fn parse_server_name(buf: &[u8], device_id: &[u8; DEVICE_ID_LEN]) -> Result<String, ParseError> {
    check_header(buf, CMD_SERVER_NAME, HEADER_LEN + DEVICE_ID_LEN + 1)?;
    if buf[HEADER_LEN..HEADER_LEN + DEVICE_ID_LEN] != device_id[..] {
        return Err(ParseError::new("server name reply is about another device"));
    }
    let field = &buf[HEADER_LEN + DEVICE_ID_LEN..];
    let field = &field[..field.len().min(NAME_LEN)];
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let name = &field[..end];
    if !name.iter().all(|&b| b == b' ' || b.is_ascii_graphic()) {
        return Err(ParseError::new("server name is not printable ASCII"));
    }
    Ok(String::from_utf8_lossy(name).trim().to_string())
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).udp(&[4800]);

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let conn = session.conn();
    let reply = conn.exchange(&search_request(), frame_for(CMD_SEARCH)).await?;
    let found = parse_search(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.0))?;
    let mut id = Identity::new(PROTOCOL, true);
    id.field("model_id", found.model_id);
    id.field("mac", format_mac(&found.mac));
    id.field("ip_address", found.ip.to_string());

    let name = match conn.exchange(&server_name_request(&found.device_id), frame_for(CMD_SERVER_NAME)).await {
        Ok(reply) => parse_server_name(&reply, &found.device_id).map_err(|e| e.0),
        Err(e) => Err(e.to_string()),
    };
    match name {
        Ok(name) => {
            id.field("server_name", name);
        }
        // The search reply already proved the protocol.
        Err(why) => tracing::debug!("moxa: no server name: {why}"),
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real NPort's search reply (published in a protocol study): model 0x5110, MAC
    /// 00:90:e8:2c:a8:59, IP 192.168.0.7.
    const REAL_SEARCH_REPLY: &[u8] =
        b"\x81\x00\x00\x18\x00\x00\x00\x00\x10Q\x00\x80\x10Q\x00\x90\xe8,\xa8Y\xc0\xa8\x00\x07";

    #[test]
    fn request_bytes() {
        assert_eq!(search_request(), [0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00]);
        let dev = [0x10, 0x51, 0x00, 0x80, 0x10, 0x51, 0x00, 0x90, 0xe8, 0x2c, 0xa8, 0x59];
        let mut want = vec![0x10, 0x00, 0x00, 0x14, 0, 0, 0, 0];
        want.extend_from_slice(&dev);
        assert_eq!(server_name_request(&dev), want);
    }

    #[test]
    fn real_search_reply() {
        assert_eq!(frame_for(CMD_SEARCH)(REAL_SEARCH_REPLY), Frame::Complete(24));
        let r = parse_search(REAL_SEARCH_REPLY).unwrap();
        assert_eq!(r.model_id, 0x5110);
        assert_eq!(format_mac(&r.mac), "00:90:e8:2c:a8:59");
        assert_eq!(r.ip, Ipv4Addr::new(192, 168, 0, 7));
    }

    #[test]
    fn nport_5110a_search_reply() {
        let b = [
            0x81, 0, 0, 0x18, 0, 0, 0, 0, 0x00, 0x55, 0x55, 0x55, 0x1a, 0x51, 0x00, 0x90, 0xe8, 0xaa, 0xaa, 0xaa, 192,
            168, 127, 254,
        ];
        let r = parse_search(&b).unwrap();
        assert_eq!(r.model_id, 0x511a);
        assert_eq!(r.ip, Ipv4Addr::new(192, 168, 127, 254));
    }

    #[test]
    fn server_name_reply() {
        let dev: [u8; 12] = REAL_SEARCH_REPLY[8..20].try_into().unwrap();
        let mut b = vec![0x90, 0x00, 0x00, 0x3c, 0, 0, 0, 0];
        b.extend_from_slice(&dev);
        let mut name = b"TELEGESTION".to_vec();
        name.resize(40, 0);
        b.extend_from_slice(&name);
        assert_eq!(frame_for(CMD_SERVER_NAME)(&b), Frame::Complete(60));
        assert_eq!(parse_server_name(&b, &dev).unwrap(), "TELEGESTION");
        let other = [0u8; 12];
        assert!(parse_server_name(&b, &other).is_err());
    }

    #[test]
    fn rejects_echo_garbage_truncation_and_lies() {
        assert!(parse_search(&search_request()).is_err());
        assert!(matches!(frame_for(CMD_SEARCH)(&search_request()), Frame::Invalid(_)));
        for cut in 0..REAL_SEARCH_REPLY.len() {
            assert!(parse_search(&REAL_SEARCH_REPLY[..cut]).is_err(), "cut at {cut}");
        }
        let mut long_claim = REAL_SEARCH_REPLY.to_vec();
        long_claim[3] = 0x40;
        assert!(parse_search(&long_claim).is_err());
        assert!(matches!(frame_for(CMD_SEARCH)(&long_claim), Frame::Invalid(_)));
        let mut status = REAL_SEARCH_REPLY.to_vec();
        status[1] = 0x04;
        assert!(parse_search(&status).is_err());
        let mut zero_mac = REAL_SEARCH_REPLY.to_vec();
        zero_mac[14..20].fill(0);
        assert!(parse_search(&zero_mac).is_err());
        assert!(matches!(frame_for(CMD_SEARCH)(b"garbage datagram"), Frame::Invalid(_)));
        let dev = [1u8; 12];
        let mut bad_name = vec![0x90, 0x00, 0x00, 0x18, 0, 0, 0, 0];
        bad_name.extend_from_slice(&dev);
        bad_name.extend_from_slice(&[0x41, 0x07, 0x42, 0x00]);
        assert!(parse_server_name(&bad_name, &dev).is_err());
    }
}
