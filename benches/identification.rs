//! Identification: the full scan pipeline over open services that answer, against a bare
//! request/reply loop over the same services in the same run.
//!
//! The services are a lab of simulated ICS devices on loopback (the `otscope-lab` crate: Modbus/TCP,
//! S7comm, EtherNet/IP tcp+udp, BACnet/IP, Niagara Fox, Omron FINS, in turn), one per address; every
//! device port is scanned on every address, so each address also has closed ports. Discovery is
//! `connect` (set by `common::options`). Each round asserts the findings: every device identified
//! with its protocol on each of its endpoints, and no other finding. Reported: identified devices per
//! second, and the bare loop's devices per second, which sends each endpoint one identification
//! request and reads one reply (TCP connect+write+read, UDP send+recv), with their ratio.
//!
//! Run: `cargo bench --bench identification`
//!
//! Knobs (environment): `IDENTIFICATION_DEVICES` (default 1200, at most 60000),
//! `IDENTIFICATION_ROUNDS` (default 3), `IDENTIFICATION_CONCURRENCY` (default 512). Devices take
//! 127.132.0.1 onwards: loopback only.

mod common;

use common::env_or;
use otscope_lab::serve::Transport;
use otscope_lab::{Device, Kind, Lab};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

const FIRST: Ipv4Addr = Ipv4Addr::new(127, 132, 0, 1);
const TIMEOUT: Duration = Duration::from_secs(1);

struct Run {
    identified: usize,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.identified as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The whole pipeline on the lab's ledger; a device counts as identified when a finding on its address
/// carries its protocol. Every endpoint of every device must have its finding, and nothing else one.
async fn pipeline(ledger: &Path, ports: &str, concurrency: usize, devices: &[Device]) -> Run {
    let mut options = common::options(concurrency, 7);
    options.engine.per_host = 4;
    options.probe.limits.connect_timeout = Duration::from_secs(1);
    options.probe.limits.read_timeout = Duration::from_secs(1);
    let plan = common::plan(ledger, ports, &options).await;
    let started = Instant::now();
    let report = common::run(&plan, None, true).await;
    let elapsed = started.elapsed();
    assert_eq!(report.stats.discovery, "connect");
    assert_eq!(report.stats.not_covered, 0, "no local failure");
    let expected: HashSet<(IpAddr, u16, &str, &str)> = devices
        .iter()
        .flat_map(|d| {
            d.kind.endpoints().iter().map(|(port, t)| (IpAddr::V4(d.ip), *port, t.as_str(), d.kind.protocol()))
        })
        .collect();
    let unexpected: Vec<String> = report
        .findings
        .iter()
        .filter(|f| !f.ics || !expected.contains(&(f.ip, f.port, f.transport.as_str(), f.protocol.as_str())))
        .map(|f| format!("{}:{}/{} {} (ics {})", f.ip, f.port, f.transport.as_str(), f.protocol, f.ics))
        .collect();
    assert!(unexpected.is_empty(), "findings that are no device's endpoint and protocol: {unexpected:?}");
    assert_eq!(report.findings.len(), expected.len(), "one finding per device endpoint");
    let found: HashSet<(IpAddr, &str)> = report.findings.iter().map(|f| (f.ip, f.protocol.as_str())).collect();
    let identified = devices.iter().filter(|d| found.contains(&(IpAddr::V4(d.ip), d.kind.protocol()))).count();
    Run { identified, elapsed }
}

/// One identification request of each kind, as the bare loop sends it.
fn request(kind: Kind) -> Vec<u8> {
    match kind {
        Kind::Modbus => vec![0, 1, 0, 0, 0, 5, 1, 0x2B, 0x0E, 1, 0],
        Kind::S7 => vec![
            0x03, 0x00, 0x00, 0x16, 0x11, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xC0, 0x01, 0x0A, 0xC1, 0x02, 0x01, 0x00,
            0xC2, 0x02, 0x01, 0x02,
        ],
        Kind::Enip => {
            let mut h = vec![0x63, 0x00];
            h.resize(24, 0);
            h
        }
        Kind::Bacnet => vec![0x81, 0x0A, 0x00, 0x08, 0x01, 0x00, 0x10, 0x08],
        Kind::Fox => b"fox a 1 -1 fox hello\n{\nfox.version=s:1.0\nid=i:1\n};;\n".to_vec(),
        Kind::Fins => vec![0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x63, 0x00, 0xEF, 0x05, 0x01],
    }
}

async fn exchange(addr: SocketAddr, transport: Transport, req: &[u8]) -> bool {
    let mut buf = [0u8; 2048];
    let once = async {
        match transport {
            Transport::Tcp => {
                let mut s = TcpStream::connect(addr).await.ok()?;
                s.write_all(req).await.ok()?;
                let n = s.read(&mut buf).await.ok()?;
                (n > 0).then_some(())
            }
            Transport::Udp => {
                let s = UdpSocket::bind("127.0.0.1:0").await.ok()?;
                s.send_to(req, addr).await.ok()?;
                let n = s.recv(&mut buf).await.ok()?;
                (n > 0).then_some(())
            }
        }
    };
    matches!(tokio::time::timeout(TIMEOUT, once).await, Ok(Some(())))
}

/// The bare loop: every endpoint of every device, one request and one reply, the same concurrency;
/// a device counts when all its endpoints answered.
async fn baseline(devices: &[Device], concurrency: usize) -> Run {
    let slots = Arc::new(Semaphore::new(concurrency));
    let answered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    for d in devices {
        let slot = slots.clone().acquire_owned().await.expect("open semaphore");
        let (d, answered) = (d.clone(), answered.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let req = request(d.kind);
            let mut all = true;
            for &(port, transport) in d.kind.endpoints() {
                all &= exchange(SocketAddr::from((d.ip, port)), transport, &req).await;
            }
            if all {
                answered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let _all = slots.acquire_many(concurrency as u32).await.expect("open semaphore");
    Run { identified: answered.load(Ordering::Relaxed) as usize, elapsed: started.elapsed() }
}

fn main() {
    let count: u32 = env_or("IDENTIFICATION_DEVICES", 1200);
    assert!((1..=60_000).contains(&count), "IDENTIFICATION_DEVICES must be 1-60000");
    let rounds: usize = env_or::<usize>("IDENTIFICATION_ROUNDS", 3).clamp(1, 20);
    let concurrency = common::concurrency("IDENTIFICATION_CONCURRENCY");

    let devices = otscope_lab::plan(FIRST, count, &Kind::ALL).expect("lab plan");
    let ports = otscope_lab::port_list(&Kind::ALL);
    let dir = tempfile::tempdir().expect("temporary dir");
    let ledger = dir.path().join("lab.csv");
    otscope_lab::write_ledger(&ledger, &devices).expect("write the ledger");

    // The lab answers on its own runtime (its own threads), as a separate network would.
    let lab_rt = common::device_runtime();
    let lab = lab_rt.block_on(Lab::start(devices.clone())).expect("start the lab");
    let last = devices.last().expect("at least one device").ip;
    println!("identification: {count} devices on {FIRST}-{last} ({ports}), concurrency {concurrency}, {rounds} rounds");

    let rt = common::runtime();
    let (mut bases, mut pipes) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let b = rt.block_on(baseline(&devices, concurrency));
        let p = rt.block_on(pipeline(&ledger, &ports, concurrency, &devices));
        println!(
            "  round {round}: baseline {} devices answered in {:.2}s ({:.0}/s), pipeline {} identified in {:.2}s ({:.0}/s)",
            b.identified,
            b.elapsed.as_secs_f64(),
            b.rate(),
            p.identified,
            p.elapsed.as_secs_f64(),
            p.rate()
        );
        assert_eq!(b.identified, count as usize, "the bare loop missed devices");
        assert_eq!(p.identified, count as usize, "the pipeline missed devices");
        bases.push(b);
        pipes.push(p);
    }
    let best = |v: &[Run]| v.iter().map(Run::rate).fold(0.0, f64::max);
    let (b, p) = (best(&bases), best(&pipes));
    println!(
        "identification {count} devices: pipeline {p:.0} identified devices/s, bare request/reply loop {b:.0} devices/s, ratio {:.2} (best of {rounds}); lab served {} requests",
        p / b,
        lab.requests()
    );
    drop(rt);
    lab_rt.block_on(lab.stop());
}
