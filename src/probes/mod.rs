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
