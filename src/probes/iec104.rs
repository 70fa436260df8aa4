//! IEC 60870-5-104 (2404/tcp): a TESTFR act U-frame, answered by TESTFR con.
//!
//! Written from IEC 60870-5-104 clause 5 (APCI: start 68, length, four control octets; I, S and U
//! formats) and 5.2 (test procedure). TESTFR only tests the connection: it neither starts data
//! transfer (STARTDT, never sent) nor carries an ASDU, so the controlled station's state is unchanged.
//!
//! Proof: only the spec-defined answer to TESTFR act, a TESTFR con U-frame, identifies the protocol.
//! Other well-formed APCI frames are skipped while waiting for it: before STARTDT a controlled
//! station sends no I-frames, S-frames acknowledge I-frames we never sent, and STARTDT/STOPDT con
//! answer requests we never made, so none of them answers our request. A TESTFR act coming back is
//! our own request echoed (a station sends its own TESTFR act only after t3 of idle time, 20 s by
//! default).

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, NetError, Session};
use tokio::time::{timeout_at, Instant};

pub const PROTOCOL: &str = "iec104";

const START: u8 = 0x68;
/// The length octet counts the control octets (4) and the ASDU; an APDU is at most 253 octets.
const MIN_LENGTH: u8 = 4;
const MAX_LENGTH: u8 = 253;
/// APDUs read while waiting for TESTFR con.
const MAX_FRAMES: usize = 8;

/// TESTFR act: U-format, control octet 1 = 0100 0011.
pub const TESTFR_ACT: [u8; 6] = [START, 0x04, 0x43, 0x00, 0x00, 0x00];

pub use super::ParseError;

pub fn testfr_act() -> Vec<u8> {
    TESTFR_ACT.to_vec()
}

/// Framing for [`crate::net::Conn::recv_frame`]: one APDU.
pub fn frame(buf: &[u8]) -> Frame {
    match buf.first() {
        None => return Frame::Incomplete,
        Some(&START) => {}
        Some(b) => return Frame::Invalid(format!("start octet {b:#04x} is not 0x68")),
    }
    let Some(&length) = buf.get(1) else { return Frame::Incomplete };
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        return Frame::Invalid(format!("APDU length {length} is outside 4..=253"));
    }
    let size = 2 + length as usize;
    if buf.len() >= size {
        Frame::Complete(size)
    } else {
        Frame::Incomplete
    }
}

/// The U-format functions (control octet 1, one bit each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UFunction {
    StartDtAct,
    StartDtCon,
    StopDtAct,
    StopDtCon,
    TestFrAct,
    TestFrCon,
}

/// One APDU's control information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Apdu {
    /// Information transfer: send and receive sequence numbers and the ASDU's length.
    I { send_sequence: u16, receive_sequence: u16, asdu_len: usize },
    /// Numbered supervisory function: an acknowledgement up to a receive sequence number.
    S { receive_sequence: u16 },
    /// Unnumbered control function.
    U(UFunction),
}

/// Parses one whole APDU: start octet, length, and a control field of one of the three formats.
pub fn parse_apdu(bytes: &[u8]) -> Result<Apdu, ParseError> {
    let Some(&[start, length, c1, c2, c3, c4]) = bytes.get(..6) else {
        return Err(ParseError::new(format!("{} bytes is shorter than an APCI", bytes.len())));
    };
    if start != START {
        return Err(ParseError::new(format!("start octet {start:#04x} is not 0x68")));
    }
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) || bytes.len() != 2 + length as usize {
        return Err(ParseError::new(format!("APDU length {length} disagrees with the {} bytes received", bytes.len())));
    }
    let asdu_len = length as usize - 4;
    if c1 & 0x01 == 0 {
        if c3 & 0x01 != 0 {
            return Err(ParseError::new("I-format control octet 3 has its low bit set"));
        }
        if asdu_len == 0 {
            return Err(ParseError::new("I-format APDU without an ASDU"));
        }
        let send_sequence = (u16::from(c2) << 7) | u16::from(c1 >> 1);
        let receive_sequence = (u16::from(c4) << 7) | u16::from(c3 >> 1);
        return Ok(Apdu::I { send_sequence, receive_sequence, asdu_len });
    }
    if asdu_len != 0 {
        return Err(ParseError::new("S- and U-format APDUs carry no ASDU"));
    }
    if c1 & 0x03 == 0x01 {
        if c1 != 0x01 || c2 != 0 || c3 & 0x01 != 0 {
            return Err(ParseError::new("malformed S-format control field"));
        }
        return Ok(Apdu::S { receive_sequence: (u16::from(c4) << 7) | u16::from(c3 >> 1) });
    }
    if c2 != 0 || c3 != 0 || c4 != 0 {
        return Err(ParseError::new("U-format control octets 2-4 are not zero"));
    }
    let function = match c1 {
        0x07 => UFunction::StartDtAct,
        0x0B => UFunction::StartDtCon,
        0x13 => UFunction::StopDtAct,
        0x23 => UFunction::StopDtCon,
        0x43 => UFunction::TestFrAct,
        0x83 => UFunction::TestFrCon,
        other => return Err(ParseError::new(format!("U-format control octet {other:#04x} sets no single function"))),
    };
    Ok(Apdu::U(function))
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[2404]);

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let conn = session.conn();
    let deadline = Instant::now() + conn.limits().read_timeout;
    conn.send(&testfr_act()).await?;
    let mut why = "no TESTFR con".to_string();
    for _ in 0..MAX_FRAMES {
        let bytes = match timeout_at(deadline, conn.recv_frame(frame)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(NetError::Invalid(e))) => return Err(ProbeError::not(PROTOCOL, e)),
            Ok(Err(e)) => return Err(ProbeError::not(PROTOCOL, format!("{why}: {e}"))),
            Err(_) => break,
        };
        match parse_apdu(&bytes).map_err(|e| ProbeError::not(PROTOCOL, e.0))? {
            Apdu::U(UFunction::TestFrCon) => {
                let mut identity = Identity::new(PROTOCOL, true);
                identity.field("testfr", "con");
                return Ok(identity);
            }
            Apdu::U(UFunction::TestFrAct) => why = "the peer echoed TESTFR act".into(),
            other => {
                tracing::debug!("iec104: skipping {other:?} while waiting for TESTFR con");
                why = format!("{other:?} does not answer TESTFR act");
            }
        }
    }
    Err(ProbeError::not(PROTOCOL, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_exact() {
        assert_eq!(testfr_act(), [0x68, 0x04, 0x43, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn parses_u_frames() {
        assert_eq!(parse_apdu(&[0x68, 4, 0x83, 0, 0, 0]).unwrap(), Apdu::U(UFunction::TestFrCon));
        assert_eq!(parse_apdu(&TESTFR_ACT).unwrap(), Apdu::U(UFunction::TestFrAct));
        assert_eq!(parse_apdu(&[0x68, 4, 0x0B, 0, 0, 0]).unwrap(), Apdu::U(UFunction::StartDtCon));
        assert_eq!(parse_apdu(&[0x68, 4, 0x23, 0, 0, 0]).unwrap(), Apdu::U(UFunction::StopDtCon));
        assert_eq!(parse_apdu(&[0x68, 4, 0x07, 0, 0, 0]).unwrap(), Apdu::U(UFunction::StartDtAct));
        assert_eq!(parse_apdu(&[0x68, 4, 0x13, 0, 0, 0]).unwrap(), Apdu::U(UFunction::StopDtAct));
    }

    #[test]
    fn parses_s_and_i_frames() {
        // S-frame acknowledging up to receive sequence 5: octet 3 = 5 << 1.
        assert_eq!(parse_apdu(&[0x68, 4, 0x01, 0, 0x0A, 0]).unwrap(), Apdu::S { receive_sequence: 5 });
        // I-frame N(S)=0 N(R)=0 carrying M_EI_NA_1 (end of initialisation), COT 4, common address 1, IOA 0.
        let i = [0x68, 0x0E, 0, 0, 0, 0, 0x46, 0x01, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(frame(&i), Frame::Complete(16));
        assert_eq!(parse_apdu(&i).unwrap(), Apdu::I { send_sequence: 0, receive_sequence: 0, asdu_len: 10 });
        let i2 = [0x68, 0x05, 0x02, 0x01, 0x04, 0x00, 0x2D];
        assert_eq!(parse_apdu(&i2).unwrap(), Apdu::I { send_sequence: 129, receive_sequence: 2, asdu_len: 1 });
    }

    #[test]
    fn framing_follows_the_length_octet() {
        assert_eq!(frame(&[]), Frame::Incomplete);
        assert_eq!(frame(&[0x68]), Frame::Incomplete);
        assert_eq!(frame(&[0x68, 4, 0x83]), Frame::Incomplete);
        assert_eq!(frame(&[0x68, 4, 0x83, 0, 0, 0, 0x68]), Frame::Complete(6));
        assert!(matches!(frame(b"HTTP/1.1"), Frame::Invalid(_)));
        assert!(matches!(frame(&[0x68, 3]), Frame::Invalid(_)));
        assert!(matches!(frame(&[0x68, 254]), Frame::Invalid(_)));
    }

    #[test]
    fn malformed_apdus_are_refused() {
        let good = [0x68, 4, 0x83, 0, 0, 0];
        for n in 0..good.len() {
            assert!(parse_apdu(&good[..n]).is_err(), "truncated to {n}");
        }
        for bad in [
            [0x68, 4, 0x83, 1, 0, 0], // U-format with a non-zero octet 2
            [0x68, 4, 0xC3, 0, 0, 0], // two U functions at once
            [0x68, 4, 0x03, 0, 0, 0], // no U function
            [0x68, 4, 0x05, 0, 0, 0], // S-format with stray bits
            [0x68, 4, 0x00, 0, 0, 0], // I-format without ASDU
            [0x69, 4, 0x83, 0, 0, 0], // wrong start octet
            [0x68, 5, 0x83, 0, 0, 0], // length that lies
        ] {
            assert!(parse_apdu(&bad).is_err(), "{bad:02x?}");
        }
        assert!(parse_apdu(&[0x68, 5, 0x83, 0, 0, 0, 0]).is_err(), "U-format with an ASDU octet");
    }
}
