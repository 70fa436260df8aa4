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

/// Starts `scan` and kills it with SIGKILL as soon as a checkpoint is committed part-way (bounded wait,
/// whatever the machine's load); returns the checkpoint.
fn kill_part_way(mut scan: Command, db: &Path) -> u64 {
    let mut child = scan.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        std::thread::sleep(Duration::from_millis(50));
        let Ok(conn) = rusqlite::Connection::open(db) else { continue };
        let mark: Option<i64> = conn.query_row("SELECT checkpoint FROM scans", [], |r| r.get(0)).unwrap_or(None);
        if mark.is_some_and(|m| m > 0) {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let store = SqliteStore::open(db).unwrap();
    let scan = &store.scans().unwrap()[0];
    assert!(!scan.completed());
    let checkpoint = store.resume_point(scan.id).unwrap();
    assert!(checkpoint > 0 && checkpoint < 4096, "killed part-way: checkpoint {checkpoint}");
    checkpoint
}

/// The findings of a JSONL file, compared as [`findings`] compares them, and how many lines it has.
fn jsonl(path: &Path) -> (BTreeSet<Seen>, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let set = text
        .lines()
        .map(|l| {
            let f: otscope::findings::Finding = serde_json::from_str(l).unwrap();
            (f.ip.to_string(), f.port, f.protocol, f.version, f.change.unwrap().as_str().to_string())
        })
        .collect();
    (set, text.lines().count())
}

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
    let checkpoint = kill_part_way(scan_cmd(&ledger, &lib, &db, &dir.path().join("part.jsonl")), &db);
    let store = SqliteStore::open(&db).unwrap();
    let scan = &store.scans().unwrap()[0];
    let recorded_before = store.findings(scan.id).unwrap().len();
    drop(store);
    let part_before = std::fs::read_to_string(dir.path().join("part.jsonl")).unwrap();

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

    let rest = std::fs::read_to_string(dir.path().join("rest.jsonl")).unwrap();
    assert!(rest.lines().count() <= whole_n, "the named --out gets the resumed part: {rest}");
    assert_eq!(std::fs::read_to_string(dir.path().join("part.jsonl")).unwrap(), part_before, "left as it was");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_refuses_other_options_and_continues_the_original_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let lib = firmware_library(dir.path());
    let (_l, ledger) = ledger("E1,实验工厂,浦东新区,lab,important,127.119.32.0/20,c\n");
    let mut devices = Vec::new();
    for i in 0..48u32 {
        let addr = format!("127.119.{}.{}:2222", 32 + i % 16, 1 + i * 5);
        let banner: &'static [u8] = Box::leak(format!("FW {}.0\r\n", i).into_bytes().into_boxed_slice());
        devices.push(banner_device(&addr, Some(banner)).await);
    }
    let whole_db = dir.path().join("whole.db");
    assert!(scan_cmd(&ledger, &lib, &whole_db, &dir.path().join("whole.jsonl")).status().unwrap().success());
    let (whole, _) = findings(&whole_db);

    let db = dir.path().join("killed.db");
    let (out, csv) = (dir.path().join("found.jsonl"), dir.path().join("found.csv"));
    let mut killed = scan_cmd(&ledger, &lib, &db, &out);
    killed.arg("--csv").arg(&csv);
    kill_part_way(killed, &db);

    // Options that would make it another scan are refused, by name, and nothing runs.
    let resume = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_otscope"))
            .args(["scan", "--resume", "--db"])
            .arg(&db)
            .args(extra)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    for (extra, named) in [
        (&["--ports", "21,22"][..], "--ports 21,22 (was 2222)"),
        (&["--rate", "5", "--seed", "11"][..], "--rate 5 (was 700)"),
        (&["--deep"][..], "--deep set (was not given)"),
        (&["--targets", "other.csv"][..], "--targets "),
        (&["--dry-run"][..], "--dry-run set (was not given)"),
    ] {
        let o = resume(extra);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains("scan 1 resumes with the options it was started with; these would change it: "), "{err}");
        assert!(err.contains(named), "{extra:?}: {named:?} in {err}");
        assert!(!err.contains("--seed"), "the same seed is no change: {err}");
    }
    assert!(!SqliteStore::open(&db).unwrap().scans().unwrap()[0].completed(), "nothing ran");

    // Without --out, the original files are continued: they end with the whole scan, each service once.
    let o = resume(&["--rate", "700", "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty(), "nothing on standard output: the findings go to the scan's own --out");
    let (resumed, _) = findings(&db);
    assert_eq!(resumed, whole);
    let (written, lines) = jsonl(&out);
    assert_eq!(written, whole, "the original --out holds the whole scan");
    assert_eq!(lines, whole.len(), "each service once");
    let table = std::fs::read_to_string(&csv).unwrap();
    assert!(table.starts_with("\u{feff}ip,port,"), "one header, at the top");
    assert_eq!(table.lines().count(), 1 + whole.len(), "{table}");
}

#[tokio::test]
async fn a_checkpoint_is_committed_when_it_is_made_about_every_second() {
    let dir = tempfile::tempdir().unwrap();
    let lib = firmware_library(dir.path());
    let (_l, ledger) = ledger("E1,实验工厂,浦东新区,lab,important,127.119.64.0/30,c\n");
    let scope = otscope::pipeline::ScopeOptions::new(&ledger, &lib);
    let plan = otscope::pipeline::plan(&scope, &common::options()).await.unwrap();
    // The README: "A recorded scan checkpoints its progress about every second".
    assert_eq!(plan.engine.checkpoint_every, Some(Duration::from_secs(1)));
    let db = dir.path().join("h.db");
    let mut store = SqliteStore::open(&db).unwrap();
    let id = store.begin_scan(&plan.scan_start("scan")).unwrap();
    store.checkpoint(id, 3).unwrap();
    // Another connection (another process after a crash) sees it at once, not a batch later.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let seen: Option<i64> = conn.query_row("SELECT checkpoint FROM scans WHERE id = ?1", [id], |r| r.get(0)).unwrap();
    assert_eq!(seen, Some(3));
}
