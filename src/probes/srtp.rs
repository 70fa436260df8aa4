//! GE SRTP (Service Request Transport Protocol) on 18245/tcp: GE Fanuc / Emerson Series 90 and
//! PACSystems controllers.
//!
//! Facts (the out-of-tree GE SRTP Wireshark dissector, packet-ge-srtp; the DFRWS 2017 SRTP paper as applied by drivers tested on
//! RX3i CPUs; two independent client libraries that build the same request mailbox; Shodan's signature):
//! - A session starts with an initialisation message of 56 zero bytes. The controller answers with a
//!   56-byte message whose first byte is `01` (Shodan's signature also has `0F` at offset 8).
//! - Every later message is a 56-byte mailbox, optionally followed by a text buffer whose length is
//!   bytes 4-5 (little-endian). Byte 0 is `02` in requests and `03` in replies; bytes 2-3 are the
//!   sequence number (echoed), byte 30 the mailbox sequence number, byte 31 the mailbox type
//!   (`C0` initial request, `D4` completion ACK, `94` completion ACK with text buffer, `D1` error NACK);
//!   bytes 32-35 / 36-39 source and destination (`10 0E 00 00`: the CPU), 40-41 packet number / count,
//!   byte 42 the service request code.
//! - In a completion ACK, bytes 50-55 piggy-back the controller status: control program number (50),
//!   privilege level (51), last sweep time (52-53), PLC status word (54-55, LE; the PLC state is bits
//!   12-15). An error NACK carries the major (42) and minor (43) error status.
//! - Service `01` (PLC long status) answers with a text buffer whose bytes 18-33 hold the name of the
//!   control program.
//!
//! Both requests read: the all-zero initialisation opens the connection, and service `01` returns the
//! controller's status. No memory is written and the PLC state is never changed.
//!
//! No model is reported. Service `43` ("return controller type and ID") is named in GE's SNP manual
//! (GFK-0529) and in the dissectors, but no readable public source documents its reply: the dissectors
//! show its text buffer as raw bytes, and the one scanner that parses it first sends session control
//! (`4F`, which changes the session) and reads only the user-set controller name and an undocumented
//! type byte. So it is not sent.

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, NetError, Session};

pub const PROTOCOL: &str = "srtp";

pub const MAILBOX_LEN: usize = 56;
/// Text buffers of the status replies are small; a larger claim is not this protocol.
const MAX_TEXT: usize = 4096;
const TYPE_INIT_ACK: u8 = 0x01;
const TYPE_REQUEST: u8 = 0x02;
const TYPE_REPLY: u8 = 0x03;
pub const MAILBOX_REQUEST: u8 = 0xc0;
pub const MAILBOX_ACK: u8 = 0xd4;
pub const MAILBOX_ACK_TEXT: u8 = 0x94;
pub const MAILBOX_NACK: u8 = 0xd1;
pub const SERVICE_LONG_STATUS: u8 = 0x01;
/// The sequence number of our one service request.
pub const STATUS_SEQUENCE: u16 = 1;
/// Where the long status text buffer carries the control program name.
const PROGRAM_NAME: std::ops::Range<usize> = 18..34;

/// The initialisation message: 56 zero bytes.
pub fn init_request() -> Vec<u8> {
    vec![0; MAILBOX_LEN]
}

/// A PLC long status request (service 01) in an initial-request mailbox to the CPU.
pub fn long_status_request(sequence: u16) -> Vec<u8> {
    let mut r = vec![0u8; MAILBOX_LEN];
    r[0] = TYPE_REQUEST;
    r[2..4].copy_from_slice(&sequence.to_le_bytes());
    // Constant in the requests of both client libraries.
    r[9] = 0x01;
    r[17] = 0x01;
    r[30] = sequence as u8;
    r[31] = MAILBOX_REQUEST;
    // Destination: the CPU's mailbox.
    r[36] = 0x10;
    r[37] = 0x0e;
    // Packet 1 of 1.
    r[40] = 0x01;
    r[41] = 0x01;
    r[42] = SERVICE_LONG_STATUS;
    r[43..48].copy_from_slice(&[0x00, 0x00, 0x00, 0x02, 0x00]);
    r
}

/// One message: the 56-byte mailbox plus the text buffer its bytes 4-5 announce. Our own messages
/// (types 00 and 02) echoed back are refused at once.
pub fn frame(buf: &[u8]) -> Frame {
    if let Some(&b) = buf.first() {
        if b != TYPE_INIT_ACK && b != TYPE_REPLY {
            return Frame::Invalid(format!("message type {b:#04x} is not an SRTP reply"));
        }
    }
    if buf.len() < MAILBOX_LEN {
        return Frame::Incomplete;
    }
    let text = u16::from_le_bytes([buf[4], buf[5]]) as usize;
    if text > MAX_TEXT {
        return Frame::Invalid(format!("text buffer of {text} bytes"));
    }
    let total = MAILBOX_LEN + text;
    if buf.len() >= total {
        Frame::Complete(total)
    } else {
        Frame::Incomplete
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message of {0} bytes is shorter than a mailbox")]
    Truncated(usize),
    #[error("message type {0:#04x} is not the one expected")]
    WrongType(u8),
    #[error("sequence {got} does not echo the request's {expected}")]
    WrongSequence { expected: u16, got: u16 },
    #[error("mailbox type {0:#04x} is not a reply")]
    WrongMailbox(u8),
}

/// The controller's answer to the initialisation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReply {
    /// Byte 8 is 0F, as in Shodan's signature.
    pub signature: bool,
}

pub fn parse_init_reply(buf: &[u8]) -> Result<InitReply, ParseError> {
    let mailbox = buf.get(..MAILBOX_LEN).ok_or(ParseError::Truncated(buf.len()))?;
    if mailbox[0] != TYPE_INIT_ACK {
        return Err(ParseError::WrongType(mailbox[0]));
    }
    Ok(InitReply { signature: mailbox[8] == 0x0f })
}

/// The reply to a service request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceReply {
    /// Completion ACK (with or without text buffer).
    Ack {
        privilege_level: u8,
        status_word: u16,
        /// From the long status text buffer, when present and printable.
        program_name: Option<String>,
    },
    /// Error NACK: major and minor error status.
    Nack { major: u8, minor: u8 },
}

/// Parses the reply to the long status request sent with `sequence`.
pub fn parse_status_reply(buf: &[u8], sequence: u16) -> Result<ServiceReply, ParseError> {
    let m = buf.get(..MAILBOX_LEN).ok_or(ParseError::Truncated(buf.len()))?;
    if m[0] != TYPE_REPLY {
        return Err(ParseError::WrongType(m[0]));
    }
    let seq = u16::from_le_bytes([m[2], m[3]]);
    if seq != sequence {
        return Err(ParseError::WrongSequence { expected: sequence, got: seq });
    }
    match m[31] {
        MAILBOX_NACK => Ok(ServiceReply::Nack { major: m[42], minor: m[43] }),
        t @ (MAILBOX_ACK | MAILBOX_ACK_TEXT) => {
            let program_name = if t == MAILBOX_ACK_TEXT {
                buf.get(MAILBOX_LEN..).and_then(|text| text.get(PROGRAM_NAME)).and_then(program_name)
            } else {
                None
            };
            Ok(ServiceReply::Ack {
                privilege_level: m[51],
                status_word: u16::from_le_bytes([m[54], m[55]]),
                program_name,
            })
        }
        t => Err(ParseError::WrongMailbox(t)),
    }
}

fn program_name(raw: &[u8]) -> Option<String> {
    let raw = raw.iter().position(|&b| b == 0).map_or(raw, |nul| &raw[..nul]);
    if !raw.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    let s = String::from_utf8_lossy(raw).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The PLC state of a status word (bits 12-15), as the protocol names it.
pub fn plc_state(status_word: u16) -> Option<&'static str> {
    Some(match status_word >> 12 {
        0 => "Run I/O enabled",
        1 => "Run I/O disabled",
        2 => "Stop I/O disabled",
        3 => "CPU stop faulted",
        4 => "CPU halted",
        5 => "CPU suspended",
        6 => "Stop I/O enabled",
        _ => return None,
    })
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[18245]);

fn not_this(e: impl ToString) -> ProbeError {
    ProbeError::not(PROTOCOL, e.to_string())
}

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let conn = session.conn();
    let reply = conn.exchange(&init_request(), frame).await.map_err(|e| match e {
        NetError::Invalid(why) => not_this(why),
        e => e.into(),
    })?;
    let init = parse_init_reply(&reply).map_err(not_this)?;
    let status = match conn.exchange(&long_status_request(STATUS_SEQUENCE), frame).await {
        Ok(r) => parse_status_reply(&r, STATUS_SEQUENCE).ok(),
        Err(_) => None,
    };
    let mut identity = Identity::new(PROTOCOL, true);
    match status {
        Some(ServiceReply::Ack { privilege_level, status_word, program_name }) => {
            if let Some(state) = plc_state(status_word) {
                identity.field("plc_state", state);
            }
            identity.field("privilege_level", privilege_level);
            if let Some(name) = program_name {
                identity.field("program_name", name);
            }
        }
        // An error reply still proves the protocol.
        Some(ServiceReply::Nack { major, minor }) => {
            identity.field("major_error_status", major).field("minor_error_status", minor);
        }
        // Without a valid service reply, only the init acknowledgement's full signature counts.
        None if init.signature => {}
        None => return Err(not_this("init acknowledged without the signature, and no valid service reply")),
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The controller's answer to the initialisation, as Shodan's signature and the client libraries
    /// describe it.
    fn init_ack() -> Vec<u8> {
        let mut r = vec![0u8; MAILBOX_LEN];
        r[0] = 0x01;
        r[8] = 0x0f;
        r
    }

    /// A completion ACK with text buffer answering the long status request.
    fn status_ack(sequence: u16, status_word: u16, name: &str) -> Vec<u8> {
        let mut text = vec![0u8; 40];
        text[18..18 + name.len()].copy_from_slice(name.as_bytes());
        let mut r = vec![0u8; MAILBOX_LEN];
        r[0] = TYPE_REPLY;
        r[2..4].copy_from_slice(&sequence.to_le_bytes());
        r[4..6].copy_from_slice(&(text.len() as u16).to_le_bytes());
        r[30] = sequence as u8;
        r[31] = MAILBOX_ACK_TEXT;
        r[51] = 2;
        r[52..54].copy_from_slice(&12u16.to_le_bytes());
        r[54..56].copy_from_slice(&status_word.to_le_bytes());
        r.extend_from_slice(&text);
        r
    }

    #[test]
    fn requests_are_the_documented_mailboxes() {
        assert_eq!(init_request(), vec![0u8; 56]);
        let r = long_status_request(1);
        let expected = hex::decode(concat!(
            "02000100000000000001000000000000000100000000000000000000000001c0",
            "00000000100e000001010100000002000000000000000000"
        ))
        .unwrap();
        assert_eq!(r, expected);
        assert_eq!(r.len(), MAILBOX_LEN);
    }

    #[test]
    fn parses_the_init_ack() {
        let r = init_ack();
        assert_eq!(frame(&r), Frame::Complete(56));
        assert_eq!(parse_init_reply(&r), Ok(InitReply { signature: true }));
        let mut plain = r.clone();
        plain[8] = 0;
        assert_eq!(parse_init_reply(&plain), Ok(InitReply { signature: false }));
    }

    #[test]
    fn parses_a_long_status_reply() {
        let r = status_ack(1, 0x0100, "PUMPS01");
        assert_eq!(frame(&r[..56]), Frame::Incomplete, "the text buffer may come in its own segment");
        assert_eq!(frame(&r), Frame::Complete(96));
        let reply = parse_status_reply(&r, 1).unwrap();
        assert_eq!(
            reply,
            ServiceReply::Ack { privilege_level: 2, status_word: 0x0100, program_name: Some("PUMPS01".into()) }
        );
        assert_eq!(plc_state(0x0100), Some("Run I/O enabled"));
        assert_eq!(plc_state(0x6000), Some("Stop I/O enabled"));
        assert_eq!(plc_state(0x3020), Some("CPU stop faulted"));
        assert_eq!(plc_state(0x7000), None);
    }

    #[test]
    fn an_ack_without_text_and_a_nack_are_replies() {
        let mut ack = status_ack(1, 0x2000, "");
        ack.truncate(MAILBOX_LEN);
        ack[4] = 0;
        ack[31] = MAILBOX_ACK;
        assert_eq!(
            parse_status_reply(&ack, 1),
            Ok(ServiceReply::Ack { privilege_level: 2, status_word: 0x2000, program_name: None })
        );
        let mut nack = ack.clone();
        nack[31] = MAILBOX_NACK;
        nack[42] = 0x05;
        nack[43] = 0xf4;
        assert_eq!(parse_status_reply(&nack, 1), Ok(ServiceReply::Nack { major: 5, minor: 0xf4 }));
    }

    #[test]
    fn echoes_and_malformed_replies_are_refused() {
        assert!(matches!(frame(&init_request()), Frame::Invalid(_)));
        assert!(matches!(frame(&long_status_request(1)), Frame::Invalid(_)));
        assert!(matches!(frame(b"\x03\x00\x00\x00\xff\xff"), Frame::Incomplete));
        let mut huge = init_ack();
        huge[4..6].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(matches!(frame(&huge), Frame::Invalid(_)));
        assert_eq!(frame(&[]), Frame::Incomplete);

        assert_eq!(parse_init_reply(&init_ack()[..55]), Err(ParseError::Truncated(55)));
        assert_eq!(parse_init_reply(&init_request()), Err(ParseError::WrongType(0)));
        let r = status_ack(1, 0, "X");
        assert_eq!(parse_status_reply(&r[..40], 1), Err(ParseError::Truncated(40)));
        assert_eq!(parse_status_reply(&r, 2), Err(ParseError::WrongSequence { expected: 2, got: 1 }));
        assert_eq!(parse_status_reply(&init_ack(), 1), Err(ParseError::WrongType(1)));
        assert_eq!(parse_status_reply(&long_status_request(1), 1), Err(ParseError::WrongType(2)));
        let mut odd = r.clone();
        odd[31] = MAILBOX_REQUEST;
        assert_eq!(parse_status_reply(&odd, 1), Err(ParseError::WrongMailbox(0xc0)));
        // A text buffer too short for the program name, or not text, leaves the name out.
        let mut short = status_ack(1, 0, "");
        short.truncate(MAILBOX_LEN + 20);
        assert!(matches!(parse_status_reply(&short, 1), Ok(ServiceReply::Ack { program_name: None, .. })));
        let mut binary = status_ack(1, 0, "AB");
        binary[MAILBOX_LEN + 19] = 0x01;
        assert!(matches!(parse_status_reply(&binary, 1), Ok(ServiceReply::Ack { program_name: None, .. })));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for len in 0..200usize {
            let mut buf: Vec<u8> = (0..len).map(|i| (i * 29 % 256) as u8).collect();
            for first in [0x01, 0x03] {
                if let Some(b) = buf.first_mut() {
                    *b = first;
                }
                let _ = frame(&buf);
                let _ = parse_init_reply(&buf);
                let _ = parse_status_reply(&buf, 1);
            }
        }
    }
}
