//! Checkpoint overhead: the same recorded scan of a closed loopback /16 (every target refused at
//! once, so the pipeline itself is what is measured), with checkpoints every second and without
//! them, alternating in one process. Reports both rates and their ratio.
//!
//! Run: cargo bench --bench checkpoint

use clap::Parser;
use otscope::cli::{Cli, Command};
use otscope::commands::{plan_scan, run_scan, Recording};
use otscope::engine::ProgressStyle;
use otscope::scope::Selection;
use otscope::store::SqliteStore;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 3;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = dir.path().join("l.csv");
    std::fs::write(
        &ledger,
        "enterprise_id,enterprise,district,sector,level,targets,contact\nB1,bench,Loopback,testing,general,127.72.0.0/16,x\n",
    )
    .unwrap();
    let args = match Cli::try_parse_from([
        "otscope",
        "scan",
        "--targets",
        "x",
        "--ports",
        "9",
        "--rate",
        "0",
        "-c",
        "512",
        "--host-interval",
        "0s",
        "--seed",
        "5",
        "--quiet",
    ])
    .unwrap()
    .command
    {
        Command::Scan(a) => a.engine,
        _ => unreachable!(),
    };
    let fingerprints = Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprints");
    let ports = otscope::scope::parse_ports("9").unwrap();
    let mut with = Vec::new();
    let mut without = Vec::new();
    for round in 0..2 * ROUNDS {
        let checkpoints = round % 2 == 0;
        let rate = rt.block_on(async {
            let mut plan = plan_scan(&ledger, None, &fingerprints, Some(ports.clone()), &Selection::default(), &args)
                .await
                .unwrap();
            if !checkpoints {
                plan.engine.checkpoint_every = None;
            }
            let store = SqliteStore::open(&dir.path().join(format!("h{round}.db"))).unwrap();
            let recording = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("scan"))));
            let started = Instant::now();
            let report =
                run_scan(&plan, recording, Vec::new(), ProgressStyle::Quiet, CancellationToken::new()).await.unwrap();
            assert_eq!(report.stats.probed, 65536);
            65536.0 / started.elapsed().as_secs_f64()
        });
        if checkpoints {
            with.push(rate)
        } else {
            without.push(rate)
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!(
        "checkpoint /16: with checkpoints {:.0} probes/s, without {:.0} probes/s, ratio {:.2} (best of {ROUNDS})",
        best(&with),
        best(&without),
        best(&with) / best(&without)
    );
}
