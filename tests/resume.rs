//! Resumable scans: a scan of a few thousand targets killed with SIGKILL part-way and resumed ends with
//! exactly the findings of an uninterrupted scan of the same lab: nothing lost, nothing repeated.

mod common;

use common::{banner_device, firmware_library, ledger};
use otscope::store::{SqliteStore, Store};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FLAGS: [&str; 11] = [
    "--ports",
    "2222",
    "--rate",
    "700",
    "--seed",
    "11",
    "--banner-wait",
    "200ms",
    "--connect-timeout",
    "300ms",
    "--quiet",
];

fn scan_cmd(ledger: &Path, lib: &Path, db: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_otscope"));
    c.arg("scan").arg("--targets").arg(ledger).arg("--fingerprints").arg(lib).arg("--db").arg(db).arg("--out").arg(out);
    c.args(FLAGS);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// What is compared of a finding: ip, port, protocol, version, change.
type Seen = (String, u16, String, Option<String>, String);

/// Every finding of the only scan in `db`, and how many there are.
fn findings(db: &Path) -> (BTreeSet<Seen>, usize) {
    let store = SqliteStore::open(db).unwrap();
    let scans = store.scans().unwrap();
    assert_eq!(scans.len(), 1, "one scan, resumed in place");
    assert!(scans[0].completed(), "the resumed scan completed");
    let f = store.findings(scans[0].id).unwrap();
    let n = f.len();
    let set = f
        .into_iter()
        .map(|f| (f.ip.to_string(), f.port, f.protocol, f.version, f.change.unwrap().as_str().to_string()))
        .collect();
    (set, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_scan_resumes_to_exactly_the_uninterrupted_findings() {
    let dir = tempfile::tempdir().unwrap();
    let lib = firmware_library(dir.path());
    // 4096 addresses: a lab of a few thousand targets, 48 of them with a device.
    let (_l, ledger) = ledger("E1,实验工厂,浦东新区,lab,important,127.119.0.0/20,c\n");
    let mut devices = Vec::new();
    for i in 0..48u32 {
        let addr = format!("127.119.{}.{}:2222", i % 16, 1 + i * 5);
        let banner: &'static [u8] = Box::leak(format!("FW {}.0\r\n", i).into_bytes().into_boxed_slice());
        devices.push(banner_device(&addr, Some(banner)).await);
    }

    let whole_db = dir.path().join("whole.db");
    let status = scan_cmd(&ledger, &lib, &whole_db, &dir.path().join("whole.jsonl")).status().unwrap();
    assert!(status.success());
    let (whole, whole_n) = findings(&whole_db);
    assert_eq!(whole_n, 48);

    let db = dir.path().join("killed.db");
    let mut child = scan_cmd(&ledger, &lib, &db, &dir.path().join("part.jsonl")).spawn().unwrap();
    // Kill it as soon as a checkpoint is committed part-way (bounded wait), whatever the machine's load.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        std::thread::sleep(Duration::from_millis(50));
        let Ok(conn) = rusqlite::Connection::open(&db) else { continue };
        let mark: Option<i64> = conn.query_row("SELECT checkpoint FROM scans", [], |r| r.get(0)).unwrap_or(None);
        if mark.is_some_and(|m| m > 0) {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let store = SqliteStore::open(&db).unwrap();
    let scan = &store.scans().unwrap()[0];
    assert!(!scan.completed());
    let checkpoint = store.resume_point(scan.id).unwrap();
    assert!(checkpoint > 0 && checkpoint < 4096, "killed part-way: checkpoint {checkpoint}");
    let recorded_before = store.findings(scan.id).unwrap().len();
    drop(store);

    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(["scan", "--resume", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(dir.path().join("rest.jsonl"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("resuming scan 1 from position {checkpoint} of 4096")), "{err}");
    let (resumed, resumed_n) = findings(&db);
    assert_eq!(resumed_n, whole_n, "nothing lost, nothing repeated");
    assert_eq!(resumed, whole, "the same findings, with the same change status");
    eprintln!(
        "resume: killed at checkpoint {checkpoint}/4096 with {recorded_before} findings recorded; resumed in {:.1}s to {resumed_n}",
        started.elapsed().as_secs_f64()
    );

    // The history counts the whole scan, not the resumed part: `history` shows the open count of the
    // uninterrupted scan.
    let open_column = |db: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_otscope")).args(["history", "--db"]).arg(db).output().unwrap();
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        // scan, started (date time), ended (date time), state, targets, probed, open, ...
        let row = listing.lines().find(|l| l.trim_start().starts_with("1 ")).unwrap_or_else(|| panic!("{listing}"));
        row.split_whitespace().nth(8).unwrap().to_string()
    };
    assert_eq!(open_column(&db), open_column(&whole_db));
    assert_eq!(open_column(&db), whole_n.to_string());
    assert_eq!(SqliteStore::open(&db).unwrap().scans().unwrap()[0].end.as_ref().unwrap().open, whole_n as u64);

    // Nothing left to resume.
    let out =
        Command::new(env!("CARGO_BIN_EXE_otscope")).args(["scan", "--resume", "1", "--db"]).arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("completed: there is nothing to resume"));
}
