//! IEC 61850 / ISO 9506 MMS over the OSI upper layers on ISO-on-TCP, port 102.
//!
//! Conversation (read-only):
//! 1. COTP Connection Request with TSAPs calling `0001` / called `0001` (the IEC 61850 default;
//!    S7 CPUs use `01xx`/`02xx`, which is how the two are told apart before any byte of payload).
//! 2. In one DT: ISO 8327 session CONNECT SPDU carrying an ISO 8823 presentation CP-type PPDU
//!    carrying an ACSE AARQ (application context MMS `1.0.9506.2.3`) carrying an MMS
//!    Initiate-RequestPDU. This is the association every MMS client opens; it negotiates sizes and
//!    reads nothing. The answer: ACCEPT SPDU, CPA-PPDU, AARE, Initiate-ResponsePDU.
//! 3. MMS Identify (confirmed-RequestPDU, invokeID, `identify [2] NULL`): the server's vendorName,
//!    modelName and revision. Identify is a pure read of the VMD's identity.
//!
//! The association is abandoned by closing the TCP connection, as any client that goes away.
//!
//! Byte layouts (BER, definite lengths in what we send):
//! - CONNECT SPDU `0D <LI>`: `05 06 13 01 00 16 01 02` (protocol options 0, version 2),
//!   `14 02 00 02` (duplex), `33 02 00 01` / `34 02 00 01` (calling / called session selector),
//!   `C1 <len> <presentation>` (user data). ACCEPT is `0E`, REFUSE `0C`, ABORT `19`; after the
//!   association, data travels as `01 00 01 00` (Give Tokens + Data Transfer) + presentation.
//! - CP-type `31`: mode `A0 03 80 01 01` (normal), `A2` normal-mode parameters: calling / called
//!   presentation selectors `81 04 00 00 00 01` / `82 04 00 00 00 01`, context list `A4` with
//!   context 1 = ACSE `2.2.1.0.1` and context 3 = MMS `1.0.9506.2.1` (transfer syntax BER
//!   `2.1.1`), user data `61 { 30 { 02 01 01, A0 <AARQ> } }`. CPA is the same `31` set with
//!   the AARE in its user data; CPR is a `30` sequence.
//! - AARQ `60`: `A1` application context, `A2`/`A3` called AP title `1.1.1.999.1` / AE qualifier
//!   12, `A6`/`A7` calling AP title `1.1.1.999` / AE qualifier 12, `BE { 28 { 02 01 03, A0 <MMS> } }`.
//!   AARE `61`: `A1` context, `A2 { 02 <result> }` (0 accepted), ..., `BE` user information.
//! - Initiate-RequestPDU `A8`: `80` local detail (max PDU 65000), `81`/`82` max outstanding
//!   requests (1/1), `83` nesting level (10), `A4 { 80 version 1, 81 parameter CBB, 82 services }`.
//!   Initiate-ResponsePDU `A9` mirrors it with the negotiated values; Initiate-ErrorPDU is `AA`.
//! - Identify: request `A0 { 02 <invokeID>, 82 00 }`; response `A1 { 02 <invokeID>, A2 { 80
//!   vendorName, 81 modelName, 82 revision } }`; `A2` is a confirmed-ErrorPDU, `A4` a reject.

use super::iso_transport;
use super::{Identity, Probe, ProbeError};
use crate::net::Session;

pub const PROTOCOL: &str = "mms";

const TSAP: [u8; 2] = [0x00, 0x01];
const SRC_REF: u16 = 0x0003;
/// MMS application context name 1.0.9506.2.3, content octets.
const MMS_CONTEXT: [u8; 5] = [0x28, 0xCA, 0x22, 0x02, 0x03];
/// Presentation context id of MMS in our context list (and ACSE's indirect reference to it).
const MMS_PCI: u8 = 3;
const IDENTIFY_INVOKE_ID: u64 = 1;
/// Most elements walked in one constructed value.
const MAX_ELEMENTS: usize = 256;

const SPDU_CONNECT: u8 = 0x0D;
const SPDU_ACCEPT: u8 = 0x0E;
const SPDU_REFUSE: u8 = 0x0C;
const SPDU_ABORT: u8 = 0x19;
const SPDU_DATA: u8 = 0x01;

pub use super::ParseError;

// ---------------------------------------------------------------- BER, encoding

/// Tag and definite length (short or long form).
fn tl(tag: u8, len: usize) -> Vec<u8> {
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = (len as u32).to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out
}

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = tl(tag, value.len());
    out.extend_from_slice(value);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------- BER, decoding

/// One BER element: its identifier (the first octet; high tag numbers are only skipped) and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Element<'a> {
    tag: u8,
    value: &'a [u8],
}

/// Splits the first element off `b`. Indefinite lengths take the rest of the enclosing value.
fn element(b: &[u8]) -> Result<(Element<'_>, &[u8]), ParseError> {
    let (&tag, mut rest) = b.split_first().ok_or_else(|| ParseError::new("empty BER element"))?;
    if tag & 0x1F == 0x1F {
        // High tag number: skip its continuation octets (bounded).
        let n =
            rest.iter().take(5).position(|&o| o & 0x80 == 0).ok_or_else(|| ParseError::new("bad high tag number"))?;
        rest = &rest[n + 1..];
    }
    let (&first, rest) = rest.split_first().ok_or_else(|| ParseError::new("BER element without a length"))?;
    let (len, rest) = match first {
        0x80 => return Ok((Element { tag, value: rest }, &[])),
        l if l < 0x80 => (usize::from(l), rest),
        l => {
            let n = usize::from(l & 0x7F);
            if n > 4 {
                return Err(ParseError::new("BER length of more than 4 octets"));
            }
            let octets = rest.get(..n).ok_or_else(|| ParseError::new("truncated BER length"))?;
            (octets.iter().fold(0usize, |acc, &o| (acc << 8) | usize::from(o)), &rest[n..])
        }
    };
    let value = rest
        .get(..len)
        .ok_or_else(|| ParseError::new(format!("BER element {tag:#04x} of {len} bytes overruns its container")))?;
    Ok((Element { tag, value }, &rest[len..]))
}

/// The elements of a constructed value (end-of-contents markers skipped), bounded.
fn children(mut b: &[u8]) -> Result<Vec<Element<'_>>, ParseError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if out.len() >= MAX_ELEMENTS {
            return Err(ParseError::new("too many BER elements"));
        }
        let (e, rest) = element(b)?;
        if e.tag != 0x00 {
            out.push(e);
        }
        b = rest;
    }
    Ok(out)
}

fn child<'a>(elements: &[Element<'a>], tag: u8) -> Option<&'a [u8]> {
    elements.iter().find(|e| e.tag == tag).map(|e| e.value)
}

fn unsigned(b: &[u8]) -> Option<u64> {
    (!b.is_empty() && b.len() <= 9).then(|| b.iter().fold(0u64, |acc, &o| (acc << 8) | u64::from(o)))
}

fn visible_string(b: &[u8]) -> Option<String> {
    let s: String = b.iter().filter(|&&c| (0x20..=0x7E).contains(&c)).map(|&c| char::from(c)).collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

// ---------------------------------------------------------------- requests

/// MMS Initiate-RequestPDU.
pub fn initiate_request() -> Vec<u8> {
    let detail = cat(&[
        &[0x80, 0x01, 0x01],             // proposedVersionNumber 1
        &[0x81, 0x03, 0x05, 0xF1, 0x00], // proposedParameterCBB: str1 str2 vnam vlis valt
        // servicesSupportedCalling (85 bits): the service set public IEC 61850 clients announce.
        &[0x82, 0x0C, 0x03, 0xEE, 0x1C, 0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x79, 0xEF, 0x18],
    ]);
    let body = cat(&[
        &[0x80, 0x03, 0x00, 0xFD, 0xE8], // localDetailCalling: 65000
        &[0x81, 0x01, 0x01],             // proposedMaxServOutstandingCalling
        &[0x82, 0x01, 0x01],             // proposedMaxServOutstandingCalled
        &[0x83, 0x01, 0x0A],             // proposedDataStructureNestingLevel
        &tlv(0xA4, &detail),
    ]);
    tlv(0xA8, &body)
}

/// ACSE AARQ for the MMS application context, carrying `mms` as user information.
pub fn aarq(mms: &[u8]) -> Vec<u8> {
    let external = cat(&[&[0x02, 0x01, MMS_PCI], &tlv(0xA0, mms)]);
    let body = cat(&[
        &tlv(0xA1, &tlv(0x06, &MMS_CONTEXT)),
        &tlv(0xA2, &tlv(0x06, &[0x29, 0x01, 0x87, 0x67, 0x01])), // called AP title 1.1.1.999.1
        &tlv(0xA3, &[0x02, 0x01, 0x0C]),                         // called AE qualifier 12
        &tlv(0xA6, &tlv(0x06, &[0x29, 0x01, 0x87, 0x67])),       // calling AP title 1.1.1.999
        &tlv(0xA7, &[0x02, 0x01, 0x0C]),                         // calling AE qualifier 12
        &tlv(0xBE, &tlv(0x28, &external)),
    ]);
    tlv(0x60, &body)
}

/// Presentation CP-type PPDU (normal mode) with the ACSE and MMS contexts and `acse` as user data.
pub fn presentation_connect(acse: &[u8]) -> Vec<u8> {
    let ber = tlv(0x30, &[0x06, 0x02, 0x51, 0x01]); // transfer syntax 2.1.1
    let acse_ctx = cat(&[&[0x02, 0x01, 0x01], &tlv(0x06, &[0x52, 0x01, 0x00, 0x01]), &ber]);
    let mms_ctx = cat(&[&[0x02, 0x01, MMS_PCI], &tlv(0x06, &[0x28, 0xCA, 0x22, 0x02, 0x01]), &ber]);
    let contexts = cat(&[&tlv(0x30, &acse_ctx), &tlv(0x30, &mms_ctx)]);
    let user_data = tlv(0x61, &tlv(0x30, &cat(&[&[0x02, 0x01, 0x01], &tlv(0xA0, acse)])));
    let normal = cat(&[
        &[0x81, 0x04, 0x00, 0x00, 0x00, 0x01],
        &[0x82, 0x04, 0x00, 0x00, 0x00, 0x01],
        &tlv(0xA4, &contexts),
        &user_data,
    ]);
    tlv(0x31, &cat(&[&[0xA0, 0x03, 0x80, 0x01, 0x01], &tlv(0xA2, &normal)]))
}

/// An SPDU length indicator: one octet, or `FF` and two octets from 255 on.
fn spdu_li(len: usize) -> Vec<u8> {
    if len < 255 {
        vec![len as u8]
    } else {
        let mut v = vec![0xFF];
        v.extend_from_slice(&(len.min(65535) as u16).to_be_bytes());
        v
    }
}

/// Session CONNECT SPDU carrying `presentation` as user data.
pub fn session_connect(presentation: &[u8]) -> Vec<u8> {
    let mut params = vec![0x05, 0x06, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02];
    params.extend_from_slice(&[0x14, 0x02, 0x00, 0x02]);
    params.extend_from_slice(&[0x33, 0x02, 0x00, 0x01]);
    params.extend_from_slice(&[0x34, 0x02, 0x00, 0x01]);
    params.push(0xC1);
    params.extend_from_slice(&spdu_li(presentation.len()));
    params.extend_from_slice(presentation);
    let mut spdu = vec![SPDU_CONNECT];
    spdu.extend_from_slice(&spdu_li(params.len()));
    spdu.extend_from_slice(&params);
    spdu
}

/// The whole association request: CONNECT ( CP ( AARQ ( Initiate-Request ) ) ).
pub fn associate_request() -> Vec<u8> {
    session_connect(&presentation_connect(&aarq(&initiate_request())))
}

/// MMS data after association: Give Tokens + Data Transfer SPDUs, presentation user data
/// (context 3), and the MMS PDU.
fn mms_data(pdu: &[u8]) -> Vec<u8> {
    let pdv = cat(&[&[0x02, 0x01, MMS_PCI], &tlv(0xA0, pdu)]);
    cat(&[&[SPDU_DATA, 0x00, SPDU_DATA, 0x00], &tlv(0x61, &tlv(0x30, &pdv))])
}

/// Identify request: confirmed-RequestPDU { invokeID, identify NULL }.
pub fn identify_request(invoke_id: u8) -> Vec<u8> {
    mms_data(&tlv(0xA0, &[0x02, 0x01, invoke_id, 0x82, 0x00]))
}

// ---------------------------------------------------------------- replies

/// The negotiated parameters of an Initiate-ResponsePDU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Initiate {
    pub max_pdu_size: Option<u64>,
    pub max_serv_outstanding_calling: Option<u64>,
    pub max_serv_outstanding_called: Option<u64>,
    pub nesting_level: Option<u64>,
    pub version: Option<u64>,
    /// servicesSupportedCalled bit string, without its unused-bits octet.
    pub services_supported: Option<Vec<u8>>,
}

/// What the association attempt established.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Association {
    /// ACSE result (0 accepted, 1 rejected permanent, 2 rejected transient).
    pub acse_result: Option<u64>,
    pub initiate: Option<Initiate>,
    /// The server answered with an Initiate-ErrorPDU.
    pub initiate_error: bool,
}

impl Association {
    pub fn accepted(&self) -> bool {
        self.acse_result.unwrap_or(0) == 0 && self.initiate.is_some()
    }
}

/// Walks session parameters to the user data (PGI `C1`, or extended user data `C2`).
fn session_user_data(params: &[u8]) -> Result<Option<&[u8]>, ParseError> {
    let mut rest = params;
    for _ in 0..MAX_ELEMENTS {
        let Some((&code, after)) = rest.split_first() else { return Ok(None) };
        let (len, after) = match after.split_first() {
            Some((&0xFF, a)) => {
                let l = a.get(..2).ok_or_else(|| ParseError::new("truncated session parameter length"))?;
                (usize::from(u16::from_be_bytes([l[0], l[1]])), &a[2..])
            }
            Some((&l, a)) => (usize::from(l), a),
            None => return Err(ParseError::new("session parameter without a length")),
        };
        let value = after.get(..len).ok_or_else(|| ParseError::new("session parameter overruns the SPDU"))?;
        if code == 0xC1 || code == 0xC2 {
            return Ok(Some(value));
        }
        rest = &after[len..];
    }
    Err(ParseError::new("too many session parameters"))
}

/// Splits an SPDU: (SI, parameters, bytes after the SPDU).
fn spdu(b: &[u8]) -> Result<(u8, &[u8], &[u8]), ParseError> {
    let (&si, rest) = b.split_first().ok_or_else(|| ParseError::new("empty session data"))?;
    let (len, rest) = match rest.split_first() {
        Some((&0xFF, a)) => {
            let l = a.get(..2).ok_or_else(|| ParseError::new("truncated SPDU length"))?;
            (usize::from(u16::from_be_bytes([l[0], l[1]])), &a[2..])
        }
        Some((&l, a)) => (usize::from(l), a),
        None => return Err(ParseError::new("SPDU without a length")),
    };
    let params = rest.get(..len).ok_or_else(|| ParseError::new("SPDU length overruns the data"))?;
    Ok((si, params, &rest[len..]))
}

/// The single-ASN1-type (or octet-aligned) value of a presentation user-data element `61`.
fn presentation_user_data(user_data: &[u8]) -> Result<&[u8], ParseError> {
    let pdv_lists = children(user_data)?;
    for pdv in pdv_lists.iter().filter(|e| e.tag == 0x30) {
        let items = children(pdv.value)?;
        if let Some(v) = child(&items, 0xA0).or_else(|| child(&items, 0x81)) {
            return Ok(v);
        }
    }
    Err(ParseError::new("presentation user data without a value"))
}

fn parse_initiate_response(value: &[u8]) -> Result<Initiate, ParseError> {
    let items = children(value)?;
    let mut out = Initiate {
        max_pdu_size: child(&items, 0x80).and_then(unsigned),
        max_serv_outstanding_calling: child(&items, 0x81).and_then(unsigned),
        max_serv_outstanding_called: child(&items, 0x82).and_then(unsigned),
        nesting_level: child(&items, 0x83).and_then(unsigned),
        ..Default::default()
    };
    if let Some(detail) = child(&items, 0xA4) {
        let d = children(detail)?;
        out.version = child(&d, 0x80).and_then(unsigned);
        out.services_supported = child(&d, 0x82).and_then(|b| b.get(1..)).map(<[u8]>::to_vec);
    }
    Ok(out)
}

/// Parses the answer to [`associate_request`]: it proves MMS only when it carries an MMS
/// Initiate response or error, or an AARE naming the MMS application context.
pub fn parse_associate_reply(data: &[u8]) -> Result<Association, ParseError> {
    let (si, params, _) = spdu(data)?;
    match si {
        SPDU_ACCEPT => {}
        SPDU_REFUSE => return Err(ParseError::new("session refused (REFUSE SPDU)")),
        SPDU_ABORT => return Err(ParseError::new("session aborted (ABORT SPDU)")),
        SPDU_CONNECT => return Err(ParseError::new("a CONNECT SPDU (an echo of the request?)")),
        other => return Err(ParseError::new(format!("SPDU {other:#04x} where ACCEPT was expected"))),
    }
    let pres = session_user_data(params)?.ok_or_else(|| ParseError::new("ACCEPT without user data"))?;
    let (cpa, _) = element(pres)?;
    if cpa.tag == 0x30 {
        return Err(ParseError::new("presentation connection refused (CPR)"));
    }
    if cpa.tag != 0x31 {
        return Err(ParseError::new(format!("presentation tag {:#04x}, expected CPA (0x31)", cpa.tag)));
    }
    let normal =
        child(&children(cpa.value)?, 0xA2).ok_or_else(|| ParseError::new("CPA without normal-mode parameters"))?;
    let user_data = child(&children(normal)?, 0x61).ok_or_else(|| ParseError::new("CPA without user data"))?;
    let (aare, _) = element(presentation_user_data(user_data)?)?;
    if aare.tag != 0x61 {
        return Err(ParseError::new(format!("ACSE tag {:#04x}, expected AARE (0x61)", aare.tag)));
    }
    let items = children(aare.value)?;
    let mms_context = child(&items, 0xA1)
        .and_then(|c| children(c).ok())
        .and_then(|c| child(&c, 0x06).map(|oid| oid == MMS_CONTEXT))
        .unwrap_or(false);
    let mut assoc = Association {
        acse_result: child(&items, 0xA2)
            .and_then(|r| children(r).ok())
            .and_then(|r| child(&r, 0x02).and_then(unsigned)),
        ..Default::default()
    };
    if let Some(info) = child(&items, 0xBE) {
        let external =
            child(&children(info)?, 0x28).ok_or_else(|| ParseError::new("user information without EXTERNAL"))?;
        let ext = children(external)?;
        if let Some(pdu) = child(&ext, 0xA0).or_else(|| child(&ext, 0x81)) {
            let (mms, _) = element(pdu)?;
            match mms.tag {
                0xA9 => assoc.initiate = Some(parse_initiate_response(mms.value)?),
                0xAA => assoc.initiate_error = true,
                other => {
                    return Err(ParseError::new(format!("MMS PDU {other:#04x} where Initiate-Response was expected")))
                }
            }
        }
    }
    if assoc.initiate.is_none() && !assoc.initiate_error && !mms_context {
        return Err(ParseError::new("AARE without MMS context or MMS PDU"));
    }
    Ok(assoc)
}

/// The answer to Identify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentifyReply {
    Identity {
        vendor_name: Option<String>,
        model_name: Option<String>,
        revision: Option<String>,
    },
    /// confirmed-ErrorPDU or rejectPDU: the server does not tell.
    Refused,
}

/// Parses the answer to [`identify_request`] sent with `invoke_id`.
pub fn parse_identify_reply(data: &[u8], invoke_id: u64) -> Result<IdentifyReply, ParseError> {
    let (si, _, rest) = spdu(data)?;
    if si != SPDU_DATA {
        return Err(ParseError::new(format!("SPDU {si:#04x} where data was expected")));
    }
    // Give Tokens is followed by the Data Transfer SPDU; a lone Data Transfer is accepted too.
    let pres = match rest.first() {
        Some(&SPDU_DATA) => spdu(rest)?.2,
        _ => rest,
    };
    let (ud, _) = element(pres)?;
    if ud.tag != 0x61 {
        return Err(ParseError::new(format!("presentation tag {:#04x}, expected user data (0x61)", ud.tag)));
    }
    let (pdu, _) = element(presentation_user_data(ud.value)?)?;
    let items = children(pdu.value)?;
    let id_matches = |tag: u8| child(&items, tag).and_then(unsigned) == Some(invoke_id);
    match pdu.tag {
        0xA1 => {
            if !id_matches(0x02) {
                return Err(ParseError::new("confirmed response for another invokeID"));
            }
            let identify = child(&items, 0xA2).ok_or_else(|| ParseError::new("confirmed response is not Identify"))?;
            let fields = children(identify)?;
            Ok(IdentifyReply::Identity {
                vendor_name: child(&fields, 0x80).and_then(visible_string),
                model_name: child(&fields, 0x81).and_then(visible_string),
                revision: child(&fields, 0x82).and_then(visible_string),
            })
        }
        0xA2 | 0xA4 => Ok(IdentifyReply::Refused),
        0xA0 => Err(ParseError::new("a confirmed request (an echo?)")),
        other => Err(ParseError::new(format!("MMS PDU {other:#04x} where the Identify response was expected"))),
    }
}

/// The finding.
pub fn identity(assoc: &Association, identify: Option<&IdentifyReply>) -> Identity {
    let mut id = Identity::new(PROTOCOL, true);
    id.field("calling_tsap", 1);
    id.field("called_tsap", 1);
    if let Some(r) = assoc.acse_result.filter(|&r| r != 0) {
        id.field("association_result", r);
    }
    if assoc.initiate_error {
        id.field("initiate_error", true);
    }
    if let Some(i) = &assoc.initiate {
        if let Some(v) = i.version {
            id.field("mms_version", v);
        }
        if let Some(v) = i.max_pdu_size {
            id.field("max_pdu_size", v);
        }
        if let Some(s) = &i.services_supported {
            id.field("services_supported", s.iter().map(|b| format!("{b:02x}")).collect::<String>());
        }
    }
    match identify {
        Some(IdentifyReply::Identity { vendor_name, model_name, revision }) => {
            for (name, value) in [("vendor_name", vendor_name), ("model_name", model_name), ("revision", revision)] {
                if let Some(v) = value {
                    id.field(name, v.as_str());
                }
            }
        }
        Some(IdentifyReply::Refused) => {
            id.field("identify_refused", true);
        }
        None => {}
    }
    id
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[102]);

fn not(why: impl Into<String>) -> ProbeError {
    ProbeError::not(PROTOCOL, why)
}

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let cr = iso_transport::connect_request(SRC_REF, &TSAP, &TSAP, iso_transport::TPDU_SIZE_1024);
    iso_transport::connect(session.conn(), &cr).await.map_err(|e| not(e.to_string()))?;
    // A COTP confirm alone proves nothing: the association answer must validate.
    let reply = iso_transport::exchange(session.conn(), &associate_request())
        .await
        .map_err(|e| not(format!("no answer to the association request after COTP CC: {e}")))?;
    let assoc = parse_associate_reply(&reply).map_err(|e| not(e.0))?;
    if !assoc.accepted() {
        return Ok(identity(&assoc, None));
    }
    let identify = match iso_transport::exchange(session.conn(), &identify_request(IDENTIFY_INVOKE_ID as u8)).await {
        Ok(r) => match parse_identify_reply(&r, IDENTIFY_INVOKE_ID) {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::debug!("MMS Identify reply not understood: {e}");
                None
            }
        },
        Err(e) => {
            tracing::debug!("MMS Identify got no answer: {e}");
            None
        }
    };
    Ok(identity(&assoc, identify.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Initiate-ResponsePDU of a libIEC61850 server: max PDU 65000, 1/1 outstanding, nesting 4,
    /// version 1, parameter CBB, 85-bit servicesSupportedCalled.
    fn initiate_response() -> Vec<u8> {
        let detail = cat(&[
            &[0x80, 0x01, 0x01],
            &[0x81, 0x03, 0x05, 0xF1, 0x00],
            &[0x82, 0x0C, 0x03, 0xEE, 0x1C, 0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x79, 0xEF, 0x18],
        ]);
        let body = cat(&[
            &[0x80, 0x03, 0x00, 0xFD, 0xE8],
            &[0x81, 0x01, 0x01],
            &[0x82, 0x01, 0x01],
            &[0x83, 0x01, 0x04],
            &tlv(0xA4, &detail),
        ]);
        tlv(0xA9, &body)
    }

    fn aare(result: u8, mms: Option<&[u8]>) -> Vec<u8> {
        let mut body = cat(&[
            &tlv(0xA1, &tlv(0x06, &MMS_CONTEXT)),
            &tlv(0xA2, &[0x02, 0x01, result]),
            &tlv(0xA3, &tlv(0xA1, &[0x02, 0x01, 0x00])),
        ]);
        if let Some(pdu) = mms {
            body.extend(tlv(0xBE, &tlv(0x28, &cat(&[&[0x02, 0x01, 0x03], &tlv(0xA0, pdu)]))));
        }
        tlv(0x61, &body)
    }

    fn cpa(acse: &[u8]) -> Vec<u8> {
        let results = cat(&[&tlv(0x30, &[0x80, 0x01, 0x00, 0x81, 0x02, 0x51, 0x01]), &tlv(0x30, &[0x80, 0x01, 0x00])]);
        let normal = cat(&[
            &[0x83, 0x04, 0x00, 0x00, 0x00, 0x01],
            &tlv(0xA5, &results),
            &tlv(0x61, &tlv(0x30, &cat(&[&[0x02, 0x01, 0x01], &tlv(0xA0, acse)]))),
        ]);
        tlv(0x31, &cat(&[&[0xA0, 0x03, 0x80, 0x01, 0x01], &tlv(0xA2, &normal)]))
    }

    fn accept(pres: &[u8]) -> Vec<u8> {
        let mut params =
            vec![0x05, 0x06, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x14, 0x02, 0x00, 0x02, 0x34, 0x02, 0x00, 0x01];
        params.push(0xC1);
        params.extend(spdu_li(pres.len()));
        params.extend_from_slice(pres);
        let mut spdu = vec![SPDU_ACCEPT];
        spdu.extend(spdu_li(params.len()));
        spdu.extend(params);
        spdu
    }

    fn identify_response(invoke: u8, vendor: &str, model: &str, revision: &str) -> Vec<u8> {
        let fields =
            cat(&[&tlv(0x80, vendor.as_bytes()), &tlv(0x81, model.as_bytes()), &tlv(0x82, revision.as_bytes())]);
        mms_data(&tlv(0xA1, &cat(&[&[0x02, 0x01, invoke], &tlv(0xA2, &fields)])))
    }

    #[test]
    fn request_bytes() {
        assert_eq!(
            initiate_request(),
            [
                0xA8, 0x26, 0x80, 0x03, 0x00, 0xFD, 0xE8, 0x81, 0x01, 0x01, 0x82, 0x01, 0x01, 0x83, 0x01, 0x0A, 0xA4,
                0x16, 0x80, 0x01, 0x01, 0x81, 0x03, 0x05, 0xF1, 0x00, 0x82, 0x0C, 0x03, 0xEE, 0x1C, 0x00, 0x00, 0x04,
                0x08, 0x00, 0x00, 0x79, 0xEF, 0x18
            ]
        );
        assert_eq!(
            identify_request(1),
            [
                0x01, 0x00, 0x01, 0x00, 0x61, 0x0E, 0x30, 0x0C, 0x02, 0x01, 0x03, 0xA0, 0x07, 0xA0, 0x05, 0x02, 0x01,
                0x01, 0x82, 0x00
            ]
        );
        let req = associate_request();
        // CONNECT SPDU with a one-octet length that covers everything after it.
        assert_eq!(req[0], SPDU_CONNECT);
        assert_eq!(usize::from(req[1]), req.len() - 2);
        assert_eq!(
            &req[2..18],
            &[0x05, 0x06, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x14, 0x02, 0x00, 0x02, 0x33, 0x02, 0x00, 0x01]
        );
        // The presentation CP-type starts with mode selector normal and both selectors.
        let pres = session_user_data(&req[2..]).unwrap().unwrap();
        let (cp, _) = element(pres).unwrap();
        assert_eq!(cp.tag, 0x31);
        assert_eq!(children(cp.value).unwrap()[0], Element { tag: 0xA0, value: &[0x80, 0x01, 0x01] });
        assert!(req.len() < 255, "{} bytes", req.len());
        let aarq_bytes = aarq(&initiate_request());
        assert_eq!(&aarq_bytes[2..11], &[0xA1, 0x07, 0x06, 0x05, 0x28, 0xCA, 0x22, 0x02, 0x03]);
        assert!(pres.ends_with(&aarq_bytes));
    }

    #[test]
    fn long_ber_lengths() {
        assert_eq!(tl(0x30, 0x7F), [0x30, 0x7F]);
        assert_eq!(tl(0x30, 0x80), [0x30, 0x81, 0x80]);
        assert_eq!(tl(0x30, 0x1234), [0x30, 0x82, 0x12, 0x34]);
        let big = tlv(0x04, &[0xAB; 300]);
        let (e, rest) = element(&big).unwrap();
        assert_eq!((e.tag, e.value.len(), rest.len()), (0x04, 300, 0));
    }

    #[test]
    fn an_accepted_association() {
        let reply = accept(&cpa(&aare(0, Some(&initiate_response()))));
        let a = parse_associate_reply(&reply).unwrap();
        assert!(a.accepted());
        assert_eq!(a.acse_result, Some(0));
        let i = a.initiate.unwrap();
        assert_eq!((i.max_pdu_size, i.version, i.nesting_level), (Some(65000), Some(1), Some(4)));
        assert_eq!(i.services_supported.unwrap(), [0xEE, 0x1C, 0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x79, 0xEF, 0x18]);
    }

    #[test]
    fn rejections_that_still_prove_mms() {
        let rejected = parse_associate_reply(&accept(&cpa(&aare(1, None)))).unwrap();
        assert_eq!(rejected.acse_result, Some(1));
        assert!(!rejected.accepted());
        let init_error = parse_associate_reply(&accept(&cpa(&aare(0, Some(&[0xAA, 0x03, 0x80, 0x01, 0x00]))))).unwrap();
        assert!(init_error.initiate_error && !init_error.accepted());
    }

    #[test]
    fn not_mms() {
        // An echo, a refusal, an abort, S7 bytes, a CPR, an AARE of another context without MMS data.
        assert!(parse_associate_reply(&associate_request()).is_err());
        assert!(parse_associate_reply(&[SPDU_REFUSE, 0x03, 0x32, 0x01, 0x00]).is_err());
        assert!(parse_associate_reply(&[SPDU_ABORT, 0x00]).is_err());
        assert!(parse_associate_reply(&[0x32, 0x03, 0x00, 0x00, 0x00, 0x01]).is_err());
        assert!(parse_associate_reply(&accept(&tlv(0x30, &[0xA0, 0x03, 0x80, 0x01, 0x01]))).is_err());
        let other = tlv(0x61, &cat(&[&tlv(0xA1, &tlv(0x06, &[0x2B, 0x06, 0x01])), &tlv(0xA2, &[0x02, 0x01, 0x00])]));
        assert!(parse_associate_reply(&accept(&cpa(&other))).is_err());
    }

    #[test]
    fn truncated_and_garbage_replies_never_panic() {
        let good = accept(&cpa(&aare(0, Some(&initiate_response()))));
        for n in 0..good.len() {
            assert!(parse_associate_reply(&good[..n]).is_err(), "truncated at {n}");
        }
        let id = identify_response(1, "MZ Automation", "libiec61850", "1.5.2");
        for n in 0..id.len() {
            let _ = parse_identify_reply(&id[..n], 1);
        }
        for n in 0..80 {
            let junk: Vec<u8> = [SPDU_ACCEPT, 0x40, 0xC1, 0x3E, 0x31, 0x3C]
                .into_iter()
                .chain((0..n).map(|i| (i * 29 + 5) as u8))
                .collect();
            let _ = parse_associate_reply(&junk);
            let _ = parse_identify_reply(&junk, 1);
        }
        // Lengths that lie.
        assert!(parse_associate_reply(&[SPDU_ACCEPT, 0xFF, 0xFF, 0xFF, 0xC1]).is_err());
        assert!(element(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]).is_err());
        assert!(element(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
    }

    #[test]
    fn identify() {
        let reply = identify_response(1, "MZ Automation", "libiec61850", "1.5.2");
        assert_eq!(
            parse_identify_reply(&reply, 1),
            Ok(IdentifyReply::Identity {
                vendor_name: Some("MZ Automation".into()),
                model_name: Some("libiec61850".into()),
                revision: Some("1.5.2".into()),
            })
        );
        assert!(parse_identify_reply(&reply, 2).is_err(), "another invokeID");
        assert!(parse_identify_reply(&identify_request(1), 1).is_err(), "an echo");
        let error = mms_data(&tlv(0xA2, &[0x80, 0x01, 0x01, 0xA1, 0x03, 0x80, 0x01, 0x00]));
        assert_eq!(parse_identify_reply(&error, 1), Ok(IdentifyReply::Refused));
    }

    #[test]
    fn identity_fields() {
        let assoc = parse_associate_reply(&accept(&cpa(&aare(0, Some(&initiate_response()))))).unwrap();
        let ident = parse_identify_reply(&identify_response(1, "ABB", "REF615", "5.0"), 1).unwrap();
        let id = identity(&assoc, Some(&ident));
        assert_eq!((id.protocol, id.ics), ("mms", true));
        assert_eq!(id.fields["vendor_name"], "ABB");
        assert_eq!(id.fields["model_name"], "REF615");
        assert_eq!(id.fields["revision"], "5.0");
        assert_eq!(id.fields["mms_version"], 1);
        assert_eq!(id.fields["max_pdu_size"], 65000);
        assert_eq!(id.fields["services_supported"], "ee1c00000408000079ef18");
        assert!(!id.fields.contains_key("association_result"));
    }
}
