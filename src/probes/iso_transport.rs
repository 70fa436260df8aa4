//! ISO transport over TCP, shared by the port-102 probes (`s7comm`, `s7commplus`, `mms`):
//! TPKT framing (RFC 1006) and the class 0 TPDUs of COTP (ISO 8073 / RFC 905) that they use:
//! Connection Request (CR), Connection Confirm (CC), Disconnect Request (DR), Data (DT) and
//! TPDU Error (ER).
//!
//! TPKT: `03 00 <length: u16>`, the length counting the 4 header bytes. A TPDU starts with its
//! length indicator (LI: the header bytes that follow the LI byte itself) and its code.
//!
//! | TPDU | layout after the LI byte |
//! |---|---|
//! | CR `E0` / CC `D0` | code (low nibble: credit, 0 in class 0), dst-ref (2), src-ref (2), class/options (1), parameters `<code><len><value>` |
//! | DR `80` | code, dst-ref (2), src-ref (2), reason (1), optional parameters |
//! | DT `F0` | code, `<EOT bit 0x80 | TPDU-NR>`, then user data up to the end of the TPKT |
//! | ER `70` | code, dst-ref (2), reject cause (1), optional parameters |
//!
//! CR/CC parameters used here: `C0` TPDU size (`2^n` bytes, one byte `n`), `C1` calling TSAP,
//! `C2` called TSAP.
//!
//! Opening a transport connection only reserves a connection slot on the peer; it changes no
//! process state. Each module documents the requests it sends over it.

use crate::net::{Conn, Frame, NetError, Session};
use std::fmt::Debug;
use std::io::ErrorKind;

/// TPKT version byte.
pub const TPKT_VERSION: u8 = 0x03;
/// The TPKT header: version, reserved, 16-bit length.
pub const TPKT_HEADER: usize = 4;
/// RFC 1006: a TPKT carries at least a 3-byte TPDU header.
pub const TPKT_MIN: usize = 7;

pub const CODE_CR: u8 = 0xE0;
pub const CODE_CC: u8 = 0xD0;
pub const CODE_DR: u8 = 0x80;
pub const CODE_DT: u8 = 0xF0;
pub const CODE_ER: u8 = 0x70;

pub const PARAM_TPDU_SIZE: u8 = 0xC0;
pub const PARAM_CALLING_TSAP: u8 = 0xC1;
pub const PARAM_CALLED_TSAP: u8 = 0xC2;

/// TPDU size code 0x0A: 2^10 = 1024 bytes.
pub const TPDU_SIZE_1024: u8 = 0x0A;

/// Most DT segments read for one message, and most bytes reassembled.
const MAX_SEGMENTS: usize = 32;
const MAX_MESSAGE: usize = 64 * 1024;
/// Most parameters kept from one CR/CC (an LI is at most 254 bytes, so this is never reached
/// honestly: it is a bound on the loop, not a policy).
const MAX_PARAMS: usize = 64;

/// Why bytes are not (or no longer) an ISO transport conversation.
#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error(transparent)]
    Net(#[from] NetError),
    /// The peer refused or released the transport connection (DR, ER, or it hung up).
    #[error("transport connection refused: {0}")]
    Refused(String),
    /// The bytes are not a valid TPKT/COTP frame, or not the one expected.
    #[error("not ISO transport: {0}")]
    Malformed(String),
}

fn malformed(why: impl Into<String>) -> IsoError {
    IsoError::Malformed(why.into())
}

/// Wraps a TPDU in a TPKT header. TPDUs built here are far below the 65531-byte TPKT limit.
pub fn tpkt(tpdu: &[u8]) -> Vec<u8> {
    let len = u16::try_from(tpdu.len() + TPKT_HEADER).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(tpdu.len() + TPKT_HEADER);
    out.extend_from_slice(&[TPKT_VERSION, 0x00]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(tpdu);
    out
}

/// The framing function for [`Conn::recv_frame`]: one whole TPKT.
pub fn tpkt_frame(buf: &[u8]) -> Frame {
    if let Some(&v) = buf.first() {
        if v != TPKT_VERSION {
            return Frame::Invalid(format!("TPKT version {v:#04x}, expected 0x03"));
        }
    }
    if let Some(&r) = buf.get(1) {
        if r != 0 {
            return Frame::Invalid(format!("TPKT reserved byte {r:#04x}, expected 0x00"));
        }
    }
    let (Some(&hi), Some(&lo)) = (buf.get(2), buf.get(3)) else {
        return Frame::Incomplete;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len < TPKT_MIN {
        return Frame::Invalid(format!("TPKT length {len} is shorter than a TPDU header"));
    }
    if buf.len() < len {
        Frame::Incomplete
    } else {
        Frame::Complete(len)
    }
}

fn connection_tpdu(code: u8, dst_ref: u16, src_ref: u16, class: u8, params: &[(u8, &[u8])]) -> Vec<u8> {
    let mut body = vec![code];
    body.extend_from_slice(&dst_ref.to_be_bytes());
    body.extend_from_slice(&src_ref.to_be_bytes());
    body.push(class);
    for (code, value) in params {
        body.push(*code);
        body.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
        body.extend_from_slice(value);
    }
    let mut tpdu = vec![u8::try_from(body.len()).unwrap_or(u8::MAX)];
    tpdu.extend_from_slice(&body);
    tpkt(&tpdu)
}

/// A class 0 Connection Request (whole TPKT): dst-ref 0, our `src_ref`, TPDU size `2^tpdu_size`,
/// then the calling and called TSAPs.
pub fn connect_request(src_ref: u16, calling: &[u8], called: &[u8], tpdu_size: u8) -> Vec<u8> {
    connection_tpdu(
        CODE_CR,
        0,
        src_ref,
        0x00,
        &[(PARAM_TPDU_SIZE, &[tpdu_size]), (PARAM_CALLING_TSAP, calling), (PARAM_CALLED_TSAP, called)],
    )
}

/// A class 0 Connection Confirm (whole TPKT), as a responder sends it (the modules' tests play
/// the responder).
#[cfg_attr(not(test), allow(dead_code))]
pub fn connect_confirm(dst_ref: u16, src_ref: u16, params: &[(u8, &[u8])]) -> Vec<u8> {
    connection_tpdu(CODE_CC, dst_ref, src_ref, 0x00, params)
}

/// A Disconnect Request (whole TPKT) with a reason code (e.g. 0x80 normal, 0x81 congestion,
/// 0x85 "address unknown"), as a responder sends it.
#[cfg_attr(not(test), allow(dead_code))]
pub fn disconnect_request(dst_ref: u16, src_ref: u16, reason: u8) -> Vec<u8> {
    let mut tpdu = vec![6, CODE_DR];
    tpdu.extend_from_slice(&dst_ref.to_be_bytes());
    tpdu.extend_from_slice(&src_ref.to_be_bytes());
    tpdu.push(reason);
    tpkt(&tpdu)
}

/// One Data TPDU (whole TPKT) carrying `payload` with the end-of-TSDU bit set.
pub fn data(payload: &[u8]) -> Vec<u8> {
    let mut tpdu = Vec::with_capacity(3 + payload.len());
    tpdu.extend_from_slice(&[0x02, CODE_DT, 0x80]);
    tpdu.extend_from_slice(payload);
    tpkt(&tpdu)
}

/// The fixed part and parameters of a CR or CC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection<'a> {
    pub dst_ref: u16,
    pub src_ref: u16,
    pub class: u8,
    pub params: Vec<(u8, &'a [u8])>,
}

impl<'a> Connection<'a> {
    pub fn param(&self, code: u8) -> Option<&'a [u8]> {
        self.params.iter().find(|(c, _)| *c == code).map(|(_, v)| *v)
    }

    pub fn calling_tsap(&self) -> Option<&'a [u8]> {
        self.param(PARAM_CALLING_TSAP)
    }

    pub fn called_tsap(&self) -> Option<&'a [u8]> {
        self.param(PARAM_CALLED_TSAP)
    }

    /// The TPDU size in bytes, when the parameter is present and sane (2^7 .. 2^13).
    pub fn tpdu_size(&self) -> Option<usize> {
        match self.param(PARAM_TPDU_SIZE)? {
            [n @ 7..=13] => Some(1usize << n),
            _ => None,
        }
    }
}

/// One parsed TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu<'a> {
    ConnectRequest(Connection<'a>),
    ConnectConfirm(Connection<'a>),
    DisconnectRequest { dst_ref: u16, src_ref: u16, reason: u8 },
    Data { eot: bool, payload: &'a [u8] },
    Error { dst_ref: u16, cause: u8 },
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn parse_params(mut rest: &[u8]) -> Result<Vec<(u8, &[u8])>, IsoError> {
    let mut params = Vec::new();
    while !rest.is_empty() {
        if params.len() >= MAX_PARAMS {
            return Err(malformed("too many COTP parameters"));
        }
        let (&code, after) = rest.split_first().ok_or_else(|| malformed("truncated COTP parameter"))?;
        let (&len, after) = after.split_first().ok_or_else(|| malformed("COTP parameter without a length"))?;
        let value = after.get(..usize::from(len)).ok_or_else(|| malformed("COTP parameter overruns the TPDU"))?;
        params.push((code, value));
        rest = &after[usize::from(len)..];
    }
    Ok(params)
}

/// Parses one whole TPKT frame (as delimited by [`tpkt_frame`]) into its TPDU.
pub fn parse(frame: &[u8]) -> Result<Tpdu<'_>, IsoError> {
    if frame.len() < TPKT_MIN || frame[0] != TPKT_VERSION || frame[1] != 0 {
        return Err(malformed("not a TPKT frame"));
    }
    let declared = usize::from(u16::from_be_bytes([frame[2], frame[3]]));
    if declared != frame.len() {
        return Err(malformed(format!("TPKT length {declared} but {} bytes", frame.len())));
    }
    let tpdu = &frame[TPKT_HEADER..];
    let li = usize::from(tpdu[0]);
    if li == 0 || li == 255 || li + 1 > tpdu.len() {
        return Err(malformed(format!("COTP length indicator {li} does not fit the {}-byte TPDU", tpdu.len())));
    }
    let header = &tpdu[1..=li];
    let code = header[0];
    match code & 0xF0 {
        CODE_CR | CODE_CC => {
            if li < 6 {
                return Err(malformed("connection TPDU header too short"));
            }
            let conn = Connection {
                dst_ref: u16_at(header, 1).unwrap_or(0),
                src_ref: u16_at(header, 3).unwrap_or(0),
                class: header[5],
                params: parse_params(&header[6..])?,
            };
            Ok(if code & 0xF0 == CODE_CR { Tpdu::ConnectRequest(conn) } else { Tpdu::ConnectConfirm(conn) })
        }
        CODE_DR if code == CODE_DR => {
            if li < 6 {
                return Err(malformed("DR TPDU header too short"));
            }
            Ok(Tpdu::DisconnectRequest {
                dst_ref: u16_at(header, 1).unwrap_or(0),
                src_ref: u16_at(header, 3).unwrap_or(0),
                reason: header[5],
            })
        }
        CODE_DT if code == CODE_DT => {
            if li < 2 {
                return Err(malformed("DT TPDU header too short"));
            }
            Ok(Tpdu::Data { eot: header[1] & 0x80 != 0, payload: &tpdu[li + 1..] })
        }
        CODE_ER if code == CODE_ER => {
            if li < 4 {
                return Err(malformed("ER TPDU header too short"));
            }
            Ok(Tpdu::Error { dst_ref: u16_at(header, 1).unwrap_or(0), cause: header[3] })
        }
        _ => Err(malformed(format!("unknown TPDU code {code:#04x}"))),
    }
}

/// What a successful CR got back: the peer's CC, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub src_ref: u16,
    pub class: u8,
    pub calling_tsap: Option<Vec<u8>>,
    pub called_tsap: Option<Vec<u8>>,
    pub tpdu_size: Option<usize>,
}

/// A peer that hangs up or resets is a refusal (S7 CPUs drop connections to unknown TSAPs).
fn hangup_as_refusal(e: NetError) -> IsoError {
    match e {
        NetError::Closed(_) => IsoError::Refused("connection closed".into()),
        NetError::Io(ref io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            ) =>
        {
            IsoError::Refused(format!("connection reset ({io})"))
        }
        NetError::Invalid(why) => IsoError::Malformed(why),
        other => IsoError::Net(other),
    }
}

/// Sends a CR (from [`connect_request`]) and reads the answer.
///
/// `Refused` for a DR, an ER or a hang-up; `Malformed` for bytes that are not COTP or for
/// anything but a CC (an echoed CR in particular); `Net(Timeout)` for silence.
pub async fn connect(conn: &mut Conn, request: &[u8]) -> Result<Confirmed, IsoError> {
    conn.send(request).await.map_err(hangup_as_refusal)?;
    let frame = conn.recv_frame(tpkt_frame).await.map_err(hangup_as_refusal)?;
    match parse(&frame)? {
        Tpdu::ConnectConfirm(cc) => Ok(Confirmed {
            src_ref: cc.src_ref,
            class: cc.class,
            calling_tsap: cc.calling_tsap().map(<[u8]>::to_vec),
            called_tsap: cc.called_tsap().map(<[u8]>::to_vec),
            tpdu_size: cc.tpdu_size(),
        }),
        Tpdu::DisconnectRequest { reason, .. } => Err(IsoError::Refused(format!("DR, reason {reason:#04x}"))),
        Tpdu::Error { cause, .. } => Err(IsoError::Refused(format!("ER, cause {cause:#04x}"))),
        Tpdu::ConnectRequest(_) => Err(malformed("the peer echoed a connection request")),
        Tpdu::Data { .. } => Err(malformed("data before the connection was confirmed")),
    }
}

/// Opens the transport connection with the first of `tsaps` whose Connection Request (built by
/// `request`) the peer confirms, each one after the first on a fresh connection: a CPU refuses a
/// TSAP it does not serve with a DR or by hanging up. Returns the TSAPs confirmed; anything but a
/// refusal, a failed reconnect, or a refusal of every one ends the attempt with the reason.
pub async fn connect_first<T: Copy + Debug>(
    session: &mut Session<'_>,
    tsaps: &[T],
    request: impl Fn(T) -> Vec<u8>,
) -> Result<T, String> {
    let mut last_refusal = String::new();
    for (attempt, &tsap) in tsaps.iter().enumerate() {
        if attempt > 0 {
            session.reconnect().await.map_err(|e| format!("COTP refused ({last_refusal}); {e}"))?;
        }
        match connect(session.conn(), &request(tsap)).await {
            Ok(_) => return Ok(tsap),
            Err(IsoError::Refused(why)) => last_refusal = format!("TSAPs {tsap:x?}: {why}"),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("COTP refused for every TSAP, last {last_refusal}"))
}

/// Reads DT TPDUs until one carries the end-of-TSDU mark and returns the reassembled user data
/// (bounded in segments and bytes). A DR or ER instead is `Refused`.
pub async fn recv_data(conn: &mut Conn) -> Result<Vec<u8>, IsoError> {
    let mut message = Vec::new();
    for _ in 0..MAX_SEGMENTS {
        let frame = conn.recv_frame(tpkt_frame).await.map_err(hangup_as_refusal)?;
        match parse(&frame)? {
            Tpdu::Data { eot, payload } => {
                if message.len() + payload.len() > MAX_MESSAGE {
                    return Err(malformed("reassembled message too large"));
                }
                message.extend_from_slice(payload);
                if eot {
                    return Ok(message);
                }
            }
            Tpdu::DisconnectRequest { reason, .. } => {
                return Err(IsoError::Refused(format!("DR, reason {reason:#04x}")))
            }
            Tpdu::Error { cause, .. } => return Err(IsoError::Refused(format!("ER, cause {cause:#04x}"))),
            Tpdu::ConnectRequest(_) | Tpdu::ConnectConfirm(_) => {
                return Err(malformed("connection TPDU where data was expected"))
            }
        }
    }
    Err(malformed("message spans too many DT segments"))
}

/// Sends `payload` in one DT and reads the reassembled reply.
pub async fn exchange(conn: &mut Conn, payload: &[u8]) -> Result<Vec<u8>, IsoError> {
    conn.send(&data(payload)).await.map_err(hangup_as_refusal)?;
    recv_data(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_bytes() {
        // The classic S7 CR: TPDU size 1024, calling 0x0100, called 0x0102.
        assert_eq!(
            connect_request(0x0001, &[0x01, 0x00], &[0x01, 0x02], TPDU_SIZE_1024),
            [
                0x03, 0x00, 0x00, 0x16, 0x11, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xC0, 0x01, 0x0A, 0xC1, 0x02, 0x01,
                0x00, 0xC2, 0x02, 0x01, 0x02
            ]
        );
    }

    #[test]
    fn data_and_disconnect_bytes() {
        assert_eq!(data(&[0x32, 0x01]), [0x03, 0x00, 0x00, 0x09, 0x02, 0xF0, 0x80, 0x32, 0x01]);
        assert_eq!(disconnect_request(1, 2, 0x80), [0x03, 0x00, 0x00, 0x0B, 0x06, 0x80, 0, 1, 0, 2, 0x80]);
    }

    #[test]
    fn parses_a_connect_confirm() {
        let cc = connect_confirm(0x0001, 0x4431, &[(0xC0, &[0x0A]), (0xC1, &[0x01, 0x00]), (0xC2, &[0x01, 0x02])]);
        assert_eq!(tpkt_frame(&cc), Frame::Complete(cc.len()));
        let Tpdu::ConnectConfirm(c) = parse(&cc).unwrap() else { panic!("not a CC") };
        assert_eq!((c.dst_ref, c.src_ref, c.class), (0x0001, 0x4431, 0));
        assert_eq!(c.calling_tsap(), Some(&[0x01, 0x00][..]));
        assert_eq!(c.called_tsap(), Some(&[0x01, 0x02][..]));
        assert_eq!(c.tpdu_size(), Some(1024));
    }

    #[test]
    fn parses_data_dr_and_er() {
        assert_eq!(parse(&data(b"xy")).unwrap(), Tpdu::Data { eot: true, payload: b"xy" });
        let mut more = data(b"z");
        more[6] = 0x00;
        assert_eq!(parse(&more).unwrap(), Tpdu::Data { eot: false, payload: b"z" });
        assert_eq!(
            parse(&disconnect_request(1, 2, 0x85)).unwrap(),
            Tpdu::DisconnectRequest { dst_ref: 1, src_ref: 2, reason: 0x85 }
        );
        let er = tpkt(&[0x04, 0x70, 0x00, 0x01, 0x02]);
        assert_eq!(parse(&er).unwrap(), Tpdu::Error { dst_ref: 1, cause: 2 });
    }

    #[test]
    fn an_echoed_request_parses_as_a_request() {
        let cr = connect_request(1, &[0, 1], &[0, 1], TPDU_SIZE_1024);
        assert!(matches!(parse(&cr).unwrap(), Tpdu::ConnectRequest(_)));
    }

    #[test]
    fn framing_rejects_non_tpkt_and_waits_for_more() {
        assert!(matches!(tpkt_frame(b"HTTP/1.1 200 OK"), Frame::Invalid(_)));
        assert!(matches!(tpkt_frame(&[0x03, 0x01]), Frame::Invalid(_)));
        assert!(matches!(tpkt_frame(&[0x03, 0x00, 0x00, 0x03]), Frame::Invalid(_)));
        assert_eq!(tpkt_frame(&[0x03, 0x00]), Frame::Incomplete);
        assert_eq!(tpkt_frame(&[0x03, 0x00, 0x00, 0x09, 0x02]), Frame::Incomplete);
        assert_eq!(tpkt_frame(&[]), Frame::Incomplete);
    }

    #[test]
    fn malformed_tpdus_are_errors_not_panics() {
        // LI beyond the frame, LI zero, truncated parameters, unknown codes, lying TPKT lengths.
        for bad in [
            tpkt(&[0x20, 0xD0, 0, 0]),
            tpkt(&[0x00, 0xD0, 0]),
            tpkt(&[0x08, 0xD0, 0, 0, 0, 0, 0, 0xC1, 0x05]),
            tpkt(&[0x02, 0x10, 0x00]),
            tpkt(&[0x03, 0x80, 0x00, 0x01]),
            tpkt(&[0x01, 0xF0, 0x80]),
            vec![0x03, 0x00, 0x00, 0x20, 0x02, 0xF0, 0x80],
            vec![0x03, 0x00, 0x00],
        ] {
            assert!(parse(&bad).is_err(), "{bad:02x?}");
        }
        for n in 0..40 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 3) as u8).collect();
            let _ = parse(&junk);
            let _ = tpkt_frame(&junk);
        }
    }
}
