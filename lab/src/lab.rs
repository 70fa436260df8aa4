//! A lab: many simulated devices of the kinds below on consecutive loopback addresses, and the ledger
//! that registers them.

use crate::serve::{check_loopback, Handler, Responder, Session, Transport};
use crate::{bacnet, enip, fins, fox, modbus, s7};
use anyhow::{bail, Context, Result};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// The kinds of device a lab holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Modbus/TCP 502: a Modicon M340 ([`modbus::Device::m340`]).
    Modbus,
    /// S7comm 102: an S7-1200 CPU 1214C ([`s7::Cpu::s7_1200`]).
    S7,
    /// EtherNet/IP 44818, TCP and UDP: a ControlLogix 1756-L61 ([`enip::Identity::controllogix`]).
    Enip,
    /// BACnet/IP 47808/udp: a Metasys NAE ([`bacnet::Device::nae`]).
    Bacnet,
    /// Niagara Fox 1911: a JACE station ([`fox::station`]).
    Fox,
    /// Omron FINS 9600/udp: a CJ2M CPU unit ([`fins::Controller::cj2m`]).
    Fins,
}

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Modbus, Kind::S7, Kind::Enip, Kind::Bacnet, Kind::Fox, Kind::Fins];

    /// The protocol name otscope's findings use for it.
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

    /// The kind named `name` (its protocol name, or `s7`).
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.protocol() == name || (name == "s7" && *k == Kind::S7))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol())
    }
}

/// The port list (otscope's `--ports` syntax) covering every endpoint of `kinds`.
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
    /// A new conversation with this device (the same on each of its endpoints).
    pub fn handler(&self) -> Handler {
        let n = self.index;
        match self.kind {
            Kind::Modbus => modbus::Device::m340().handler(),
            Kind::S7 => s7::Cpu::s7_1200(n).handler(),
            Kind::Enip => enip::Identity::controllogix(enip_serial(n)).handler(),
            Kind::Bacnet => bacnet::Device::nae(n).handler(),
            Kind::Fox => fox::station(&fox_station(n)),
            Kind::Fins => fins::Controller::cj2m().udp_handler(),
        }
    }

    /// The identity fields the device reports, as `key=value` pairs (for the ledger and comparisons).
    pub fn identity(&self) -> String {
        let n = self.index;
        match self.kind {
            Kind::Modbus => {
                let [vendor, code, revision] = [modbus::M340[0].1, modbus::M340[1].1, modbus::M340[2].1];
                format!("vendor={vendor};product_code={code};revision={revision}")
            }
            Kind::S7 => {
                let cpu = s7::Cpu::s7_1200(n);
                let [major, minor, patch] = cpu.firmware;
                format!(
                    "module={};name={};version={major}.{minor}.{patch};serial={}",
                    cpu.order_number, cpu.module_type, cpu.serial
                )
            }
            Kind::Enip => {
                let id = enip::Identity::controllogix(enip_serial(n));
                let [major, minor] = id.revision;
                format!("product={};revision={major}.{minor};serial=0x{:08x}", id.product_name, id.serial)
            }
            Kind::Bacnet => {
                let d = bacnet::Device::nae(n);
                let text = |property: u32| d.strings.get(&property).map_or("", String::as_str);
                format!("instance={};model={};object_name={};firmware={}", d.instance, text(70), text(77), text(44))
            }
            Kind::Fox => {
                format!("station={};app_version={};host_id={}", fox_station(n), fox::APP_VERSION, fox::HOST_ID)
            }
            Kind::Fins => {
                let c = fins::Controller::cj2m();
                format!("model={};version={}", c.model, c.version)
            }
        }
    }
}

fn enip_serial(n: u32) -> u32 {
    0x00C0_0000 | n
}

fn fox_station(n: u32) -> String {
    format!("AHU_Building{n}")
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
    endpoints: Vec<Responder>,
}

impl Lab {
    /// Binds every endpoint of every device (all addresses checked first) and starts answering.
    pub async fn start(devices: Vec<Device>) -> Result<Lab> {
        for d in &devices {
            check_loopback(IpAddr::V4(d.ip))?;
        }
        let mut endpoints = Vec::new();
        for d in &devices {
            for &(port, transport) in d.kind.endpoints() {
                let addr = SocketAddr::from((d.ip, port));
                endpoints.push(match transport {
                    Transport::Tcp => {
                        let device = d.clone();
                        Responder::tcp(addr, Session::default(), move || device.handler()).await?
                    }
                    Transport::Udp => Responder::udp(addr, d.handler()).await?,
                });
            }
        }
        Ok(Lab { devices, endpoints })
    }

    /// Requests received (TCP reads and UDP datagrams), all devices together.
    pub fn requests(&self) -> u64 {
        self.endpoints.iter().map(Responder::requests).sum()
    }

    /// Stops every device and waits until their sockets are closed.
    pub async fn stop(self) {
        for endpoint in self.endpoints {
            endpoint.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_stays_in_loopback_and_takes_the_kinds_in_turn() {
        assert!(plan(Ipv4Addr::new(127, 255, 255, 255), 2, &Kind::ALL).is_err());
        assert!(plan(Ipv4Addr::new(126, 255, 255, 255), 2, &Kind::ALL).is_err());
        let d = plan(Ipv4Addr::new(127, 130, 0, 1), 7, &Kind::ALL).unwrap();
        assert_eq!(d[6].kind, Kind::Modbus);
        assert_eq!(d[6].ip, Ipv4Addr::new(127, 130, 0, 7));
    }

    #[test]
    fn the_ledger_names_what_each_device_reports() {
        let devices = plan(Ipv4Addr::new(127, 130, 0, 1), 6, &Kind::ALL).unwrap();
        let identities: Vec<String> = devices.iter().map(Device::identity).collect();
        assert_eq!(
            identities,
            [
                "vendor=Schneider Electric;product_code=BMX P34 2020;revision=v2.8",
                "module=6ES7 214-1AG40-0XB0;name=CPU 1214C DC/DC/DC;version=4.2.1;serial=S C-H6M300000002",
                "product=1756-L61/B LOGIX5561;revision=20.11;serial=0x00c00003",
                "instance=1210004;model=MS-NAE5510-2;object_name=NAE-4-Boiler Plant;firmware=9.0.0.1234",
                "station=AHU_Building5;app_version=3.8.213;host_id=Qnx-NPM6-0000-16A3-8210",
                "model=CJ2M-CPU32;version=02.01",
            ]
        );
    }
}
