//! Omron FINS, id `fins`, 9600/udp and 9600/tcp.
//!
//! The one request is Controller Data Read (command 0501): it returns the controller's model and
//! version strings and changes nothing (no memory write, no mode change, no program transfer).
//!
//! FINS frame: a 10-byte header — ICF (0x80: command, via gateway allowed, response required),
//! RSV (0), GCT (gateway count, 2), DNA/DA1/DA2 (destination network, node, unit), SNA/SA1/SA2
//! (source network, node, unit), SID (service id, echoed) — then the command code (MRC, SRC) and
//! its parameters. The response has bit 0x40 of ICF set, source and destination swapped, the same
//! SID and command code, a 2-byte end code, then (on normal completion) the controller model
//! (20 bytes) and version (20 bytes).
//!
//! FINS/TCP wraps frames in a 16-byte header: "FINS", length (4, BE, of what follows the length),
//! command (4), error code (4). The client first sends its node address (command 0, node 0: "assign
//! me one"); the server answers command 1 with the client's and its own node addresses; FINS frames
//! then travel in command 2 with DA1 = server node and SA1 = client node.

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, Session};
use crate::scope::Transport;

const PROTOCOL: &str = "fins";

pub const HEADER_LEN: usize = 10;
pub const ICF_COMMAND: u8 = 0x80;
pub const ICF_RESPONSE_BIT: u8 = 0x40;
pub const GCT: u8 = 0x02;
pub const CONTROLLER_DATA_READ: [u8; 2] = [0x05, 0x01];
/// Parameter of Controller Data Read: 00 = the controller model and version.
pub const READ_MODEL_AND_VERSION: u8 = 0x00;
/// Our source node over UDP (any node number the PLC does not use itself; replies go to the
/// requesting address and port).
pub const UDP_SOURCE_NODE: u8 = 0x63;
/// Our service id; the response must echo it.
pub const SID: u8 = 0x5A;
const MODEL_LEN: usize = 20;
const VERSION_LEN: usize = 20;
/// The largest FINS frame is about 2 KB; longer FINS/TCP claims are refused at once.
const MAX_TCP_LEN: usize = 4096;
/// A UDP response to Controller Data Read is well under this.
const MAX_DATAGRAM: usize = 4096;

pub const TCP_MAGIC: &[u8; 4] = b"FINS";
pub const TCP_CLIENT_NODE_ADDRESS: u32 = 0;
pub const TCP_SERVER_NODE_ADDRESS: u32 = 1;
pub const TCP_FRAME_SEND: u32 = 2;

pub use super::ParseError;

fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Controller Data Read to node `dest_node` from node `source_node`, on the local network (DNA 0,
/// SNA 0) and the CPU unit (DA2 0).
pub fn controller_data_read(dest_node: u8, source_node: u8, sid: u8) -> Vec<u8> {
    vec![
        ICF_COMMAND,
        0x00, // RSV
        GCT,
        0x00, // DNA: local network
        dest_node,
        0x00, // DA2: CPU unit
        0x00, // SNA: local network
        source_node,
        0x00, // SA2
        sid,
        CONTROLLER_DATA_READ[0],
        CONTROLLER_DATA_READ[1],
        READ_MODEL_AND_VERSION,
    ]
}

/// A validated response to Controller Data Read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerData {
    pub end_code: u16,
    pub model: Option<String>,
    pub version: Option<String>,
}

/// Whether an end code is a normal completion; its relay-error and PLC-error flag bits (0x80 of
/// the first byte, 0xC0 of the second) do not change that.
pub fn is_normal_completion(end_code: u16) -> bool {
    end_code & 0x7F3F == 0
}

/// Parses a FINS frame as the response to our Controller Data Read with service id `sid`.
pub fn parse_controller_data(buf: &[u8], sid: u8) -> Result<ControllerData, ParseError> {
    if buf.len() < HEADER_LEN + 4 {
        return Err(ParseError::new(format!("{} bytes, shorter than a FINS response header", buf.len())));
    }
    let icf = buf[0];
    if icf & ICF_RESPONSE_BIT == 0 {
        return Err(ParseError::new(format!("ICF 0x{icf:02x} is not a response")));
    }
    if icf & 0x3E != 0 {
        return Err(ParseError::new(format!("ICF 0x{icf:02x} has reserved bits set")));
    }
    if buf[9] != sid {
        return Err(ParseError::new(format!("service id 0x{:02x}, expected 0x{sid:02x}", buf[9])));
    }
    if buf[10..12] != CONTROLLER_DATA_READ {
        return Err(ParseError::new(format!("command {:02x}{:02x}, not Controller Data Read", buf[10], buf[11])));
    }
    let end_code = u16::from_be_bytes([buf[12], buf[13]]);
    let data = &buf[HEADER_LEN + 4..];
    let (mut model, mut version) = (None, None);
    if is_normal_completion(end_code) {
        model = data.get(..MODEL_LEN.min(data.len())).map(clean).filter(|s| !s.is_empty());
        version = data.get(MODEL_LEN..(MODEL_LEN + VERSION_LEN).min(data.len())).map(clean).filter(|s| !s.is_empty());
    }
    Ok(ControllerData { end_code, model, version })
}

/// ASCII text as reported, with NUL and space padding trimmed.
fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string()
}

/// Frames one FINS/UDP datagram (a whole datagram is one response, bounded in size).
pub fn udp_frame(buf: &[u8]) -> Frame {
    if buf.len() > MAX_DATAGRAM {
        return Frame::Invalid(format!("{}-byte datagram", buf.len()));
    }
    match parse_controller_data(buf, SID) {
        Ok(_) => Frame::Complete(buf.len()),
        Err(e) => Frame::Invalid(e.0),
    }
}

/// FINS/TCP header + `data` for `command`.
fn tcp_message(command: u32, data: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(16 + data.len());
    r.extend_from_slice(TCP_MAGIC);
    r.extend_from_slice(&(8 + data.len() as u32).to_be_bytes());
    r.extend_from_slice(&command.to_be_bytes());
    r.extend_from_slice(&0u32.to_be_bytes()); // error code
    r.extend_from_slice(data);
    r
}

/// The FINS/TCP node address request, asking the server to assign our node (node 0).
pub fn tcp_node_address_request() -> Vec<u8> {
    tcp_message(TCP_CLIENT_NODE_ADDRESS, &0u32.to_be_bytes())
}

/// A FINS frame inside FINS/TCP.
pub fn tcp_frame_send(fins_frame: &[u8]) -> Vec<u8> {
    tcp_message(TCP_FRAME_SEND, fins_frame)
}

/// Framing for FINS/TCP: the magic, then as many bytes as the length field says.
pub fn tcp_frame(buf: &[u8]) -> Frame {
    let n = buf.len().min(4);
    if buf[..n] != TCP_MAGIC[..n] {
        return Frame::Invalid("no FINS/TCP magic".into());
    }
    let Some(len) = u32_be(buf, 4) else { return Frame::Incomplete };
    let len = len as usize;
    if !(8..=MAX_TCP_LEN).contains(&len) {
        return Frame::Invalid(format!("implausible FINS/TCP length {len}"));
    }
    if buf.len() < 8 + len {
        return Frame::Incomplete;
    }
    Frame::Complete(8 + len)
}

/// A validated FINS/TCP message: its command, error code and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpMessage<'a> {
    pub command: u32,
    pub error_code: u32,
    pub data: &'a [u8],
}

/// Parses one whole FINS/TCP message.
pub fn parse_tcp_message(buf: &[u8]) -> Result<TcpMessage<'_>, ParseError> {
    if buf.get(..4) != Some(&TCP_MAGIC[..]) {
        return Err(ParseError::new("no FINS/TCP magic"));
    }
    let (Some(len), Some(command), Some(error_code)) = (u32_be(buf, 4), u32_be(buf, 8), u32_be(buf, 12)) else {
        return Err(ParseError::new(format!("{} bytes, shorter than a FINS/TCP header", buf.len())));
    };
    if len as usize != buf.len() - 8 {
        return Err(ParseError::new(format!("FINS/TCP length {len} for {} bytes", buf.len() - 8)));
    }
    Ok(TcpMessage { command, error_code, data: &buf[16..] })
}

/// The server's answer to our node address request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAddressReply {
    Assigned {
        client_node: u8,
        server_node: u8,
    },
    /// A FINS/TCP error (all connections in use, address in use, ...): still FINS.
    Error {
        error_code: u32,
    },
}

pub fn parse_node_address_reply(buf: &[u8]) -> Result<NodeAddressReply, ParseError> {
    let m = parse_tcp_message(buf)?;
    if m.error_code != 0 {
        return Ok(NodeAddressReply::Error { error_code: m.error_code });
    }
    if m.command != TCP_SERVER_NODE_ADDRESS {
        return Err(ParseError::new(format!("FINS/TCP command {}, expected the server's node address (1)", m.command)));
    }
    let (Some(client), Some(server)) = (u32_be(m.data, 0), u32_be(m.data, 4)) else {
        return Err(ParseError::new("node addresses truncated"));
    };
    let (Ok(client_node), Ok(server_node)) = (u8::try_from(client), u8::try_from(server)) else {
        return Err(ParseError::new(format!("node addresses {client}/{server} out of range")));
    };
    Ok(NodeAddressReply::Assigned { client_node, server_node })
}

/// What the probe learned, before it becomes fields.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    data: Option<ControllerData>,
    nodes: Option<(u8, u8)>,
    tcp_error_code: Option<u32>,
}

fn identity_of(o: &Outcome) -> Identity {
    let mut id = Identity::new(PROTOCOL, true);
    if let Some(d) = &o.data {
        if let Some(m) = &d.model {
            id.field("controller_model", m.as_str());
        }
        if let Some(v) = &d.version {
            id.field("controller_version", v.as_str());
        }
        id.field("end_code", d.end_code);
    }
    if let Some((client, server)) = o.nodes {
        id.field("client_node", client).field("server_node", server);
    }
    if let Some(e) = o.tcp_error_code {
        id.field("tcp_error_code", e);
    }
    id
}

fn not_fins(e: ParseError) -> ProbeError {
    ProbeError::not(PROTOCOL, e.0)
}

/// FINS over UDP and over TCP, both on 9600.
/// Some stacks answer a UDP request from another port than 9600: matched by content and address.
pub const PROBE: Probe =
    Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[9600]).udp(&[9600]).udp_replies_from_any_port();

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    match session.conn().transport() {
        Transport::Udp => run_udp(session).await,
        Transport::Tcp => run_tcp(session).await,
    }
}

/// FINS over UDP: one Controller Data Read datagram.
async fn run_udp(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    // DA1 0: the node that receives the datagram.
    let request = controller_data_read(0, UDP_SOURCE_NODE, SID);
    let reply = session.conn().exchange(&request, udp_frame).await?;
    let data = parse_controller_data(&reply, SID).map_err(not_fins)?;
    Ok(identity_of(&Outcome { data: Some(data), ..Default::default() }))
}

/// FINS over TCP: the node address handshake, then the same Controller Data Read.
async fn run_tcp(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let request = tcp_node_address_request();
    let reply = session.conn().exchange(&request, tcp_frame).await?;
    if reply == request {
        return Err(ProbeError::not(PROTOCOL, "the peer echoed the request"));
    }
    let mut outcome = Outcome::default();
    let (client, server) = match parse_node_address_reply(&reply).map_err(not_fins)? {
        NodeAddressReply::Error { error_code } => {
            outcome.tcp_error_code = Some(error_code);
            return Ok(identity_of(&outcome));
        }
        NodeAddressReply::Assigned { client_node, server_node } => (client_node, server_node),
    };
    outcome.nodes = Some((client, server));
    // FINS/TCP is proven from here on; the controller data is a bonus.
    let request = tcp_frame_send(&controller_data_read(server, client, SID));
    let Ok(reply) = session.conn().exchange(&request, tcp_frame).await else {
        return Ok(identity_of(&outcome));
    };
    if let Ok(m) = parse_tcp_message(&reply) {
        if m.error_code != 0 {
            outcome.tcp_error_code = Some(m.error_code);
        } else if m.command == TCP_FRAME_SEND {
            outcome.data = parse_controller_data(m.data, SID).ok();
        }
    }
    Ok(identity_of(&outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(s: &str, len: usize) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.resize(len, b' ');
        v
    }

    /// A Controller Data Read response from node 10 to node 0x63, built from the FINS layout.
    fn response(end_code: [u8; 2], model: &str, version: &str) -> Vec<u8> {
        let mut r = vec![0xC0, 0x00, 0x02, 0x00, UDP_SOURCE_NODE, 0x00, 0x00, 10, 0x00, SID, 0x05, 0x01];
        r.extend_from_slice(&end_code);
        r.extend_from_slice(&text(model, 20));
        r.extend_from_slice(&text(version, 20));
        r.extend_from_slice(&[0; 40]); // for system use
        r
    }

    #[test]
    fn request_bytes_are_exact() {
        assert_eq!(
            controller_data_read(0, UDP_SOURCE_NODE, SID),
            [0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x63, 0x00, 0x5A, 0x05, 0x01, 0x00]
        );
        assert_eq!(
            tcp_node_address_request(),
            [b'F', b'I', b'N', b'S', 0, 0, 0, 0x0C, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let wrapped = tcp_frame_send(&controller_data_read(1, 239, SID));
        assert_eq!(&wrapped[..16], [b'F', b'I', b'N', b'S', 0, 0, 0, 21, 0, 0, 0, 2, 0, 0, 0, 0]);
        assert_eq!(&wrapped[16..], [0x80, 0x00, 0x02, 0x00, 1, 0x00, 0x00, 239, 0x00, 0x5A, 0x05, 0x01, 0x00]);
    }

    #[test]
    fn parses_controller_data() {
        let r = response([0, 0], "CJ2M-CPU32", "02.01");
        assert_eq!(
            parse_controller_data(&r, SID),
            Ok(ControllerData { end_code: 0, model: Some("CJ2M-CPU32".into()), version: Some("02.01".into()) })
        );
        // Normal completion with the "non-fatal CPU error" flag (0x0040) still carries the data.
        let flagged = parse_controller_data(&response([0x00, 0x40], "CS1G_CPU44H", "03.00"), SID).unwrap();
        assert_eq!(flagged.model.as_deref(), Some("CS1G_CPU44H"));
        // An error end code: FINS, no data.
        let mut e = response([0x22, 0x01], "", "");
        e.truncate(14);
        assert_eq!(parse_controller_data(&e, SID), Ok(ControllerData { end_code: 0x2201, model: None, version: None }));
    }

    #[test]
    fn malformed_responses_are_refused() {
        let good = response([0, 0], "CJ2M-CPU32", "02.01");
        // The echo of our request.
        assert!(parse_controller_data(&controller_data_read(0, UDP_SOURCE_NODE, SID), SID).is_err());
        for n in 0..14 {
            assert!(parse_controller_data(&good[..n], SID).is_err(), "truncated to {n}");
        }
        // Truncated data after a complete header: fields only as far as they go, no panic.
        for n in 14..good.len() {
            assert!(parse_controller_data(&good[..n], SID).is_ok());
        }
        let mut sid = good.clone();
        sid[9] = 0x11;
        assert!(parse_controller_data(&sid, SID).is_err());
        let mut cmd = good.clone();
        cmd[11] = 0x02;
        assert!(parse_controller_data(&cmd, SID).is_err());
        assert!(parse_controller_data(b"HTTP/1.1 400 Bad Request\r\n\r\n", SID).is_err());
    }

    #[test]
    fn parses_the_tcp_handshake() {
        let mut ok = tcp_message(TCP_SERVER_NODE_ADDRESS, &[0, 0, 0, 239, 0, 0, 0, 1]);
        assert_eq!(tcp_frame(&ok), Frame::Complete(24));
        assert_eq!(parse_node_address_reply(&ok), Ok(NodeAddressReply::Assigned { client_node: 239, server_node: 1 }));
        // An error code (0x20: all connections in use) is a FINS/TCP reply too.
        ok[15] = 0x20;
        assert_eq!(parse_node_address_reply(&ok), Ok(NodeAddressReply::Error { error_code: 0x20 }));
        // The echo of our request is not.
        assert!(parse_node_address_reply(&tcp_node_address_request()).is_err());
        // Node numbers that do not fit in a byte.
        let big = tcp_message(TCP_SERVER_NODE_ADDRESS, &[0, 0, 1, 0, 0, 0, 0, 1]);
        assert!(parse_node_address_reply(&big).is_err());
        // Truncated node addresses; length field disagreeing with the bytes.
        assert!(parse_node_address_reply(&tcp_message(TCP_SERVER_NODE_ADDRESS, &[0, 0, 0, 5])).is_err());
        let mut lying = tcp_message(TCP_SERVER_NODE_ADDRESS, &[0, 0, 0, 239, 0, 0, 0, 1]);
        lying[7] = 0x40;
        assert!(parse_node_address_reply(&lying).is_err());
    }

    #[test]
    fn tcp_framing() {
        let m = tcp_message(TCP_SERVER_NODE_ADDRESS, &[0, 0, 0, 239, 0, 0, 0, 1]);
        assert_eq!(tcp_frame(&m[..2]), Frame::Incomplete);
        assert_eq!(tcp_frame(&m[..10]), Frame::Incomplete);
        assert!(matches!(tcp_frame(b"FIX"), Frame::Invalid(_)));
        assert!(matches!(tcp_frame(b"GET / HTTP/1.0\r\n"), Frame::Invalid(_)));
        assert!(matches!(tcp_frame(&[b'F', b'I', b'N', b'S', 0x7F, 0xFF, 0xFF, 0xFF]), Frame::Invalid(_)));
        assert!(matches!(tcp_frame(&[b'F', b'I', b'N', b'S', 0, 0, 0, 2]), Frame::Invalid(_)));
    }

    #[test]
    fn fields() {
        let o = Outcome {
            data: Some(ControllerData { end_code: 0, model: Some("NJ501-1300".into()), version: Some("1.10".into()) }),
            nodes: Some((239, 1)),
            tcp_error_code: None,
        };
        assert_eq!(
            serde_json::Value::Object(identity_of(&o).fields),
            json!({"controller_model": "NJ501-1300", "controller_version": "1.10", "end_code": 0,
                   "client_node": 239, "server_node": 1})
        );
    }
}
