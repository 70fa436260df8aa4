//! Omron FINS: a CPU unit answering Controller Data Read (05 01), over UDP and over FINS/TCP with its
//! node address handshake.

use crate::serve::Handler;

/// The controller's own FINS node number.
pub const NODE: u8 = 10;
/// The node number FINS/TCP assigns a client that asks for one (asks with 0).
pub const CLIENT_NODE: u8 = 239;

fn padded(s: &str, len: usize) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(len, b' ');
    v
}

/// A CPU unit.
#[derive(Clone, Debug)]
pub struct Controller {
    pub model: String,
    pub version: String,
    /// The end code of its Controller Data Read responses; data follows only with 0 (normal completion).
    pub end_code: u16,
}

impl Controller {
    /// A CJ2M-CPU32, unit version 02.01.
    pub fn cj2m() -> Controller {
        Controller { model: "CJ2M-CPU32".into(), version: "02.01".into(), end_code: 0 }
    }

    /// The response to one FINS command frame addressed to this node (or to node 0, the local
    /// node): Controller Data Read gets the model and version (or the end code when it is not 0),
    /// other commands "undefined command" (0401); what is not a command frame gets nothing.
    pub fn respond(&self, frame: &[u8]) -> Option<Vec<u8>> {
        if frame.len() < 12 || frame[0] & 0x40 != 0 || frame[0] & 0x80 == 0 {
            return None; // not a command (or a response): dropped
        }
        let (dna, da1, da2, sna, sa1, sa2, sid) =
            (frame[3], frame[4], frame[5], frame[6], frame[7], frame[8], frame[9]);
        if dna != 0 || (da1 != 0 && da1 != NODE) || da2 != 0 {
            return None; // addressed to another node or unit
        }
        let mut r = vec![0xC0, 0x00, 0x02, sna, sa1, sa2, 0x00, NODE, 0x00, sid, frame[10], frame[11]];
        if frame[10..12] != [0x05, 0x01] {
            r.extend_from_slice(&0x0401u16.to_be_bytes());
            return Some(r);
        }
        r.extend_from_slice(&self.end_code.to_be_bytes());
        if self.end_code == 0 {
            r.extend_from_slice(&padded(&self.model, 20));
            r.extend_from_slice(&padded(&self.version, 20));
            r.extend_from_slice(&[0; 40]); // for system use
                                           // Area data: program area 20 Ksteps, IOM 23 Kbytes, 32768 DM words, timer/counter 8, no
                                           // expansion DM, no steps/transitions, no memory card.
            r.extend_from_slice(&[0x00, 0x14, 0x17, 0x80, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        }
        Some(r)
    }

    /// A conversation over UDP: one command frame per datagram.
    pub fn udp_handler(&self) -> Handler {
        let controller = self.clone();
        Box::new(move |req: &[u8]| controller.respond(req))
    }

    /// A conversation over FINS/TCP: the node address handshake (assigning [`CLIENT_NODE`] to a client
    /// that asks with 0), then FINS frames in command 2 addressed from the assigned node to this one.
    pub fn tcp_handler(&self) -> Handler {
        let controller = self.clone();
        let mut client: Option<u8> = None;
        Box::new(move |req: &[u8]| {
            if req.len() < 16 || &req[..4] != b"FINS" {
                return None;
            }
            let len = u32::from_be_bytes(req[4..8].try_into().ok()?) as usize;
            let command = u32::from_be_bytes(req[8..12].try_into().ok()?);
            let header = |command: u32, error: u32, data: &[u8]| {
                let mut r = b"FINS".to_vec();
                r.extend_from_slice(&(8 + data.len() as u32).to_be_bytes());
                r.extend_from_slice(&command.to_be_bytes());
                r.extend_from_slice(&error.to_be_bytes());
                r.extend_from_slice(data);
                r
            };
            if len + 8 != req.len() {
                return Some(header(3, 0x02, &[])); // data length error
            }
            match (command, client) {
                (0, None) => {
                    let asked = u32::from_be_bytes(req.get(16..20)?.try_into().ok()?);
                    let node = if asked == 0 { CLIENT_NODE } else { asked as u8 };
                    client = Some(node);
                    Some(header(1, 0, &[0, 0, 0, node, 0, 0, 0, NODE]))
                }
                (2, Some(node)) => {
                    let frame = &req[16..];
                    if frame.get(4) != Some(&NODE) || frame.get(7) != Some(&node) {
                        return None; // not addressed from the assigned node to this one
                    }
                    Some(header(2, 0, &controller.respond(frame)?))
                }
                _ => Some(header(3, 0x03, &[])), // command not supported in this state
            }
        })
    }
}
