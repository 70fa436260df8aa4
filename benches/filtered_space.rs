//! Filtered space: a 100%-filtered /16 scanned through the whole pipeline (`pipeline::plan` and
//! `pipeline::run`, default options but for the rate and the discovery), at several `--rate`s, in
//! both discovery modes, in a private network namespace.
//!
//! Most of the internet drops SYNs. There a connect scan holds a slot and a file descriptor for the
//! whole connect timeout per target, and SYN discovery holds nothing. This bench says whether each
//! mode still keeps the promised rate.
//!
//! Filtered on loopback: a listener on 0.0.0.0:4502 whose accept queue is full (backlog 0, one
//! connection queued and never accepted); Linux then drops every SYN to port 4502 on every 127/8
//! address without an answer, as a firewall's DROP does. That listener exists only in the bench's own
//! network namespace (`unshare(CLONE_NEWNET)`, `lo` the only interface), so nothing else on the
//! machine is touched. The whole of 127.1.0.0/16 is filtered; each run scans a bounded sample of it,
//! 127.1.0.0/`prefix`:
//! - `syn`: the first /19 (8,192 targets, 16,384 SYNs). The stage holds nothing per target but an
//!   entry among the pending ones, so its rate is the same over a /19 as over the /16, and the run
//!   stays short (16 s at 1,000/s instead of 131 s).
//! - `connect`: the whole /16 (65,536 targets). A connection attempt holds a slot for the connect
//!   timeout, so the steady state, with every slot reused, needs several times rate × timeout
//!   targets (15,000 at 5,000/s): a smaller sample would never meet the file-descriptor cap.
//!
//! What `--rate` counts is what is measured: SYN packets (retries included) in `syn` discovery,
//! connection attempts in `connect` discovery. A raw socket of the bench's own, on its own thread,
//! timestamps every SYN to port 4502 on the wire. In `syn` mode every SYN counts; in `connect` mode a
//! connection attempt is the first SYN of each (address, source port), the kernel's retransmissions of
//! it are not attempts. Figures, each divided by `--rate`:
//! - **dispatch**: (units − 1) / (last unit's time − first unit's time): the rate over the dispatch
//!   phase, which leaves out the final tail (the connect timeout, or the SYN wait after the last
//!   retry) in which nothing is sent.
//! - **achieved** (`syn` only; in `connect` mode it is the dispatch figure): the rate over the time
//!   something was due. In `syn` mode a retry is due a whole wait (1 s) after the SYN before it, and
//!   due retries go before new targets; so even a perfect sender at exactly `--rate` idles once the
//!   new targets run out and the last retries are not yet due (0.36 s of a /19's 3.6 s at 5,000/s,
//!   0.6 s of 1.4 s at 20,000/s). The bench computes that perfect sender's schedule by the stage's
//!   rule and takes its idle time out of the measured phase. The goal (≥ 0.95 at 1,000 and 5,000/s)
//!   is on this figure.
//! - **raw**: units / the whole `pipeline::run` time, tail included.
//!
//! And the whole time against N / rate (N targets) and against the ideal for the mode: units / rate
//! plus the schedule's idle time and the tail (connect timeout 3 s, or SYN wait 1 s).
//!
//! In `connect` mode `--concurrency auto` wants rate × connect timeout slots, each holding a file
//! descriptor for the whole timeout on a filtered port, and is capped to the file-descriptor budget
//! (every descriptor the process may open, less a reserve). The bench prints the slots it got and the rate they
//! allow (slots / connect timeout); where that is below `--rate`, the cap is what limits the rate.
//!
//! Run: `cargo bench --bench filtered_space` (root: raw sockets and a network namespace; about two
//! and a half minutes, most of it `connect` at 1,000/s over the /16).
//!
//! Knobs (environment):
//! - `FILTERED_SYN_PREFIX` (default 19) and `FILTERED_CONNECT_PREFIX` (default 16), 16 to 24: the
//!   sample each mode scans, 127.1.0.0/prefix.
//! - `FILTERED_RATES` (default `1000,5000,20000`).
//! - `FILTERED_MODES` (default `syn,connect`).
//! - `FILTERED_NOFILE` (default: as the process got it): first set the soft and hard file-descriptor
//!   limits to this (root may raise the hard limit), to see `connect` mode without the fd cap.

mod common;

use common::env_or;
use common::netns::{private_network_with_raw_sockets, FullQueue, SynClock};
use otscope::pipeline::{DiscoveryMode, ScanPlan, AUTO_CONCURRENCY};
use std::collections::{HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
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
    /// Units per second over the dispatch phase, over the time something was due, and over the whole
    /// run.
    dispatch: f64,
    achieved: f64,
    raw: f64,
    /// How long a perfect sender at exactly `--rate` idles in the dispatch phase, waiting for a retry
    /// to be due.
    idle: Duration,
    total: Duration,
    /// The SYN stage's own count of its send rate (`syn` mode): its first SYN to its last, by its clock.
    sender: Option<f64>,
    /// N / rate, and units / rate + the schedule's idle time + the tail.
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

/// The idle time of a perfect SYN sender at exactly `rate` over `n` silent targets: each gets
/// `1 + retries` SYNs, each after the first a `wait` after the one before; at each slot of the rate a
/// due retry goes first, else the next new target (the stage's rule, `discovery::pending`); with
/// neither, the sender idles until the next retry is due.
fn schedule_idle(n: u64, rate: u32, retries: u8, wait: Duration) -> Duration {
    let (period, wait) = (1.0 / f64::from(rate), wait.as_secs_f64());
    // Retries in the order due (each is due a fixed wait after its slot): (due, SYNs sent so far).
    let mut due: VecDeque<(f64, u8)> = VecDeque::new();
    let (mut now, mut idle, mut fresh) = (0.0f64, 0.0f64, n);
    loop {
        let sent = match due.front() {
            Some(&(at, sent)) if at <= now => {
                due.pop_front();
                sent
            }
            _ if fresh > 0 => {
                fresh -= 1;
                0
            }
            Some(&(at, _)) => {
                idle += at - now;
                now = at;
                continue;
            }
            None => break,
        };
        if sent < retries {
            due.push_back((now + wait, sent + 1));
        }
        now += period;
    }
    Duration::from_secs_f64(idle)
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
    let sender = st.syn.as_ref().map(|syn| syn.send_rate());
    let (units, tail, idle, mut times): (u64, Duration, Duration, Vec<Instant>) = match mode {
        DiscoveryMode::Syn => {
            let syn = st.syn.as_ref().expect("syn discovery ran");
            assert_eq!(syn.filtered, n, "{name} {rate}: every target filtered: {syn:?}");
            assert_eq!(syn.packets, 2 * n, "{name} {rate}: one retry each: {syn:?}");
            assert_eq!(syns.len() as u64, syn.packets, "{name} {rate}: every SYN seen on the wire");
            let config = plan_syn(&plan);
            let idle = schedule_idle(n, rate, config.retries, config.wait);
            (syn.packets, config.wait, idle, syns.iter().map(|s| s.at).collect())
        }
        _ => {
            let mut attempts = HashSet::new();
            let firsts: Vec<Instant> =
                syns.iter().filter(|s| attempts.insert((s.dst, s.src_port))).map(|s| s.at).collect();
            let addresses: HashSet<Ipv4Addr> = syns.iter().map(|s| s.dst).collect();
            assert_eq!(firsts.len() as u64, n, "{name} {rate}: one connection attempt per target on the wire");
            assert_eq!(addresses.len() as u64, n, "{name} {rate}: every address attempted");
            (n, connect_timeout, Duration::ZERO, firsts)
        }
    };
    times.sort();
    let phase = (*times.last().expect("some SYNs") - times[0]).as_secs_f64();
    Measure {
        mode: name,
        rate,
        units,
        dispatch: (units - 1) as f64 / phase,
        achieved: (units - 1) as f64 / (phase - idle.as_secs_f64()),
        raw: units as f64 / total.as_secs_f64(),
        idle,
        total,
        sender,
        by_rate: n as f64 / f64::from(rate),
        ideal: units as f64 / f64::from(rate) + idle.as_secs_f64() + tail.as_secs_f64(),
    }
}

/// The SYN stage's settings in `plan`.
fn plan_syn(plan: &ScanPlan) -> &otscope::discovery::syn::SynConfig {
    match &plan.discovery {
        otscope::engine::Discovery::Syn(config) => config,
        otscope::engine::Discovery::Connect => unreachable!("a syn plan"),
    }
}

/// A ledger registering 127.1.0.0/prefix.
fn write_ledger(dir: &Path, prefix: u8) -> PathBuf {
    let ledger = dir.join(format!("filtered-{prefix}.csv"));
    std::fs::write(
        &ledger,
        format!(
            "enterprise_id,enterprise,district,sector,level,targets,contact\n\
             F1,Filtered Bench,Loopback,testing,general,{FIRST}/{prefix},nobody\n"
        ),
    )
    .expect("write the ledger");
    ledger
}

fn main() -> ExitCode {
    if let Err(status) = private_network_with_raw_sockets("filtered_space") {
        return status;
    }
    if let Ok(n) = std::env::var("FILTERED_NOFILE") {
        set_nofile(n.trim().parse().expect("FILTERED_NOFILE: a number"));
    }
    let prefix = |knob: &str, default: u8| {
        let prefix: u8 = env_or(knob, default);
        assert!((16..=24).contains(&prefix), "{knob} must be 16 to 24");
        prefix
    };
    let (syn_prefix, connect_prefix) = (prefix("FILTERED_SYN_PREFIX", 19), prefix("FILTERED_CONNECT_PREFIX", 16));
    let rates: String = env_or("FILTERED_RATES", "1000,5000,20000".to_string());
    let rates: Vec<u32> = rates.split(',').map(|r| r.trim().parse().expect("FILTERED_RATES: numbers")).collect();
    assert!(rates.iter().all(|r| *r > 0), "FILTERED_RATES: rates must be positive");
    let modes = common::discovery_modes("FILTERED_MODES");

    let dir = tempfile::tempdir().expect("temporary dir");
    let _filtered = FullQueue::everywhere(PORT);
    let clock = SynClock::start(PORT);
    let rt = common::runtime();
    println!(
        "filtered_space: {FIRST}/16 on {PORT}/tcp, 100% filtered; samples: syn {FIRST}/{syn_prefix}, connect {FIRST}/{connect_prefix}; whole pipeline, default options but --rate and --discovery"
    );
    let mut all = Vec::new();
    for &mode in &modes {
        let prefix = if mode == DiscoveryMode::Syn { syn_prefix } else { connect_prefix };
        let (ledger, n) = (write_ledger(dir.path(), prefix), 1u64 << (32 - prefix));
        for &rate in &rates {
            let m = measure(&rt, &clock, &ledger, n, mode, rate);
            let unit = if mode == DiscoveryMode::Syn { "SYNs" } else { "attempts" };
            println!(
                "  {} --rate {rate}: {n} targets, {} {unit}; dispatch {:.0}/s = {:.3} x rate{}{}; raw {:.0}/s = {:.3} x rate; whole run {:.1} s = {:.2} x N/rate ({:.1} s), {:.2} x ideal ({:.1} s)",
                m.mode,
                m.units,
                m.dispatch,
                m.dispatch / f64::from(rate),
                m.sender.map_or(String::new(), |r| format!(" (the sender's own clock: {:.3})", r / f64::from(rate))),
                if m.idle.is_zero() {
                    String::new()
                } else {
                    format!(
                        "; achieved {:.0}/s = {:.3} x rate over the time a SYN was due (a perfect sender idles {:.2} s)",
                        m.achieved,
                        m.achieved / f64::from(rate),
                        m.idle.as_secs_f64()
                    )
                },
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
        "filtered_space: achieved / --rate (while a SYN or an attempt was due; dispatch phase; raw, tail included); goal >= 0.95 at 1,000 and 5,000/s"
    );
    for m in &all {
        let ratio = m.achieved / f64::from(m.rate);
        let verdict = match (m.rate <= 5000, ratio >= 0.95) {
            (true, true) => "goal met",
            (true, false) => "BELOW GOAL",
            (false, _) => "no goal",
        };
        println!(
            "  {:<7} {:>6}/s: {ratio:.3} ({:.3}; {:.3}), whole run {:.1} s for N/rate {:.1} s: {verdict}",
            m.mode,
            m.rate,
            m.dispatch / f64::from(m.rate),
            m.raw / f64::from(m.rate),
            m.total.as_secs_f64(),
            m.by_rate
        );
    }
    ExitCode::SUCCESS
}
