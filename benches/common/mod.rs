//! What the benches share: their environment knobs, the scan flags as the command line gives them,
//! the scan plan, and child processes (this same bench executable) that report their peak memory.
#![allow(dead_code)]

use clap::Parser;
use otscope::cli::{Cli, Command, ScanArgs};
use otscope::commands::{plan_scan, ScanPlan};
use otscope::scope::Selection;
use std::path::Path;
use std::process::Stdio;

/// The environment variable `name` parsed, or `default` when it is not set.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default,
    }
}

/// The repository's fingerprint library.
pub fn fingerprints() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fingerprints"))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

/// A runtime of one thread of its own for the simulated devices, as a separate network would be, so
/// the scanner's load disturbs them less.
pub fn device_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio runtime")
}

/// `otscope scan --targets <ledger> <flags>` parsed as the command line does (the ledger is given
/// to [`plan`] separately).
pub fn scan_args(flags: &[&str]) -> ScanArgs {
    let argv = ["otscope", "scan", "--targets", "-"].iter().chain(flags);
    match Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("scan flags: {e}")).command {
        Command::Scan(args) => *args,
        _ => unreachable!("parsed a scan command"),
    }
}

/// The flags of a sweep of closed ports: no rate limit, `concurrency` probes in flight, one at a time
/// per host and no pause between them, 3 s connects, the permutation of `seed`.
pub fn sweep_flags<'a>(concurrency: &'a str, seed: &'a str) -> [&'a str; 13] {
    [
        "--rate",
        "0",
        "--concurrency",
        concurrency,
        "--per-host",
        "1",
        "--host-interval",
        "0s",
        "--connect-timeout",
        "3s",
        "--seed",
        seed,
        "--quiet",
    ]
}

/// The plan of a scan of `ledger` on `ports` (otscope's `--ports` syntax) with the engine `flags`.
pub async fn plan(ledger: &Path, ports: &str, flags: &[&str]) -> ScanPlan {
    let ports = otscope::targets::parse_ports(ports).unwrap_or_else(|e| panic!("ports {ports:?}: {e}"));
    plan_scan(ledger, None, fingerprints(), Some(ports), &Selection::default(), &scan_args(flags).engine)
        .await
        .unwrap_or_else(|e| panic!("plan: {e}"))
}

/// Peak resident set size of this process, in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// The flag that starts a bench executable as a child scan of one prefix.
const CHILD_FLAG: &str = "--child";
/// The first word of the line a child prints for its parent.
const CHILD_REPORT: &str = "child-report";

/// The probes in flight, from the environment variable `knob` (default 512).
pub fn concurrency(knob: &str) -> usize {
    let concurrency = env_or(knob, 512);
    assert!(concurrency > 0, "{knob} must be at least 1");
    concurrency
}

/// The prefix this process was started to scan, when it is a child ([`run_child`]).
pub fn child_prefix() -> Option<u8> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let at = args.iter().position(|a| a == CHILD_FLAG)?;
    Some(args.get(at + 1).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{CHILD_FLAG} <prefix>")))
}

/// What a child scan reports to its parent.
pub struct ChildReport {
    pub probed: u64,
    pub secs: f64,
    pub peak_kib: u64,
}

impl ChildReport {
    /// Prints the report the parent reads (child side), with this process's peak memory.
    pub fn print(prefix: u8, probed: u64, secs: f64) {
        println!("{CHILD_REPORT} prefix={prefix} probed={probed} secs={secs:.3} peak_kib={}", peak_rss_kib());
    }
}

/// Runs this bench executable again as the child scan of `prefix`, with `env` added to its
/// environment, and reads its report (see [`ChildReport::print`]).
pub fn run_child(prefix: u8, env: &[(&str, String)]) -> ChildReport {
    let exe = std::env::current_exe().expect("own path");
    let out = std::process::Command::new(exe)
        .args([CHILD_FLAG, &prefix.to_string()])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::inherit())
        .output()
        .expect("run the child");
    assert!(out.status.success(), "child /{prefix}: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{CHILD_REPORT} ")))
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
