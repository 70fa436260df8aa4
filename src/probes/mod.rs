//! Protocol probes: one module per protocol (request builder, pure parser, result), and the one
//! registry that lists them all with their default ports.
//!
//! A probe names its protocol only when the reply validates structurally; the port number alone
//! never identifies anything.

mod atg;
mod bacnet;
mod banner;
mod codesys;
mod crimson;
mod dnp3;
mod enip;
mod fins;
mod fox;
mod hartip;
mod http;
mod identify;
mod iec104;
mod iso_transport;
mod melsec;
mod mms;
mod modbus;
mod moxa;
mod mqtt;
mod opcua;
mod pcworx;
mod proconos;
mod s7comm;
mod s7commplus;
mod snmp;
mod srtp;

pub use banner::BannerProbe;

pub use identify::{banner_identity, printable, Identifier, ProbeSettings};

use crate::net::{NetError, Session};
use crate::scope::Transport;
use async_trait::async_trait;
use serde_json::{Map, Value};

/// The pure framing and parsing functions of every protocol module, one submodule per protocol:
/// no I/O, untrusted bytes in, a value or a [`ParseError`] out. They are exported for the property
/// tests (`tests/fuzz_parsers.rs`) and the cargo-fuzz targets (`fuzz/`), which feed them hostile input.
pub mod parsers {
    macro_rules! protocol {
        ($($module:ident: $($item:ident),+;)+) => {
            $(
                #[doc = concat!("The `", stringify!($module), "` module's framing and parsing functions.")]
                pub mod $module {
                    pub use crate::probes::$module::{$($item),+};
                }
            )+
        };
    }

    protocol! {
        atg: frame, parse_reply;
        bacnet: i_am_frame, parse_i_am, parse_read_property_reply;
        codesys: frame, parse_reply;
        crimson: frame, parse_string_reply;
        dnp3: frame, parse_frame;
        enip: frame, parse_list_identity;
        fins: udp_frame, parse_controller_data, tcp_frame, parse_tcp_message, parse_node_address_reply;
        fox: frame, parse_message;
        hartip: frame, parse_header, parse_session_initiate, parse_command0;
        http: frame, parse_response, decode_entities, title, realm;
        identify: banner_identity, printable;
        iec104: frame, parse_apdu;
        iso_transport: tpkt_frame, parse;
        melsec: frame_melsoft, frame_mc3e, parse_melsoft, parse_mc3e;
        mms: parse_associate_reply, parse_identify_reply;
        modbus: frame, parse_adu, parse_device_id, parse_read_holding_registers;
        moxa: frame_for, parse_search, parse_server_name, DEVICE_ID_LEN;
        mqtt: frame, parse_connack;
        opcua: frame, parse_handshake, parse_open_response, parse_message_chunk, parse_get_endpoints, Channel;
        pcworx: frame, check_reply, parse_connect_reply, parse_info_reply;
        proconos: frame, parse_reply;
        s7comm: parse_header, parse_setup_reply, parse_szl_reply;
        s7commplus: decode_vlq, parse_reply;
        snmp: frame, parse_message, check_reply;
        srtp: frame, parse_init_reply, parse_status_reply;
    }
}

/// What a probe established about a service: the protocol and the fields its parser extracted.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub protocol: &'static str,
    pub ics: bool,
    /// Parsed fields (vendor id, product name, firmware, ...), matched by the fingerprint rules.
    pub fields: Map<String, Value>,
}

impl Identity {
    pub fn new(protocol: &'static str, ics: bool) -> Identity {
        Identity { protocol, ics, fields: Map::new() }
    }

    /// Records a field; empty strings are dropped, since unknown values stay null.
    pub fn field(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        if !matches!(&value, Value::String(s) if s.trim().is_empty()) {
            self.fields.insert(name.to_string(), value);
        }
        self
    }
}

/// Why a reply is not a valid message of a protocol: what a module's pure parser returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Why a probe did not identify its protocol.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("reply is not {protocol}: {why}")]
    NotThisProtocol { protocol: &'static str, why: String },
}

impl ProbeError {
    pub fn not(protocol: &'static str, why: impl Into<String>) -> ProbeError {
        ProbeError::NotThisProtocol { protocol, why: why.into() }
    }
}

/// A protocol module's driver: it talks to one connection through [`Conn`], whose reads are bounded.
#[async_trait]
pub trait Probe: Send + Sync {
    /// The lowercase protocol id reported in findings.
    fn protocol(&self) -> &'static str;
    /// Whether this is an industrial control protocol.
    fn ics(&self) -> bool;
    fn transport(&self) -> Transport;
    /// The ports where this protocol is expected first, in the clear.
    fn default_ports(&self) -> &[u16];
    /// The ports where this protocol is expected first inside TLS (Fox on 4911, MQTT on 8883, ...).
    fn tls_ports(&self) -> &[u16] {
        &[]
    }
    /// True for probes that send text (HTTP and the like), which are never sent to a known ICS port
    /// without `--deep`: a stray text request can wedge a PLC stack.
    fn sends_text(&self) -> bool {
        false
    }
    /// True for probes whose identification handshake can leave a lasting change on some devices
    /// (HART-IP's session initiate can lock a fresh HART-IP v2 device into v1 mode): they run only
    /// when the user names them with `--enable-probe`, never by default and not with `--deep`.
    fn opt_in(&self) -> bool {
        false
    }
    /// Sends read-only identification requests and validates the replies. `session.conn()` is the
    /// connection; `session.reconnect()` gives a fresh one (bounded) when the peer hung up.
    async fn run(&self, session: &mut Session<'_>) -> Result<Identity, ProbeError>;
}

/// Every protocol probe, in the order they are tried when no port hint applies.
pub fn registry() -> &'static [&'static dyn Probe] {
    &[
        &modbus::ModbusProbe,
        &s7comm::S7comm,
        &s7commplus::S7commPlus,
        &mms::Mms,
        &enip::EnipTcp,
        &enip::EnipUdp,
        &bacnet::Bacnet,
        &dnp3::Dnp3Probe,
        &iec104::Iec104Probe,
        &opcua::OpcUaProbe,
        &fins::FinsUdp,
        &fins::FinsTcp,
        &codesys::CodesysProbe,
        &pcworx::PcworxProbe,
        &proconos::ProconosProbe,
        &srtp::SrtpProbe,
        &crimson::CrimsonProbe,
        &melsec::MelsecTcp,
        &melsec::MelsecUdp,
        &hartip::HartIp,
        &atg::Atg,
        &moxa::MoxaNport,
        &mqtt::MqttProbe,
        &fox::FoxProbe,
        &snmp::SnmpProbe,
        &http::HttpProbe,
    ]
}

/// The protocol ids of the opt-in probes.
pub fn opt_in_protocols() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = registry().iter().filter(|p| p.opt_in()).map(|p| p.protocol()).collect();
    v.dedup();
    v
}

/// The probes expected on a port in the clear, in registry order.
pub fn expected_on(port: u16, transport: Transport) -> impl Iterator<Item = &'static dyn Probe> {
    registry().iter().copied().filter(move |p| p.transport() == transport && p.default_ports().contains(&port))
}

/// The probes expected on a port inside TLS, in registry order.
pub fn expected_in_tls_on(port: u16) -> impl Iterator<Item = &'static dyn Probe> {
    registry().iter().copied().filter(move |p| p.transport() == Transport::Tcp && p.tls_ports().contains(&port))
}

/// Whether the registry expects an ICS protocol on this port (in the clear or in TLS).
pub fn is_ics_port(port: u16, transport: Transport) -> bool {
    expected_on(port, transport).any(|p| p.ics())
        || (transport == Transport::Tcp && expected_in_tls_on(port).any(|p| p.ics()))
}
