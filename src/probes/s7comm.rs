//! Siemens S7 communication ("S7comm", protocol id `0x32`) over ISO-on-TCP, port 102.
//!
//! Conversation (every step read-only):
//! 1. COTP Connection Request with TSAPs calling `0x0100` / called `0x0102` (connection type 1 =
//!    PG, rack 0, slot 2: the S7-300 CPU slot). A CPU refuses an unknown TSAP with a DR or by
//!    hanging up; then fresh connections try the other usual pairs (called `0x0200`, `0x0201`,
//!    calling `0x0200`), bounded by [`TSAP_PAIRS`] and the session's reconnect budget. Silence,
//!    garbage or an echo end the probe at once: that is not an S7 CPU.
//! 2. S7 Setup Communication (ROSCTR 1 job, function `F0`): negotiates the PDU size and the
//!    number of parallel jobs; it reads and changes nothing on the CPU.
//! 3. Read SZL (ROSCTR 7 userdata, function group 4 CPU functions, subfunction 01) of list
//!    `0x0011` (module identification) and `0x001C` (component identification). The SZL (system
//!    status list) is the CPU's diagnostic self-description: reading it is what engineering
//!    tools do to display the module, and it touches neither the program nor the process.
//!
//! Layouts (big-endian):
//! - S7 header: `32`, ROSCTR, reserved (2), PDU reference (2), parameter length (2), data
//!   length (2), and for ROSCTR 2/3 error class (1) + error code (1).
//! - Setup parameter: `F0 00`, max AMQ calling (2), max AMQ called (2), PDU length (2).
//! - Userdata parameter: `00 01 12`, length, method (`11` request / `12` response), type|group
//!   (`4x` request / `8x` response, group 4), subfunction `01`, sequence, then in responses data
//!   unit reference, last data unit, error code (2).
//! - SZL data: return code (`FF` ok), transport size (`09`), length (2), SZL id (2), index (2),
//!   record length (2), record count (2), records.
//! - `0x0011` record (28 bytes): index (2), order number "MlfB" (20 chars), module type id (2),
//!   Ausbg (2), Ausbe (2). Index `0001` is the module, `0006` the basic hardware, `0007` the
//!   basic firmware, whose Ausbg is `'V'` + major and Ausbe minor + patch (`56 03 02 06` is V3.2.6).
//! - `0x001C` record (34 bytes): index (2) and a NUL-padded string: `01` automation system name,
//!   `02` module name, `03` plant designation, `04` copyright, `05` serial number, `07` module type
//!   name, `08` memory card serial number, `0B` location designation (`09`, `0A` are binary).
//!
//! Real servers differ, and the tests hold bytes captured from each:
//! - python-snap7's server (3.x, pure Python) answers `0x0011` with one 26-byte record whose last
//!   three bytes are the version, and `0x001C` with LENTHDR 0 / N_DR 0 and index 0 in every record,
//!   the strings still at their fixed 34-byte strides (taken by position in the usual order);
//! - the C Snap7 server answers as a CPU 315-2 PN/DP does;
//! - conpot's S7-200 sends 8-byte userdata parameters under a header that declares 35 bytes.
//!
//! Records are taken from the bytes actually present, never from the counts alone.

use super::iso_transport;
use super::{Identity, Probe, ProbeError};
use crate::net::Session;

pub const PROTOCOL: &str = "s7comm";
/// The S7 protocol id, first byte of every S7 PDU.
pub const PROTOCOL_ID: u8 = 0x32;

pub const ROSCTR_JOB: u8 = 0x01;
pub const ROSCTR_ACK: u8 = 0x02;
pub const ROSCTR_ACK_DATA: u8 = 0x03;
pub const ROSCTR_USERDATA: u8 = 0x07;
pub const FUNCTION_SETUP: u8 = 0xF0;

pub const SZL_MODULE_IDENTIFICATION: u16 = 0x0011;
pub const SZL_COMPONENT_IDENTIFICATION: u16 = 0x001C;
const MODULE_RECORD_LEN: usize = 28;
/// python-snap7's server (3.x) answers 0x0011 with one record of index (2), order number (20),
/// a reserved byte and the version as three bytes (major, minor, patch), and a header saying so.
const SNAP7_MODULE_RECORD_LEN: usize = 26;
const COMPONENT_RECORD_LEN: usize = 34;
/// Most SZL records read from one reply.
const MAX_RECORDS: usize = 64;

/// (calling, called) TSAP pairs, one connection each, in order. The called TSAP is
/// `<connection type><rack << 5 | slot>`: 0x0102 = PG, rack 0, slot 2 (S7-300); 0x0200 and 0x0201
/// = OP, slot 0/1 (S7-1200/1500, LOGO!, S7-200 SMART); calling 0x0200 suits stacks that check it.
pub const TSAP_PAIRS: [(u16, u16); 5] =
    [(0x0100, 0x0102), (0x0100, 0x0200), (0x0100, 0x0201), (0x0200, 0x0102), (0x0200, 0x0201)];

/// The PDU size we propose; the CPU answers with what it accepts (240 or 480, usually).
const PDU_LENGTH: u16 = 480;
/// Our COTP source reference.
const SRC_REF: u16 = 0x0001;

/// S7 Setup Communication (job): one parallel job each way, PDU size 480.
pub fn setup_communication(pdu_ref: u16) -> Vec<u8> {
    let mut pdu = vec![PROTOCOL_ID, ROSCTR_JOB, 0x00, 0x00];
    pdu.extend_from_slice(&pdu_ref.to_be_bytes());
    pdu.extend_from_slice(&[0x00, 0x08, 0x00, 0x00]);
    pdu.extend_from_slice(&[FUNCTION_SETUP, 0x00, 0x00, 0x01, 0x00, 0x01]);
    pdu.extend_from_slice(&PDU_LENGTH.to_be_bytes());
    pdu
}

/// Read SZL (userdata request, CPU functions, subfunction 01) of `szl_id` / `index`.
pub fn read_szl(pdu_ref: u16, szl_id: u16, index: u16) -> Vec<u8> {
    let mut pdu = vec![PROTOCOL_ID, ROSCTR_USERDATA, 0x00, 0x00];
    pdu.extend_from_slice(&pdu_ref.to_be_bytes());
    pdu.extend_from_slice(&[0x00, 0x08, 0x00, 0x08]);
    // Parameter: head 00 01 12, 4 bytes follow, method 11 (request), type 4 | group 4, subfunction 01, sequence 0.
    pdu.extend_from_slice(&[0x00, 0x01, 0x12, 0x04, 0x11, 0x44, 0x01, 0x00]);
    // Data: return code FF, transport size 09 (octet string), 4 bytes: SZL id, index.
    pdu.extend_from_slice(&[0xFF, 0x09, 0x00, 0x04]);
    pdu.extend_from_slice(&szl_id.to_be_bytes());
    pdu.extend_from_slice(&index.to_be_bytes());
    pdu
}

/// The COTP Connection Request for a numeric TSAP pair.
pub fn connect_request(calling: u16, called: u16) -> Vec<u8> {
    iso_transport::connect_request(
        SRC_REF,
        &calling.to_be_bytes(),
        &called.to_be_bytes(),
        iso_transport::TPDU_SIZE_1024,
    )
}

pub use super::ParseError;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// An S7 PDU split into its header fields, parameter and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub rosctr: u8,
    pub pdu_ref: u16,
    /// Error class and code of an ACK / ACK_DATA header.
    pub error: Option<(u8, u8)>,
    pub param: &'a [u8],
    pub data: &'a [u8],
}

/// Validates the S7 header: protocol id, a known ROSCTR, a parameter that fits. Data longer than
/// the bytes present is cut to what is there (honeypots overstate it). When the parameter and the
/// data together overrun the PDU but the data alone fits (conpot's S7-200 declares a 35-byte
/// parameter before an 8-byte one), the parameter is what lies between the header and the data.
pub fn parse_header(pdu: &[u8]) -> Result<Header<'_>, ParseError> {
    if pdu.first() != Some(&PROTOCOL_ID) {
        return Err(ParseError::new("no S7 protocol id 0x32"));
    }
    let rosctr = pdu.get(1).copied().unwrap_or(0);
    let header_len = match rosctr {
        ROSCTR_JOB | ROSCTR_USERDATA => 10,
        ROSCTR_ACK | ROSCTR_ACK_DATA => 12,
        other => return Err(ParseError::new(format!("unknown ROSCTR {other:#04x}"))),
    };
    if pdu.len() < header_len {
        return Err(ParseError::new("truncated S7 header"));
    }
    let pdu_ref = u16_at(pdu, 4).unwrap_or(0);
    let param_len = usize::from(u16_at(pdu, 6).unwrap_or(0));
    let data_len = usize::from(u16_at(pdu, 8).unwrap_or(0));
    let error = (header_len == 12).then(|| (pdu[10], pdu[11]));
    let body = &pdu[header_len..];
    let (param, rest) = if param_len + data_len <= body.len() {
        body.split_at(param_len)
    } else if data_len <= body.len() {
        body.split_at(body.len() - data_len)
    } else if param_len <= body.len() {
        body.split_at(param_len)
    } else {
        return Err(ParseError::new("S7 parameter overruns the PDU"));
    };
    let data = &rest[..data_len.min(rest.len())];
    Ok(Header { rosctr, pdu_ref, error, param, data })
}

/// The answer to Setup Communication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupReply {
    Accepted {
        pdu_length: u16,
        max_amq_calling: u16,
        max_amq_called: u16,
    },
    /// A valid S7 error answer: the CPU speaks S7 but refused the job.
    Rejected {
        error_class: u8,
        error_code: u8,
    },
}

/// Parses the reply to [`setup_communication`] sent with `pdu_ref`.
pub fn parse_setup_reply(pdu: &[u8], pdu_ref: u16) -> Result<SetupReply, ParseError> {
    let h = parse_header(pdu)?;
    if h.rosctr == ROSCTR_JOB {
        return Err(ParseError::new("a job, not a reply (an echo of the request?)"));
    }
    if h.rosctr != ROSCTR_ACK && h.rosctr != ROSCTR_ACK_DATA {
        return Err(ParseError::new(format!("ROSCTR {:#04x} is no answer to a job", h.rosctr)));
    }
    if h.pdu_ref != pdu_ref {
        return Err(ParseError::new(format!("PDU reference {:#06x}, expected {pdu_ref:#06x}", h.pdu_ref)));
    }
    let (error_class, error_code) = h.error.unwrap_or((0, 0));
    if error_class != 0 || error_code != 0 || h.rosctr == ROSCTR_ACK {
        return Ok(SetupReply::Rejected { error_class, error_code });
    }
    match h.param {
        [FUNCTION_SETUP, _, a, b, c, d, e, f, ..] => Ok(SetupReply::Accepted {
            max_amq_calling: u16::from_be_bytes([*a, *b]),
            max_amq_called: u16::from_be_bytes([*c, *d]),
            pdu_length: u16::from_be_bytes([*e, *f]),
        }),
        _ => Err(ParseError::new("ACK_DATA without a setup-communication parameter")),
    }
}

/// The answer to a Read SZL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SzlReply {
    /// The records present (possibly none: some servers answer unknown indexes with no data).
    Records { szl_id: u16, index: u16, records: Vec<Vec<u8>> },
    /// The CPU refused the read: userdata error code and data return code.
    Error { error_code: u16, return_code: u8 },
}

/// Parses the reply to [`read_szl`] sent with `pdu_ref` for list `szl_id`. Records are cut at the
/// list's documented length (28 bytes for 0x0011, 34 for 0x001C) when the header's record length
/// is zero or impossible, and counted from the bytes present when the header's count is zero or
/// larger than what arrived.
pub fn parse_szl_reply(pdu: &[u8], pdu_ref: u16, szl_id: u16) -> Result<SzlReply, ParseError> {
    let h = parse_header(pdu)?;
    if h.rosctr != ROSCTR_USERDATA {
        return Err(ParseError::new(format!("ROSCTR {:#04x} where userdata was expected", h.rosctr)));
    }
    if h.pdu_ref != pdu_ref {
        return Err(ParseError::new(format!("PDU reference {:#06x}, expected {pdu_ref:#06x}", h.pdu_ref)));
    }
    let p = h.param;
    if p.len() < 8 || p[..3] != [0x00, 0x01, 0x12] {
        return Err(ParseError::new("not a userdata parameter"));
    }
    if p[4] == 0x11 || p[5] >> 4 == 0x4 {
        return Err(ParseError::new("a userdata request, not a response (an echo?)"));
    }
    if p[5] & 0x0F != 0x04 || p[6] != 0x01 {
        return Err(ParseError::new(format!(
            "userdata type/group {:#04x} subfunction {:#04x} is not a Read SZL response",
            p[5], p[6]
        )));
    }
    let error_code = if p[3] >= 8 { u16_at(p, 10).unwrap_or(0) } else { 0 };
    let d = h.data;
    if d.is_empty() {
        return Ok(SzlReply::Records { szl_id, index: 0, records: Vec::new() });
    }
    let return_code = d[0];
    if error_code != 0 || return_code != 0xFF {
        return Ok(SzlReply::Error { error_code, return_code });
    }
    let declared = usize::from(u16_at(d, 2).unwrap_or(0));
    let body = d.get(4..).unwrap_or_default();
    let body = &body[..declared.min(body.len())];
    if body.len() < 8 {
        return Ok(SzlReply::Records { szl_id, index: 0, records: Vec::new() });
    }
    let reply_id = u16_at(body, 0).unwrap_or(0);
    // The partial-list extract may come back with other high bits (0x0111 for 0x0011 and so on).
    if reply_id & 0x00FF != szl_id & 0x00FF {
        return Err(ParseError::new(format!("SZL id {reply_id:#06x} in the reply to {szl_id:#06x}")));
    }
    let index = u16_at(body, 2).unwrap_or(0);
    let record_len = usize::from(u16_at(body, 4).unwrap_or(0));
    let count = usize::from(u16_at(body, 6).unwrap_or(0));
    let default_len = if szl_id == SZL_COMPONENT_IDENTIFICATION { COMPONENT_RECORD_LEN } else { MODULE_RECORD_LEN };
    let region = &body[8..];
    let record_len =
        if (4..=256).contains(&record_len) && record_len <= region.len() { record_len } else { default_len };
    let fit = region.len() / record_len;
    let count = if count == 0 { fit } else { count.min(fit) }.min(MAX_RECORDS);
    let records = region.chunks_exact(record_len).take(count).map(<[u8]>::to_vec).collect();
    Ok(SzlReply::Records { szl_id: reply_id, index, records })
}

/// Text from a NUL-padded field: up to the first NUL, printable ASCII and Latin-1 kept, trimmed.
fn text(bytes: &[u8]) -> Option<String> {
    let s: String = bytes
        .iter()
        .take_while(|&&b| b != 0)
        .filter(|&&b| (0x20..=0x7E).contains(&b) || b >= 0xA0)
        .map(|&b| char::from(b))
        .collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// "V3.2.6" from Ausbg `56 03` and Ausbe `02 06`.
fn v_version(ausbg: u16, ausbe: u16) -> Option<String> {
    let [v, major] = ausbg.to_be_bytes();
    let [minor, patch] = ausbe.to_be_bytes();
    (v == b'V').then(|| format!("V{major}.{minor}.{patch}"))
}

/// What SZL `0x0011` tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleIdentification {
    pub order_number: Option<String>,
    pub hardware_version: Option<String>,
    pub firmware_version: Option<String>,
}

/// Reads the module (`0001`), basic hardware (`0006`) and basic firmware (`0007`) records, or the
/// single 26-byte record of python-snap7's server (see [`SNAP7_MODULE_RECORD_LEN`]).
pub fn module_identification(records: &[Vec<u8>]) -> ModuleIdentification {
    let mut out = ModuleIdentification::default();
    if let [r] = records {
        if r.len() == SNAP7_MODULE_RECORD_LEN {
            out.order_number = text(&r[2..22]);
            let [major, minor, patch] = [r[23], r[24], r[25]];
            out.firmware_version = Some(format!("V{major}.{minor}.{patch}"));
            return out;
        }
    }
    let fields = |r: &[u8]| -> Option<(u16, Option<String>, u16, u16)> {
        Some((u16_at(r, 0)?, r.get(2..22).and_then(text), u16_at(r, 24)?, u16_at(r, 26)?))
    };
    let parsed: Vec<_> = records.iter().filter_map(|r| fields(r)).collect();
    let by_index = |i: u16| parsed.iter().find(|(idx, ..)| *idx == i);
    out.order_number =
        by_index(0x0001).and_then(|r| r.1.clone()).or_else(|| by_index(0x0006).and_then(|r| r.1.clone()));
    out.hardware_version = [0x0001, 0x0006].iter().find_map(|&i| {
        let (_, _, ausbg, ausbe) = by_index(i)?;
        v_version(*ausbg, *ausbe).or_else(|| (*ausbg != 0).then(|| ausbg.to_string()))
    });
    out.firmware_version = by_index(0x0007).and_then(|(_, _, ausbg, ausbe)| v_version(*ausbg, *ausbe));
    out
}

/// What SZL `0x001C` tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentIdentification {
    pub system_name: Option<String>,
    pub module_name: Option<String>,
    pub plant_id: Option<String>,
    pub copyright: Option<String>,
    pub serial_number: Option<String>,
    pub module_type: Option<String>,
    pub memory_card_serial: Option<String>,
    pub location: Option<String>,
}

/// The indexes of a CPU's 0x001C records in the order CPUs send them (0x06 is not defined).
const COMPONENT_INDEXES_IN_ORDER: [u16; 10] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08, 0x09, 0x0A, 0x0B];

/// Reads the string records of the component identification. A record whose index is zero (as
/// python-snap7's server sends every one of them) is taken by its position in the usual order.
pub fn component_identification(records: &[Vec<u8>]) -> ComponentIdentification {
    let mut out = ComponentIdentification::default();
    for (position, r) in records.iter().enumerate() {
        let (Some(index), Some(value)) = (u16_at(r, 0), r.get(2..)) else { continue };
        let index = match index & 0x00FF {
            0 => COMPONENT_INDEXES_IN_ORDER.get(position).copied().unwrap_or(0),
            other => other,
        };
        let slot = match index {
            0x01 => &mut out.system_name,
            0x02 => &mut out.module_name,
            0x03 => &mut out.plant_id,
            0x04 => &mut out.copyright,
            0x05 => &mut out.serial_number,
            0x07 => &mut out.module_type,
            0x08 => &mut out.memory_card_serial,
            0x0B => &mut out.location,
            _ => continue,
        };
        if slot.is_none() {
            *slot = text(value);
        }
    }
    out
}

/// Everything the probe established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S7Info {
    pub calling_tsap: u16,
    pub called_tsap: u16,
    pub setup: SetupReply,
    pub module: ModuleIdentification,
    pub component: ComponentIdentification,
}

impl S7Info {
    pub fn identity(&self) -> Identity {
        let mut id = Identity::new(PROTOCOL, true);
        id.field("calling_tsap", self.calling_tsap);
        id.field("called_tsap", self.called_tsap);
        let [_, rack_slot] = self.called_tsap.to_be_bytes();
        id.field("rack", rack_slot >> 5);
        id.field("slot", rack_slot & 0x1F);
        match self.setup {
            SetupReply::Accepted { pdu_length, .. } => {
                id.field("pdu_length", pdu_length);
            }
            SetupReply::Rejected { error_class, error_code } => {
                id.field("error_class", error_class);
                id.field("error_code", error_code);
            }
        }
        let m = &self.module;
        let c = &self.component;
        for (name, value) in [
            ("order_number", &m.order_number),
            ("hardware_version", &m.hardware_version),
            ("firmware_version", &m.firmware_version),
            ("system_name", &c.system_name),
            ("module_name", &c.module_name),
            ("plant_id", &c.plant_id),
            ("copyright", &c.copyright),
            ("serial_number", &c.serial_number),
            ("module_type", &c.module_type),
            ("memory_card_serial", &c.memory_card_serial),
            ("location", &c.location),
        ] {
            if let Some(v) = value {
                id.field(name, v.as_str());
            }
        }
        id
    }
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[102]);

fn not(why: impl Into<String>) -> ProbeError {
    ProbeError::not(PROTOCOL, why)
}

/// One SZL read; `None` when the conversation is over (the peer hung up, went silent or confused).
async fn szl(session: &mut Session<'_>, pdu_ref: u16, szl_id: u16, index: u16) -> Option<SzlReply> {
    let reply = match iso_transport::exchange(session.conn(), &read_szl(pdu_ref, szl_id, index)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("S7 SZL {szl_id:#06x} read ended the conversation: {e}");
            return None;
        }
    };
    match parse_szl_reply(&reply, pdu_ref, szl_id) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::debug!("S7 SZL {szl_id:#06x} reply not understood: {e}");
            None
        }
    }
}

fn records(reply: &Option<SzlReply>) -> &[Vec<u8>] {
    match reply {
        Some(SzlReply::Records { records, .. }) => records,
        _ => &[],
    }
}

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let (calling_tsap, called_tsap) =
        iso_transport::connect_first(session, &TSAP_PAIRS, |(calling, called)| connect_request(calling, called))
            .await
            .map_err(not)?;

    // A COTP confirm alone proves nothing about S7: the setup reply must validate.
    let reply = iso_transport::exchange(session.conn(), &setup_communication(1))
        .await
        .map_err(|e| not(format!("no S7 answer to setup communication after COTP CC: {e}")))?;
    let setup = parse_setup_reply(&reply, 1).map_err(|e| not(e.0))?;
    let mut info = S7Info {
        calling_tsap,
        called_tsap,
        setup: setup.clone(),
        module: ModuleIdentification::default(),
        component: ComponentIdentification::default(),
    };
    if !matches!(setup, SetupReply::Accepted { .. }) {
        return Ok(info.identity());
    }

    let mut module = szl(session, 2, SZL_MODULE_IDENTIFICATION, 0x0000).await;
    let mut alive = module.is_some();
    if alive && module_identification(records(&module)).order_number.is_none() {
        // Some servers answer only a single index (nmap's s7-info asks for 0x0001).
        let retry = szl(session, 3, SZL_MODULE_IDENTIFICATION, 0x0001).await;
        alive = retry.is_some();
        if !records(&retry).is_empty() {
            module = retry;
        }
    }
    info.module = module_identification(records(&module));
    if alive {
        let component = szl(session, 4, SZL_COMPONENT_IDENTIFICATION, 0x0000).await;
        info.component = component_identification(records(&component));
    }
    Ok(info.identity())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Whole TPKT frames as real servers sent them to otscope's requests on loopback (hex).
    // python-snap7 3.3.0 (`snap7.server.Server`, pure Python): SZL 0x0011 and 0x001C.
    const SNAP7_PY_0011: &str =
        "0300004302f080320700000002000c0026000112081284010000000000ff09002200110000001a000100013645533720\
         3331352d32454831342d304142300000030300";
    const SNAP7_PY_001C: &str =
        "030000f702f080320700000004000c00da000112081284010000000000ff0900d6001c0000000000000000534e415037\
         2d53455256455200000000000000000000000000000000000000000000435055203331352d3220504e2f445000000000\
         000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
         004f726967696e616c205369656d656e732045717569706d656e7400000000000000005320432d433255523238393232\
         303132000000000000000000000000000000000000435055203331352d3220504e2f4450000000000000000000000000\
         00000000000000";
    // The C Snap7 server (libsnap7 bundled in python-snap7 2.0.2): SZL 0x0011 and 0x001C.
    const LIBSNAP7_0011: &str =
        "0300009902f080320700000002000c007c000112081284010000000000ff09007800110000001c000400013645533720\
         3331352d32454831342d304142302000c000040001000636455337203331352d32454831342d304142302000c0000400\
         010007202020202020202020202020202020202020202000c0560302060081426f6f74204c6f61646572202020202020\
         202020000041200909";
    const LIBSNAP7_001C: &str =
        "0300017d02f080320700000004000c0160000112081284010000000000ff09015c001c00000022000a0001534e415037\
         2d53455256455200000000000000000000000000000000000000000002435055203331352d3220504e2f445000000000\
         000000000000000000000000000003000000000000000000000000000000000000000000000000000000000000000000\
         044f726967696e616c205369656d656e732045717569706d656e7400000000000000055320432d433255523238393232\
         303132000000000000000000000000000000000007435055203331352d3220504e2f4450000000000000000000000000\
         000000000000084d4d4320323637464631314600000000000000000000000000000000000000000009002af600000100\
         00000000000000000000000000000000000000000000000000000a000000000000000000000000000000000000000000\
         0000000000000000000000000b0000000000000000000000000000000000000000000000000000000000000000";
    // conpot 0.6.0, default template: setup, SZL 0x0011 index 0 and 1, SZL 0x001C.
    const CONPOT_SETUP: &str = "0300001b02f080320300000001002300000000f0000001000101e0";
    const CONPOT_0011_0000: &str = "0300001902f080320700000002002300000001120812840101";
    const CONPOT_0011_0001: &str =
        "0300004102f080320700000003002300280001120812840101ff09002400110001001c00010001000000000000000000\
         0000000000000000000000000000000000";
    const CONPOT_001C: &str =
        "0300013502f0803207000000040023011c0001120812840101ff090118001c0000002200080001546563686e6f64726f\
         6d6500000000000000000000000000000000000000000000025369656d656e732c2053494d415449432c2053372d3230\
         30000000000000000000034d6f7573657220466163746f727900000000000000000000000000000000000000044f7269\
         67696e616c205369656d656e732045717569706d656e7400000000000000053838313131323232000000000000000000\
         0000000000000000000000000000000007494d3135312d3820504e2f4450204350550000000000000000000000000000\
         00000a0000000000000000000000000000000000000000000000000000000000000000000b0000000000000000000000\
         000000000000000000000000000000000000000000";

    /// The S7 PDU of a captured frame: after TPKT (4 bytes) and the COTP DT header (3 bytes).
    fn captured_pdu(frame: &str) -> Vec<u8> {
        let bytes = hex::decode(frame).unwrap();
        assert_eq!(bytes[4..7], [0x02, 0xF0, 0x80], "a DT TPDU with EOT");
        bytes[7..].to_vec()
    }

    fn captured_records(frame: &str, pdu_ref: u16, szl_id: u16) -> Vec<Vec<u8>> {
        match parse_szl_reply(&captured_pdu(frame), pdu_ref, szl_id).unwrap() {
            SzlReply::Records { records, .. } => records,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn python_snap7_server_identity() {
        // One 26-byte 0x0011 record: the version is its last three bytes (3, 3, 0).
        assert_eq!(
            module_identification(&captured_records(SNAP7_PY_0011, 2, 0x0011)),
            ModuleIdentification {
                order_number: Some("6ES7 315-2EH14-0AB0".into()),
                hardware_version: None,
                firmware_version: Some("V3.3.0".into()),
            }
        );
        // 0x001C header LENTHDR 0 / N_DR 0, every record index 0, strings at the 34-byte strides.
        let records = captured_records(SNAP7_PY_001C, 4, 0x001C);
        assert_eq!(records.len(), 6);
        assert_eq!(
            component_identification(&records),
            ComponentIdentification {
                system_name: Some("SNAP7-SERVER".into()),
                module_name: Some("CPU 315-2 PN/DP".into()),
                plant_id: None,
                copyright: Some("Original Siemens Equipment".into()),
                serial_number: Some("S C-C2UR28922012".into()),
                module_type: Some("CPU 315-2 PN/DP".into()),
                memory_card_serial: None,
                location: None,
            }
        );
    }

    #[test]
    fn c_snap7_server_identity() {
        assert_eq!(
            module_identification(&captured_records(LIBSNAP7_0011, 2, 0x0011)),
            ModuleIdentification {
                order_number: Some("6ES7 315-2EH14-0AB0".into()),
                hardware_version: Some("4".into()),
                firmware_version: Some("V3.2.6".into()),
            }
        );
        let component = component_identification(&captured_records(LIBSNAP7_001C, 4, 0x001C));
        assert_eq!(component.system_name.as_deref(), Some("SNAP7-SERVER"));
        assert_eq!(component.memory_card_serial.as_deref(), Some("MMC 267FF11F"));
        assert_eq!(component.module_type.as_deref(), Some("CPU 315-2 PN/DP"));
    }

    #[test]
    fn conpot_s7_200_with_overstated_parameter_lengths() {
        // Every conpot PDU declares a 35-byte parameter before an 8-byte one.
        let setup = captured_pdu(CONPOT_SETUP);
        assert_eq!(u16::from_be_bytes([setup[6], setup[7]]), 35);
        assert_eq!(
            parse_setup_reply(&setup, 1),
            Ok(SetupReply::Accepted { pdu_length: 480, max_amq_calling: 1, max_amq_called: 1 })
        );
        assert_eq!(captured_records(CONPOT_0011_0000, 2, 0x0011), Vec::<Vec<u8>>::new());
        assert_eq!(
            module_identification(&captured_records(CONPOT_0011_0001, 3, 0x0011)),
            ModuleIdentification::default()
        );
        assert_eq!(
            component_identification(&captured_records(CONPOT_001C, 4, 0x001C)),
            ComponentIdentification {
                system_name: Some("Technodrome".into()),
                module_name: Some("Siemens, SIMATIC, S7-200".into()),
                plant_id: Some("Mouser Factory".into()),
                copyright: Some("Original Siemens Equipment".into()),
                serial_number: Some("88111222".into()),
                module_type: Some("IM151-8 PN/DP CPU".into()),
                memory_card_serial: None,
                location: None,
            }
        );
    }

    #[test]
    fn lengths_that_fit_nowhere_are_still_refused() {
        // Parameter and data both longer than the PDU: nothing to take the parameter from.
        let mut pdu = captured_pdu(CONPOT_SETUP);
        pdu[8..10].copy_from_slice(&100u16.to_be_bytes());
        assert!(parse_header(&pdu).is_err());
    }

    fn s7(rosctr: u8, pdu_ref: u16, error: Option<(u8, u8)>, param: &[u8], data: &[u8]) -> Vec<u8> {
        let mut pdu = vec![PROTOCOL_ID, rosctr, 0, 0];
        pdu.extend_from_slice(&pdu_ref.to_be_bytes());
        pdu.extend_from_slice(&(param.len() as u16).to_be_bytes());
        pdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
        if let Some((c, e)) = error {
            pdu.extend_from_slice(&[c, e]);
        }
        pdu.extend_from_slice(param);
        pdu.extend_from_slice(data);
        pdu
    }

    fn module_record(index: u16, mlfb: &str, bgtyp: u16, ausbg: u16, ausbe: u16) -> Vec<u8> {
        let mut r = index.to_be_bytes().to_vec();
        let mut name = mlfb.as_bytes().to_vec();
        name.resize(20, b' ');
        r.extend_from_slice(&name);
        for w in [bgtyp, ausbg, ausbe] {
            r.extend_from_slice(&w.to_be_bytes());
        }
        r
    }

    fn component_record(index: u16, text: &str) -> Vec<u8> {
        let mut r = index.to_be_bytes().to_vec();
        let mut s = text.as_bytes().to_vec();
        s.resize(32, 0);
        r.extend_from_slice(&s);
        r
    }

    /// A Read SZL response: 12-byte userdata parameter (real CPUs) or 8-byte (Conpot).
    fn szl_response(pdu_ref: u16, long_param: bool, id: u16, len: u16, count: u16, records: &[Vec<u8>]) -> Vec<u8> {
        let mut param = vec![0x00, 0x01, 0x12, if long_param { 0x08 } else { 0x04 }, 0x12, 0x84, 0x01, 0x01];
        if long_param {
            param.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]);
        }
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0x00, 0x00]);
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&count.to_be_bytes());
        for r in records {
            body.extend_from_slice(r);
        }
        let mut data = vec![0xFF, 0x09];
        data.extend_from_slice(&(body.len() as u16).to_be_bytes());
        data.extend_from_slice(&body);
        s7(ROSCTR_USERDATA, pdu_ref, None, &param, &data)
    }

    /// The module identification of a CPU 315-2 PN/DP as Wireshark decodes it from a real reply.
    fn cpu315_module_records() -> Vec<Vec<u8>> {
        vec![
            module_record(0x0001, "6ES7 315-2EH14-0AB0 ", 0x00C0, 4, 1),
            module_record(0x0006, "6ES7 315-2EH14-0AB0 ", 0x00C0, 4, 1),
            module_record(0x0007, "", 0x00C0, 22019, 518),
            module_record(0x0081, "Boot Loader", 0x0000, 16672, 2313),
        ]
    }

    #[test]
    fn request_bytes() {
        assert_eq!(
            setup_communication(1),
            [
                0x32, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00, 0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01,
                0xE0
            ]
        );
        assert_eq!(
            read_szl(2, 0x0011, 0x0000),
            [
                0x32, 0x07, 0x00, 0x00, 0x00, 0x02, 0x00, 0x08, 0x00, 0x08, 0x00, 0x01, 0x12, 0x04, 0x11, 0x44, 0x01,
                0x00, 0xFF, 0x09, 0x00, 0x04, 0x00, 0x11, 0x00, 0x00
            ]
        );
        assert_eq!(
            connect_request(0x0100, 0x0102),
            [
                0x03, 0x00, 0x00, 0x16, 0x11, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xC0, 0x01, 0x0A, 0xC1, 0x02, 0x01,
                0x00, 0xC2, 0x02, 0x01, 0x02
            ]
        );
    }

    #[test]
    fn setup_ack_and_errors() {
        let ack = s7(ROSCTR_ACK_DATA, 1, Some((0, 0)), &[0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xF0], &[]);
        assert_eq!(
            parse_setup_reply(&ack, 1),
            Ok(SetupReply::Accepted { pdu_length: 240, max_amq_calling: 1, max_amq_called: 1 })
        );
        assert!(parse_setup_reply(&ack, 2).is_err(), "wrong PDU reference");
        let refused = s7(ROSCTR_ACK_DATA, 1, Some((0x81, 0x04)), &[], &[]);
        assert_eq!(parse_setup_reply(&refused, 1), Ok(SetupReply::Rejected { error_class: 0x81, error_code: 0x04 }));
        let ack_only = s7(ROSCTR_ACK, 1, Some((0x85, 0x00)), &[], &[]);
        assert_eq!(parse_setup_reply(&ack_only, 1), Ok(SetupReply::Rejected { error_class: 0x85, error_code: 0 }));
        assert!(parse_setup_reply(&setup_communication(1), 1).is_err(), "an echo is not a reply");
    }

    #[test]
    fn truncated_and_garbage_replies_are_errors() {
        let ack = s7(ROSCTR_ACK_DATA, 1, Some((0, 0)), &[0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xF0], &[]);
        for n in 0..ack.len() {
            assert!(parse_setup_reply(&ack[..n], 1).is_err(), "truncated at {n}");
        }
        assert!(parse_setup_reply(b"\x72\x01\x00\x10", 1).is_err());
        assert!(parse_setup_reply(&[0x32, 0x09, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0], 1).is_err());
        let szl = szl_response(2, true, 0x0011, 28, 4, &cpu315_module_records());
        for n in 0..szl.len() {
            let _ = parse_szl_reply(&szl[..n], 2, 0x0011);
        }
        for n in 0..64 {
            let junk: Vec<u8> = std::iter::once(0x32).chain((0..n).map(|i| (i * 91 + 7) as u8)).collect();
            let _ = parse_szl_reply(&junk, 2, 0x0011);
            let _ = parse_setup_reply(&junk, 1);
        }
        assert!(parse_szl_reply(&read_szl(2, 0x0011, 0), 2, 0x0011).is_err(), "an echo is not a reply");
    }

    #[test]
    fn module_identification_of_a_cpu_315() {
        let reply = szl_response(2, true, 0x0011, 28, 4, &cpu315_module_records());
        let SzlReply::Records { records, .. } = parse_szl_reply(&reply, 2, 0x0011).unwrap() else { panic!() };
        assert_eq!(records.len(), 4);
        assert_eq!(
            module_identification(&records),
            ModuleIdentification {
                order_number: Some("6ES7 315-2EH14-0AB0".into()),
                hardware_version: Some("4".into()),
                firmware_version: Some("V3.2.6".into()),
            }
        );
    }

    #[test]
    fn component_identification_with_real_and_zero_counts() {
        let recs = vec![
            component_record(0x0001, "SNAP7-SERVER"),
            component_record(0x0002, "CPU 315-2 PN/DP"),
            component_record(0x0003, ""),
            component_record(0x0004, "Original Siemens Equipment"),
            component_record(0x0005, "S C-C2UR28922012"),
            component_record(0x0007, "CPU 315-2 PN/DP"),
            component_record(0x0008, "MMC 267FF11F"),
            {
                let mut r = vec![0x00, 0x09, 0x00, 0x2A, 0xF6, 0x00, 0x00, 0x01];
                r.resize(34, 0);
                r
            },
            component_record(0x000B, "Hall 3"),
        ];
        let expected = ComponentIdentification {
            system_name: Some("SNAP7-SERVER".into()),
            module_name: Some("CPU 315-2 PN/DP".into()),
            plant_id: None,
            copyright: Some("Original Siemens Equipment".into()),
            serial_number: Some("S C-C2UR28922012".into()),
            module_type: Some("CPU 315-2 PN/DP".into()),
            memory_card_serial: Some("MMC 267FF11F".into()),
            location: Some("Hall 3".into()),
        };
        for (long, len, count) in [(true, 34, 9), (false, 0, 0), (false, 34, 0), (true, 34, 200), (true, 4000, 9)] {
            let reply = szl_response(4, long, 0x001C, len, count, &recs);
            let SzlReply::Records { records, .. } = parse_szl_reply(&reply, 4, 0x001C).unwrap() else { panic!() };
            assert_eq!(component_identification(&records), expected, "len {len} count {count}");
        }
    }

    #[test]
    fn szl_errors_and_empty_answers() {
        let param = [0x00, 0x01, 0x12, 0x08, 0x12, 0x84, 0x01, 0x01, 0x00, 0x00, 0xD4, 0x01];
        let refused = s7(ROSCTR_USERDATA, 2, None, &param, &[0x0A, 0x00, 0x00, 0x00]);
        assert_eq!(parse_szl_reply(&refused, 2, 0x0011), Ok(SzlReply::Error { error_code: 0xD401, return_code: 0x0A }));
        let empty = s7(ROSCTR_USERDATA, 2, None, &[0x00, 0x01, 0x12, 0x04, 0x12, 0x84, 0x01, 0x01], &[]);
        assert_eq!(
            parse_szl_reply(&empty, 2, 0x0011),
            Ok(SzlReply::Records { szl_id: 0x0011, index: 0, records: vec![] })
        );
        let other_list = szl_response(2, true, 0x0424, 28, 1, &cpu315_module_records()[..1]);
        assert!(parse_szl_reply(&other_list, 2, 0x0011).is_err());
    }

    #[test]
    fn data_longer_than_declared_or_present() {
        // Data length says 500 while 40 bytes follow: the records present are still read.
        let mut reply = szl_response(2, true, 0x0011, 28, 1, &cpu315_module_records()[..1]);
        reply[8..10].copy_from_slice(&500u16.to_be_bytes());
        let SzlReply::Records { records, .. } = parse_szl_reply(&reply, 2, 0x0011).unwrap() else { panic!() };
        assert_eq!(module_identification(&records).order_number.as_deref(), Some("6ES7 315-2EH14-0AB0"));
    }

    #[test]
    fn identity_fields() {
        let info = S7Info {
            calling_tsap: 0x0100,
            called_tsap: 0x0201,
            setup: SetupReply::Accepted { pdu_length: 240, max_amq_calling: 1, max_amq_called: 1 },
            module: ModuleIdentification { order_number: Some("6ES7 214-1AG40-0XB0".into()), ..Default::default() },
            component: ComponentIdentification::default(),
        };
        let id = info.identity();
        assert_eq!(id.protocol, "s7comm");
        assert!(id.ics);
        assert_eq!(id.fields["rack"], 0);
        assert_eq!(id.fields["slot"], 1);
        assert_eq!(id.fields["pdu_length"], 240);
        assert_eq!(id.fields["order_number"], "6ES7 214-1AG40-0XB0");
        assert!(!id.fields.contains_key("firmware_version"));
    }
}
