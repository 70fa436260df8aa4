//! A realistic mix: 80% filtered, 15% closed and 5% open targets that answer as real devices, on one
//! port, scanned through the whole pipeline in both discovery modes, in a private network namespace.
//! Reported: the whole time against N / rate, and against the ideal for the mode.
//!
//! The space is 127.133.0.0 onwards (`MIX_TARGETS` addresses), port 502/tcp. Address i is
//! - open when i % 20 == 0: a simulated Modicon M340 (`otscope-lab`'s Modbus/TCP device, on the lab's
//!   own runtime thread), which otscope must identify as `modbus`;
//! - closed when i % 20 is 1, 2 or 3: nothing listens, the kernel answers RST;
//! - filtered otherwise: a listener on that address alone whose accept queue is full (backlog 0, one
//!   connection queued and never accepted), so Linux drops every SYN to it without an answer.
//!
//! The namespace (`unshare(CLONE_NEWNET)`, `lo` the only interface) keeps the raw sockets' view and
//! the thousands of listeners away from the rest of the machine.
//!
//! Options are otscope's defaults but for `--rate`, `--discovery` and the seed: `--concurrency auto`,
//! connect and read timeouts 3 s, SYN retries 1 and wait 1 s, one connection per host, 100 ms between
//! a host's connections. Asserted in each mode: every target decided, no local failure, every open
//! device found and identified as `modbus`, and no other finding.
//!
//! The ideal whole time is what `--rate` allows plus the last tail: in `connect` mode
//! N / rate + connect timeout; in `syn` mode SYNs / rate + SYN wait (each filtered target costs a SYN
//! and a retry).
//!
//! Run: `cargo bench --bench mixed_space` (root: raw sockets and a network namespace).
//!
//! Knobs (environment): `MIX_TARGETS` (default 4096, 20 to 65536), `MIX_RATE` (default 1000),
//! `MIX_MODES` (default `syn,connect`). Each filtered address holds two file descriptors of the bench
//! (its listener and the queued connection) besides the scan's own: `MIX_TARGETS` larger than about
//! a quarter of the descriptor limit (`ulimit -n`) fails at the start, naming the address.

mod common;

use common::env_or;
use common::netns::{private_network_with_raw_sockets, FullQueue};
use otscope::pipeline::{DiscoveryMode, AUTO_CONCURRENCY};
use otscope_lab::{Device, Kind, Lab};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::time::Instant;

const FIRST: Ipv4Addr = Ipv4Addr::new(127, 133, 0, 0);
const PORT: u16 = 502;
const SEED: u64 = 0x3d_5a_ce;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Open,
    Closed,
    Filtered,
}

fn role(i: u32) -> Role {
    match i % 20 {
        0 => Role::Open,
        1..=3 => Role::Closed,
        _ => Role::Filtered,
    }
}

fn addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(FIRST) + i)
}

fn main() -> ExitCode {
    if let Err(status) = private_network_with_raw_sockets("mixed_space") {
        return status;
    }
    let n: u32 = env_or("MIX_TARGETS", 4096);
    assert!((20..=65_536).contains(&n), "MIX_TARGETS must be 20 to 65536");
    let rate: u32 = env_or("MIX_RATE", 1000);
    assert!(rate > 0, "MIX_RATE must be positive");
    let modes = common::discovery_modes("MIX_MODES");

    let count = |r: Role| (0..n).filter(|&i| role(i) == r).count() as u64;
    let (open, closed, filtered) = (count(Role::Open), count(Role::Closed), count(Role::Filtered));
    let _filtered: Vec<FullQueue> = (0..n)
        .filter(|&i| role(i) == Role::Filtered)
        .map(|i| FullQueue::at(SocketAddrV4::new(addr(i), PORT)))
        .collect();
    let devices: Vec<Device> = (0..n)
        .filter(|&i| role(i) == Role::Open)
        .map(|i| Device { ip: addr(i), kind: Kind::Modbus, index: i + 1 })
        .collect();
    let expected: BTreeSet<(IpAddr, String)> =
        devices.iter().map(|d| (IpAddr::V4(d.ip), d.kind.protocol().to_string())).collect();
    let lab_rt = common::device_runtime();
    let lab = lab_rt.block_on(Lab::start(devices)).expect("start the lab");

    let dir = tempfile::tempdir().expect("temporary dir");
    let ledger = dir.path().join("mixed.csv");
    std::fs::write(
        &ledger,
        format!(
            "enterprise_id,enterprise,district,sector,level,targets,contact\n\
             M1,Mixed Bench,Loopback,testing,general,{}-{},nobody\n",
            addr(0),
            addr(n - 1)
        ),
    )
    .expect("write the ledger");
    println!(
        "mixed_space: {n} targets {}-{} on {PORT}/tcp: {filtered} filtered, {closed} closed, {open} open (Modbus devices); --rate {rate}, whole pipeline",
        addr(0),
        addr(n - 1)
    );
    let rt = common::runtime();
    let by_rate = f64::from(n) / f64::from(rate);
    for &mode in &modes {
        let mut options = common::options(AUTO_CONCURRENCY, SEED);
        options.discovery = mode;
        options.engine.rate = NonZeroU32::new(rate);
        options.engine.host_interval = otscope::engine::EngineConfig::default().host_interval;
        let plan = rt.block_on(common::plan(&ledger, &format!("{PORT}/tcp"), &options));
        let started = Instant::now();
        let report = rt.block_on(common::run(&plan, None, true));
        let total = started.elapsed().as_secs_f64();
        let st = &report.stats;
        let name = st.discovery;
        assert!(!st.interrupted, "{name}: interrupted: {:?}", st.failure);
        assert_eq!(st.probed, u64::from(n), "{name}: every target decided");
        assert_eq!(st.not_covered, 0, "{name}: no local failure");
        let found: BTreeSet<(IpAddr, String)> = report.findings.iter().map(|f| (f.ip, f.protocol.clone())).collect();
        assert_eq!(report.findings.len(), found.len(), "{name}: one finding per open device");
        assert_eq!(found, expected, "{name}: every open device identified as modbus, and nothing else");
        let (ideal, sent) = match (mode, &st.syn) {
            (DiscoveryMode::Syn, Some(syn)) => {
                assert_eq!((syn.open, syn.closed, syn.filtered), (open, closed, filtered), "{name}: {syn:?}");
                (syn.packets as f64 / f64::from(rate) + options.syn.wait.as_secs_f64(), format!("{} SYNs", syn.packets))
            }
            (DiscoveryMode::Connect, None) => (
                by_rate + plan.probe.limits.connect_timeout.as_secs_f64(),
                format!("{n} connection attempts, {} slots", plan.engine.concurrency),
            ),
            _ => panic!("{name}: not the discovery asked for"),
        };
        println!(
            "  {name:<7}: {} of {open} devices identified, {sent}; whole run {total:.2} s = {:.2} x N/rate ({by_rate:.2} s), {:.2} x ideal ({ideal:.2} s)",
            found.len(),
            total / by_rate,
            total / ideal
        );
    }
    drop(rt);
    lab_rt.block_on(lab.stop());
    ExitCode::SUCCESS
}
