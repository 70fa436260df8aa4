//! The SYN sender's ceiling: SYN discovery at an unlimited rate against a bare raw-socket send loop
//! in the same process, and its peak memory from a /16 to a /8. Real raw sockets on loopback, in a
//! private network namespace.
//!
//! The process first moves into a network namespace of its own (`unshare(CLONE_NEWNET)`) whose only
//! interface is `lo`, so that raw sockets see only this bench's traffic. Every packet goes to
//! 127.0.0.0/8. (The achieved rate at a set `--rate` over filtered space is `filtered_space`'s.)
//!
//! Two parts, each a ratio within one run:
//! - `ceiling`: at an unlimited rate, the discovery stage (`discovery::syn::run`) over 127.0.0.0/14
//!   (262,144 targets) on a closed port (the kernel answers RST, so each target is decided by its
//!   reply) against two bare loops that send the very same SYNs, built in advance, through the same
//!   kind of raw socket: one `send` per SYN, and `sendmmsg` in batches of `SEND_BATCH`. Each send loop
//!   is bounded by its count of packets. Reported: SYNs per second of each and the stage's ratio to
//!   each (goal at least 0.8), and the CPU time per SYN of the sending thread and of the process
//!   (the stage also reads and validates the replies, on a thread of its own).
//! - `rss`: the stage over 127.0.0.0/16, /12 and /8 on the closed port, at an unlimited rate, each in a
//!   fresh child process; its peak resident memory (`VmHWM`) must not grow with the space, since the
//!   targets are streamed from the permutation and only pending ones are held.
//!
//! Run: `cargo bench --bench syn` (as root or with CAP_NET_RAW and CAP_SYS_ADMIN; the /8 takes about
//! a minute: 16.7 million SYNs).
//!
//! Knobs (environment):
//! - `SYN_BENCH_PARTS` (default `ceiling,rss`).
//! - `SYN_BENCH_ROUNDS` (default 5): rounds of the ceiling comparison; the medians are reported.
//! - `SYN_BENCH_RSS_MAX_PREFIX` (default 8): the widest space of the memory part.
//!
//! Internal: `syn --child <prefix>` runs the stage once and prints `child-report ...` for the parent.

mod common;

use common::netns::private_network_with_raw_sockets;
use common::{env_or, ChildReport};
use otscope::discovery::syn::{self, SynConfig, SynStats};
use otscope::discovery::validation::Validator;
use otscope::discovery::{DiscoveryEvent, SynTarget};
use otscope::net::raw::{RawSender, Syn, SynWriter, SEND_BATCH, SYN_LEN};
use otscope::targets::Permutation;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Nothing listens here: every SYN is answered by a RST from the kernel.
const CLOSED_PORT: u16 = 9;
const SEED: u64 = 0x5eed_0005;

/// The targets of 127.0.0.0/prefix on one port, in permuted order, computed lazily.
fn space(prefix: u8, port: u16) -> impl Iterator<Item = SynTarget> {
    let permutation = Permutation::new(1u64 << (32 - prefix), SEED);
    (0..permutation.len()).map(move |position| SynTarget {
        position,
        addr: Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) | permutation.get(position) as u32),
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
    let writer = SynWriter::default();
    let packets: Vec<(Ipv4Addr, [u8; SYN_LEN])> = space(PREFIX, CLOSED_PORT)
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
            let stats = discover(space(PREFIX, CLOSED_PORT), &unlimited());
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
    // Medians of the rounds: other load on the machine slows single rounds of either loop.
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [one_by_one, batched, stage] = &runs;
    let of = |v: &[Run], f: fn(&Run) -> f64| v.iter().map(f).collect::<Vec<f64>>();
    let ratios = |bare: &[Run]| stage.iter().zip(bare).map(|(s, b)| s.rate / b.rate).collect::<Vec<f64>>();
    println!(
        "ceiling: stage / bare send() loop = {:.3}, stage / bare sendmmsg loop = {:.3} (medians of the rounds' ratios; median SYN/s {:.0}, {:.0}, {:.0}; goal >= 0.8)",
        median(&mut ratios(one_by_one)),
        median(&mut ratios(batched)),
        median(&mut of(stage, |r| r.rate)),
        median(&mut of(one_by_one, |r| r.rate)),
        median(&mut of(batched, |r| r.rate)),
    );
    let (bare_thread, stage_thread, stage_process) = (
        median(&mut of(batched, |r| r.thread_us)),
        median(&mut of(stage, |r| r.thread_us)),
        median(&mut of(stage, |r| r.process_us)),
    );
    println!(
        "ceiling: CPU per SYN (median), sending thread / whole process: bare send() {:.2} / {:.2} µs, bare sendmmsg {bare_thread:.2} / {:.2} µs, stage {stage_thread:.2} / {stage_process:.2} µs; bare sendmmsg / stage: {:.3} sending thread, {:.3} whole process",
        median(&mut of(one_by_one, |r| r.thread_us)),
        median(&mut of(one_by_one, |r| r.process_us)),
        median(&mut of(batched, |r| r.process_us)),
        bare_thread / stage_thread,
        bare_thread / stage_process,
    );
}

fn rss_child(prefix: u8) {
    let started = Instant::now();
    let stats = discover(space(prefix, CLOSED_PORT), &unlimited());
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

fn main() -> ExitCode {
    if let Some(prefix) = common::child_param() {
        rss_child(u8::try_from(prefix).expect("a prefix"));
        return ExitCode::SUCCESS;
    }
    if let Err(status) = private_network_with_raw_sockets("syn") {
        return status;
    }
    let parts: String = env_or("SYN_BENCH_PARTS", "ceiling,rss".to_string());
    for part in parts.split(',').map(str::trim) {
        match part {
            "ceiling" => ceiling(env_or::<usize>("SYN_BENCH_ROUNDS", 5).clamp(1, 50)),
            "rss" => rss(env_or("SYN_BENCH_RSS_MAX_PREFIX", 8)),
            other => panic!("SYN_BENCH_PARTS: unknown part {other:?} (ceiling, rss)"),
        }
    }
    ExitCode::SUCCESS
}
