//! S7comm on port 102: the S7 header, setup communication and Read SZL (ids 0x0011 module
//! identification, 0x001C component identification) inside ISO transport, and a CPU that answers them.

use crate::iso;
use crate::serve::Handler;

/// The CPU's COTP references in its Connection Confirm and Disconnect Request.
const DST_REF: u16 = 0x0001;
const SRC_REF: u16 = 0x4431;

/// A Connection Confirm echoing the TSAPs, with the TPDU size parameter when `with_size`.
pub fn confirm(calling: &[u8], called: &[u8], with_size: bool) -> Vec<u8> {
    let mut params = Vec::new();
    if with_size {
        params.push(iso::TPDU_SIZE_1024);
    }
    params.extend([(0xC1, calling), (0xC2, called)]);
    iso::connection_confirm(DST_REF, SRC_REF, &params)
}

/// A Disconnect Request: the CPU refuses the connection for `reason` (0x85: the called TSAP is unknown).
pub fn refuse(reason: u8) -> Vec<u8> {
    iso::disconnect_request(DST_REF, SRC_REF, reason)
}

/// The S7 PDU inside a Data request.
pub fn pdu_of(req: &[u8]) -> Option<&[u8]> {
    iso::data_payload(req).filter(|p| p.first() == Some(&0x32))
}

/// An S7 PDU (ROSCTR, PDU reference, error class and code for acks) in a Data TPDU.
pub fn pdu(rosctr: u8, pdu_ref: [u8; 2], error: Option<[u8; 2]>, param: &[u8], data: &[u8]) -> Vec<u8> {
    let mut pdu = vec![0x32, rosctr, 0x00, 0x00, pdu_ref[0], pdu_ref[1]];
    pdu.extend_from_slice(&(param.len() as u16).to_be_bytes());
    pdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
    if let Some(e) = error {
        pdu.extend_from_slice(&e);
    }
    pdu.extend_from_slice(param);
    pdu.extend_from_slice(data);
    iso::data(&pdu)
}

/// Whether an S7 PDU is a setup communication job.
pub fn is_setup(pdu: &[u8]) -> bool {
    pdu.len() >= 18 && pdu[1] == 0x01 && pdu[10] == 0xF0
}

/// The ack-data to a setup communication job: one job each way, `pdu_length` bytes.
pub fn setup_ack(request: &[u8], pdu_length: u16) -> Vec<u8> {
    let mut param = vec![0xF0, 0x00, 0x00, 0x01, 0x00, 0x01];
    param.extend_from_slice(&pdu_length.to_be_bytes());
    pdu(0x03, [request[4], request[5]], Some([0, 0]), &param, &[])
}

/// (SZL id, index) of a Read SZL request (userdata, CPU functions, read SZL).
pub fn szl_request(pdu: &[u8]) -> Option<(u16, u16)> {
    let valid = pdu.len() >= 26
        && pdu[1] == 0x07
        && pdu[10..13] == [0x00, 0x01, 0x12]
        && pdu[14] == 0x11
        && pdu[15] == 0x44
        && pdu[16] == 0x01;
    valid.then(|| (u16::from_be_bytes([pdu[22], pdu[23]]), u16::from_be_bytes([pdu[24], pdu[25]])))
}

/// A Read SZL response. `long_param`: the 12-byte response parameter of real CPUs (data unit
/// reference, last unit, error code); otherwise the 8 bytes Conpot sends.
pub fn szl_reply(
    pdu_ref: [u8; 2],
    long_param: bool,
    id: u16,
    index: u16,
    len: u16,
    count: u16,
    recs: &[Vec<u8>],
) -> Vec<u8> {
    let mut param = vec![0x00, 0x01, 0x12, if long_param { 0x08 } else { 0x04 }, 0x12, 0x84, 0x01, 0x01];
    if long_param {
        param.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]);
    }
    let mut body = id.to_be_bytes().to_vec();
    body.extend_from_slice(&index.to_be_bytes());
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(&count.to_be_bytes());
    for r in recs {
        body.extend_from_slice(r);
    }
    let mut data = vec![0xFF, 0x09];
    data.extend_from_slice(&(body.len() as u16).to_be_bytes());
    data.extend_from_slice(&body);
    pdu(0x07, pdu_ref, None, &param, &data)
}

fn padded(s: &str, len: usize, fill: u8) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(len, fill);
    v
}

/// A 28-byte record of SZL 0x0011: index, order number (MLFB), module type, Ausbg, Ausbe.
pub fn module_record(index: u16, mlfb: &str, ausbg: [u8; 2], ausbe: [u8; 2]) -> Vec<u8> {
    let mut r = index.to_be_bytes().to_vec();
    r.extend_from_slice(&padded(mlfb, 20, b' '));
    r.extend_from_slice(&[0x00, 0xC0]);
    r.extend_from_slice(&ausbg);
    r.extend_from_slice(&ausbe);
    r
}

/// A 34-byte record of SZL 0x001C: index and a NUL-padded text.
pub fn component_record(index: u16, text: &str) -> Vec<u8> {
    let mut r = index.to_be_bytes().to_vec();
    r.extend_from_slice(&padded(text, 32, 0));
    r
}

/// A CPU that confirms the COTP connection, accepts setup communication (PDU size 240) and answers
/// Read SZL 0x0011 and 0x001C (index 0) with its identity; other SZL ids get an empty list.
#[derive(Clone, Debug)]
pub struct Cpu {
    /// The one called TSAP it accepts (others get a Disconnect Request, reason 0x85); `None`: any.
    pub called_tsap: Option<Vec<u8>>,
    pub order_number: String,
    /// Firmware version (major, minor, patch), reported as `V<major>.<minor>.<patch>`.
    pub firmware: [u8; 3],
    pub system_name: String,
    pub module_name: String,
    pub copyright: String,
    pub serial: String,
    pub module_type: String,
}

impl Cpu {
    /// An S7-1200 CPU 1214C DC/DC/DC, firmware V4.2.1, that accepts any called TSAP; `n` varies its
    /// serial number and station name.
    pub fn s7_1200(n: u32) -> Cpu {
        Cpu {
            called_tsap: None,
            order_number: "6ES7 214-1AG40-0XB0".into(),
            firmware: [4, 2, 1],
            system_name: format!("S71200/ET200MP station_{n}"),
            module_name: "PLC_1".into(),
            copyright: "Original Siemens Equipment".into(),
            serial: format!("S C-H6M3{n:08}"),
            module_type: "CPU 1214C DC/DC/DC".into(),
        }
    }

    /// The answer to one request: a TPKT, or nothing.
    pub fn answer(&self, req: &[u8]) -> Option<Vec<u8>> {
        if let Some((calling, called)) = iso::cotp(req).and_then(iso::tsaps) {
            return Some(match &self.called_tsap {
                Some(accepted) if *accepted != called => refuse(0x85),
                _ => confirm(&calling, &called, true),
            });
        }
        let pdu = pdu_of(req)?;
        if is_setup(pdu) {
            return Some(setup_ack(pdu, 240));
        }
        let r = [pdu[4], pdu[5]];
        let [major, minor, patch] = self.firmware;
        Some(match szl_request(pdu)? {
            (0x0011, 0x0000) => szl_reply(
                r,
                true,
                0x0011,
                0,
                28,
                3,
                &[
                    module_record(0x0001, &self.order_number, [0x00, 0x01], [0x00, 0x01]),
                    module_record(0x0006, &self.order_number, [0x00, 0x01], [0x00, 0x01]),
                    module_record(0x0007, "", [b'V', major], [minor, patch]),
                ],
            ),
            (0x001C, 0x0000) => szl_reply(
                r,
                true,
                0x001C,
                0,
                34,
                6,
                &[
                    component_record(0x0001, &self.system_name),
                    component_record(0x0002, &self.module_name),
                    component_record(0x0003, ""),
                    component_record(0x0004, &self.copyright),
                    component_record(0x0005, &self.serial),
                    component_record(0x0007, &self.module_type),
                ],
            ),
            _ => szl_reply(r, true, 0x0000, 0, 0, 0, &[]),
        })
    }

    /// A conversation with this CPU.
    pub fn handler(&self) -> Handler {
        let cpu = self.clone();
        Box::new(move |req: &[u8]| cpu.answer(req))
    }
}
