//! Store benchmark: records a scan of 100,000 observations through the Store interface (change
//! detection, service upserts, batched transactions) and reports inserts per second and the database
//! size. The baseline, timed in the same run on the same disk, is a bare SQLite insert of the same
//! finding JSON into a one-table database in one transaction: the floor of what any history costs.
//!
//! Run: cargo bench --bench store

mod common;

use common::history::{completed, modbus_finding, scan_start, FINISHED_AT};
use otscope::findings::Finding;
use otscope::store::{SqliteStore, Store};
use std::net::Ipv4Addr;
use std::time::Instant;

const OBSERVATIONS: u32 = 100_000;

/// The base of the history's addresses: 127.64.0.0/15.
const FIRST: u32 = 0x7f40_0000;

fn finding(i: u32, version: &str) -> Finding {
    modbus_finding(Ipv4Addr::from(FIRST + i), format!("E{}", i % 500), "浦东新区".into(), version)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let findings: Vec<Finding> = (0..OBSERVATIONS).map(|i| finding(i, "v2.7")).collect();

    // Baseline: the same JSON, bare inserts, one transaction.
    let bare = dir.path().join("bare.db");
    let conn = rusqlite::Connection::open(&bare).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (ip TEXT, port INTEGER, finding TEXT)").unwrap();
    let t0 = Instant::now();
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut st = conn.prepare("INSERT INTO t VALUES (?1, ?2, ?3)").unwrap();
        for f in &findings {
            st.execute(rusqlite::params![f.ip.to_string(), f.port, serde_json::to_string(f).unwrap()]).unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
    let bare_secs = t0.elapsed().as_secs_f64();
    drop(conn);

    // The store: a first scan (all new), then a second (change detection against the first).
    let db = dir.path().join("otscope.db");
    let mut store = SqliteStore::open(&db).unwrap();
    let mut rates = Vec::new();
    for (round, version) in ["v2.7", "v2.8"].iter().enumerate() {
        let start = scan_start(Ipv4Addr::from(FIRST), Ipv4Addr::from(FIRST + 131_071));
        let id = store.begin_scan(&start).unwrap();
        let t0 = Instant::now();
        for i in 0..OBSERVATIONS {
            let mut f = finding(i, version);
            store.record(id, &mut f).unwrap();
        }
        store.finish_scan(id, completed(&start), FINISHED_AT).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        rates.push(OBSERVATIONS as f64 / secs);
        println!(
            "store scan {}: {OBSERVATIONS} observations in {secs:.2}s: {:.0} inserts/s",
            round + 1,
            OBSERVATIONS as f64 / secs
        );
    }
    drop(store);
    let size = |p: &std::path::Path| {
        ["", "-wal", "-shm"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", p.display())).ok())
            .map(|m| m.len())
            .sum::<u64>()
    };
    let bare_rate = OBSERVATIONS as f64 / bare_secs;
    println!("baseline (bare insert of the same JSON): {bare_rate:.0} inserts/s");
    println!(
        "store/baseline rate ratio: first scan {:.2}, second scan {:.2}",
        rates[0] / bare_rate,
        rates[1] / bare_rate
    );
    println!(
        "database size after 2 scans x {OBSERVATIONS} observations: {:.1} MiB ({:.0} bytes per observation); bare table of 1 x {OBSERVATIONS}: {:.1} MiB",
        size(&db) as f64 / 1048576.0,
        size(&db) as f64 / (2.0 * OBSERVATIONS as f64),
        size(&bare) as f64 / 1048576.0
    );
}
