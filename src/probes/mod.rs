//! Protocol probes: one module per protocol (request builder, pure parser, driver, and the one
//! declaration `PROBE` of its protocol, transports and ports), and the one registry that lists
//! them all. The default scan ports derive from those declarations ([`registry_ports`]).
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
mod text;

pub use banner::BannerProbe;

pub use identify::{banner_identity, printable, Identifier, ProbeSettings};

use crate::net::{NetError, Session};
use crate::scope::PortSpec;
use crate::scope::Transport;
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;

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
        mqtt: frame, parse_connack, parse_connack_v5;
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

impl ParseError {
    pub fn new(why: impl Into<String>) -> ParseError {
        ParseError(why.into())
    }
}

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

/// What a protocol module's driver returns: a boxed future, so that every driver has one type.
pub type DriverFuture<'a> = Pin<Box<dyn Future<Output = Result<Identity, ProbeError>> + Send + 'a>>;

/// A protocol module's driver: sends read-only identification requests on `session.conn()` (whose
/// reads are bounded) and validates the replies; `session.reconnect()` gives a fresh connection
/// (bounded) when the peer hung up. A protocol that runs over TCP and UDP asks `conn().transport()`.
pub type Driver = for<'a, 's> fn(&'a mut Session<'s>) -> DriverFuture<'a>;

/// One protocol module's declaration: its protocol, where it is expected and how careful to be
/// with it, and its driver. Each module declares one, `PROBE`, with the builder below:
/// `Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[502])`.
#[derive(Clone, Copy)]
pub struct Probe {
    /// The lowercase protocol id reported in findings.
    pub protocol: &'static str,
    /// Whether this is an industrial control protocol.
    pub ics: bool,
    /// The ports where this protocol is expected first, in the clear, over TCP and over UDP.
    pub tcp: &'static [u16],
    pub udp: &'static [u16],
    /// The ports where this protocol is expected first inside TLS (Fox on 4911, MQTT on 8883, ...).
    pub tls: &'static [u16],
    /// True for probes that send text (HTTP and the like), which are never sent to a known ICS port
    /// without `--deep`: a stray text request can wedge a PLC stack.
    pub sends_text: bool,
    /// True for probes whose identification handshake can leave a lasting change on some devices
    /// (HART-IP's session initiate can lock a fresh HART-IP v2 device into v1 mode): they run only
    /// when the user names them with `--enable-probe`, never by default and not with `--deep`.
    pub opt_in: bool,
    /// True for protocols whose stacks may answer a UDP request from another source port than the
    /// one asked (some BACnet and FINS stacks): their UDP socket stays unconnected and reads any
    /// source port of the target's address, matching replies by content.
    pub udp_any_port: bool,
    pub run: Driver,
    /// Names a reply that this protocol's servers send to another protocol's request, from its bytes
    /// alone (a web server answers a Modbus request with an HTTP 400 page). Every reply that no probe
    /// validated is offered to it, so that nothing more is sent to find out.
    pub recognise: Option<Recogniser>,
}

/// A protocol module's recogniser of replies: an identity when the bytes are a valid message of the
/// protocol, whatever request they answer.
pub type Recogniser = fn(&[u8]) -> Option<Identity>;

impl Probe {
    /// An industrial control protocol's probe, expected on no port until told.
    pub const fn industrial(protocol: &'static str, run: Driver) -> Probe {
        Probe {
            protocol,
            ics: true,
            tcp: &[],
            udp: &[],
            tls: &[],
            sends_text: false,
            opt_in: false,
            udp_any_port: false,
            run,
            recognise: None,
        }
    }

    /// The probe of a service that is not industrial (web, MQTT, SNMP).
    pub const fn service(protocol: &'static str, run: Driver) -> Probe {
        Probe { ics: false, ..Probe::industrial(protocol, run) }
    }

    /// Expected on these TCP ports, in the clear.
    pub const fn tcp(self, ports: &'static [u16]) -> Probe {
        Probe { tcp: ports, ..self }
    }

    /// Expected on these UDP ports.
    pub const fn udp(self, ports: &'static [u16]) -> Probe {
        Probe { udp: ports, ..self }
    }

    /// Expected inside TLS on these TCP ports.
    pub const fn tls(self, ports: &'static [u16]) -> Probe {
        Probe { tls: ports, ..self }
    }

    /// Sends text: kept off known ICS ports unless `--deep`.
    pub const fn text(self) -> Probe {
        Probe { sends_text: true, ..self }
    }

    /// Runs only when enabled by name.
    pub const fn opt_in(self) -> Probe {
        Probe { opt_in: true, ..self }
    }

    /// Over UDP, reads the replies from any source port of the target's address.
    pub const fn udp_replies_from_any_port(self) -> Probe {
        Probe { udp_any_port: true, ..self }
    }

    /// Names replies of this protocol to other protocols' requests.
    pub const fn recognises(self, recognise: Recogniser) -> Probe {
        Probe { recognise: Some(recognise), ..self }
    }

    /// Whether the probe speaks this transport at all.
    pub fn speaks(&self, transport: Transport) -> bool {
        match transport {
            Transport::Tcp => !self.tcp.is_empty() || !self.tls.is_empty(),
            Transport::Udp => !self.udp.is_empty(),
        }
    }

    /// Whether the protocol is expected on this port in the clear.
    pub fn expected_on(&self, port: u16, transport: Transport) -> bool {
        match transport {
            Transport::Tcp => self.tcp.contains(&port),
            Transport::Udp => self.udp.contains(&port),
        }
    }

    /// Every port where the protocol is expected, in the clear or in TLS.
    pub fn ports(&self) -> impl Iterator<Item = PortSpec> + '_ {
        let tcp = self.tcp.iter().chain(self.tls).map(|&port| PortSpec { port, transport: Transport::Tcp });
        let udp = self.udp.iter().map(|&port| PortSpec { port, transport: Transport::Udp });
        tcp.chain(udp)
    }
}

/// Every protocol probe, in the order they are tried when no port hint applies. Each protocol is
/// listed once; protocol modules never import each other.
pub fn registry() -> &'static [&'static Probe] {
    &[
        &modbus::PROBE,
        &s7comm::PROBE,
        &s7commplus::PROBE,
        &mms::PROBE,
        &enip::PROBE,
        &bacnet::PROBE,
        &dnp3::PROBE,
        &iec104::PROBE,
        &opcua::PROBE,
        &fins::PROBE,
        &codesys::PROBE,
        &pcworx::PROBE,
        &proconos::PROBE,
        &srtp::PROBE,
        &crimson::PROBE,
        &melsec::PROBE,
        &hartip::PROBE,
        &atg::PROBE,
        &moxa::PROBE,
        &mqtt::PROBE,
        &fox::PROBE,
        &snmp::PROBE,
        &http::PROBE,
    ]
}

/// The protocol ids of the opt-in probes.
pub fn opt_in_protocols() -> Vec<&'static str> {
    registry().iter().filter(|p| p.opt_in).map(|p| p.protocol).collect()
}

/// The probes expected on a port in the clear, in registry order.
pub fn expected_on(port: u16, transport: Transport) -> impl Iterator<Item = &'static Probe> {
    registry().iter().copied().filter(move |p| p.expected_on(port, transport))
}

/// The probes expected on a port inside TLS, in registry order.
pub fn expected_in_tls_on(port: u16) -> impl Iterator<Item = &'static Probe> {
    registry().iter().copied().filter(move |p| p.tls.contains(&port))
}

/// Whether the registry expects an ICS protocol on this port (in the clear or in TLS).
pub fn is_ics_port(port: u16, transport: Transport) -> bool {
    expected_on(port, transport).any(|p| p.ics)
        || (transport == Transport::Tcp && expected_in_tls_on(port).any(|p| p.ics))
}

/// The ports where some probe of the registry expects its protocol, in the clear or in TLS.
pub fn registry_ports() -> impl Iterator<Item = PortSpec> {
    registry().iter().flat_map(|p| p.ports())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_is_declared_once_and_expected_somewhere() {
        let mut ids: Vec<&str> = registry().iter().map(|p| p.protocol).collect();
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "a protocol id twice in the registry");
        for p in registry() {
            assert!(p.ports().next().is_some(), "{} is expected on no port", p.protocol);
        }
    }

    #[test]
    fn a_twin_speaks_both_transports_from_one_declaration() {
        let enip = registry().iter().find(|p| p.protocol == "enip").unwrap();
        assert!(enip.speaks(Transport::Tcp) && enip.speaks(Transport::Udp));
        assert!(enip.expected_on(2222, Transport::Udp) && !enip.expected_on(2222, Transport::Tcp));
        let fox = registry().iter().find(|p| p.protocol == "fox").unwrap();
        assert!(fox.speaks(Transport::Tcp) && !fox.speaks(Transport::Udp));
        assert!(!fox.expected_on(4911, Transport::Tcp), "4911 is Fox in TLS, not in the clear");
        assert!(is_ics_port(4911, Transport::Tcp));
    }
}
