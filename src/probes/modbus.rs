//! Modbus/TCP (502/tcp): Read Device Identification (function 43, MEI type 14), with a read of one
//! holding register as a fallback proof for devices that have no identification.
//!
//! Written from the MODBUS Application Protocol Specification V1.1b3 (§6.3 Read Holding Registers,
//! §6.21 Read Device Identification, §7 exception responses) and the MODBUS Messaging on TCP/IP
//! Implementation Guide V1.0b (§3.1.3, the MBAP header).
//!
//! Everything sent is a read: function 43/14 only returns identification strings, and function 03
//! of one register at address 0 only returns its value (which is never reported).

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, NetError, Session};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

pub const PROTOCOL: &str = "modbus";

const FC_READ_HOLDING_REGISTERS: u8 = 0x03;
const FC_ENCAPSULATED_INTERFACE: u8 = 0x2B;
const MEI_READ_DEVICE_ID: u8 = 0x0E;
/// Read Device ID codes: basic (objects 00-02) and regular (03-7F) identification, stream access.
pub const READ_BASIC: u8 = 0x01;
pub const READ_REGULAR: u8 = 0x02;

/// MBAP header: transaction id (2), protocol id (2), length (2), unit id (1).
const MBAP_LEN: usize = 7;
/// The MBAP length field counts the unit id and the PDU; a PDU is at most 253 bytes.
const MAX_LENGTH_FIELD: usize = 1 + 253;

/// Unit ids asked, all at once, and preferred in this order. 0 and 255 are what a directly attached Modbus/TCP server usually
/// accepts (255 is the implementation guide's value for "no sub-device"); gateways route by unit
/// id and commonly sit in front of slave 1. Devices that dislike a unit id stay silent.
const UNIT_IDS: [u8; 3] = [0, 1, 255];
/// Unit ids for the holding-register fallback when function 43 got no answer at all. Unit 0 is left
/// out: behind a gateway it is the serial broadcast address, which never answers a read.
const FALLBACK_UNIT_IDS: [u8; 2] = [1, 255];
/// Exchanges that may end in silence (each costs one read timeout): keeps a silent port's cost
/// bounded well inside the per-target deadline.
const MAX_SILENCES: u32 = 4;
/// Once one request got a normal reply, the least the other outstanding ones are still waited for.
const ANSWER_GRACE: Duration = Duration::from_millis(250);
/// Requests per identification category when the device says "more follows".
const MAX_REQUESTS_PER_CATEGORY: usize = 8;
/// Late answers to earlier requests skipped while waiting for the current one.
const MAX_STALE_REPLIES: usize = 4;
/// Exception codes of a gateway that could not reach the addressed unit: another unit id may work.
const GATEWAY_EXCEPTIONS: [u8; 2] = [0x0A, 0x0B];

/// The identification objects reported, by object id.
const OBJECT_FIELDS: [(u8, &str); 7] = [
    (0x00, "vendor_name"),
    (0x01, "product_code"),
    (0x02, "revision"),
    (0x03, "vendor_url"),
    (0x04, "product_name"),
    (0x05, "model_name"),
    (0x06, "user_application_name"),
];

pub use super::ParseError;

/// One Modbus/TCP application data unit: request = MBAP header + PDU.
fn adu(transaction_id: u16, unit_id: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MBAP_LEN + pdu.len());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&[0x00, 0x00]); // protocol id: 0 = Modbus
    out.extend_from_slice(&((1 + pdu.len()) as u16).to_be_bytes());
    out.push(unit_id);
    out.extend_from_slice(pdu);
    out
}

fn device_id_pdu(read_code: u8, object_id: u8) -> [u8; 4] {
    [FC_ENCAPSULATED_INTERFACE, MEI_READ_DEVICE_ID, read_code, object_id]
}

/// Function 03, starting address 0, quantity 1.
const HOLDING_REGISTER_PDU: [u8; 5] = [FC_READ_HOLDING_REGISTERS, 0x00, 0x00, 0x00, 0x01];

/// Read Device Identification request: `2B 0E <read code> <object id>`.
pub fn read_device_id_request(transaction_id: u16, unit_id: u8, read_code: u8, object_id: u8) -> Vec<u8> {
    adu(transaction_id, unit_id, &device_id_pdu(read_code, object_id))
}

/// Read Holding Registers of one register at address 0: `03 0000 0001`.
pub fn read_holding_register_request(transaction_id: u16, unit_id: u8) -> Vec<u8> {
    adu(transaction_id, unit_id, &HOLDING_REGISTER_PDU)
}

/// Framing for [`crate::net::Conn::recv_frame`]: one MBAP-framed ADU.
pub fn frame(buf: &[u8]) -> Frame {
    if let Some(pid) = buf.get(2..4) {
        if pid != [0, 0] {
            return Frame::Invalid(format!("MBAP protocol id {:02x}{:02x} is not 0", pid[0], pid[1]));
        }
    }
    let Some(len) = buf.get(4..6) else { return Frame::Incomplete };
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    if len < 2 {
        return Frame::Invalid(format!("MBAP length {len} leaves no function code"));
    }
    if len > MAX_LENGTH_FIELD {
        return Frame::Invalid(format!("MBAP length {len} exceeds the 254-byte maximum"));
    }
    let total = 6 + len;
    if buf.len() >= total {
        Frame::Complete(total)
    } else {
        Frame::Incomplete
    }
}

/// A parsed MBAP header and the PDU it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adu<'a> {
    pub transaction_id: u16,
    pub unit_id: u8,
    pub pdu: &'a [u8],
}

/// Validates an MBAP header: protocol id 0 and a length field that counts exactly the bytes that follow.
pub fn parse_adu(bytes: &[u8]) -> Result<Adu<'_>, ParseError> {
    let header = bytes
        .get(..MBAP_LEN)
        .ok_or_else(|| ParseError::new(format!("{} bytes is shorter than an MBAP header", bytes.len())))?;
    if header[2..4] != [0, 0] {
        return Err(ParseError::new("MBAP protocol id is not 0"));
    }
    let len = u16::from_be_bytes([header[4], header[5]]) as usize;
    if len != bytes.len() - 6 {
        return Err(ParseError::new(format!(
            "MBAP length {len} disagrees with the {} bytes that follow",
            bytes.len() - 6
        )));
    }
    let pdu = &bytes[MBAP_LEN..];
    if pdu.is_empty() {
        return Err(ParseError::new("empty PDU"));
    }
    Ok(Adu { transaction_id: u16::from_be_bytes([header[0], header[1]]), unit_id: header[6], pdu })
}

/// A normal reply or an exception reply (function code + 0x80, exception code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    Normal(T),
    Exception(u8),
}

/// `Some` when the PDU is an exception reply to `function`.
fn exception(pdu: &[u8], function: u8) -> Option<Result<u8, ParseError>> {
    if pdu.first() != Some(&(function | 0x80)) {
        return None;
    }
    Some(match pdu {
        [_, code] if *code != 0 => Ok(*code),
        [_, 0] => Err(ParseError::new("exception code 0 is not defined")),
        _ => Err(ParseError::new(format!("exception reply of {} bytes, expected 2", pdu.len()))),
    })
}

/// One Read Device Identification reply (one stream-access transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdReply {
    pub read_code: u8,
    pub conformity_level: u8,
    pub more_follows: bool,
    pub next_object_id: u8,
    /// (object id, value as text), in the order received.
    pub objects: Vec<(u8, String)>,
}

/// Parses the PDU of a reply to function 43/14:
/// `2B 0E <read code> <conformity> <more follows: 00|FF> <next object id> <count> {<id> <len> <value>}`.
pub fn parse_device_id(pdu: &[u8]) -> Result<Answer<DeviceIdReply>, ParseError> {
    if let Some(e) = exception(pdu, FC_ENCAPSULATED_INTERFACE) {
        return e.map(Answer::Exception);
    }
    let Some(&[function, mei, read_code, conformity_level, more, next_object_id, count]) = pdu.get(..7) else {
        return Err(ParseError::new(format!("{}-byte PDU is shorter than a device identification reply", pdu.len())));
    };
    if function != FC_ENCAPSULATED_INTERFACE {
        return Err(ParseError::new(format!("function code {function:#04x} does not answer 0x2b")));
    }
    if mei != MEI_READ_DEVICE_ID {
        return Err(ParseError::new(format!("MEI type {mei:#04x} is not 0x0e")));
    }
    if !(1..=4).contains(&read_code) {
        return Err(ParseError::new(format!("read device id code {read_code:#04x} is not defined")));
    }
    let more_follows = match more {
        0x00 => false,
        0xFF => true,
        other => return Err(ParseError::new(format!("more-follows byte {other:#04x} is neither 00 nor ff"))),
    };
    let mut objects = Vec::with_capacity(count as usize);
    let mut rest = &pdu[7..];
    for i in 0..count {
        let (id, len) = match rest {
            [id, len, ..] => (*id, *len as usize),
            _ => return Err(ParseError::new(format!("object {i} of {count} is missing"))),
        };
        let value = rest
            .get(2..2 + len)
            .ok_or_else(|| ParseError::new(format!("object {id:#04x} claims {len} bytes past the end")))?;
        objects.push((id, text(value)));
        rest = &rest[2 + len..];
    }
    if !rest.is_empty() {
        return Err(ParseError::new(format!("{} bytes follow the last of {count} objects", rest.len())));
    }
    Ok(Answer::Normal(DeviceIdReply { read_code, conformity_level, more_follows, next_object_id, objects }))
}

/// Parses the PDU of a reply to Read Holding Registers of `quantity` registers: `03 <byte count> <values>`.
pub fn parse_read_holding_registers(pdu: &[u8], quantity: u16) -> Result<Answer<Vec<u16>>, ParseError> {
    if let Some(e) = exception(pdu, FC_READ_HOLDING_REGISTERS) {
        return e.map(Answer::Exception);
    }
    let [function, count, values @ ..] = pdu else {
        return Err(ParseError::new(format!("{}-byte PDU is shorter than a register reply", pdu.len())));
    };
    if *function != FC_READ_HOLDING_REGISTERS {
        return Err(ParseError::new(format!("function code {function:#04x} does not answer 0x03")));
    }
    if *count as usize != 2 * quantity as usize || values.len() != *count as usize {
        return Err(ParseError::new(format!(
            "byte count {count} with {} value bytes for {quantity} register(s)",
            values.len()
        )));
    }
    Ok(Answer::Normal(values.chunks_exact(2).map(|w| u16::from_be_bytes([w[0], w[1]])).collect()))
}

/// An identification string: UTF-8 when valid (else Latin-1), control bytes as spaces, NUL and
/// space padding trimmed.
fn text(bytes: &[u8]) -> String {
    let s = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    };
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// The identification collected for one unit id across the basic and regular reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceIdentification {
    pub conformity_level: Option<u8>,
    pub objects: BTreeMap<u8, String>,
}

impl DeviceIdentification {
    fn absorb(&mut self, reply: DeviceIdReply) {
        self.conformity_level.get_or_insert(reply.conformity_level);
        for (id, value) in reply.objects {
            self.objects.entry(id).or_insert(value);
        }
    }

    fn merge(&mut self, other: DeviceIdentification) {
        for (id, value) in other.objects {
            self.objects.entry(id).or_insert(value);
        }
    }

    pub fn identity(&self, unit_id: u8) -> Identity {
        let mut identity = Identity::new(PROTOCOL, true);
        for (id, name) in OBJECT_FIELDS {
            if let Some(value) = self.objects.get(&id) {
                identity.field(name, value.as_str());
            }
        }
        identity.field("unit_id", unit_id);
        if let Some(level) = self.conformity_level {
            identity.field("conformity_level", level);
        }
        identity
    }
}

/// Modbus without identification: which request got a valid (normal or exception) reply.
fn proof_identity(unit_id: u8, function: u8, exception_code: Option<u8>) -> Identity {
    let mut identity = Identity::new(PROTOCOL, true);
    identity.field("unit_id", unit_id);
    identity.field("function_code", function);
    if let Some(code) = exception_code {
        identity.field("exception_code", code);
    }
    identity
}

/// What one request got.
enum Outcome {
    /// A framed ADU whose transaction id answers the request.
    Reply(Vec<u8>),
    Silent,
    Closed,
}

/// What one identification category got.
enum Category {
    Objects(DeviceIdentification),
    Exception(u8),
    /// An answer to the request that is not a valid device identification reply.
    Malformed,
    Silent,
    Closed,
}

/// The request/reply bookkeeping of one probe run: transaction ids, echoes, stale replies, the
/// silence budget and reconnects.
struct Dialogue<'s, 't> {
    session: &'s mut Session<'t>,
    next_transaction: u16,
    /// Requests sent on the current connection (an echo of any of them is not a reply).
    sent: Vec<(u16, Vec<u8>)>,
    silences: u32,
    needs_reconnect: bool,
    dead: bool,
}

impl<'s, 't> Dialogue<'s, 't> {
    fn new(session: &'s mut Session<'t>) -> Self {
        // A transaction id unlikely to be produced by a peer that answers with fixed bytes.
        Dialogue {
            session,
            next_transaction: 0x4F54,
            sent: Vec::new(),
            silences: 0,
            needs_reconnect: false,
            dead: false,
        }
    }

    fn can_wait(&self) -> bool {
        !self.dead && self.silences < MAX_SILENCES
    }

    /// Sends the requests `asks` makes (one transaction id each) back to back on one connection, as
    /// Modbus/TCP allows several outstanding transactions, and reads the replies, matched by
    /// transaction id, within one read timeout (`wait` when given). Once one request got a normal
    /// reply the others get a short grace, since a device answers in order. The outcome of each, in order.
    async fn ask_together(&mut self, asks: &[Ask], wait: Option<Duration>) -> Result<Vec<Outcome>, ProbeError> {
        let mut outcomes: Vec<Outcome> = asks.iter().map(|_| Outcome::Closed).collect();
        if self.dead {
            return Ok(outcomes);
        }
        if self.needs_reconnect {
            if self.session.reconnect().await.is_err() {
                self.dead = true;
                return Ok(outcomes);
            }
            self.needs_reconnect = false;
            self.sent.clear();
        }
        let first_tid = self.next_transaction;
        let requests: Vec<(u16, Vec<u8>)> = asks
            .iter()
            .map(|ask| {
                let tid = self.next_transaction;
                self.next_transaction = tid.wrapping_add(1);
                (tid, ask.request(tid))
            })
            .collect();
        let conn = self.session.conn();
        let started = Instant::now();
        let mut deadline = started + wait.unwrap_or(conn.limits().read_timeout);
        match conn.send(&requests.iter().flat_map(|(_, r)| r.iter().copied()).collect::<Vec<u8>>()).await {
            Ok(()) => {}
            Err(NetError::Timeout(_)) => {
                self.silences += 1;
                outcomes.iter_mut().for_each(|o| *o = Outcome::Silent);
                return Ok(outcomes);
            }
            Err(_) => {
                self.needs_reconnect = true;
                return Ok(outcomes);
            }
        }
        self.sent.extend(requests.iter().cloned());
        let mut unanswered = asks.len();
        let mut stale = 0;
        while unanswered > 0 {
            let bytes = match timeout_at(deadline, conn.recv_frame(frame)).await {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(NetError::Timeout(_))) | Err(_) => {
                    self.silences += 1;
                    for o in outcomes.iter_mut().filter(|o| matches!(o, Outcome::Closed)) {
                        *o = Outcome::Silent;
                    }
                    return Ok(outcomes);
                }
                Ok(Err(NetError::Closed(_)) | Err(NetError::Io(_))) => {
                    self.needs_reconnect = true;
                    return Ok(outcomes);
                }
                Ok(Err(e @ (NetError::Invalid(_) | NetError::TooLarge(_)))) => {
                    return Err(ProbeError::not(PROTOCOL, e.to_string()))
                }
            };
            if self.sent.iter().any(|(_, r)| *r == bytes) {
                return Err(ProbeError::not(PROTOCOL, "the peer echoed the request"));
            }
            let reply = parse_adu(&bytes).map_err(|e| ProbeError::not(PROTOCOL, e.0))?;
            let index = usize::from(reply.transaction_id.wrapping_sub(first_tid));
            if index < asks.len() {
                if !matches!(outcomes[index], Outcome::Reply(_)) {
                    unanswered -= 1;
                    if asks[index].normal_reply(reply.pdu) {
                        deadline = deadline.min(Instant::now() + (2 * started.elapsed()).max(ANSWER_GRACE));
                    }
                }
                outcomes[index] = Outcome::Reply(bytes);
                continue;
            }
            if !self.sent.iter().any(|(t, _)| *t == reply.transaction_id) {
                return Err(ProbeError::not(
                    PROTOCOL,
                    format!("transaction id {:#06x} answers no request", reply.transaction_id),
                ));
            }
            // A late answer to an earlier request (one that timed out): skip it.
            stale += 1;
            if stale > MAX_STALE_REPLIES {
                return Err(ProbeError::not(PROTOCOL, "too many replies to earlier requests"));
            }
        }
        Ok(outcomes)
    }

    /// Sends one request and reads its reply.
    async fn ask(&mut self, ask: Ask) -> Result<Outcome, ProbeError> {
        let mut outcomes = self.ask_together(&[ask], None).await?;
        Ok(outcomes.pop().expect("one outcome per request"))
    }

    /// Reads one identification category by stream access, following "more follows" a bounded
    /// number of times while the next object id moves forward. `first` is the outcome of the first
    /// request (from object 0) when it was already asked.
    async fn read_category(
        &mut self,
        unit_id: u8,
        read_code: u8,
        mut first: Option<Outcome>,
    ) -> Result<Category, ProbeError> {
        let mut collected: Option<DeviceIdentification> = None;
        let mut object_id = 0u8;
        for i in 0..MAX_REQUESTS_PER_CATEGORY {
            if i > 0 && !self.can_wait() {
                break;
            }
            let outcome = match first.take() {
                Some(outcome) => outcome,
                None => match self.ask(Ask::DeviceId { unit_id, read_code, object_id }).await {
                    Ok(outcome) => outcome,
                    // Objects already validated stay valid whatever a later reply is.
                    Err(e) => return collected.map(Category::Objects).ok_or(e),
                },
            };
            let bytes = match outcome {
                Outcome::Reply(bytes) => bytes,
                Outcome::Silent => return Ok(collected.map_or(Category::Silent, Category::Objects)),
                Outcome::Closed => return Ok(collected.map_or(Category::Closed, Category::Objects)),
            };
            let pdu = parse_adu(&bytes).map_err(|e| ProbeError::not(PROTOCOL, e.0))?.pdu;
            match parse_device_id(pdu) {
                Ok(Answer::Normal(reply)) => {
                    let more = reply.more_follows && reply.next_object_id > object_id;
                    let next = reply.next_object_id;
                    collected.get_or_insert_with(Default::default).absorb(reply);
                    if !more {
                        break;
                    }
                    object_id = next;
                }
                Ok(Answer::Exception(code)) => {
                    return Ok(collected.map_or(Category::Exception(code), Category::Objects))
                }
                Err(e) => {
                    tracing::debug!("modbus unit {unit_id}: {e}");
                    return Ok(collected.map_or(Category::Malformed, Category::Objects));
                }
            }
        }
        Ok(collected.map_or(Category::Silent, Category::Objects))
    }
}

/// One read-only request of the probe.
#[derive(Clone, Copy)]
enum Ask {
    DeviceId { unit_id: u8, read_code: u8, object_id: u8 },
    HoldingRegister { unit_id: u8 },
}

impl Ask {
    fn request(&self, transaction_id: u16) -> Vec<u8> {
        match *self {
            Ask::DeviceId { unit_id, read_code, object_id } => {
                read_device_id_request(transaction_id, unit_id, read_code, object_id)
            }
            Ask::HoldingRegister { unit_id } => read_holding_register_request(transaction_id, unit_id),
        }
    }

    /// Whether `pdu` is a normal (not an exception) reply to this request's function.
    fn normal_reply(&self, pdu: &[u8]) -> bool {
        let function = match self {
            Ask::DeviceId { .. } => FC_ENCAPSULATED_INTERFACE,
            Ask::HoldingRegister { .. } => FC_READ_HOLDING_REGISTERS,
        };
        pdu.first() == Some(&function)
    }
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[502]);

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let follow_up = session.conn().limits().follow_up_timeout;
    let mut d = Dialogue::new(session);
    // Every unit id at once: a device that answers only one of them is found within one wait.
    let asks = UNIT_IDS.map(|unit_id| Ask::DeviceId { unit_id, read_code: READ_BASIC, object_id: 0 });
    let mut first = d.ask_together(&asks, None).await?;
    let silent = first.iter().all(|o| matches!(o, Outcome::Silent));
    let mut gateway_exception: Option<(u8, u8)> = None;
    let mut answering_unit: Option<u8> = None;
    for (unit_id, outcome) in UNIT_IDS.into_iter().zip(first.drain(..)) {
        // A peer that hung up before answering this unit id is asked again on a fresh connection.
        let outcome = match outcome {
            Outcome::Closed if d.can_wait() => None,
            other => Some(other),
        };
        match d.read_category(unit_id, READ_BASIC, outcome).await? {
            Category::Objects(mut identification) => {
                // The regular category is a bonus: whatever its read gets, the basic objects stand.
                if d.can_wait() {
                    if let Ok(Category::Objects(regular)) = d.read_category(unit_id, READ_REGULAR, None).await {
                        identification.merge(regular);
                    }
                }
                return Ok(identification.identity(unit_id));
            }
            Category::Exception(code) if GATEWAY_EXCEPTIONS.contains(&code) => {
                gateway_exception.get_or_insert((unit_id, code));
            }
            Category::Exception(code) => return Ok(proof_identity(unit_id, FC_ENCAPSULATED_INTERFACE, Some(code))),
            Category::Malformed => {
                answering_unit = Some(unit_id);
                break;
            }
            Category::Silent | Category::Closed => {}
        }
    }
    if let Some((unit_id, code)) = gateway_exception {
        return Ok(proof_identity(unit_id, FC_ENCAPSULATED_INTERFACE, Some(code)));
    }

    // No identification: one holding register, read-only, still proves Modbus by a normal or
    // exception reply. After an identification request that got nothing at all from any unit id,
    // the reads wait the follow-up timeout.
    let fallback: &[u8] = match &answering_unit {
        Some(unit_id) => std::slice::from_ref(unit_id),
        None => &FALLBACK_UNIT_IDS,
    };
    let asks: Vec<Ask> = fallback.iter().map(|&unit_id| Ask::HoldingRegister { unit_id }).collect();
    let outcomes = if d.can_wait() { d.ask_together(&asks, silent.then_some(follow_up)).await? } else { Vec::new() };
    for (&unit_id, outcome) in fallback.iter().zip(outcomes) {
        let Outcome::Reply(bytes) = outcome else { continue };
        let pdu = parse_adu(&bytes).map_err(|e| ProbeError::not(PROTOCOL, e.0))?.pdu;
        return match parse_read_holding_registers(pdu, 1) {
            Ok(Answer::Normal(_)) => Ok(proof_identity(unit_id, FC_READ_HOLDING_REGISTERS, None)),
            Ok(Answer::Exception(code)) => Ok(proof_identity(unit_id, FC_READ_HOLDING_REGISTERS, Some(code))),
            Err(e) => Err(ProbeError::not(PROTOCOL, e.0)),
        };
    }
    Err(ProbeError::not(PROTOCOL, "no valid reply to device identification or a register read"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn requests_are_exact() {
        assert_eq!(read_device_id_request(0x0001, 0xFF, READ_BASIC, 0), hex("0001 0000 0005 ff 2b 0e 01 00"));
        assert_eq!(read_device_id_request(0x4F55, 1, READ_REGULAR, 3), hex("4f55 0000 0005 01 2b 0e 02 03"));
        assert_eq!(read_holding_register_request(0x0102, 0), hex("0102 0000 0006 00 03 0000 0001"));
    }

    #[test]
    fn framing_follows_the_mbap_length() {
        assert_eq!(frame(&hex("0001 00")), Frame::Incomplete);
        assert_eq!(frame(&hex("0001 0000 0005 ff 2b")), Frame::Incomplete);
        assert_eq!(frame(&hex("0001 0000 0003 ff ab 01 9999")), Frame::Complete(9));
        assert!(matches!(frame(&hex("0001 0001 0003")), Frame::Invalid(_)));
        assert!(matches!(frame(&b"HTTP/1.1 400"[..]), Frame::Invalid(_)));
        assert!(matches!(frame(&hex("0001 0000 0001 ff")), Frame::Invalid(_)));
        assert!(matches!(frame(&hex("0001 0000 ffff")), Frame::Invalid(_)));
    }

    /// A basic identification reply built from the specification, byte by byte.
    fn basic_reply() -> Vec<u8> {
        let mut pdu = hex("2b 0e 01 01 00 00 03");
        for (id, value) in [(0u8, &b"Schneider Electric"[..]), (1, b"BMX P34 2020"), (2, b"v2.8")] {
            pdu.push(id);
            pdu.push(value.len() as u8);
            pdu.extend_from_slice(value);
        }
        adu(0x4F54, 0, &pdu)
    }

    #[test]
    fn parses_a_basic_identification() {
        let bytes = basic_reply();
        assert_eq!(frame(&bytes), Frame::Complete(bytes.len()));
        let a = parse_adu(&bytes).unwrap();
        assert_eq!((a.transaction_id, a.unit_id), (0x4F54, 0));
        let Answer::Normal(r) = parse_device_id(a.pdu).unwrap() else { panic!() };
        assert_eq!((r.read_code, r.conformity_level, r.more_follows, r.next_object_id), (1, 1, false, 0));
        assert_eq!(r.objects, vec![(0, "Schneider Electric".into()), (1, "BMX P34 2020".into()), (2, "v2.8".into())]);
    }

    /// The reply printed in the KBR multicomp F144 manual (Modbus RTU; the PDU is the same as over
    /// TCP): trailing spaces, a leading space and a control byte in the values.
    #[test]
    fn parses_a_published_device_reply() {
        let pdu = hex("2b 0e 01 01 00 00 03 \
             00 08 4b425220476d6248 \
             01 12 6d756c7469636f6d7020463134341d332020 \
             02 09 20322e3030723031 36");
        let Answer::Normal(r) = parse_device_id(&pdu).unwrap() else { panic!() };
        let mut ident = DeviceIdentification::default();
        ident.absorb(r);
        let identity = ident.identity(1);
        assert_eq!(identity.fields["vendor_name"], "KBR GmbH");
        assert_eq!(identity.fields["product_code"], "multicomp F144 3");
        assert_eq!(identity.fields["revision"], "2.00r016");
        assert_eq!(identity.fields["unit_id"], 1);
        assert_eq!(identity.fields["conformity_level"], 1);
    }

    #[test]
    fn parses_exceptions() {
        assert_eq!(parse_device_id(&hex("ab 01")).unwrap(), Answer::Exception(1));
        assert_eq!(parse_read_holding_registers(&hex("83 02"), 1).unwrap(), Answer::Exception(2));
        assert!(parse_device_id(&hex("ab")).is_err());
        assert!(parse_device_id(&hex("ab 01 00")).is_err());
        assert!(parse_device_id(&hex("ab 00")).is_err());
        // An exception to another function is not an answer to this one.
        assert!(parse_device_id(&hex("83 01")).is_err());
    }

    #[test]
    fn parses_a_register_reply() {
        assert_eq!(parse_read_holding_registers(&hex("03 02 12 34"), 1).unwrap(), Answer::Normal(vec![0x1234]));
        assert!(parse_read_holding_registers(&hex("03 02 12"), 1).is_err());
        assert!(parse_read_holding_registers(&hex("03 04 12 34 56 78"), 1).is_err());
        // The request's own PDU, echoed, is not a reply.
        assert!(parse_read_holding_registers(&HOLDING_REGISTER_PDU, 1).is_err());
    }

    #[test]
    fn an_echoed_identification_request_is_not_a_reply() {
        let request = read_device_id_request(7, 0, READ_BASIC, 0);
        let a = parse_adu(&request).unwrap();
        assert!(parse_device_id(a.pdu).is_err());
    }

    #[test]
    fn malformed_replies_are_errors() {
        let good = basic_reply();
        for n in 0..good.len() {
            // Every truncation, with the MBAP length fixed up or not, fails without panicking.
            let cut = &good[..n];
            if let Ok(a) = parse_adu(cut) {
                assert!(parse_device_id(a.pdu).is_err(), "{n}");
            }
            if n >= MBAP_LEN {
                assert!(parse_device_id(&cut[MBAP_LEN..]).is_err(), "{n}");
            }
        }
        // Lengths that lie.
        assert!(parse_adu(&hex("0001 0000 0009 00 2b 0e")).is_err());
        assert!(parse_device_id(&hex("2b 0e 01 01 00 00 01 00 ff 41")).is_err());
        assert!(parse_device_id(&hex("2b 0e 01 01 00 00 02 00 01 41")).is_err());
        // Trailing bytes after the declared objects, a wrong MEI type, an undefined more-follows byte.
        assert!(parse_device_id(&hex("2b 0e 01 01 00 00 01 00 01 41 00")).is_err());
        assert!(parse_device_id(&hex("2b 0d 01 01 00 00 00")).is_err());
        assert!(parse_device_id(&hex("2b 0e 01 01 01 00 00")).is_err());
        assert!(parse_device_id(&hex("2b 0e 09 01 00 00 00")).is_err());
        assert!(parse_device_id(&hex("03 02 00 00")).is_err());
        assert!(parse_device_id(&[]).is_err());
    }

    #[test]
    fn text_is_trimmed_and_tolerant() {
        assert_eq!(text(b"WAGO\0\0\0"), "WAGO");
        assert_eq!(text(b"  v1.2 \r\n"), "v1.2");
        assert_eq!(text(&[0x4D, 0xFC, 0x6C, 0x6C, 0x65, 0x72]), "M\u{fc}ller");
        assert_eq!(text(b""), "");
    }

    #[test]
    fn regular_objects_merge_into_basic_ones() {
        let mut ident = DeviceIdentification::default();
        ident.absorb(DeviceIdReply {
            read_code: 1,
            conformity_level: 0x82,
            more_follows: false,
            next_object_id: 0,
            objects: vec![(0, "Schneider Electric".into()), (1, "METSEPM5560".into()), (2, "002.001.003".into())],
        });
        let mut regular = DeviceIdentification::default();
        regular.absorb(DeviceIdReply {
            read_code: 2,
            conformity_level: 0x82,
            more_follows: false,
            next_object_id: 0,
            objects: vec![(0, "ignored".into()), (4, "PM5500".into()), (5, "PM5560".into()), (9, "private".into())],
        });
        ident.merge(regular);
        let identity = ident.identity(255);
        let keys: Vec<_> = identity.fields.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["vendor_name", "product_code", "revision", "product_name", "model_name", "unit_id", "conformity_level"]
        );
        assert_eq!(identity.fields["vendor_name"], "Schneider Electric");
        assert_eq!(identity.fields["conformity_level"], 0x82);
    }
}
