//! Scale benchmark: the full pipeline over closed loopback spaces of growing size, each in a fresh
//! child process, with its probe rate and peak resident memory (`VmHWM`).
//!
//! The spaces are 127.0.0.0/16, /12 and /8 (16,777,216 addresses) on one closed port (9/tcp, where
//! nothing listens: every connect is refused by the kernel at once). The ledger registers the space as
//! one row per /16 (256 rows for the /8), so every address is attributed to an enterprise. Each child
//! asserts that every target was probed and that nothing answered. Peak RSS must not grow with the space.
//!
//! Run: `cargo bench --bench scale` (the /8 takes minutes: ~16.7M probes).
//!
//! Knobs (environment):
//! - `SCALE_MAX_PREFIX` (default 8): the widest space run; `SCALE_MAX_PREFIX=12` skips the /8.
//! - `SCALE_CONCURRENCY` (default 512): probes in flight.
//!
//! Internal: `scale --child <prefix>` runs one scan and prints `scale-child ...` for the parent.

use clap::Parser;
use otscope::cli::{Cli, Command, EngineArgs};
use otscope::commands::{plan_scan, run_scan};
use otscope::engine::ProgressStyle;
use otscope::scope::Selection;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Nothing listens here on loopback: the kernel answers every SYN with a RST.
const PORT: u16 = 9;
const SEED: u64 = 0x5ca1_ab1e;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default,
    }
}

fn check_prefix(prefix: u8) -> u8 {
    assert!((8..=16).contains(&prefix), "prefix /{prefix} out of range (/8 to /16 under 127.0.0.0)");
    prefix
}

fn engine_args(concurrency: usize) -> EngineArgs {
    let (concurrency, seed) = (concurrency.to_string(), SEED.to_string());
    let cli = Cli::try_parse_from([
        "otscope",
        "scan",
        "--targets",
        "x",
        "--rate",
        "0",
        "--concurrency",
        &concurrency,
        "--per-host",
        "1",
        "--host-interval",
        "0s",
        "--connect-timeout",
        "3s",
        "--seed",
        &seed,
        "--quiet",
    ])
    .unwrap_or_else(|e| panic!("scan flags: {e}"));
    match cli.command {
        Command::Scan(args) => args.engine,
        _ => unreachable!("parsed a scan command"),
    }
}

/// A ledger registering 127.0.0.0/prefix as one row per /16, each its own enterprise.
fn write_ledger(dir: &Path, prefix: u8) -> PathBuf {
    let path = dir.join(format!("scale-{prefix}.csv"));
    let mut text = String::from("enterprise_id,enterprise,district,sector,level,targets,contact\n");
    for i in 0..1u32 << (16 - prefix) {
        let block = Ipv4Addr::from(0x7f00_0000 + (i << 16));
        text.push_str(&format!("S{i},Scale {i},Loopback,testing,general,{block}/16,nobody\n"));
    }
    std::fs::write(&path, text).expect("write the ledger");
    path
}

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

fn child(prefix: u8, concurrency: usize) {
    let dir = tempfile::tempdir().expect("temporary dir");
    let ledger = write_ledger(dir.path(), prefix);
    let fingerprints = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fingerprints"));
    let ports = otscope::scope::parse_ports(&format!("{PORT}/tcp")).expect("port list");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let (probed, secs, open) = rt.block_on(async {
        let plan =
            plan_scan(&ledger, None, fingerprints, Some(ports), &Selection::default(), &engine_args(concurrency))
                .await
                .unwrap_or_else(|e| panic!("plan: {e}"));
        assert_eq!(plan.space.scope().address_count(), 1u64 << (32 - prefix), "the ledger attributes every address");
        let started = Instant::now();
        let report = run_scan(&plan, None, vec![], ProgressStyle::Quiet, CancellationToken::new()).await.expect("scan");
        assert!(!report.stats.interrupted);
        (report.stats.probed, started.elapsed().as_secs_f64(), report.findings.len())
    });
    assert_eq!(probed, 1u64 << (32 - prefix), "every target probed");
    assert_eq!(open, 0, "something answered on {PORT}/tcp in 127.0.0.0/{prefix}: this bench needs a closed port");
    println!("scale-child prefix={prefix} probed={probed} secs={secs:.3} peak_kib={}", peak_rss_kib());
}

struct ChildReport {
    probed: u64,
    secs: f64,
    peak_kib: u64,
}

fn run_child(prefix: u8, concurrency: usize) -> ChildReport {
    let exe = std::env::current_exe().expect("own path");
    let out = std::process::Command::new(exe)
        .arg("--child")
        .arg(prefix.to_string())
        .env("SCALE_CONCURRENCY", concurrency.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run the child");
    assert!(out.status.success(), "child /{prefix}: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("scale-child "))
        .unwrap_or_else(|| panic!("child /{prefix} printed no report: {text}"));
    let field = |name: &str| -> &str {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    ChildReport {
        probed: field("probed").parse().expect("probed"),
        secs: field("secs").parse().expect("secs"),
        peak_kib: field("peak_kib").parse().expect("peak_kib"),
    }
}

fn main() -> ExitCode {
    let concurrency: usize = env_or("SCALE_CONCURRENCY", 512);
    assert!(concurrency > 0, "SCALE_CONCURRENCY must be at least 1");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let prefix: u8 = args.get(i + 1).and_then(|p| p.parse().ok()).expect("--child <prefix>");
        child(check_prefix(prefix), concurrency);
        return ExitCode::SUCCESS;
    }
    let widest = check_prefix(env_or("SCALE_MAX_PREFIX", 8));
    let prefixes: Vec<u8> = [16u8, 12, 8].into_iter().filter(|p| *p >= widest).collect();
    println!("scale 127.0.0.0/{{{prefixes:?}}} port {PORT}/tcp, concurrency {concurrency}, rate unlimited");
    let mut reports = Vec::new();
    for &prefix in &prefixes {
        let r = run_child(prefix, concurrency);
        assert_eq!(r.probed, 1u64 << (32 - prefix));
        println!(
            "  /{prefix}: {} probes in {:.1}s, {:.0} probes/s, peak RSS {:.1} MiB",
            r.probed,
            r.secs,
            r.probed as f64 / r.secs.max(1e-9),
            r.peak_kib as f64 / 1024.0
        );
        reports.push((prefix, r));
    }
    let (p0, first) = &reports[0];
    for (p, r) in &reports[1..] {
        println!(
            "peak RSS /{p} vs /{p0}: {:.2}x for {}x the targets",
            r.peak_kib as f64 / first.peak_kib as f64,
            r.probed / first.probed
        );
    }
    ExitCode::SUCCESS
}
