//! SYN discovery benchmarks, through real raw sockets on loopback, in a private network namespace.
//!
//! The process first moves into a network namespace of its own (`unshare(CLONE_NEWNET)`) whose only
//! interface is `lo`. Two reasons: raw sockets see every TCP segment of their namespace, so other
//! programs' loopback traffic stays out of the figures; and a filtered /16 needs a wildcard
//! listener (below), which is reachable from nowhere but `lo` only in such a namespace. Every
//! packet goes to 127.0.0.0/8.
//!
//! Three parts, each a ratio or a comparison within one run:
//! - `ceiling`: at an unlimited rate, the discovery stage over 127.0.0.0/14 (262,144 targets) on a
//!   closed port (the kernel answers RST, so each target is decided by its reply) against a bare loop
//!   that sends the same SYNs, built in advance, through the same kind of raw socket. Reported: SYNs
//!   per second of each and their ratio (goal at least 0.8).
//! - `rss`: the stage over 127.0.0.0/16, /12 and /8 on the closed port, at an unlimited rate, each in a
//!   fresh child process; its peak resident memory (`VmHWM`) must not grow with the space, since the
//!   targets are streamed from the permutation and only pending ones are held.
//! - `rate`: a 100%-filtered /16 (127.1.0.0/16) at several `rate`s, default retries (1) and wait
//!   (1 s). Filtered on loopback: a listener on 0.0.0.0 with a full accept queue (backlog 0, one
//!   connection queued and never accepted); Linux drops every further SYN to that port on every
//!   127/8 address without an answer, as a firewall's DROP does. The achieved rate is measured where
//!   it matters, by an independent raw socket that timestamps every SYN the stage sent, between the
//!   10th and 90th percentile of those times; reported divided by the rate (goal at least 0.95),
//!   with the total time against (packets / rate + wait).
//!
//! Run: `cargo bench --bench syn` (as root or with CAP_NET_RAW and CAP_SYS_ADMIN; the /8 and the
//! /16 at 1,000/s take minutes each).
//!
//! Knobs (environment):
//! - `SYN_BENCH_PARTS` (default `ceiling,rss,rate`).
//! - `SYN_BENCH_ROUNDS` (default 3): rounds of the ceiling comparison.
//! - `SYN_BENCH_RSS_MAX_PREFIX` (default 8): the widest space of the memory part.
//! - `SYN_BENCH_RATES` (default `1000,5000,20000`).
//!
//! Internal: `syn --child <prefix>` runs the stage once and prints `child-report ...` for the parent.

mod common;

use common::netns::{private_network_with_raw_sockets, FullQueue, SynClock};
use common::{env_or, ChildReport};
use otscope::discovery::syn::{self, SynConfig, SynStats};
use otscope::discovery::validation::Validator;
use otscope::discovery::{DiscoveryEvent, SynTarget};
use otscope::net::raw::{RawSender, Syn, SynWriter, SEND_BATCH, SYN_LEN};
use otscope::targets::Permutation;
use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Nothing listens here: every SYN is answered by a RST from the kernel.
const CLOSED_PORT: u16 = 9;
/// The wildcard listener with the full accept queue: every SYN is dropped.
const FILTERED_PORT: u16 = 4502;
const SEED: u64 = 0x5eed_0005;

/// The targets of 127.0.0.0/prefix (or another /prefix at `first`) on one port, in permuted order,
/// computed lazily.
fn space(first: Ipv4Addr, prefix: u8, port: u16) -> impl Iterator<Item = SynTarget> {
    let permutation = Permutation::new(1u64 << (32 - prefix), SEED);
    (0..permutation.len()).map(move |position| SynTarget {
        position,
        addr: Ipv4Addr::from(u32::from(first) + permutation.get(position) as u32),
        port,
    })
}

fn everything(_: Ipv4Addr) -> bool {
    true
}

/// Runs the stage, counting verdicts by state.
fn discover(targets: impl Iterator<Item = SynTarget>, config: &SynConfig) -> SynStats {
    let mut verdicts = 0u64;
    let stats = syn::run(targets, config, &everything, &CancellationToken::new(), &mut |e| {
        if let DiscoveryEvent::Verdict(_) = e {
            verdicts += 1;
        }
    })
    .unwrap_or_else(|e| panic!("SYN discovery: {e}"));
    assert_eq!(verdicts, stats.targets, "one verdict per target");
    stats
}

fn unlimited() -> SynConfig {
    SynConfig { rate: None, checkpoint_every: None, ..SynConfig::default() }
}

/// CPU time used so far by the calling thread (`thread`) or by the whole process.
fn cpu_time(thread: bool) -> Duration {
    let clock = if thread { libc::CLOCK_THREAD_CPUTIME_ID } else { libc::CLOCK_PROCESS_CPUTIME_ID };
    // SAFETY: clock_gettime writes one timespec.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::clock_gettime(clock, &mut t) }, 0, "clock_gettime");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// One measured run: SYNs per second of wall time, and CPU microseconds per SYN of the sending
/// thread and of the whole process.
#[derive(Default, Clone, Copy)]
struct Run {
    rate: f64,
    thread_us: f64,
    process_us: f64,
}

fn measured(n: u64, run: impl FnOnce() -> Duration) -> Run {
    let (thread, process) = (cpu_time(true), cpu_time(false));
    let sending = run();
    let per_syn = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    Run {
        rate: n as f64 / sending.as_secs_f64(),
        thread_us: per_syn(cpu_time(true) - thread),
        process_us: per_syn(cpu_time(false) - process),
    }
}

fn ceiling(rounds: usize) {
    const PREFIX: u8 = 14;
    let n = 1u64 << (32 - PREFIX);
    println!("ceiling: 127.0.0.0/{PREFIX} ({n} targets) on closed port {CLOSED_PORT}, rate unlimited, {rounds} rounds");
    // The bare loops send the very SYNs the stage would: same order, keyed numbers, layout.
    let validator = Validator::random(SynConfig::default().source_ports);
    let mut writer = SynWriter::default();
    let packets: Vec<(Ipv4Addr, [u8; SYN_LEN])> = space(Ipv4Addr::new(127, 0, 0, 0), PREFIX, CLOSED_PORT)
        .map(|t| {
            let (src_port, seq) = validator.probe(t.addr, t.port);
            let mut p = [0u8; SYN_LEN];
            writer.write(&Syn { src: Ipv4Addr::LOCALHOST, dst: t.addr, src_port, dst_port: t.port, seq }, &mut p);
            (t.addr, p)
        })
        .collect();
    let sender = RawSender::open().expect("raw sender");
    let mut runs = [Vec::new(), Vec::new(), Vec::new()];
    for round in 1..=rounds {
        let one_by_one = measured(n, || {
            let started = Instant::now();
            for (dst, p) in &packets {
                sender.send(p, *dst).expect("the bare loop's send");
            }
            started.elapsed()
        });
        // Let the kernel finish with one run's packets before the next.
        std::thread::sleep(Duration::from_millis(200));
        let batched = measured(n, || {
            let started = Instant::now();
            for chunk in packets.chunks(SEND_BATCH) {
                let mut next = 0;
                while next < chunk.len() {
                    next += sender.send_batch(&chunk[next..]).expect("the bare loop's send");
                }
            }
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(200));
        let stage = measured(n, || {
            let stats = discover(space(Ipv4Addr::new(127, 0, 0, 0), PREFIX, CLOSED_PORT), &unlimited());
            assert_eq!(stats.closed + stats.not_covered, n, "{stats:?}");
            assert_eq!((stats.packets, stats.local_failures.total()), (n, 0), "{stats:?}");
            stats.sending
        });
        std::thread::sleep(Duration::from_millis(200));
        println!(
            "  round {round}: SYN/s bare send() {:.0}, bare sendmmsg {:.0}, stage {:.0}; stage / bare send() {:.3}, / bare sendmmsg {:.3}",
            one_by_one.rate,
            batched.rate,
            stage.rate,
            stage.rate / one_by_one.rate,
            stage.rate / batched.rate
        );
        for (all, run) in runs.iter_mut().zip([one_by_one, batched, stage]) {
            all.push(run);
        }
    }
    let mean = |v: &[Run], f: fn(&Run) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let [one_by_one, batched, stage] = &runs;
    println!(
        "ceiling: stage / bare send() loop = {:.3}, stage / bare sendmmsg loop = {:.3} (mean SYN/s {:.0}, {:.0}, {:.0}; goal >= 0.8)",
        mean(stage, |r| r.rate) / mean(one_by_one, |r| r.rate),
        mean(stage, |r| r.rate) / mean(batched, |r| r.rate),
        mean(stage, |r| r.rate),
        mean(one_by_one, |r| r.rate),
        mean(batched, |r| r.rate),
    );
    println!(
        "ceiling: CPU per SYN, sending thread / whole process: bare send() {:.2} / {:.2} µs, bare sendmmsg {:.2} / {:.2} µs, stage {:.2} / {:.2} µs",
        mean(one_by_one, |r| r.thread_us),
        mean(one_by_one, |r| r.process_us),
        mean(batched, |r| r.thread_us),
        mean(batched, |r| r.process_us),
        mean(stage, |r| r.thread_us),
        mean(stage, |r| r.process_us),
    );
}

fn rss_child(prefix: u8) {
    let started = Instant::now();
    let stats = discover(space(Ipv4Addr::new(127, 0, 0, 0), prefix, CLOSED_PORT), &unlimited());
    let n = 1u64 << (32 - prefix);
    assert_eq!(stats.targets, n);
    assert_eq!(stats.closed + stats.not_covered, n, "{stats:?}");
    let extra = [
        ("rate", format!("{:.0}", stats.send_rate())),
        ("not_covered", stats.not_covered.to_string()),
        ("receive_drops", stats.receive_drops.to_string()),
    ];
    ChildReport::print_with(prefix.into(), n, started.elapsed().as_secs_f64(), &extra);
}

fn rss(widest: u8) {
    assert!((8..=16).contains(&widest), "SYN_BENCH_RSS_MAX_PREFIX must be 8 to 16");
    let prefixes: Vec<u8> = [16u8, 12, 8].into_iter().filter(|p| *p >= widest).collect();
    println!("rss: 127.0.0.0/{prefixes:?} on closed port {CLOSED_PORT}, rate unlimited, one child process each");
    let mut peaks = Vec::new();
    for &prefix in &prefixes {
        let r = common::run_child(prefix.into(), &[]);
        let field = |name: &str| r.extra[name].clone();
        let peak = r.peak_kib;
        println!(
            "  /{prefix}: {} targets in {} s, {} SYN/s, {} not covered ({} replies dropped by a full receive buffer), peak RSS {:.1} MiB",
            r.probed,
            r.secs,
            field("rate"),
            field("not_covered"),
            field("receive_drops"),
            peak as f64 / 1024.0
        );
        peaks.push((prefix, peak));
    }
    let (p0, first) = peaks[0];
    for &(p, peak) in &peaks[1..] {
        println!("rss: peak /{p} vs /{p0}: {:.2}x for {}x the targets", peak as f64 / first as f64, 1u64 << (p0 - p));
    }
}

fn rate(rates: &[u32]) {
    const PREFIX: u8 = 16;
    let first = Ipv4Addr::new(127, 1, 0, 0);
    let n = 1u64 << (32 - PREFIX);
    let _filtered = FullQueue::everywhere(FILTERED_PORT);
    let clock = SynClock::start(FILTERED_PORT);
    println!(
        "rate: {first}/{PREFIX} ({n} targets), 100% filtered (port {FILTERED_PORT}), retries 1, wait 1 s, host_pps 10"
    );
    for &r in rates {
        let config = SynConfig { rate: NonZeroU32::new(r), checkpoint_every: None, ..SynConfig::default() };
        clock.take();
        let started = Instant::now();
        let stats = discover(space(first, PREFIX, FILTERED_PORT), &config);
        let total = started.elapsed().as_secs_f64();
        assert_eq!(stats.filtered, n, "every target filtered: {stats:?}");
        assert_eq!(stats.packets, 2 * n, "one retry each: {stats:?}");
        std::thread::sleep(Duration::from_millis(100));
        let mut times: Vec<Instant> = clock.take().iter().map(|s| s.at).collect();
        assert_eq!(times.len() as u64, stats.packets, "every SYN seen on the wire");
        times.sort();
        let (lo, hi) = (times.len() / 10, times.len() - 1 - times.len() / 10);
        let steady = (hi - lo) as f64 / (times[hi] - times[lo]).as_secs_f64();
        let ideal = stats.packets as f64 / f64::from(r) + config.wait.as_secs_f64();
        println!(
            "  --rate {r}: on the wire {steady:.0} SYN/s = {:.4} x rate; sender {:.0} SYN/s; {} packets in {total:.1} s (ideal {ideal:.1} s, {:.3}x)",
            steady / f64::from(r),
            stats.send_rate(),
            stats.packets,
            total / ideal
        );
    }
}

fn main() -> ExitCode {
    if let Some(prefix) = common::child_param() {
        rss_child(u8::try_from(prefix).expect("a prefix"));
        return ExitCode::SUCCESS;
    }
    if let Err(status) = private_network_with_raw_sockets("syn") {
        return status;
    }
    let parts: String = env_or("SYN_BENCH_PARTS", "ceiling,rss,rate".to_string());
    for part in parts.split(',').map(str::trim) {
        match part {
            "ceiling" => ceiling(env_or("SYN_BENCH_ROUNDS", 3)),
            "rss" => rss(env_or("SYN_BENCH_RSS_MAX_PREFIX", 8)),
            "rate" => {
                let rates: String = env_or("SYN_BENCH_RATES", "1000,5000,20000".to_string());
                let rates: Vec<u32> =
                    rates.split(',').map(|r| r.trim().parse().expect("SYN_BENCH_RATES: numbers")).collect();
                rate(&rates)
            }
            other => panic!("SYN_BENCH_PARTS: unknown part {other:?} (ceiling, rss, rate)"),
        }
    }
    ExitCode::SUCCESS
}
