//! Refused scale: the connect-refused path of the whole pipeline over closed loopback spaces of
//! growing size, each in a fresh child process, with its target rate and peak resident memory
//! (`VmHWM`).
//!
//! The spaces are 127.0.0.0/16, /12 and /8 (16,777,216 addresses) on one closed port (9/tcp, where
//! nothing listens): every connect is refused by the kernel at once, so identification never gets
//! past its connect and no protocol probe sends anything. Discovery is `connect` (set by
//! `common::options`, and asserted). The ledger registers the space as one row per /16 (256 rows for
//! the /8), so every address is attributed to an enterprise. Each child asserts that every target was
//! decided and that nothing answered. Peak RSS must not grow with the space.
//!
//! Run: `cargo bench --bench refused_scale` (the /8 takes minutes: ~16.7M refused connects).
//!
//! Knobs (environment):
//! - `REFUSED_SCALE_MAX_PREFIX` (default 8): the widest space run; `REFUSED_SCALE_MAX_PREFIX=12` skips
//!   the /8.
//! - `REFUSED_SCALE_CONCURRENCY` (default 512): connects in flight.
//!
//! Internal: `refused_scale --child <prefix>` runs one scan and prints `child-report ...` for the
//! parent.

mod common;

use common::{env_or, runtime, ChildReport};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Nothing listens here on loopback: the kernel answers every SYN with a RST.
const PORT: u16 = 9;
const SEED: u64 = 0x5ca1_ab1e;

fn check_prefix(prefix: u8) -> u8 {
    assert!((8..=16).contains(&prefix), "prefix /{prefix} out of range (/8 to /16 under 127.0.0.0)");
    prefix
}

/// A ledger registering 127.0.0.0/prefix as one row per /16, each its own enterprise.
fn write_ledger(dir: &Path, prefix: u8) -> PathBuf {
    let path = dir.join(format!("refused-scale-{prefix}.csv"));
    let mut text = String::from("enterprise_id,enterprise,district,sector,level,targets,contact\n");
    for i in 0..1u32 << (16 - prefix) {
        let block = Ipv4Addr::from(0x7f00_0000 + (i << 16));
        text.push_str(&format!("S{i},Scale {i},Loopback,testing,general,{block}/16,nobody\n"));
    }
    std::fs::write(&path, text).expect("write the ledger");
    path
}

fn child(prefix: u8, concurrency: usize) {
    let dir = tempfile::tempdir().expect("temporary dir");
    let ledger = write_ledger(dir.path(), prefix);
    let (probed, secs, open) = runtime().block_on(async {
        let plan = common::plan(&ledger, &format!("{PORT}/tcp"), &common::options(concurrency, SEED)).await;
        assert_eq!(plan.space.scope().address_count(), 1u64 << (32 - prefix), "the ledger attributes every address");
        let started = Instant::now();
        let report = common::run(&plan, None, false).await;
        assert!(!report.stats.interrupted);
        assert_eq!(report.stats.discovery, "connect", "the refused path is the connect discovery's");
        (report.stats.probed, started.elapsed().as_secs_f64(), report.counts.open)
    });
    assert_eq!(probed, 1u64 << (32 - prefix), "every target probed");
    assert_eq!(open, 0, "something answered on {PORT}/tcp in 127.0.0.0/{prefix}: this bench needs a closed port");
    ChildReport::print(prefix.into(), probed, secs);
}

/// The scan of the /`prefix` in a fresh process.
fn run_child(prefix: u8, concurrency: usize) -> ChildReport {
    common::run_child(prefix.into(), &[("REFUSED_SCALE_CONCURRENCY", concurrency.to_string())])
}

fn main() -> ExitCode {
    let concurrency = common::concurrency("REFUSED_SCALE_CONCURRENCY");
    if let Some(prefix) = common::child_param() {
        child(check_prefix(u8::try_from(prefix).expect("a prefix")), concurrency);
        return ExitCode::SUCCESS;
    }
    let widest = check_prefix(env_or("REFUSED_SCALE_MAX_PREFIX", 8));
    let prefixes: Vec<u8> = [16u8, 12, 8].into_iter().filter(|p| *p >= widest).collect();
    println!("refused_scale 127.0.0.0/{prefixes:?} port {PORT}/tcp (closed: every connect refused), connect discovery, concurrency {concurrency}, rate unlimited");
    let mut reports = Vec::new();
    for &prefix in &prefixes {
        let r = run_child(prefix, concurrency);
        assert_eq!(r.probed, 1u64 << (32 - prefix));
        println!(
            "  /{prefix}: {} targets in {:.1}s, {:.0} targets/s, peak RSS {:.1} MiB",
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
