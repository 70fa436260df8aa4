//! DNP3 over TCP and UDP (20000/tcp, 20000/udp): data-link Request Link Status frames to a bounded
//! set of outstation addresses; the outstation's link-layer answer reveals its own address.
//!
//! Over UDP each request is a datagram of its own, and the answer is matched by content on a socket
//! that reads any source port of the outstation's address (an outstation may answer from another
//! port than 20000).
//!
//! Written from IEEE 1815-2012 (DNP3), clause 9 (data link layer: FT3 frame, CRC-16/DNP, control
//! octet, reserved addresses). Request Link Status is a link-layer keep-alive: it carries no user
//! data, resets nothing and never reaches the application layer, so it cannot change the outstation.

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, NetError, Session};
use crate::scope::Transport;
use tokio::time::{timeout_at, Instant};

pub const PROTOCOL: &str = "dnp3";

const START: [u8; 2] = [0x05, 0x64];
const HEADER_LEN: usize = 10;
/// The length octet counts control, destination and source (5) plus user data (at most 250).
const MIN_LENGTH: u8 = 5;
const MAX_USER_DATA: usize = 250;
/// User data travels in blocks of up to 16 bytes, each followed by its CRC.
const BLOCK: usize = 16;

const DIR: u8 = 0x80;
const PRM: u8 = 0x40;
/// DIR=1 (from a master), PRM=1 (primary), FCB=0, FCV=0, function 9: Request Link Status.
const CONTROL_REQUEST_LINK_STATUS: u8 = DIR | PRM | 0x09;

/// IEEE 1815-2012: 0xFFFC is the optional "self address" (an outstation that enables it answers as if
/// addressed by its own address); 0xFFFD-0xFFFF are broadcasts, which are never answered at the link
/// layer, so they are not swept.
const SELF_ADDRESS: u16 = 0xFFFC;

/// The sweep: (master address used as source, destinations), in the order sent.
/// - Master 1 first: it is opendnp3's default master address (its default outstation address is
///   1024), and outstations that check the source address only answer their configured master.
/// - Destinations 0-10 cover the usual hand-set outstation addresses, 1024 the opendnp3 default,
///   0xFFFC the self address.
/// - Then masters 3 (with outstation 4: the defaults of Triangle MicroWorks-based
///   masters such as Ignition's DNP3 driver) and 0, on the commonest outstation addresses.
const SWEEP: [(u16, &[u16]); 3] = [
    (1, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1024, SELF_ADDRESS]),
    (3, &[1, 4, 10, 1024, SELF_ADDRESS]),
    (0, &[1, 4, 10, 1024, SELF_ADDRESS]),
];
/// Batches sent before waiting for replies (each wait costs at most one read timeout). Every frame of
/// the sweep goes in the first, so a silent port costs one wait; the second is sent only when the
/// peer hung up before answering (an outstation that drops a connection from a master it does not
/// know), on a fresh connection, with the other masters' frames.
const BATCHES: [&[usize]; 2] = [&[0, 1, 2], &[1, 2]];
/// Frames read after one batch before giving up on it.
const MAX_FRAMES_PER_BATCH: usize = 32;

pub use super::ParseError;

/// CRC-16/DNP: polynomial 0x3D65 (bit-reversed 0xA6BC), initial value 0, final complement;
/// sent low byte first.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &byte in data {
        crc ^= byte as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA6BC } else { crc >> 1 };
        }
    }
    !crc
}

/// Request Link Status: `05 64 05 C9 <destination LE> <source LE> <CRC LE>`.
pub fn request_link_status(destination: u16, source: u16) -> Vec<u8> {
    let mut frame = vec![START[0], START[1], MIN_LENGTH, CONTROL_REQUEST_LINK_STATUS];
    frame.extend_from_slice(&destination.to_le_bytes());
    frame.extend_from_slice(&source.to_le_bytes());
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

/// The size on the wire of a frame whose length octet is `length`.
fn frame_size(length: u8) -> usize {
    let data = (length - MIN_LENGTH) as usize;
    HEADER_LEN + data + 2 * data.div_ceil(BLOCK)
}

/// Framing for [`crate::net::Conn::recv_frame`]: one FT3 frame; the header CRC is checked as soon
/// as the header is in, so garbage is refused early.
pub fn frame(buf: &[u8]) -> Frame {
    for (i, want) in START.iter().enumerate() {
        match buf.get(i) {
            Some(b) if b != want => {
                return Frame::Invalid(format!("start octets are not 05 64 (byte {i} is {b:#04x})"))
            }
            Some(_) => {}
            None => return Frame::Incomplete,
        }
    }
    let Some(header) = buf.get(..HEADER_LEN) else { return Frame::Incomplete };
    if header[2] < MIN_LENGTH {
        return Frame::Invalid(format!("length octet {} is below 5", header[2]));
    }
    if crc16(&header[..8]).to_le_bytes() != header[8..10] {
        return Frame::Invalid("header CRC mismatch".into());
    }
    let size = frame_size(header[2]);
    if buf.len() >= size {
        Frame::Complete(size)
    } else {
        Frame::Incomplete
    }
}

/// One data-link frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFrame {
    pub control: u8,
    pub destination: u16,
    pub source: u16,
    /// User data with the block CRCs removed (at most 250 bytes).
    pub user_data: Vec<u8>,
}

impl LinkFrame {
    /// DIR: set on frames from a master, clear on frames from an outstation.
    pub fn sent_by_master(&self) -> bool {
        self.control & DIR != 0
    }

    /// PRM: set on primary (initiating) frames, clear on secondary (responding) ones.
    pub fn primary(&self) -> bool {
        self.control & PRM != 0
    }

    pub fn function(&self) -> u8 {
        self.control & 0x0F
    }

    /// The link function's name, or `None` for a code IEEE 1815 does not define for this direction.
    pub fn function_name(&self) -> Option<&'static str> {
        let name = if self.primary() {
            match self.function() {
                0 => "reset_link_states",
                1 => "reset_user_process",
                2 => "test_link_states",
                3 => "confirmed_user_data",
                4 => "unconfirmed_user_data",
                9 => "request_link_status",
                _ => return None,
            }
        } else {
            match self.function() {
                0 => "ack",
                1 => "nack",
                11 => "link_status",
                15 => "not_supported",
                _ => return None,
            }
        };
        Some(name)
    }
}

/// Parses one whole frame: start octets, length, header CRC, and every user-data block's CRC.
pub fn parse_frame(bytes: &[u8]) -> Result<LinkFrame, ParseError> {
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| ParseError::new(format!("{} bytes is shorter than a header", bytes.len())))?;
    if header[..2] != START {
        return Err(ParseError::new("start octets are not 05 64"));
    }
    let length = header[2];
    if length < MIN_LENGTH {
        return Err(ParseError::new(format!("length octet {length} is below 5")));
    }
    if crc16(&header[..8]).to_le_bytes() != header[8..10] {
        return Err(ParseError::new("header CRC mismatch"));
    }
    let size = frame_size(length);
    if bytes.len() != size {
        return Err(ParseError::new(format!("length octet {length} means {size} bytes, got {}", bytes.len())));
    }
    let data_len = (length - MIN_LENGTH) as usize;
    let mut user_data = Vec::with_capacity(data_len.min(MAX_USER_DATA));
    let mut rest = &bytes[HEADER_LEN..];
    while !rest.is_empty() {
        let n = (data_len - user_data.len()).min(BLOCK);
        let (block, crc) = (rest.get(..n), rest.get(n..n + 2));
        let (Some(block), Some(crc)) = (block, crc) else { return Err(ParseError::new("user data block truncated")) };
        if crc16(block).to_le_bytes() != crc {
            return Err(ParseError::new(format!("CRC mismatch in user data block {}", user_data.len() / BLOCK)));
        }
        user_data.extend_from_slice(block);
        rest = &rest[n + 2..];
    }
    Ok(LinkFrame {
        control: header[3],
        destination: u16::from_le_bytes([header[4], header[5]]),
        source: u16::from_le_bytes([header[6], header[7]]),
        user_data,
    })
}

/// Whether a valid frame proves an outstation answered: it comes from an outstation (DIR clear) with
/// a defined link function, and a response (secondary frame) is addressed to one of our masters.
fn answers(frame: &LinkFrame, masters: &[u16]) -> bool {
    !frame.sent_by_master()
        && frame.function_name().is_some()
        && (frame.primary() || masters.contains(&frame.destination))
}

fn identity(frame: &LinkFrame) -> Identity {
    let mut identity = Identity::new(PROTOCOL, true);
    identity.field("source_address", frame.source);
    identity.field("destination_address", frame.destination);
    if let Some(name) = frame.function_name() {
        identity.field("link_function", name);
    }
    identity
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session)))
    .tcp(&[20000])
    .udp(&[20000])
    .udp_replies_from_any_port();

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut masters: Vec<u16> = Vec::new();
    let mut closed = false;
    for (i, batch) in BATCHES.into_iter().enumerate() {
        if i > 0 && !closed {
            break;
        }
        if closed {
            if session.reconnect().await.is_err() {
                break;
            }
            closed = false;
        }
        // Several frames back to back (over UDP, one datagram each): an outstation answers only the
        // one addressed to it.
        let first = sent.len();
        for &(master, destinations) in batch.iter().filter_map(|&i| SWEEP.get(i)) {
            masters.push(master);
            sent.extend(destinations.iter().map(|&destination| request_link_status(destination, master)));
        }
        let conn = session.conn();
        let udp = conn.transport() == Transport::Udp;
        let read_timeout = conn.limits().read_timeout;
        let sending = if udp {
            let mut result = Ok(());
            for request in &sent[first..] {
                result = conn.send(request).await;
                if result.is_err() {
                    break;
                }
            }
            result
        } else {
            conn.send(&sent[first..].concat()).await
        };
        match sending {
            Ok(()) => {}
            Err(NetError::Timeout(_)) => continue,
            // A UDP port that refuses (port unreachable) is closed: no other batch will do better.
            Err(e) if udp => return Err(e.into()),
            Err(_) => {
                closed = true;
                continue;
            }
        }
        let deadline = Instant::now() + read_timeout;
        for _ in 0..MAX_FRAMES_PER_BATCH {
            let bytes = match timeout_at(deadline, conn.recv_frame(frame)).await {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(NetError::Timeout(_))) | Err(_) => break,
                Ok(Err(e @ NetError::Io(_))) if udp => return Err(e.into()),
                // Over UDP, datagrams that are no frame of ours are skipped until the deadline.
                Ok(Err(NetError::Invalid(_))) if udp => break,
                Ok(Err(NetError::Closed(_) | NetError::Io(_))) => {
                    closed = true;
                    break;
                }
                Ok(Err(e)) => return Err(ProbeError::not(PROTOCOL, e.to_string())),
            };
            if sent.contains(&bytes) {
                return Err(ProbeError::not(PROTOCOL, "the peer echoed a request"));
            }
            let reply = parse_frame(&bytes).map_err(|e| ProbeError::not(PROTOCOL, e.0))?;
            if answers(&reply, &masters) {
                return Ok(identity(&reply));
            }
            tracing::debug!(control = reply.control, "dnp3: skipping a frame that answers nothing");
        }
    }
    Err(ProbeError::not(PROTOCOL, "no outstation answered a link status request"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc16(b"123456789"), 0xEA82);
    }

    /// Request Link Status frames published in captures and stacks' test suites.
    #[test]
    fn requests_are_exact() {
        assert_eq!(request_link_status(0, 0), hex("0564 05 c9 0000 0000 364c"));
        assert_eq!(request_link_status(1, 0), hex("0564 05 c9 0100 0000 de8e"));
        assert_eq!(request_link_status(10, 1), hex("0564 05 c9 0a00 0100 feda"));
        assert_eq!(request_link_status(1234, 1), hex("0564 05 c9 d204 0100 a4e4"));
        assert_eq!(request_link_status(30, 2), hex("0564 05 c9 1e00 0200 5911"));
    }

    #[test]
    fn parses_link_status_and_ack_replies() {
        // An outstation at 30 answering master 2 (from a DNP3 slave implementation's tests).
        let status = parse_frame(&hex("0564 05 0b 0200 1e00 ce0f")).unwrap();
        assert_eq!((status.destination, status.source, status.function_name()), (2, 30, Some("link_status")));
        assert!(!status.sent_by_master() && !status.primary());
        assert!(answers(&status, &[2]));
        assert!(!answers(&status, &[1]), "a response to another master");
        let ack = parse_frame(&hex("0564 05 00 0200 1e00 8d3f")).unwrap();
        assert_eq!(ack.function_name(), Some("ack"));
        let id = identity(&status);
        assert_eq!(id.fields["source_address"], 30);
        assert_eq!(id.fields["destination_address"], 2);
        assert_eq!(id.fields["link_function"], "link_status");
    }

    #[test]
    fn parses_user_data_blocks() {
        let bytes = hex("0564 0a 44 0200 1e00 cdc7 c0ca810001 44e3");
        assert_eq!(frame(&bytes), Frame::Complete(bytes.len()));
        let f = parse_frame(&bytes).unwrap();
        assert_eq!(f.user_data, hex("c0ca810001"));
        assert_eq!(f.function_name(), Some("unconfirmed_user_data"));
        assert!(answers(&f, &[1]), "an outstation's primary frame proves DNP3 whoever it is for");

        // Two blocks: 16 + 2 bytes of user data.
        let two = hex("0564 17 c4 1e00 0200 78b5 c0ca01320106 3c02063c03063c04063c 9df5 0106 75e1");
        let f = parse_frame(&two).unwrap();
        assert_eq!(f.user_data.len(), 18);
        assert_eq!(frame(&two), Frame::Complete(32));
    }

    #[test]
    fn our_own_request_does_not_answer() {
        let echo = parse_frame(&request_link_status(1, 1)).unwrap();
        assert!(echo.sent_by_master());
        assert!(!answers(&echo, &[1]));
    }

    #[test]
    fn malformed_frames_are_refused() {
        let good = hex("0564 0a 44 0200 1e00 cdc7 c0ca810001 44e3");
        for n in 0..good.len() {
            assert!(parse_frame(&good[..n]).is_err(), "truncated to {n}");
            assert!(!matches!(frame(&good[..n]), Frame::Complete(_)), "framed at {n}");
        }
        let mut bad_block = good.clone();
        bad_block[12] ^= 1;
        assert!(parse_frame(&bad_block).is_err());
        let mut bad_header = good.clone();
        bad_header[4] ^= 1;
        assert!(parse_frame(&bad_header).is_err());
        assert!(matches!(frame(&bad_header), Frame::Invalid(_)));
        assert!(matches!(frame(b"HTTP/1.0 200"), Frame::Invalid(_)));
        assert!(matches!(frame(&hex("0564 04 0b 0200 1e00 0000")), Frame::Invalid(_)));
        // A length octet that lies about the data that follows.
        let mut longer = good.clone();
        longer.extend_from_slice(&[0, 0]);
        assert!(parse_frame(&longer).is_err());
        // An undefined secondary function code.
        let f = parse_frame(&{
            let mut h = hex("0564 05 07 0100 0a00");
            let crc = crc16(&h);
            h.extend_from_slice(&crc.to_le_bytes());
            h
        })
        .unwrap();
        assert_eq!(f.function_name(), None);
        assert!(!answers(&f, &[1]));
    }

    #[test]
    fn the_largest_frame_is_bounded() {
        assert_eq!(frame_size(0xFF), 10 + 250 + 2 * 16);
    }
}
