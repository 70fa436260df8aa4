//! A simulated device lab, for tests and benchmarks only: loopback devices that answer the
//! identification requests of Modbus/TCP, S7comm, EtherNet/IP, BACnet/IP, Niagara Fox and Omron FINS
//! with spec-correct replies (the byte layouts of the protocol tests in `tests/probe_*.rs`).
//!
//! Nothing here is used by a scan. A lab binds only addresses in `127.0.0.0/8`: [`Lab::start`]
//! refuses any other address before it binds anything. Every conversation is bounded: a TCP connection
//! is answered at most [`MAX_REQUESTS`] times and closed after [`IDLE`] without a request, and a device
//! only ever sends in reply to a request it received.

use crate::scope::Transport;
use anyhow::{bail, Context, Result};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

/// Requests answered per TCP connection at most.
pub const MAX_REQUESTS: usize = 64;
/// A TCP connection without a request for this long is closed.
pub const IDLE: Duration = Duration::from_secs(5);

/// A simulated device's conversation: given one request, the reply to send (or `None` to stay silent).
/// A new handler is made for each TCP connection; a UDP endpoint keeps one.
pub type Handler = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + Send>;

/// The kinds of device a lab holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Modbus/TCP 502: Read Device Identification (43/14), Report Server ID (17).
    Modbus,
    /// S7comm 102: COTP connect, setup communication, Read SZL 0x0011 and 0x001C.
    S7,
    /// EtherNet/IP 44818, TCP and UDP: ListIdentity.
    Enip,
    /// BACnet/IP 47808/udp: Who-Is / I-Am and ReadProperty of the device object.
    Bacnet,
    /// Niagara Fox 1911: the hello exchange.
    Fox,
    /// Omron FINS 9600/udp: Controller Data Read.
    Fins,
}

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Modbus, Kind::S7, Kind::Enip, Kind::Bacnet, Kind::Fox, Kind::Fins];

    /// The protocol name findings use for it.
    pub fn protocol(self) -> &'static str {
        match self {
            Kind::Modbus => "modbus",
            Kind::S7 => "s7comm",
            Kind::Enip => "enip",
            Kind::Bacnet => "bacnet",
            Kind::Fox => "fox",
            Kind::Fins => "fins",
        }
    }

    /// The endpoints a device of this kind serves.
    pub fn endpoints(self) -> &'static [(u16, Transport)] {
        match self {
            Kind::Modbus => &[(502, Transport::Tcp)],
            Kind::S7 => &[(102, Transport::Tcp)],
            Kind::Enip => &[(44818, Transport::Tcp), (44818, Transport::Udp)],
            Kind::Bacnet => &[(47808, Transport::Udp)],
            Kind::Fox => &[(1911, Transport::Tcp)],
            Kind::Fins => &[(9600, Transport::Udp)],
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.protocol() == name || (name == "s7" && *k == Kind::S7))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol())
    }
}

/// The port list (`--ports` syntax) covering every endpoint of `kinds`.
pub fn port_list(kinds: &[Kind]) -> String {
    let mut out: Vec<String> = Vec::new();
    for k in kinds {
        for (port, t) in k.endpoints() {
            let s = format!("{port}/{}", t.as_str());
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out.join(",")
}

/// One simulated device: its address, its kind and its number (which varies its serial and names).
#[derive(Clone, Debug)]
pub struct Device {
    pub ip: Ipv4Addr,
    pub kind: Kind,
    pub index: u32,
}

impl Device {
    /// A new conversation with this device on `transport`.
    pub fn handler(&self, transport: Transport) -> Handler {
        let n = self.index;
        match (self.kind, transport) {
            (Kind::Modbus, _) => modbus(n),
            (Kind::S7, _) => s7(n),
            (Kind::Enip, _) => enip(n),
            (Kind::Bacnet, _) => bacnet(n),
            (Kind::Fox, _) => fox(n),
            (Kind::Fins, _) => fins(),
        }
    }

    /// The identity fields the device reports, as `key=value` pairs (for the ledger and comparisons).
    pub fn identity(&self) -> String {
        let n = self.index;
        match self.kind {
            Kind::Modbus => format!("vendor={MODBUS_VENDOR};product_code={MODBUS_CODE};revision={MODBUS_REV}"),
            Kind::S7 => format!("module={S7_MLFB};name={S7_NAME};version=4.2.1;serial={}", s7_serial(n)),
            Kind::Enip => format!("product={ENIP_NAME};revision=20.11;serial=0x{:08x}", enip_serial(n)),
            Kind::Bacnet => format!(
                "instance={};model={BACNET_MODEL};object_name={};firmware={BACNET_FIRMWARE}",
                bacnet_instance(n),
                bacnet_object_name(n)
            ),
            Kind::Fox => format!("station={};app_version={FOX_APP_VERSION};host_id={FOX_HOST_ID}", fox_station(n)),
            Kind::Fins => format!("model={FINS_MODEL};version={FINS_VERSION}"),
        }
    }
}

/// The devices of a lab: `count` addresses from `first` on, the kinds taken in turn from `mix`.
pub fn plan(first: Ipv4Addr, count: u32, mix: &[Kind]) -> Result<Vec<Device>> {
    if mix.is_empty() {
        bail!("the lab needs at least one device kind");
    }
    let start = u32::from(first);
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let ip = Ipv4Addr::from(start.checked_add(i).context("address range overflows")?);
        check_loopback(IpAddr::V4(ip))?;
        out.push(Device { ip, kind: mix[i as usize % mix.len()], index: i + 1 });
    }
    Ok(out)
}

/// Refuses any address outside 127.0.0.0/8.
pub fn check_loopback(ip: IpAddr) -> Result<()> {
    match ip {
        IpAddr::V4(v4) if v4.octets()[0] == 127 => Ok(()),
        _ => bail!("{ip} is not in 127.0.0.0/8: the lab binds loopback addresses only"),
    }
}

/// Writes the lab as an otscope ledger: one row per device, its kind in the sector column and its
/// endpoints and identity in the contact column.
pub fn write_ledger(path: &Path, devices: &[Device]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("write {}", path.display()))?;
    w.write_record(["enterprise_id", "enterprise", "district", "sector", "level", "targets", "contact"])?;
    for d in devices {
        let endpoints: Vec<String> = d.kind.endpoints().iter().map(|(p, t)| format!("{p}/{}", t.as_str())).collect();
        w.write_record([
            format!("lab-{:05}", d.index),
            format!("Lab device {} ({})", d.index, d.kind),
            "Loopback lab".to_string(),
            d.kind.protocol().to_string(),
            "general".to_string(),
            d.ip.to_string(),
            format!("simulated {} {}; {}", d.kind, endpoints.join(" "), d.identity()),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// A running lab. Dropping it (or [`Lab::stop`]) stops every device.
pub struct Lab {
    pub devices: Vec<Device>,
    /// Requests received (TCP reads and UDP datagrams), all devices together.
    pub requests: Arc<AtomicU64>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Lab {
    /// Binds every endpoint of every device (all addresses checked first) and starts answering.
    pub async fn start(devices: Vec<Device>) -> Result<Lab> {
        for d in &devices {
            check_loopback(IpAddr::V4(d.ip))?;
        }
        let cancel = CancellationToken::new();
        let requests = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for d in &devices {
            for &(port, transport) in d.kind.endpoints() {
                let addr = SocketAddr::from((d.ip, port));
                let task = match transport {
                    Transport::Tcp => {
                        let l = TcpListener::bind(addr).await.with_context(|| format!("bind {addr}/tcp"))?;
                        tokio::spawn(serve_tcp(l, d.clone(), cancel.clone(), requests.clone()))
                    }
                    Transport::Udp => {
                        let s = UdpSocket::bind(addr).await.with_context(|| format!("bind {addr}/udp"))?;
                        tokio::spawn(serve_udp(s, d.clone(), cancel.clone(), requests.clone()))
                    }
                };
                tasks.push(task);
            }
        }
        Ok(Lab { devices, requests, cancel, tasks })
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops every device and waits until their sockets are closed.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn serve_tcp(listener: TcpListener, device: Device, cancel: CancellationToken, requests: Arc<AtomicU64>) {
    loop {
        let (mut sock, _) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
        };
        let mut handler = device.handler(Transport::Tcp);
        let (cancel, requests) = (cancel.clone(), requests.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            for _ in 0..MAX_REQUESTS {
                let n = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = tokio::time::timeout(IDLE, sock.read(&mut buf)) => match r {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => return,
                    },
                };
                requests.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = handler(&buf[..n]) {
                    if sock.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

async fn serve_udp(sock: UdpSocket, device: Device, cancel: CancellationToken, requests: Arc<AtomicU64>) {
    let mut handler = device.handler(Transport::Udp);
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
        };
        requests.fetch_add(1, Ordering::Relaxed);
        // One reply per datagram received, never more.
        if let Some(reply) = handler(&buf[..n]) {
            let _ = sock.send_to(&reply, peer).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Modbus/TCP (MODBUS Application Protocol V1.1b3): a Modicon M340 that answers every unit id.

const MODBUS_VENDOR: &str = "Schneider Electric";
const MODBUS_CODE: &str = "BMX P34 2020";
const MODBUS_REV: &str = "v2.8";

fn modbus_adu(tid: [u8; 2], unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = vec![tid[0], tid[1], 0, 0];
    out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out.push(unit);
    out.extend_from_slice(pdu);
    out
}

fn modbus(_n: u32) -> Handler {
    let objects: [(u8, &str); 6] = [
        (0, MODBUS_VENDOR),
        (1, MODBUS_CODE),
        (2, MODBUS_REV),
        (3, "http://www.schneider-electric.com"),
        (4, "Modicon M340"),
        (5, MODBUS_CODE),
    ];
    Box::new(move |bytes: &[u8]| {
        // The stream is parsed ADU by ADU; anything that is not Modbus is dropped.
        let mut replies = Vec::new();
        let mut rest = bytes;
        while rest.len() >= 8 {
            let len = u16::from_be_bytes([rest[4], rest[5]]) as usize;
            if rest[2..4] != [0, 0] || len < 2 || rest.len() < 6 + len {
                break;
            }
            let (one, tail) = rest.split_at(6 + len);
            rest = tail;
            let (tid, unit, pdu) = ([one[0], one[1]], one[6], &one[7..]);
            let reply = match pdu {
                [0x2B, 0x0E, code @ (1 | 2), object] => {
                    let category: Vec<_> =
                        objects.iter().filter(|(id, _)| *id <= if *code == 1 { 2 } else { 6 }).collect();
                    let start = category.iter().position(|(id, _)| id == object).unwrap_or(0);
                    let mut r = vec![0x2B, 0x0E, *code, 0x82, 0x00, 0x00, (category.len() - start) as u8];
                    for (id, value) in &category[start..] {
                        r.push(*id);
                        r.push(value.len() as u8);
                        r.extend_from_slice(value.as_bytes());
                    }
                    r
                }
                [0x2B, 0x0E, ..] => vec![0xAB, 0x03],
                // Report Server ID: server id, run indicator ON, then the device's own text.
                [0x11] => {
                    let text = format!("{MODBUS_VENDOR} {MODBUS_CODE} {MODBUS_REV}");
                    let mut r = vec![0x11, (text.len() + 2) as u8, 0x01, 0xFF];
                    r.extend_from_slice(text.as_bytes());
                    r
                }
                [0x03, 0x00, 0x00, 0x00, 0x01] => vec![0x03, 0x02, 0x00, 0x2A],
                [0x03, ..] => vec![0x83, 0x02],
                [f, ..] => vec![f | 0x80, 0x01],
                [] => continue,
            };
            replies.extend_from_slice(&modbus_adu(tid, unit, &reply));
        }
        (!replies.is_empty()).then_some(replies)
    })
}

// ---------------------------------------------------------------------------------------------
// S7comm (TPKT RFC 1006, COTP class 0, S7 setup communication and Read SZL): an S7-1200 CPU 1214C
// that accepts any called TSAP.

const S7_MLFB: &str = "6ES7 214-1AG40-0XB0";
const S7_NAME: &str = "CPU 1214C DC/DC/DC";

fn s7_serial(n: u32) -> String {
    format!("S C-H6M3{n:08}")
}

fn tpkt(tpdu: &[u8]) -> Vec<u8> {
    let mut out = vec![0x03, 0x00];
    out.extend_from_slice(&((tpdu.len() + 4) as u16).to_be_bytes());
    out.extend_from_slice(tpdu);
    out
}

fn cotp(req: &[u8]) -> Option<&[u8]> {
    if req.len() < 7 || req[0] != 3 || req[1] != 0 || usize::from(u16::from_be_bytes([req[2], req[3]])) != req.len() {
        return None;
    }
    Some(&req[4..])
}

/// The (calling, called) TSAPs of a Connection Request.
fn tsaps(tpdu: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if tpdu.get(1) != Some(&0xE0) {
        return None;
    }
    let li = usize::from(tpdu[0]);
    let mut params = tpdu.get(7..=li)?;
    let (mut calling, mut called) = (vec![0x01, 0x00], None);
    while params.len() >= 2 {
        let (code, len) = (params[0], usize::from(params[1]));
        let value = params.get(2..2 + len)?;
        match code {
            0xC1 => calling = value.to_vec(),
            0xC2 => called = Some(value.to_vec()),
            _ => {}
        }
        params = &params[2 + len..];
    }
    Some((calling, called?))
}

fn connection_confirm(calling: &[u8], called: &[u8]) -> Vec<u8> {
    let mut body = vec![0xD0, 0x00, 0x01, 0x44, 0x31, 0x00, 0xC0, 0x01, 0x0A];
    body.extend_from_slice(&[0xC1, calling.len() as u8]);
    body.extend_from_slice(calling);
    body.extend_from_slice(&[0xC2, called.len() as u8]);
    body.extend_from_slice(called);
    let mut tpdu = vec![body.len() as u8];
    tpdu.extend_from_slice(&body);
    tpkt(&tpdu)
}

fn s7_pdu(rosctr: u8, pdu_ref: [u8; 2], error: Option<[u8; 2]>, param: &[u8], data: &[u8]) -> Vec<u8> {
    let mut tpdu = vec![0x02, 0xF0, 0x80, 0x32, rosctr, 0x00, 0x00, pdu_ref[0], pdu_ref[1]];
    tpdu.extend_from_slice(&(param.len() as u16).to_be_bytes());
    tpdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
    if let Some(e) = error {
        tpdu.extend_from_slice(&e);
    }
    tpdu.extend_from_slice(param);
    tpdu.extend_from_slice(data);
    tpkt(&tpdu)
}

fn padded(s: &str, len: usize, fill: u8) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(len, fill);
    v
}

fn module_record(index: u16, mlfb: &str, ausbg: [u8; 2], ausbe: [u8; 2]) -> Vec<u8> {
    let mut r = index.to_be_bytes().to_vec();
    r.extend_from_slice(&padded(mlfb, 20, b' '));
    r.extend_from_slice(&[0x00, 0xC0]);
    r.extend_from_slice(&ausbg);
    r.extend_from_slice(&ausbe);
    r
}

fn component_record(index: u16, text: &str) -> Vec<u8> {
    let mut r = index.to_be_bytes().to_vec();
    r.extend_from_slice(&padded(text, 32, 0));
    r
}

/// A Read SZL response with the 12-byte response parameter of real CPUs.
fn szl_reply(pdu_ref: [u8; 2], id: u16, len: u16, recs: &[Vec<u8>]) -> Vec<u8> {
    let param = [0x00, 0x01, 0x12, 0x08, 0x12, 0x84, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00];
    let mut body = id.to_be_bytes().to_vec();
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(&(recs.len() as u16).to_be_bytes());
    for r in recs {
        body.extend_from_slice(r);
    }
    let mut data = vec![0xFF, 0x09];
    data.extend_from_slice(&(body.len() as u16).to_be_bytes());
    data.extend_from_slice(&body);
    s7_pdu(0x07, pdu_ref, None, &param, &data)
}

fn s7(n: u32) -> Handler {
    let serial = s7_serial(n);
    let station = format!("S71200/ET200MP station_{n}");
    Box::new(move |req: &[u8]| {
        let tpdu = cotp(req)?;
        if let Some((calling, called)) = tsaps(tpdu) {
            return Some(connection_confirm(&calling, &called));
        }
        if tpdu.len() <= 3 || tpdu[..4] != [0x02, 0xF0, 0x80, 0x32] {
            return None;
        }
        let pdu = &tpdu[3..];
        if pdu.len() >= 18 && pdu[1] == 0x01 && pdu[10] == 0xF0 {
            let param = [0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xF0];
            return Some(s7_pdu(0x03, [pdu[4], pdu[5]], Some([0, 0]), &param, &[]));
        }
        let szl = pdu.len() >= 26
            && pdu[1] == 0x07
            && pdu[10..13] == [0x00, 0x01, 0x12]
            && pdu[14] == 0x11
            && pdu[15] == 0x44
            && pdu[16] == 0x01;
        if !szl {
            return None;
        }
        let r = [pdu[4], pdu[5]];
        Some(match u16::from_be_bytes([pdu[22], pdu[23]]) {
            0x0011 => szl_reply(
                r,
                0x0011,
                28,
                &[
                    module_record(0x0001, S7_MLFB, [0x00, 0x01], [0x00, 0x01]),
                    module_record(0x0006, S7_MLFB, [0x00, 0x01], [0x00, 0x01]),
                    module_record(0x0007, "", [b'V', 4], [2, 1]),
                ],
            ),
            0x001C => szl_reply(
                r,
                0x001C,
                34,
                &[
                    component_record(0x0001, &station),
                    component_record(0x0002, "PLC_1"),
                    component_record(0x0003, ""),
                    component_record(0x0004, "Original Siemens Equipment"),
                    component_record(0x0005, &serial),
                    component_record(0x0007, S7_NAME),
                ],
            ),
            _ => szl_reply(r, 0x0000, 0, &[]),
        })
    })
}

// ---------------------------------------------------------------------------------------------
// EtherNet/IP encapsulation: ListIdentity of a ControlLogix 1756-L61.

const ENIP_NAME: &str = "1756-L61/B LOGIX5561";

fn enip_serial(n: u32) -> u32 {
    0x00C0_0000 | n
}

fn enip(n: u32) -> Handler {
    let serial = enip_serial(n);
    Box::new(move |req: &[u8]| {
        if req.len() < 24 {
            return None;
        }
        let command = u16::from_le_bytes([req[0], req[1]]);
        let length = u16::from_le_bytes([req[2], req[3]]);
        let mut header = req[..24].to_vec();
        if command != 0x0063 || length != 0 {
            // Invalid or unsupported command.
            header[2..4].copy_from_slice(&0u16.to_le_bytes());
            header[8..12].copy_from_slice(&1u32.to_le_bytes());
            return Some(header);
        }
        let mut item = Vec::new();
        item.extend_from_slice(&1u16.to_le_bytes());
        item.extend_from_slice(&[0x00, 0x02, 0xAF, 0x12, 10, 20, 30, 40]);
        item.extend_from_slice(&[0; 8]);
        item.extend_from_slice(&1u16.to_le_bytes()); // vendor: Rockwell Automation/Allen-Bradley
        item.extend_from_slice(&0x0Eu16.to_le_bytes()); // programmable logic controller
        item.extend_from_slice(&54u16.to_le_bytes());
        item.extend_from_slice(&[20, 11]);
        item.extend_from_slice(&0x3060u16.to_le_bytes());
        item.extend_from_slice(&serial.to_le_bytes());
        item.push(ENIP_NAME.len() as u8);
        item.extend_from_slice(ENIP_NAME.as_bytes());
        item.push(0x03);
        let mut data = Vec::new();
        data.extend_from_slice(&1u16.to_le_bytes());
        data.extend_from_slice(&0x000Cu16.to_le_bytes());
        data.extend_from_slice(&(item.len() as u16).to_le_bytes());
        data.extend_from_slice(&item);
        header[2..4].copy_from_slice(&(data.len() as u16).to_le_bytes());
        header.extend_from_slice(&data);
        Some(header)
    })
}

// ---------------------------------------------------------------------------------------------
// BACnet/IP (ASHRAE 135 Annex J, clauses 16 and 20): a Johnson Controls NAE that answers a unicast
// Who-Is and ReadProperty on its device object (also by the wildcard instance 4194303).

const BACNET_MODEL: &str = "MS-NAE5510-2";
const BACNET_FIRMWARE: &str = "9.0.0.1234";
const WILDCARD: u32 = 4_194_303;

fn bacnet_object_name(n: u32) -> String {
    format!("NAE-{n}-Boiler Plant")
}

fn bacnet_instance(n: u32) -> u32 {
    1_210_000 + n
}

fn bvlc(npdu_apdu: &[u8]) -> Vec<u8> {
    let mut r = vec![0x81, 0x0A];
    r.extend_from_slice(&((4 + npdu_apdu.len()) as u16).to_be_bytes());
    r.extend_from_slice(npdu_apdu);
    r
}

fn oid(object_type: u32, instance: u32) -> [u8; 4] {
    ((object_type << 22) | instance).to_be_bytes()
}

fn unsigned_app(tag: u8, v: u32) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take(3).take_while(|&&x| x == 0).count();
    let mut r = vec![(tag << 4) | (4 - skip) as u8];
    r.extend_from_slice(&b[skip..]);
    r
}

fn char_string(s: &str) -> Vec<u8> {
    let len = s.len() + 1;
    let mut r = if len < 5 { vec![0x70 | len as u8] } else { vec![0x75, len as u8] };
    r.push(0x00);
    r.extend_from_slice(s.as_bytes());
    r
}

fn bacnet(n: u32) -> Handler {
    let instance = bacnet_instance(n);
    let vendor_id = 5u32;
    let object_name = bacnet_object_name(n);
    Box::new(move |req: &[u8]| {
        if req.len() < 6 || req[0] != 0x81 || req[1] != 0x0A {
            return None;
        }
        if u16::from_be_bytes([req[2], req[3]]) as usize != req.len() || req[4] != 0x01 {
            return None;
        }
        let control = req[5];
        if control & 0x80 != 0 || control & 0x28 != 0 {
            return None;
        }
        let apdu = &req[6..];
        match *apdu.first()? >> 4 {
            1 if apdu.get(1) == Some(&0x08) => {
                let mut a = vec![0x01, 0x00, 0x10, 0x00, 0xC4];
                a.extend_from_slice(&oid(8, instance));
                a.extend_from_slice(&unsigned_app(2, 1476));
                a.extend_from_slice(&[0x91, 0x03]);
                a.extend_from_slice(&unsigned_app(2, vendor_id));
                Some(bvlc(&a))
            }
            0 => {
                let invoke = *apdu.get(2)?;
                if apdu.get(3) != Some(&0x0C) {
                    return Some(bvlc(&[0x01, 0x00, 0x60, invoke, 0x09]));
                }
                if apdu.get(4) != Some(&0x0C) {
                    return Some(bvlc(&[0x01, 0x00, 0x60, invoke, 0x04]));
                }
                let o = u32::from_be_bytes(apdu.get(5..9)?.try_into().ok()?);
                let (object_type, inst) = (o >> 22, o & 0x3F_FFFF);
                let (tag, rest) = (*apdu.get(9)?, apdu.get(10..)?);
                let property = match tag {
                    0x19 => u32::from(*rest.first()?),
                    0x1A => u32::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
                    _ => return Some(bvlc(&[0x01, 0x00, 0x60, invoke, 0x04])),
                };
                if object_type != 8 || (inst != instance && inst != WILDCARD) {
                    return Some(bvlc(&[0x01, 0x00, 0x50, invoke, 0x0C, 0x91, 1, 0x91, 31]));
                }
                let text = match property {
                    77 => Some(object_name.as_str()),
                    121 => Some("Johnson Controls, Inc."),
                    70 => Some(BACNET_MODEL),
                    44 => Some(BACNET_FIRMWARE),
                    12 => Some("NAE Release 9.0"),
                    28 => Some("Boiler plant supervisory controller"),
                    58 => Some("Building 7, plant room"),
                    _ => None,
                };
                let value = match (property, text) {
                    (75, _) => {
                        let mut v = vec![0xC4];
                        v.extend_from_slice(&oid(8, instance));
                        v
                    }
                    (120, _) => unsigned_app(2, vendor_id),
                    (_, Some(t)) => char_string(t),
                    _ => return Some(bvlc(&[0x01, 0x00, 0x50, invoke, 0x0C, 0x91, 2, 0x91, 32])),
                };
                let mut ack = vec![0x01, 0x00, 0x30, invoke, 0x0C, 0x0C];
                ack.extend_from_slice(&oid(8, instance));
                ack.push(tag);
                ack.extend_from_slice(&rest[..if tag == 0x19 { 1 } else { 2 }]);
                ack.push(0x3E);
                ack.extend_from_slice(&value);
                ack.push(0x3F);
                Some(bvlc(&ack))
            }
            _ => None,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Niagara Fox: a Niagara AX station on a QNX JACE answering the client hello.

const FOX_APP_VERSION: &str = "3.8.213";
const FOX_HOST_ID: &str = "Qnx-NPM6-0000-16A3-8210";

fn fox_station(n: u32) -> String {
    format!("AHU_Building{n}")
}

fn fox(n: u32) -> Handler {
    let hello = format!(
        "fox a 0 -1 fox hello\n{{\nfox.version=s:1.0.1\nid=i:122\nhostName=s:192.168.1.140\n\
hostAddress=s:192.168.1.140\napp.name=s:Station\napp.version=s:{FOX_APP_VERSION}\nvm.name=s:Java HotSpot(TM) Client VM\n\
vm.version=s:1.5.0_81-b06\nos.name=s:QNX\nos.version=s:6.4.1\nstation.name=s:{}\nlang=s:en\n\
timeZone=s:Asia/Shanghai;28800000;0;null;null\nhostId=s:{FOX_HOST_ID}\n\
vmUuid=s:11e8e9a6-0b40-571a-0000-00000000a096\nbrandId=s:vykon\n\
sysInfo=o:bog 61[<bog version=\"1.0\">\n<p m=\"b=baja\" t=\"b:Facets\" v=\"\"/>\n</bog>\n]\n\
authAgentTypeSpecs=s:fox:FoxUsernamePasswordAuthAgent\n}};;\n",
        fox_station(n)
    )
    .into_bytes();
    let mut got = Vec::new();
    Box::new(move |req: &[u8]| {
        if got.len() + req.len() > 16 * 1024 {
            got.clear();
            return None;
        }
        got.extend_from_slice(req);
        if !(got.starts_with(b"fox a ") && got.ends_with(b"};;\n")) {
            return None;
        }
        let text = String::from_utf8_lossy(&got).to_string();
        got.clear();
        let first = text.lines().next().unwrap_or_default();
        if !first.ends_with(" fox hello") || !text.contains("\nfox.version=s:") {
            return None;
        }
        Some(hello.clone())
    })
}

// ---------------------------------------------------------------------------------------------
// Omron FINS over UDP: a CJ2M CPU unit answering Controller Data Read (05 01).

const FINS_MODEL: &str = "CJ2M-CPU32";
const FINS_VERSION: &str = "02.01";
const FINS_NODE: u8 = 10;

fn fins() -> Handler {
    Box::new(|frame: &[u8]| {
        if frame.len() < 12 || frame[0] & 0x40 != 0 || frame[0] & 0x80 == 0 {
            return None;
        }
        let (dna, da1, da2, sna, sa1, sa2, sid) =
            (frame[3], frame[4], frame[5], frame[6], frame[7], frame[8], frame[9]);
        if dna != 0 || (da1 != 0 && da1 != FINS_NODE) || da2 != 0 {
            return None;
        }
        let mut r = vec![0xC0, 0x00, 0x02, sna, sa1, sa2, 0x00, FINS_NODE, 0x00, sid, frame[10], frame[11]];
        if frame[10..12] != [0x05, 0x01] {
            r.extend_from_slice(&0x0401u16.to_be_bytes());
            return Some(r);
        }
        r.extend_from_slice(&0u16.to_be_bytes());
        r.extend_from_slice(&padded(FINS_MODEL, 20, b' '));
        r.extend_from_slice(&padded(FINS_VERSION, 20, b' '));
        r.extend_from_slice(&[0; 40]); // for system use
                                       // Area data: program area 20 Ksteps, IOM 23 Kbytes, 32768 DM words, timer/counter 8, no
                                       // expansion DM, no steps/transitions, no memory card.
        r.extend_from_slice(&[0x00, 0x14, 0x17, 0x80, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        Some(r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_outside_loopback_are_refused() {
        assert!(check_loopback("127.1.2.3".parse().unwrap()).is_ok());
        assert!(check_loopback("10.0.0.1".parse().unwrap()).is_err());
        assert!(check_loopback("::1".parse().unwrap()).is_err());
        assert!(plan(Ipv4Addr::new(127, 255, 255, 255), 2, &Kind::ALL).is_err());
        let d = plan(Ipv4Addr::new(127, 130, 0, 1), 7, &Kind::ALL).unwrap();
        assert_eq!(d[6].kind, Kind::Modbus);
        assert_eq!(d[6].ip, Ipv4Addr::new(127, 130, 0, 7));
    }
}
