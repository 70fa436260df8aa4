//! Recording benchmark: does a scan's memory grow with what it finds? A scan that records 100,000 open
//! services against one that records 10,000, each in a fresh child process, with its peak resident
//! memory (`VmHWM`) and the ratio of the two.
//!
//! Each child runs the whole pipeline (plan, engine, recorder, the SQLite history, a JSONL and a CSV
//! output) over a ledger of N loopback addresses on one port. Identification is replaced by a prober
//! that finds every target open with the same Modbus identity (a Schneider M340 the rule library
//! names): 100,000 real open services do not fit in the file descriptors of this machine, and what
//! is measured here is everything after identification. Each child asserts that every finding reached
//! the history and both outputs.
//!
//! Run: `cargo bench --bench recording`. Knobs: `RECORDING_SMALL` (10000), `RECORDING_LARGE` (100000).
//!
//! Internal: `recording --child <N>` runs one scan and prints `child-report ...` for the parent.

mod common;

use async_trait::async_trait;
use common::{env_or, runtime, ChildReport};
use otscope::engine::{Observation, Outcome, Prober, Visit};
use otscope::pipeline::{self, Recording, RunOptions};
use otscope::probes::Identity;
use otscope::scope::Target;
use otscope::store::SqliteStore;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Finds every target open, as one Modbus device with identification.
struct EveryTargetOpen;

#[async_trait]
impl Prober for EveryTargetOpen {
    async fn probe(&self, target: &Target, _visit: &Visit) -> Outcome {
        let mut identity = Identity::new("modbus", true);
        identity.field("vendor_name", "Schneider Electric");
        identity.field("product_code", "BMX P34 2020");
        identity.field("revision", "v2.8");
        let evidence = b"\x00\x01\x00\x00\x00\x2a\x00\x2b\x0e\x01\x02\x00\x00\x03".to_vec();
        Outcome::Found(Observation::new(target.clone(), identity, evidence, time::OffsetDateTime::now_utc()))
    }
}

fn child(findings: u64) {
    let dir = tempfile::tempdir().expect("temporary dir");
    let first = Ipv4Addr::new(127, 64, 0, 0);
    let last = Ipv4Addr::from(u32::from(first) + u32::try_from(findings).expect("a count") - 1);
    let ledger = dir.path().join("ledger.csv");
    let rows = format!("enterprise_id,enterprise,district,sector,level,targets,contact\nR1,记录,浦东新区,s,important,{first}-{last},c\n");
    std::fs::write(&ledger, rows).expect("write the ledger");
    let (out, csv) = (dir.path().join("f.jsonl"), dir.path().join("f.csv"));
    let (recorded, secs) = runtime().block_on(async {
        let plan = common::plan(&ledger, "502/tcp", &common::options(512, 3)).await;
        let store = SqliteStore::open(&dir.path().join("h.db")).expect("the history");
        let recording = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("scan"))));
        let sinks = pipeline::file_sinks(Some(&out), Some(&csv)).expect("outputs");
        let started = Instant::now();
        let report = pipeline::run_with(&plan, Arc::new(EveryTargetOpen), recording, sinks, RunOptions::default())
            .await
            .expect("scan");
        assert!(report.complete(), "{:?} {:?}", report.history_error, report.output_errors);
        assert!(report.findings.is_empty(), "the scan keeps counts, not findings");
        (report.counts.open, started.elapsed().as_secs_f64())
    });
    assert_eq!(recorded, findings);
    // Counted line by line: reading a whole output would be this process's largest allocation.
    let lines = |p: &std::path::Path| {
        use std::io::BufRead;
        std::io::BufReader::new(std::fs::File::open(p).expect("an output")).lines().count() as u64
    };
    assert_eq!(lines(&out), findings, "every finding in the JSONL");
    assert_eq!(lines(&csv), findings + 1, "every finding in the CSV, under its header");
    ChildReport::print(findings, recorded, secs);
}

fn main() -> ExitCode {
    if let Some(n) = common::child_param() {
        child(n);
        return ExitCode::SUCCESS;
    }
    let small: u64 = env_or("RECORDING_SMALL", 10_000);
    let large: u64 = env_or("RECORDING_LARGE", 100_000);
    println!("recording: findings through the history, a JSONL and a CSV output; one child per size");
    let mut peaks = Vec::new();
    for n in [small, large] {
        let r = common::run_child(n, &[]);
        println!(
            "  {n:>7} findings: {:>6.1}s, {:>8.0} findings/s, peak RSS {:>6.1} MiB",
            r.secs,
            r.probed as f64 / r.secs,
            r.peak_kib as f64 / 1024.0
        );
        peaks.push(r.peak_kib as f64);
    }
    println!(
        "peak RSS ratio {large}/{small} findings: {:.2} (a scan that kept its findings would approach {:.0})",
        peaks[1] / peaks[0],
        large as f64 / small as f64
    );
    ExitCode::SUCCESS
}
