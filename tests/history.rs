//! The history: two scans of a lab that changes in between give exactly the expected diff; partial
//! and narrower scans claim nothing gone outside what they covered; bad input is refused clearly.

mod common;

use common::{banner_device, ledger};
use otscope::findings::{Change, Finding};
use otscope::history::diff;
use otscope::pipeline::{self, Recording, RunOptions, ScanPlan, ScopeOptions};
use otscope::scope::Selection;
use otscope::store::{SqliteStore, Store};
use std::collections::BTreeMap;
use std::path::Path;
use tokio_util::sync::CancellationToken;

async fn recorded_scan(
    ledger: &Path,
    lib: &Path,
    db: &Path,
    selection: &Selection,
    stop: Option<CancellationToken>,
) -> (i64, Vec<Finding>) {
    let plan = plan_of(ledger, lib, selection).await;
    let store = SqliteStore::open(db).unwrap();
    let history = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("scan"))));
    let run = RunOptions { stop: stop.unwrap_or_default(), keep_findings: true, ..RunOptions::default() };
    let report = pipeline::run(&plan, history, Vec::new(), run).await.unwrap();
    assert!(report.history_error.is_none(), "{:?}", report.history_error);
    (report.scan_id.unwrap(), report.findings)
}

fn by_ip(findings: &[Finding]) -> BTreeMap<String, &Finding> {
    findings.iter().map(|f| (f.ip.to_string(), f)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scans_of_a_changing_lab_give_the_exact_diff() {
    let dir = tempfile::tempdir().unwrap();
    let lib = common::firmware_library(dir.path());
    let db = dir.path().join("h.db");
    let (_l, ledger) = ledger("E1,一号水厂,浦东新区,water,important,127.117.0.1-127.117.0.4,c\nE2,二号电厂,闵行区,energy,general,127.117.1.1,c\n");

    let a = banner_device("127.117.0.1:2222", Some(b"FW 1.0\r\n")).await;
    let b = banner_device("127.117.0.2:2222", Some(b"FW 2.0\r\n")).await;
    let c = banner_device("127.117.0.3:2222", Some(b"FW 3.0\r\n")).await;
    let other_district = banner_device("127.117.1.1:2222", Some(b"FW 9.0\r\n")).await;
    let (first, found) = recorded_scan(&ledger, &lib, &db, &Selection::default(), None).await;
    assert_eq!(found.len(), 4);
    assert!(found.iter().all(|f| f.change == Some(Change::New)), "{found:#?}");
    assert_eq!(by_ip(&found)["127.117.0.2"].version.as_deref(), Some("2.0"));

    // Between the scans: b's firmware changes, c goes away, d appears; a stays.
    b.stop().await;
    c.stop().await;
    let _b = banner_device("127.117.0.2:2222", Some(b"FW 2.1\r\n")).await;
    let _d = banner_device("127.117.0.4:2222", Some(b"FW 4.0\r\n")).await;
    let (second, found) = recorded_scan(&ledger, &lib, &db, &Selection::default(), None).await;
    let got = by_ip(&found);
    assert_eq!(got["127.117.0.1"].change, Some(Change::Persisting));
    assert_eq!(got["127.117.0.2"].change, Some(Change::Changed));
    assert_eq!(got["127.117.0.2"].changed, vec!["version".to_string()]);
    assert_eq!(got["127.117.0.4"].change, Some(Change::New));
    assert!(!got.contains_key("127.117.0.3"));

    let store = SqliteStore::open(&db).unwrap();
    let d = diff(&store, first, second).unwrap();
    let summary: Vec<(String, &str)> = d.entries.iter().map(|e| (e.ip.to_string(), e.status.as_str())).collect();
    assert_eq!(
        summary,
        vec![
            ("127.117.0.4".to_string(), "new"),
            ("127.117.0.2".to_string(), "changed"),
            ("127.117.0.1".to_string(), "persisting"),
            ("127.117.1.1".to_string(), "persisting"),
            ("127.117.0.3".to_string(), "gone"),
        ]
    );
    let changed = d.entries.iter().find(|e| e.status == Change::Changed).unwrap();
    assert_eq!(changed.before["version"], "2.0");
    assert_eq!(changed.finding.enterprise, "一号水厂");
    assert_eq!(otscope::history::default_pair(&store).unwrap(), (first, second));
    let services = store.services_of("127.117.0.3".parse().unwrap()).unwrap();
    assert_eq!(services[0].gone_scan, Some(second));
    drop(store);

    // A scan of one district covers only it: the other district's device, now silent, is not gone.
    other_district.stop().await;
    let sel = Selection { districts: vec!["浦东新区".into()], ..Default::default() };
    let (third, _) = recorded_scan(&ledger, &lib, &db, &sel, None).await;
    let store = SqliteStore::open(&db).unwrap();
    let d = diff(&store, second, third).unwrap();
    assert!(d.entries.iter().all(|e| e.ip.to_string() != "127.117.1.1"), "{:#?}", d.entries);
    assert_eq!(d.not_covered, 1);
    assert_eq!(store.services_of("127.117.1.1".parse().unwrap()).unwrap()[0].gone_scan, None);
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_scan_claims_nothing_gone() {
    let dir = tempfile::tempdir().unwrap();
    let lib = common::firmware_library(dir.path());
    let db = dir.path().join("h.db");
    let (_l, ledger) = ledger("E1,a,d,s,general,127.117.2.1-127.117.2.2,c\n");
    let a = banner_device("127.117.2.1:2222", Some(b"FW 1.0\r\n")).await;
    let (first, _) = recorded_scan(&ledger, &lib, &db, &Selection::default(), None).await;
    a.stop().await;
    let stop = CancellationToken::new();
    stop.cancel();
    let (second, found) = recorded_scan(&ledger, &lib, &db, &Selection::default(), Some(stop)).await;
    assert!(found.is_empty());
    let store = SqliteStore::open(&db).unwrap();
    assert!(!store.scan(second).unwrap().completed());
    let d = diff(&store, first, second).unwrap();
    assert_eq!(d.count(Change::Gone), 0);
    assert_eq!(d.not_covered, 1);
    assert_eq!(store.services_of("127.117.2.1".parse().unwrap()).unwrap()[0].gone_scan, None);
}

#[test]
fn bad_history_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(store.scan(42).unwrap_err().to_string(), "no scan with id 42 (see `otscope history`)");
    drop(store);

    let bin = env!("CARGO_BIN_EXE_otscope");
    let out =
        std::process::Command::new(bin).args(["diff", "--from", "1", "--to", "2", "--db"]).arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no scan with id"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out =
        std::process::Command::new(bin).args(["history", "--db"]).arg(dir.path().join("missing.db")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such history database"));

    // A database written by a newer otscope is refused, not "migrated" backwards.
    let newer = dir.path().join("newer.db");
    let conn = rusqlite::Connection::open(&newer).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA application_id = {}; PRAGMA user_version = 99",
        otscope::store::APPLICATION_ID
    ))
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(&newer).err().unwrap().to_string();
    assert!(err.contains("schema version 99, newer than this otscope knows"), "{err}");

    // A file that is not a database.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(&junk).err().unwrap().to_string();
    assert!(err.contains("not an otscope database") || err.contains("not a database"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn district_exports_put_each_finding_in_its_district_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let lib = common::firmware_library(dir.path());
    let db = dir.path().join("h.db");
    let (_l, ledger) = ledger(
        "P1,浦东一厂,浦东新区,water,important,127.117.3.1,c\nP2,浦东二厂,浦东新区,water,general,127.117.3.2,c\nM1,\"闵行<化工>\",闵行区/莘庄,chemical,important,127.117.3.3,c\n",
    );
    let _a = banner_device("127.117.3.1:2222", Some(b"FW 1.0\r\n")).await;
    let _b = banner_device("127.117.3.2:2222", Some(b"FW 2.0\r\n")).await;
    let _c = banner_device("127.117.3.3:2222", Some(b"FW 3.0\r\n")).await;
    recorded_scan(&ledger, &lib, &db, &Selection::default(), None).await;

    let bin = env!("CARGO_BIN_EXE_otscope");
    let out_dir = dir.path().join("export");
    let out = std::process::Command::new(bin)
        .args(["export", "--by", "district", "--format", "csv", "--lang", "zh", "--out"])
        .arg(&out_dir)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pudong = std::fs::read(out_dir.join("浦东新区.csv")).unwrap();
    assert!(pudong.starts_with("\u{feff}".as_bytes()), "Excel needs the BOM");
    let text = String::from_utf8(pudong).unwrap();
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("区县,企业编号,企业名称,重要程度,IP,端口"), "{header}");
    assert!(header.contains("首次发现,最近发现"), "{header}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.starts_with("浦东新区,")));
    assert!(rows.iter().any(|r| r.contains("浦东一厂") && r.contains(",重要,")), "{rows:?}");
    assert!(!text.contains("闵行"));
    // The district with a '/' in its name gets a safe file, and its enterprise name round-trips.
    let minhang = std::fs::read_to_string(out_dir.join("闵行区_莘庄.csv")).unwrap();
    assert!(minhang.contains("\"闵行<化工>\"") || minhang.contains("闵行<化工>"), "{minhang}");
    assert!(!minhang.contains("浦东"));
    let summary = std::fs::read_to_string(out_dir.join("summary.csv")).unwrap();
    assert!(summary.contains("浦东新区,2,2,"), "{summary}");

    let jsonl_dir = dir.path().join("jsonl");
    let out = std::process::Command::new(bin)
        .args(["export", "--format", "jsonl", "--out"])
        .arg(&jsonl_dir)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines = std::fs::read_to_string(jsonl_dir.join("findings.jsonl")).unwrap();
    let parsed: Vec<Finding> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed.len(), 3);
    assert!(parsed.iter().any(|f| f.enterprise == "闵行<化工>" && f.district == "闵行区/莘庄"));
    assert!(parsed.iter().all(|f| f.change == Some(Change::New)));
}

/// The plan of a scan of `ledger` with the library `lib` and the tests' options.
async fn plan_of(ledger: &Path, lib: &Path, selection: &Selection) -> ScanPlan {
    let scope = ScopeOptions { selection: selection.clone(), ..ScopeOptions::new(ledger, lib) };
    pipeline::plan(&scope, &common::options()).await.unwrap()
}

/// Runs a recorded scan whose store was tampered with first; returns the report.
async fn scan_with_store(ledger: &Path, lib: &Path, store: SqliteStore, out: &Path) -> pipeline::ScanReport {
    let plan = plan_of(ledger, lib, &Selection::default()).await;
    let sink = otscope::findings::JsonlWriter::new(std::fs::File::create(out).unwrap());
    let history = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("scan"))));
    let sinks = vec![otscope::findings::Sink::new(out.display().to_string(), sink)];
    pipeline::run(&plan, history, sinks, RunOptions::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_read_only_history_loses_no_finding() {
    let dir = tempfile::tempdir().unwrap();
    let lib = common::firmware_library(dir.path());
    let (_l, ledger) = ledger("E1,a,d,s,general,127.117.4.1-127.117.4.16,c\n");
    let mut devices = Vec::new();
    for i in 1..=16 {
        devices.push(banner_device(&format!("127.117.4.{i}:2222"), Some(b"FW 1.0\r\n")).await);
    }

    // A disk that fills up while the scan runs: SQLite reports SQLITE_FULL once its page budget is spent.
    let db = dir.path().join("full.db");
    let store = SqliteStore::open(&db).unwrap();
    let pages: i64 = store.connection().query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    store.connection().pragma_update(None, "max_page_count", pages).unwrap();
    let out = dir.path().join("full.jsonl");
    let report = scan_with_store(&ledger, &lib, store, &out).await;
    let err = report.history_error.expect("the store must fail");
    assert!(err.contains("full"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 16, "every finding still reaches the output");

    // A read-only database.
    let db = dir.path().join("ro.db");
    let store = SqliteStore::open(&db).unwrap();
    store.connection().pragma_update(None, "query_only", true).unwrap();
    let out = dir.path().join("ro.jsonl");
    let plan = plan_of(&ledger, &lib, &Selection::default()).await;
    let history = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("scan"))));
    let err = pipeline::run(&plan, history, Vec::new(), RunOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("read-only") || err.to_string().contains("readonly"), "{err}");
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_scan_never_corrupts_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let lib = common::firmware_library(dir.path());
    let db = dir.path().join("h.db");
    let (_l, ledger) = ledger("E1,a,d,s,general,127.117.8.0/22,c\n");
    let mut devices = Vec::new();
    for i in 1..=40u8 {
        devices.push(banner_device(&format!("127.117.8.{i}:2222"), Some(b"FW 1.0\r\n")).await);
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(["scan", "--rate", "300", "--banner-wait", "100ms", "--connect-timeout", "300ms", "--quiet", "--no-db"])
        .arg("--db")
        .arg(&db)
        .args(["--targets"])
        .arg(&ledger)
        .arg("--fingerprints")
        .arg(&lib)
        .arg("--out")
        .arg(dir.path().join("f.jsonl"))
        .spawn()
        .unwrap();
    // --no-db wins over --db: this first run must leave no database behind.
    assert!(child.wait().unwrap().success());
    assert!(!db.exists());

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(["scan", "--rate", "300", "--banner-wait", "100ms", "--connect-timeout", "300ms", "--quiet"])
        .arg("--db")
        .arg(&db)
        .args(["--targets"])
        .arg(&ledger)
        .arg("--fingerprints")
        .arg(&lib)
        .arg("--out")
        .arg(dir.path().join("g.jsonl"))
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let store = SqliteStore::open(&db).unwrap();
    let scans = store.scans().unwrap();
    assert_eq!(scans.len(), 1);
    assert!(scans[0].end.is_none(), "a killed scan is not marked finished");
    // The history stays usable: a new scan records over it.
    drop(store);
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_otscope")).args(["history", "--db"]).arg(&db).output().unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("interrupted") && !listing.contains("running"), "a dead scan is not running: {listing}");
}
