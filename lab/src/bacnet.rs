//! BACnet/IP (ASHRAE 135, Annex J and clauses 6, 16, 20): BVLC, NPDU, Who-Is / I-Am, and
//! ReadProperty of the device object answered with ComplexACK, Error or Reject.

use crate::serve::Handler;
use std::collections::HashMap;

/// The instance number that addresses whatever device receives the request.
pub const WILDCARD: u32 = 4_194_303;
/// The device object type.
const DEVICE: u32 = 8;

/// A BVLC Original-Unicast-NPDU around an NPDU and APDU.
pub fn bvlc(npdu_apdu: &[u8]) -> Vec<u8> {
    let mut r = vec![0x81, 0x0A];
    r.extend_from_slice(&((4 + npdu_apdu.len()) as u16).to_be_bytes());
    r.extend_from_slice(npdu_apdu);
    r
}

/// An object identifier: 10 bits of type, 22 of instance.
pub fn oid(object_type: u32, instance: u32) -> [u8; 4] {
    ((object_type << 22) | instance).to_be_bytes()
}

/// An application-tagged unsigned value with tag number `tag`, in as few bytes as it needs.
pub fn unsigned_app(tag: u8, v: u32) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take(3).take_while(|&&x| x == 0).count();
    let mut r = vec![(tag << 4) | (4 - skip) as u8];
    r.extend_from_slice(&b[skip..]);
    r
}

/// An application-tagged character string, character set 0 (ANSI X3.4 / UTF-8).
pub fn char_string(s: &str) -> Vec<u8> {
    let len = s.len() + 1;
    let mut r = if len < 5 { vec![0x70 | len as u8] } else { vec![0x75, len as u8] };
    r.push(0x00);
    r.extend_from_slice(s.as_bytes());
    r
}

/// A BACnet/IP device.
#[derive(Clone, Debug)]
pub struct Device {
    pub instance: u32,
    pub vendor_id: u16,
    /// Whether it answers a unicast Who-Is with I-Am.
    pub answers_who_is: bool,
    /// Whether ReadProperty accepts the wildcard instance [`WILDCARD`].
    pub accepts_wildcard: bool,
    /// Character-string properties of its device object, by property identifier.
    pub strings: HashMap<u32, String>,
}

impl Device {
    /// A Johnson Controls Metasys NAE; `n` varies its instance and object name.
    pub fn nae(n: u32) -> Device {
        let strings = [
            (77, format!("NAE-{n}-Boiler Plant")),
            (121, "Johnson Controls, Inc.".to_string()),
            (70, "MS-NAE5510-2".to_string()),
            (44, "9.0.0.1234".to_string()),
            (12, "NAE Release 9.0".to_string()),
            (28, "Boiler plant supervisory controller".to_string()),
            (58, "Building 7, plant room".to_string()),
        ];
        Device {
            instance: 1_210_000 + n,
            vendor_id: 5,
            answers_who_is: true,
            accepts_wildcard: true,
            strings: strings.into_iter().collect(),
        }
    }

    /// The I-Am it sends: device object, max APDU 1476, no segmentation, its vendor id.
    pub fn i_am(&self) -> Vec<u8> {
        let mut apdu = vec![0x01, 0x00, 0x10, 0x00, 0xC4];
        apdu.extend_from_slice(&oid(DEVICE, self.instance));
        apdu.extend_from_slice(&unsigned_app(2, 1476));
        apdu.extend_from_slice(&[0x91, 0x03]);
        apdu.extend_from_slice(&unsigned_app(2, u32::from(self.vendor_id)));
        bvlc(&apdu)
    }

    /// Answers one datagram as a device would; anything it does not understand is dropped.
    pub fn answer(&self, req: &[u8]) -> Option<Vec<u8>> {
        if req.len() < 6 || req[0] != 0x81 || req[1] != 0x0A {
            return None;
        }
        if u16::from_be_bytes([req[2], req[3]]) as usize != req.len() || req[4] != 0x01 {
            return None;
        }
        let control = req[5];
        if control & 0x80 != 0 || control & 0x28 != 0 {
            return None; // network messages and routed requests: not for this device
        }
        let apdu = &req[6..];
        match *apdu.first()? >> 4 {
            // Unconfirmed Who-Is without a range.
            1 if apdu.get(1) == Some(&0x08) => self.answers_who_is.then(|| self.i_am()),
            0 => self.read_property(apdu),
            _ => None,
        }
    }

    fn read_property(&self, apdu: &[u8]) -> Option<Vec<u8>> {
        let invoke = *apdu.get(2)?;
        let reject = |reason: u8| Some(bvlc(&[0x01, 0x00, 0x60, invoke, reason]));
        let error = |class: u8, code: u8| Some(bvlc(&[0x01, 0x00, 0x50, invoke, 0x0C, 0x91, class, 0x91, code]));
        if apdu.get(3) != Some(&0x0C) {
            return reject(0x09); // any other confirmed service: unrecognized-service
        }
        if apdu.get(4) != Some(&0x0C) {
            return reject(0x04); // invalid-tag
        }
        let o = u32::from_be_bytes(apdu.get(5..9)?.try_into().ok()?);
        let (object_type, instance) = (o >> 22, o & 0x3F_FFFF);
        let (tag, rest) = (*apdu.get(9)?, apdu.get(10..)?);
        let property = match tag {
            0x19 => u32::from(*rest.first()?),
            0x1A => u32::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            _ => return reject(0x04),
        };
        let addressed =
            object_type == DEVICE && (instance == self.instance || (instance == WILDCARD && self.accepts_wildcard));
        if !addressed {
            return error(1, 31); // object, unknown-object
        }
        let value = match property {
            75 => {
                let mut v = vec![0xC4];
                v.extend_from_slice(&oid(DEVICE, self.instance));
                v
            }
            120 => unsigned_app(2, u32::from(self.vendor_id)),
            p => match self.strings.get(&p) {
                Some(text) => char_string(text),
                None => return error(2, 32), // property, unknown-property
            },
        };
        let mut ack = vec![0x01, 0x00, 0x30, invoke, 0x0C, 0x0C];
        ack.extend_from_slice(&oid(DEVICE, self.instance));
        ack.push(tag);
        ack.extend_from_slice(&rest[..if tag == 0x19 { 1 } else { 2 }]);
        ack.push(0x3E);
        ack.extend_from_slice(&value);
        ack.push(0x3F);
        Some(bvlc(&ack))
    }

    /// A conversation with this device.
    pub fn handler(&self) -> Handler {
        let device = self.clone();
        Box::new(move |req: &[u8]| device.answer(req))
    }
}
