//! Modbus/TCP (MODBUS Application Protocol V1.1b3 and the Modbus/TCP implementation guide): MBAP
//! framing and a server answering Read Device Identification (43/14), Report Server ID (17) and a
//! Read Holding Registers of register 0.

use crate::serve::Handler;
use std::sync::{Arc, Mutex};

/// The identification objects of a Modicon M340 (basic 00-02, regular 03-05).
pub const M340: [(u8, &str); 6] = [
    (0, "Schneider Electric"),
    (1, "BMX P34 2020"),
    (2, "v2.8"),
    (3, "http://www.schneider-electric.com"),
    (4, "Modicon M340"),
    (5, "BMX P34 2020"),
];

/// An ADU: the MBAP header (transaction id, protocol 0, length, unit id) and the PDU.
pub fn adu(tid: [u8; 2], unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = vec![tid[0], tid[1], 0, 0];
    out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out.push(unit);
    out.extend_from_slice(pdu);
    out
}

/// Where a device logs every (unit id, function code) it receives.
pub type RequestLog = Arc<Mutex<Vec<(u8, u8)>>>;

/// What a server does with Read Device Identification (function 43, MEI type 14).
#[derive(Clone, Debug)]
pub enum Identification {
    /// Serves these objects (basic 00-02, regular 03-06) with this conformity level, at most
    /// `per_reply` objects per transaction ("more follows" for the rest).
    Serve { conformity: u8, objects: Vec<(u8, &'static str)>, per_reply: usize },
    /// Answers with this exception code.
    Exception(u8),
    /// Drops the request without a reply (as some stacks do for functions they lack).
    Silent,
}

/// A Modbus/TCP server.
#[derive(Clone, Debug)]
pub struct Device {
    /// Unit ids it answers; others are dropped silently.
    pub units: Vec<u8>,
    /// Unit ids for which it answers as a gateway whose target is absent (exception 0B).
    pub absent_units: Vec<u8>,
    pub identification: Identification,
    /// Whether Read Holding Registers of register 0 is served (else exception 02, illegal data address).
    pub holding_register: bool,
    /// What Report Server ID (17) returns after the server id and run indicator; `None`: the
    /// function is refused (exception 01).
    pub server_id: Option<String>,
    /// Where every request is logged, for assertions.
    pub seen: Option<RequestLog>,
}

impl Device {
    /// A Modicon M340 that answers every unit id with its regular identification.
    pub fn m340() -> Device {
        let [vendor, code, revision] = [M340[0].1, M340[1].1, M340[2].1];
        Device {
            units: (0..=255).collect(),
            absent_units: Vec::new(),
            identification: Identification::Serve { conformity: 0x82, objects: M340.to_vec(), per_reply: M340.len() },
            holding_register: true,
            server_id: Some(format!("{vendor} {code} {revision}")),
            seen: None,
        }
    }

    /// A conversation: the stream is parsed ADU by ADU; what is not Modbus is dropped.
    pub fn handler(&self) -> Handler {
        let device = self.clone();
        Box::new(move |bytes: &[u8]| {
            let mut replies = Vec::new();
            let mut rest = bytes;
            while rest.len() >= 7 {
                let len = u16::from_be_bytes([rest[4], rest[5]]) as usize;
                if rest[2..4] != [0, 0] || len < 2 || rest.len() < 6 + len {
                    break; // not Modbus: a real server drops it
                }
                let (one, tail) = rest.split_at(6 + len);
                rest = tail;
                if let Some(r) = device.answer(one) {
                    replies.extend_from_slice(&r);
                }
            }
            (!replies.is_empty()).then_some(replies)
        })
    }

    /// The reply to one whole ADU, if any.
    pub fn answer(&self, request: &[u8]) -> Option<Vec<u8>> {
        let (tid, unit, pdu) = ([request[0], request[1]], request[6], &request[7..]);
        if let Some(seen) = &self.seen {
            seen.lock().expect("not poisoned").push((unit, pdu[0]));
        }
        if self.absent_units.contains(&unit) {
            return Some(adu(tid, unit, &[pdu[0] | 0x80, 0x0B]));
        }
        if !self.units.contains(&unit) {
            return None;
        }
        let reply = match pdu {
            [0x2B, 0x0E, code, object] => match &self.identification {
                Identification::Silent => return None,
                Identification::Exception(e) => vec![0xAB, *e],
                Identification::Serve { conformity, objects, per_reply } => {
                    identification(*code, *object, *conformity, objects, *per_reply)
                }
            },
            [0x2B, 0x0E, ..] => vec![0xAB, 0x03],
            // Report Server ID: server id, run indicator ON, then the device's own text.
            [0x11] => match &self.server_id {
                Some(text) => {
                    let mut r = vec![0x11, (text.len() + 2) as u8, 0x01, 0xFF];
                    r.extend_from_slice(text.as_bytes());
                    r
                }
                None => vec![0x91, 0x01],
            },
            [0x03, 0x00, 0x00, 0x00, 0x01] if self.holding_register => vec![0x03, 0x02, 0x00, 0x2A],
            [0x03, ..] => vec![0x83, 0x02],
            [f, ..] => vec![f | 0x80, 0x01],
            [] => return None,
        };
        Some(adu(tid, unit, &reply))
    }
}

/// The PDU answering Read Device Identification with read code `code` from object `object`.
fn identification(code: u8, object: u8, conformity: u8, objects: &[(u8, &str)], per_reply: usize) -> Vec<u8> {
    let category: Vec<_> = match code {
        1 => objects.iter().filter(|(id, _)| *id <= 2).collect(),
        2 if conformity & 0x7F >= 2 => objects.iter().filter(|(id, _)| *id <= 6).collect(),
        _ => return vec![0xAB, 0x03],
    };
    // Stream access restarts at the first object when the id is not in the category.
    let start = category.iter().position(|(id, _)| *id == object).unwrap_or(0);
    let chunk: Vec<_> = category.iter().skip(start).take(per_reply).collect();
    let next = category.get(start + chunk.len());
    let mut r = vec![0x2B, 0x0E, code, conformity];
    r.push(if next.is_some() { 0xFF } else { 0x00 });
    r.push(next.map_or(0, |(id, _)| *id));
    r.push(chunk.len() as u8);
    for (id, value) in chunk {
        r.push(*id);
        r.push(value.len() as u8);
        r.extend_from_slice(value.as_bytes());
    }
    r
}
