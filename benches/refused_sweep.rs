//! Refused sweep: the connect-refused path of the whole scan pipeline against a bare tokio connect
//! loop, and memory vs range size.
//!
//! What it measures is the engine's cost per target when every connect is refused: both sweeps target
//! a closed loopback range (`127.64.0.0/16` by default, port 9/tcp, where nothing listens), the kernel
//! answers every SYN with a RST at once, and identification never gets past its connect: no protocol
//! probe sends anything (asserted: nothing is found).
//! Discovery is `connect` (set by `common::options`, and asserted), so every target costs one refused
//! connection attempt in both loops. Then the bench re-executes itself to scan the `/16` and a `/12` in
//! fresh processes and quotes each one's peak resident memory (`VmHWM`), which should not grow with
//! the range.
//!
//! Run: `cargo bench --bench refused_sweep`
//!
//! Knobs (environment):
//! - `REFUSED_SWEEP_PREFIX` (default 16): prefix length of the rate comparison range under 127.64.0.0.
//! - `REFUSED_SWEEP_BIG_PREFIX` (default 12): prefix length of the large range for the memory check.
//! - `REFUSED_SWEEP_ROUNDS` (default 5): alternating baseline/pipeline rounds; the best of each is
//!   reported, with the medians, and the CPU time per target (which other load on the machine disturbs
//!   less).
//! - `REFUSED_SWEEP_CONCURRENCY` (default 512): connects in flight, for both sweeps.
//!
//! Internal: `refused_sweep --child <prefix>` runs one pipeline scan and prints `child-report ...` for
//! the parent.

mod common;

use common::{env_or, runtime, ChildReport};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// The range base: 127.64.0.0, loopback only. Every prefix used is /8 or longer, so the range stays in 127/8.
const BASE: Ipv4Addr = Ipv4Addr::new(127, 64, 0, 0);
/// Nothing listens here: the kernel answers every SYN with a RST.
const PORT: u16 = 9;
const SEED: u64 = 0x5eed_5eed;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn check_prefix(prefix: u8) -> u8 {
    assert!(
        (10..=32).contains(&prefix),
        "prefix /{prefix} out of the range this bench allows (/10 to /32 under 127.64.0.0)"
    );
    prefix
}

fn range_size(prefix: u8) -> u64 {
    1u64 << (32 - prefix)
}

/// A one-row ledger registering 127.64.0.0/prefix.
fn write_ledger(dir: &Path, prefix: u8) -> std::path::PathBuf {
    let path = dir.join(format!("refused-sweep-{prefix}.csv"));
    std::fs::write(
        &path,
        format!(
            "enterprise_id,enterprise,district,sector,level,targets,contact\n\
             bench-1,Sweep Bench,Loopback,testing,general,{BASE}/{prefix},nobody\n"
        ),
    )
    .expect("write the ledger");
    path
}

struct Sweep {
    done: u64,
    elapsed: Duration,
    /// CPU time (user + system, all threads) the process spent during the sweep.
    cpu: Duration,
}

impl Sweep {
    fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU microseconds per target: less sensitive than the rate to other load on the machine.
    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.done.max(1) as f64
    }
}

/// CPU time used so far by this process, all threads, user and system (from /proc/self/stat).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // After the parenthesised command name: state is field 3, utime 14 and stime 15 (1-based).
    let rest = &stat[stat.rfind(')').expect("comm in /proc/self/stat") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// The full pipeline: ledger -> scope -> permuted targets -> engine -> identifier -> findings.
async fn pipeline(ledger: &Path, concurrency: usize) -> Sweep {
    let plan = common::plan(ledger, &format!("{PORT}/tcp"), &common::options(concurrency, SEED)).await;
    let (started, cpu) = (Instant::now(), cpu_time());
    let report = common::run(&plan, None, false).await;
    let (elapsed, cpu) = (started.elapsed(), cpu_time() - cpu);
    assert!(!report.stats.interrupted);
    assert_eq!(report.stats.discovery, "connect", "the refused path is the connect discovery's");
    assert_eq!(
        report.counts.open, 0,
        "something listens on {PORT}/tcp in 127.64/16: the sweep would not measure refused connects"
    );
    Sweep { done: report.stats.probed, elapsed, cpu }
}

/// The bare loop: the same addresses in address order, the same concurrency, the same connect timeout.
async fn baseline(prefix: u8, concurrency: usize) -> Sweep {
    let slots = Arc::new(Semaphore::new(concurrency));
    let done = Arc::new(AtomicU64::new(0));
    let first = u32::from(BASE);
    let (started, cpu) = (Instant::now(), cpu_time());
    for i in 0..range_size(prefix) as u32 {
        let addr = SocketAddr::from((Ipv4Addr::from(first + i), PORT));
        let slot = slots.clone().acquire_owned().await.expect("open semaphore");
        let done = done.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
            done.fetch_add(1, Ordering::Relaxed);
        });
    }
    let _all = slots.acquire_many(concurrency as u32).await.expect("open semaphore");
    Sweep { done: done.load(Ordering::Relaxed), elapsed: started.elapsed(), cpu: cpu_time() - cpu }
}

fn rss_child(prefix: u8, concurrency: usize) {
    let dir = tempfile::tempdir().expect("temporary dir");
    let ledger = write_ledger(dir.path(), prefix);
    let sweep = runtime().block_on(pipeline(&ledger, concurrency));
    assert_eq!(sweep.done, range_size(prefix));
    ChildReport::print(prefix.into(), sweep.done, sweep.elapsed.as_secs_f64());
}

/// The pipeline scan of the /`prefix` in a fresh process.
fn run_child(prefix: u8, concurrency: usize) -> ChildReport {
    common::run_child(prefix.into(), &[("REFUSED_SWEEP_CONCURRENCY", concurrency.to_string())])
}

fn best(v: &[Sweep]) -> &Sweep {
    v.iter().max_by(|a, b| a.rate().total_cmp(&b.rate())).expect("at least one round")
}

fn median(v: &[Sweep], of: fn(&Sweep) -> f64) -> f64 {
    let mut r: Vec<f64> = v.iter().map(of).collect();
    r.sort_by(f64::total_cmp);
    r[r.len() / 2]
}

fn main() -> ExitCode {
    let concurrency = common::concurrency("REFUSED_SWEEP_CONCURRENCY");
    if let Some(prefix) = common::child_param() {
        rss_child(check_prefix(u8::try_from(prefix).expect("a prefix")), concurrency);
        return ExitCode::SUCCESS;
    }
    // cargo bench passes `--bench` (and maybe a filter); nothing else is expected here.

    let prefix = check_prefix(env_or("REFUSED_SWEEP_PREFIX", 16));
    let big = check_prefix(env_or("REFUSED_SWEEP_BIG_PREFIX", 12));
    let rounds: usize = env_or::<usize>("REFUSED_SWEEP_ROUNDS", 5).clamp(1, 20);
    let n = range_size(prefix);
    println!(
        "refused_sweep {BASE}/{prefix} port {PORT}/tcp (closed: every connect refused, no protocol probe reached): {n} addresses, connect discovery, concurrency {concurrency}, rate unlimited, {rounds} rounds"
    );

    let dir = tempfile::tempdir().expect("temporary dir");
    let ledger = write_ledger(dir.path(), prefix);
    let rt = runtime();
    let (mut bases, mut pipes) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let b = rt.block_on(baseline(prefix, concurrency));
        assert_eq!(b.done, n);
        let p = rt.block_on(pipeline(&ledger, concurrency));
        assert_eq!(p.done, n);
        println!(
            "  round {round}: baseline {:.0} conn/s ({:.2}s, {:.1} us cpu/conn), pipeline {:.0} probes/s ({:.2}s, {:.1} us cpu/probe)",
            b.rate(),
            b.elapsed.as_secs_f64(),
            b.cpu_us(),
            p.rate(),
            p.elapsed.as_secs_f64(),
            p.cpu_us(),
        );
        bases.push(b);
        pipes.push(p);
    }
    drop(rt);
    let (b, p) = (best(&bases).rate(), best(&pipes).rate());
    let (mb, mp) = (median(&bases, Sweep::rate), median(&pipes, Sweep::rate));
    println!(
        "refused_sweep /{prefix}: baseline {b:.0} conn/s, pipeline {p:.0} probes/s, ratio {:.2} (best of {rounds}; medians {mb:.0} / {mp:.0}, ratio {:.2})",
        p / b,
        mp / mb,
    );
    let (cb, cp) = (median(&bases, Sweep::cpu_us), median(&pipes, Sweep::cpu_us));
    println!("cpu per target (median): baseline {cb:.1} us, pipeline {cp:.1} us, baseline/pipeline {:.2}", cb / cp);

    let small = run_child(prefix, concurrency);
    let large = run_child(big, concurrency);
    assert_eq!(small.probed, n);
    assert_eq!(large.probed, range_size(big));
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "  /{prefix}: {} probes in {:.1}s; /{big}: {} probes in {:.1}s ({:.0} probes/s)",
        small.probed,
        small.secs,
        large.probed,
        large.secs,
        large.probed as f64 / large.secs.max(1e-9)
    );
    println!(
        "peak RSS /{prefix}: {:.1} MiB, /{big}: {:.1} MiB, ratio {:.2}",
        mib(small.peak_kib),
        mib(large.peak_kib),
        large.peak_kib as f64 / small.peak_kib as f64
    );
    ExitCode::SUCCESS
}
