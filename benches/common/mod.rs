//! What the benches share: their environment knobs, the scan options they start from, the scan plan
//! and run, and child processes (this same bench executable) that report their peak memory.
#![allow(dead_code)]

pub mod history;
pub mod netns;

use otscope::pipeline::{self, DiscoveryMode, Recording, RunOptions, ScanOptions, ScanPlan, ScanReport, ScopeOptions};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// The environment variable `name` parsed, or `default` when it is not set.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default,
    }
}

/// The discovery modes named in the environment variable `knob` (`syn,connect` by default), in order.
pub fn discovery_modes(knob: &str) -> Vec<DiscoveryMode> {
    env_or(knob, "syn,connect".to_string())
        .split(',')
        .map(|m| match m.trim() {
            "syn" => DiscoveryMode::Syn,
            "connect" => DiscoveryMode::Connect,
            other => panic!("{knob}: unknown mode {other:?} (syn, connect)"),
        })
        .collect()
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

/// The options every bench starts from: connect discovery, no rate limit, no pause between probes to a host, `concurrency`
/// probes in flight, the permutation of `seed`.
pub fn options(concurrency: usize, seed: u64) -> ScanOptions {
    let mut o = ScanOptions { discovery: DiscoveryMode::Connect, seed: Some(seed), ..ScanOptions::default() };
    o.engine.rate = None;
    o.engine.concurrency = concurrency;
    o.engine.host_interval = Duration::ZERO;
    o
}

/// The plan of a scan of `ledger` on `ports` (otscope's `--ports` syntax) with `options`.
pub async fn plan(ledger: &Path, ports: &str, options: &ScanOptions) -> ScanPlan {
    let ports = otscope::scope::parse_ports(ports).unwrap_or_else(|e| panic!("ports {ports:?}: {e}"));
    let scope = ScopeOptions { ports: Some(ports), ..ScopeOptions::new(ledger, fingerprints()) };
    pipeline::plan(&scope, options).await.unwrap_or_else(|e| panic!("plan: {e}"))
}

/// Runs `plan` quietly, recorded in `recording` if given; `keep` keeps every finding in the report.
pub async fn run(plan: &ScanPlan, recording: Option<Recording>, keep: bool) -> ScanReport {
    let options = RunOptions { keep_findings: keep, ..RunOptions::default() };
    pipeline::run(plan, recording, Vec::new(), options).await.unwrap_or_else(|e| panic!("scan: {e}"))
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

/// What this process was started to run (a prefix, a number of findings), when it is a child
/// ([`run_child`]).
pub fn child_param() -> Option<u64> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let at = args.iter().position(|a| a == CHILD_FLAG)?;
    Some(args.get(at + 1).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{CHILD_FLAG} <number>")))
}

/// What a child scan reports to its parent.
pub struct ChildReport {
    pub probed: u64,
    pub secs: f64,
    pub peak_kib: u64,
    /// Whatever else the child reported, by name.
    pub extra: std::collections::BTreeMap<String, String>,
}

impl ChildReport {
    /// Prints the report the parent reads (child side), with this process's peak memory.
    pub fn print(param: u64, probed: u64, secs: f64) {
        Self::print_with(param, probed, secs, &[]);
    }

    /// [`ChildReport::print`] with more named values (no spaces in them).
    pub fn print_with(param: u64, probed: u64, secs: f64, extra: &[(&str, String)]) {
        let extra: String = extra.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        println!("{CHILD_REPORT} param={param} probed={probed} secs={secs:.3} peak_kib={}{extra}", peak_rss_kib());
    }
}

/// Runs this bench executable again as the child run of `param`, with `env` added to its
/// environment, and reads its report (see [`ChildReport::print`]).
pub fn run_child(param: u64, env: &[(&str, String)]) -> ChildReport {
    let exe = std::env::current_exe().expect("own path");
    let out = std::process::Command::new(exe)
        .args([CHILD_FLAG, &param.to_string()])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::inherit())
        .output()
        .expect("run the child");
    assert!(out.status.success(), "child {param}: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{CHILD_REPORT} ")))
        .unwrap_or_else(|| panic!("child {param} printed no report: {text}"));
    let field = |name: &str| -> &str {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    ChildReport {
        probed: field("probed").parse().expect("probed"),
        secs: field("secs").parse().expect("secs"),
        peak_kib: field("peak_kib").parse().expect("peak_kib"),
        extra: line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect(),
    }
}
