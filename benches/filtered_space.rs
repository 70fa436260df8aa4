//! Filtered space: a 100%-filtered /16 scanned through the whole pipeline (`pipeline::plan` and
//! `pipeline::run`, default options but for the rate and the discovery), at several `--rate`s, in
//! both discovery modes, in a private network namespace. Each run scans a bounded sample of the /16,
//! its first /19 (8,192 targets) by default, so that the whole bench takes about a minute: the rate
//! is reached within the first second, and a longer run only repeats it.
//!
//! Most of the internet drops SYNs. There a connect scan holds a slot and a file descriptor for the
//! whole connect timeout per target, and SYN discovery holds nothing. This bench says whether each
//! mode still keeps the promised rate.
//!
//! Filtered on loopback: a listener on 0.0.0.0:4502 whose accept queue is full (backlog 0, one
//! connection queued and never accepted); Linux then drops every SYN to port 4502 on every 127/8
//! address without an answer, as a firewall's DROP does. That listener exists only in the bench's own
//! network namespace (`unshare(CLONE_NEWNET)`, `lo` the only interface), so nothing else on the
//! machine is touched; the space is 127.1.0.0/16, and each run scans 127.1.0.0/`FILTERED_PREFIX`.
//!
//! What `--rate` counts is what is measured: SYN packets (retries included) in `syn` discovery,
//! connection attempts in `connect` discovery. A raw socket of the bench's own, on its own thread,
//! timestamps every SYN to port 4502 on the wire. In `syn` mode every SYN counts; in `connect` mode a
//! connection attempt is the first SYN of each (address, source port), the kernel's retransmissions of
//! it are not attempts. Two figures, each divided by `--rate`:
//! - **dispatch**: (units − 1) / (last unit's time − first unit's time): the rate over the dispatch
//!   phase, which leaves out the final tail (the connect timeout, or the SYN wait after the last
//!   retry) in which nothing is sent. The goal (≥ 0.95 at 1,000 and 5,000/s) is on this figure.
//! - **raw**: units / the whole `pipeline::run` time, tail included.
//!
//! And the whole time against N / rate (N targets) and against the ideal for the mode: units / rate
//! plus the tail (connect timeout 3 s, or SYN wait 1 s).
//!
//! In `connect` mode `--concurrency auto` wants rate × connect timeout slots, each holding a file
//! descriptor for the whole timeout on a filtered port, and is capped to the file-descriptor budget
//! (half the descriptors the process may open). The bench prints the slots it got and the rate they
//! allow (slots / connect timeout); where that is below `--rate`, the cap is what limits the rate.
//!
//! Run: `cargo bench --bench filtered_space` (root: raw sockets and a network namespace; about a
//! minute, most of it `syn` at 1,000/s: 16,384 SYNs; with `FILTERED_PREFIX=16`, the whole /16, about
//! 6 minutes).
//!
//! Knobs (environment):
//! - `FILTERED_PREFIX` (default 19, 16 to 24): each run scans 127.1.0.0/prefix.
//! - `FILTERED_RATES` (default `1000,5000,20000`).
//! - `FILTERED_MODES` (default `syn,connect`).
//! - `FILTERED_NOFILE` (default: as the process got it): first set the soft and hard file-descriptor
//!   limits to this (root may raise the hard limit), to see `connect` mode without the fd cap.

mod common;

use common::env_or;
use common::netns::{private_network_with_raw_sockets, FullQueue, SynClock};
use otscope::pipeline::{DiscoveryMode, ScanPlan, AUTO_CONCURRENCY};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const FIRST: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 0);
const PORT: u16 = 4502;
const SEED: u64 = 0xf17e_7ed0;

/// One scan's figures.
struct Measure {
    mode: &'static str,
    rate: u32,
    /// What `--rate` counts: SYNs (syn) or connection attempts (connect).
    units: u64,
    /// Units per second over the dispatch phase, and over the whole run.
    dispatch: f64,
    raw: f64,
    total: Duration,
    /// N / rate, and units / rate + the tail.
    by_rate: f64,
    ideal: f64,
}

fn mode_name(mode: DiscoveryMode) -> &'static str {
    match mode {
        DiscoveryMode::Syn => "syn",
        DiscoveryMode::Connect => "connect",
        DiscoveryMode::Auto => unreachable!("the bench names its mode"),
    }
}

/// Sets both file-descriptor limits to `n`.
fn set_nofile(n: u64) {
    let limit = libc::rlimit { rlim_cur: n, rlim_max: n };
    // SAFETY: setrlimit reads a plain struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        panic!("FILTERED_NOFILE={n}: {}", std::io::Error::last_os_error());
    }
}

fn nofile() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes a plain struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0, "getrlimit");
    limit.rlim_cur
}

fn measure(
    rt: &tokio::runtime::Runtime,
    clock: &SynClock,
    ledger: &Path,
    n: u64,
    mode: DiscoveryMode,
    rate: u32,
) -> Measure {
    let mut options = common::options(AUTO_CONCURRENCY, SEED);
    options.discovery = mode;
    options.engine.rate = NonZeroU32::new(rate);
    let plan: ScanPlan = rt.block_on(common::plan(ledger, &format!("{PORT}/tcp"), &options));
    let connect_timeout = plan.probe.limits.connect_timeout;
    let name = mode_name(mode);
    if mode == DiscoveryMode::Connect {
        let slots = plan.engine.concurrency;
        let ceiling = slots as f64 / connect_timeout.as_secs_f64();
        println!(
            "  {name} --rate {rate}: concurrency auto = {slots} slots (fd limit {}), each held {connect_timeout:?} by a filtered target: at most {ceiling:.0} attempts/s{}",
            nofile(),
            match (ceiling < f64::from(rate), n > slots as u64) {
                (true, true) => ", below --rate: capped by the file-descriptor budget",
                (true, false) => ", below --rate, but this sample has fewer targets than slots: no slot is reused",
                (false, _) => "",
            }
        );
    }
    clock.take();
    let started = Instant::now();
    let report = rt.block_on(common::run(&plan, None, false));
    let total = started.elapsed();
    // The last SYNs may still be on their way to the clock's socket.
    std::thread::sleep(Duration::from_millis(200));
    let syns = clock.take();
    let st = &report.stats;
    assert!(!st.interrupted, "{name} {rate}: interrupted: {:?}", st.failure);
    assert_eq!(st.discovery, name);
    assert_eq!(st.probed, n, "{name} {rate}: every target decided");
    assert_eq!((report.counts.open, st.not_covered), (0, 0), "{name} {rate}: nothing open, no local failure");
    let (units, tail, mut times): (u64, Duration, Vec<Instant>) = match mode {
        DiscoveryMode::Syn => {
            let syn = st.syn.as_ref().expect("syn discovery ran");
            assert_eq!(syn.filtered, n, "{name} {rate}: every target filtered: {syn:?}");
            assert_eq!(syn.packets, 2 * n, "{name} {rate}: one retry each: {syn:?}");
            assert_eq!(syns.len() as u64, syn.packets, "{name} {rate}: every SYN seen on the wire");
            (syn.packets, plan_syn_wait(&plan), syns.iter().map(|s| s.at).collect())
        }
        _ => {
            let mut attempts = HashSet::new();
            let firsts: Vec<Instant> =
                syns.iter().filter(|s| attempts.insert((s.dst, s.src_port))).map(|s| s.at).collect();
            let addresses: HashSet<Ipv4Addr> = syns.iter().map(|s| s.dst).collect();
            assert_eq!(firsts.len() as u64, n, "{name} {rate}: one connection attempt per target on the wire");
            assert_eq!(addresses.len() as u64, n, "{name} {rate}: every address attempted");
            (n, connect_timeout, firsts)
        }
    };
    times.sort();
    let phase = (*times.last().expect("some SYNs") - times[0]).as_secs_f64();
    Measure {
        mode: name,
        rate,
        units,
        dispatch: (units - 1) as f64 / phase,
        raw: units as f64 / total.as_secs_f64(),
        total,
        by_rate: n as f64 / f64::from(rate),
        ideal: units as f64 / f64::from(rate) + tail.as_secs_f64(),
    }
}

/// How long the SYN stage waits after a target's last SYN.
fn plan_syn_wait(plan: &ScanPlan) -> Duration {
    match &plan.discovery {
        otscope::engine::Discovery::Syn(config) => config.wait,
        otscope::engine::Discovery::Connect => unreachable!("a syn plan"),
    }
}

fn main() -> ExitCode {
    if let Err(status) = private_network_with_raw_sockets("filtered_space") {
        return status;
    }
    if let Ok(n) = std::env::var("FILTERED_NOFILE") {
        set_nofile(n.trim().parse().expect("FILTERED_NOFILE: a number"));
    }
    let prefix: u8 = env_or("FILTERED_PREFIX", 19);
    assert!((16..=24).contains(&prefix), "FILTERED_PREFIX must be 16 to 24");
    let n = 1u64 << (32 - prefix);
    let rates: String = env_or("FILTERED_RATES", "1000,5000,20000".to_string());
    let rates: Vec<u32> = rates.split(',').map(|r| r.trim().parse().expect("FILTERED_RATES: numbers")).collect();
    assert!(rates.iter().all(|r| *r > 0), "FILTERED_RATES: rates must be positive");
    let modes: String = env_or("FILTERED_MODES", "syn,connect".to_string());
    let modes: Vec<DiscoveryMode> = modes
        .split(',')
        .map(|m| match m.trim() {
            "syn" => DiscoveryMode::Syn,
            "connect" => DiscoveryMode::Connect,
            other => panic!("FILTERED_MODES: unknown mode {other:?} (syn, connect)"),
        })
        .collect();

    let dir = tempfile::tempdir().expect("temporary dir");
    let ledger = dir.path().join("filtered.csv");
    std::fs::write(
        &ledger,
        format!(
            "enterprise_id,enterprise,district,sector,level,targets,contact\n\
             F1,Filtered Bench,Loopback,testing,general,{FIRST}/{prefix},nobody\n"
        ),
    )
    .expect("write the ledger");
    let _filtered = FullQueue::everywhere(PORT);
    let clock = SynClock::start(PORT);
    let rt = common::runtime();
    println!(
        "filtered_space: {FIRST}/{prefix} ({n} targets, a sample of the filtered {FIRST}/16) on {PORT}/tcp, 100% filtered, whole pipeline, default options but --rate and --discovery"
    );
    let mut all = Vec::new();
    for &mode in &modes {
        for &rate in &rates {
            let m = measure(&rt, &clock, &ledger, n, mode, rate);
            let unit = if mode == DiscoveryMode::Syn { "SYNs" } else { "attempts" };
            println!(
                "  {} --rate {rate}: {} {unit}; dispatch {:.0}/s = {:.3} x rate; raw {:.0}/s = {:.3} x rate; whole run {:.1} s = {:.2} x N/rate ({:.1} s), {:.2} x ideal ({:.1} s)",
                m.mode,
                m.units,
                m.dispatch,
                m.dispatch / f64::from(rate),
                m.raw,
                m.raw / f64::from(rate),
                m.total.as_secs_f64(),
                m.total.as_secs_f64() / m.by_rate,
                m.by_rate,
                m.total.as_secs_f64() / m.ideal,
                m.ideal,
            );
            all.push(m);
        }
    }
    println!(
        "filtered_space: achieved / --rate (dispatch phase; raw, tail included); goal >= 0.95 at 1,000 and 5,000/s"
    );
    for m in &all {
        let ratio = m.dispatch / f64::from(m.rate);
        let verdict = match (m.rate <= 5000, ratio >= 0.95) {
            (true, true) => "goal met",
            (true, false) => "BELOW GOAL",
            (false, _) => "no goal",
        };
        println!(
            "  {:<7} {:>6}/s: {ratio:.3} ({:.3}), whole run {:.1} s for N/rate {:.1} s: {verdict}",
            m.mode,
            m.rate,
            m.raw / f64::from(m.rate),
            m.total.as_secs_f64(),
            m.by_rate
        );
    }
    ExitCode::SUCCESS
}
