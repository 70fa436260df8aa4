//! Checkpoint overhead: the same recorded scan of a closed loopback /16 (every target refused at
//! once, so the pipeline itself is what is measured), with checkpoints every second and without
//! them, alternating in one process. Reports both rates and their ratio.
//!
//! Run: cargo bench --bench checkpoint

mod common;

use otscope::pipeline::Recording;
use otscope::store::SqliteStore;
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;

fn main() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = dir.path().join("l.csv");
    std::fs::write(
        &ledger,
        "enterprise_id,enterprise,district,sector,level,targets,contact\nB1,bench,Loopback,testing,general,127.72.0.0/16,x\n",
    )
    .unwrap();
    let mut with = Vec::new();
    let mut without = Vec::new();
    for round in 0..2 * ROUNDS {
        let checkpoints = round % 2 == 0;
        let rate = rt.block_on(async {
            let mut plan = common::plan(&ledger, "9", &common::options(512, 5)).await;
            if !checkpoints {
                plan.engine.checkpoint_every = None;
            }
            let store = SqliteStore::open(&dir.path().join(format!("h{round}.db"))).unwrap();
            let recording = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("scan"))));
            let started = Instant::now();
            let report = common::run(&plan, recording, false).await;
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
