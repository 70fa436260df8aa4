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

/// What a child scan reports to its parent.
pub struct ChildReport {
    pub probed: u64,
    pub secs: f64,
    pub peak_kib: u64,
}

impl ChildReport {
    /// Prints the report line the parent reads (child side), with this process's peak memory.
    pub fn print(tag: &str, prefix: u8, probed: u64, secs: f64) {
        println!("{tag} prefix={prefix} probed={probed} secs={secs:.3} peak_kib={}", peak_rss_kib());
    }
}

/// Runs this bench executable again with `args` and `env`, and reads the line it prints starting
/// with `tag` (see [`ChildReport::print`]).
pub fn run_child(tag: &str, args: &[String], env: &[(&str, String)]) -> ChildReport {
    let exe = std::env::current_exe().expect("own path");
    let out = std::process::Command::new(exe)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::inherit())
        .output()
        .expect("run the child");
    assert!(out.status.success(), "child {args:?}: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{tag} ")))
        .unwrap_or_else(|| panic!("child {args:?} printed no report: {text}"));
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
