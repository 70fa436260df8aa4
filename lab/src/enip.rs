//! EtherNet/IP encapsulation (TCP and UDP): ListIdentity and its CIP identity item.

use crate::serve::Handler;

/// The identity a device reports to ListIdentity.
#[derive(Clone, Debug)]
pub struct Identity {
    pub product_name: String,
    pub vendor: u16,
    pub device_type: u16,
    pub product_code: u16,
    /// Major and minor revision.
    pub revision: [u8; 2],
    pub serial: u32,
}

impl Identity {
    /// A ControlLogix 1756-L61 (Rockwell Automation/Allen-Bradley, programmable logic controller), revision 20.11.
    pub fn controllogix(serial: u32) -> Identity {
        Identity {
            product_name: "1756-L61/B LOGIX5561".into(),
            vendor: 1,
            device_type: 0x0E,
            product_code: 54,
            revision: [20, 11],
            serial,
        }
    }

    /// The answer to one request: validates the 24-byte header (command 0x0063, no data), echoes the
    /// session handle and sender context, and answers other commands with status 0x0001 (invalid or
    /// unsupported command), as the encapsulation spec requires.
    pub fn answer(&self, req: &[u8]) -> Option<Vec<u8>> {
        if req.len() < 24 {
            return None; // not a whole encapsulation header: a real stack waits for more
        }
        let command = u16::from_le_bytes([req[0], req[1]]);
        let length = u16::from_le_bytes([req[2], req[3]]);
        let mut header = req[..24].to_vec();
        if command != 0x0063 || length != 0 {
            header[2..4].copy_from_slice(&0u16.to_le_bytes());
            header[8..12].copy_from_slice(&1u32.to_le_bytes());
            return Some(header);
        }
        let mut item = Vec::new();
        item.extend_from_slice(&1u16.to_le_bytes()); // encapsulation protocol version
        item.extend_from_slice(&[0x00, 0x02, 0xAF, 0x12, 10, 20, 30, 40]); // AF_INET, 44818, 10.20.30.40
        item.extend_from_slice(&[0; 8]);
        item.extend_from_slice(&self.vendor.to_le_bytes());
        item.extend_from_slice(&self.device_type.to_le_bytes());
        item.extend_from_slice(&self.product_code.to_le_bytes());
        item.extend_from_slice(&self.revision);
        item.extend_from_slice(&0x3060u16.to_le_bytes()); // status: owned, configured, run mode
        item.extend_from_slice(&self.serial.to_le_bytes());
        item.push(self.product_name.len() as u8);
        item.extend_from_slice(self.product_name.as_bytes());
        item.push(0x03); // state: operational
        let mut data = Vec::new();
        data.extend_from_slice(&1u16.to_le_bytes()); // item count
        data.extend_from_slice(&0x000Cu16.to_le_bytes()); // CIP identity
        data.extend_from_slice(&(item.len() as u16).to_le_bytes());
        data.extend_from_slice(&item);
        header[2..4].copy_from_slice(&(data.len() as u16).to_le_bytes());
        header.extend_from_slice(&data);
        Some(header)
    }

    /// A conversation with this device (the same on TCP and UDP).
    pub fn handler(&self) -> Handler {
        let identity = self.clone();
        Box::new(move |req: &[u8]| identity.answer(req))
    }
}
