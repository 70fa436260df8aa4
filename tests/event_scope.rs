//! An event watches the objects of its baseline. A check that is interrupted exits 130 and is not a
//! complete check (the report does not count it); a check whose ledger or exclusions were edited since
//! the baseline says so, and the report tells it and counts what each check actually probed.

mod common;

use common::{banner_device, ledger, output_text, FAST};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn otscope(args: &[&str], db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otscope")).args(args).arg("--db").arg(db).output().unwrap()
}

/// An `event start` of `ledger` on port 2222, with `extra` options, that must open the event.
fn start(name: &str, ledger: &Path, lib: &Path, extra: &[&str], db: &Path) {
    let (ledger, lib) = (ledger.display().to_string(), lib.display().to_string());
    let mut args = vec!["event", "start", name, "--targets", &ledger, "--fingerprints", &lib, "--ports", "2222"];
    args.extend(extra);
    args.extend(FAST);
    let o = otscope(&args, db);
    assert!(o.status.success(), "{}", output_text(&o));
}

/// The event's report, and the exit status of `event report`.
fn report(name: &str, db: &Path, dir: &Path) -> (String, Option<i32>) {
    let out = dir.join("report.md");
    let o = otscope(&["event", "report", name, "--out", &out.display().to_string()], db);
    (std::fs::read_to_string(out).unwrap_or_else(|_| output_text(&o)), o.status.code())
}

/// How many scans the history holds.
fn scans(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM scans", [], |r| r.get(0)))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_check_exits_130_and_is_not_a_complete_check() {
    let dir = tempfile::tempdir().unwrap();
    let lib = common::firmware_library(dir.path());
    let db = dir.path().join("h.db");
    // 1024 addresses: the baseline runs at full speed, the check at 50 targets a second, interrupted.
    let (_l, ledger) = ledger("E1,一号水厂,浦东新区,water,important,127.158.0.0/22,c\n");
    let _plc = banner_device("127.158.0.1:2222", Some(b"FW 1.0\r\n")).await;
    start("expo", &ledger, &lib, &[], &db);

    let mut check = Command::new(env!("CARGO_BIN_EXE_otscope"));
    check.args(["event", "check", "expo"]).args(FAST).args(["--rate", "50", "--db"]).arg(&db);
    let child = check.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while scans(&db) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    // SAFETY: kill has no memory preconditions; the pid is our own child's, still unwaited.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    let said = output_text(&o);
    assert_eq!(o.status.code(), Some(130), "{said}");
    assert!(said.contains("check scan 2 against baseline scan 1: interrupted"), "{said}");
    assert!(said.contains("not a complete check"), "{said}");

    let (r, status) = report("expo", &db, dir.path());
    assert_eq!(status, Some(1), "no complete check: nothing vouched for");
    assert!(r.contains("- Checks in the window: 0"), "the interrupted check is not counted: {r}");
    assert!(r.contains("No complete check ran in this window"), "{r}");
    assert!(!r.contains("No new exposure and no change."), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_after_the_ledger_or_the_exclusions_were_edited_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let lib = common::firmware_library(dir.path());
    let db = dir.path().join("h.db");
    let (_l, ledger) = ledger("E1,一号水厂,浦东新区,water,important,127.158.8.1-127.158.8.4,c\n");
    let exclude = dir.path().join("exclude.txt");
    std::fs::write(&exclude, "127.158.8.4\n").unwrap();
    let _plc = banner_device("127.158.8.1:2222", Some(b"FW 1.0\r\n")).await;
    start("expo", &ledger, &lib, &["--exclude", &exclude.display().to_string()], &db);
    let mut check = vec!["event", "check", "expo"];
    check.extend(FAST);

    // The same scope: nothing to say.
    let o = otscope(&check, &db);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(!output_text(&o).contains("scope changed"), "{}", output_text(&o));
    let (r, status) = report("expo", &db, dir.path());
    assert_eq!(status, Some(0), "{r}");
    assert!(!r.contains("Scope changed"), "{r}");
    assert!(r.contains("- Addresses: 3\n"), "{r}");

    // An exclusion file edited without a change of what it excludes is still told.
    std::fs::write(&exclude, "# reviewed\n127.158.8.4\n").unwrap();
    let o = otscope(&check, &db);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(
        output_text(&o).contains(
            "event expo: the scope changed since the baseline: the exclusions were edited; this check covers 3 \
             addresses and 3 targets, the baseline 3 and 3"
        ),
        "{}",
        output_text(&o)
    );

    // An address added to the ledger: the check probes it and says so; the report counts what each
    // check probed and names the scans whose scope changed.
    let mut rows = std::fs::read_to_string(&ledger).unwrap();
    rows.push_str("E2,二号电厂,闵行区,energy,important,127.158.8.9,c\n");
    std::fs::write(&ledger, rows).unwrap();
    let o = otscope(&check, &db);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(
        output_text(&o).contains(
            "the scope changed since the baseline: the ledger was edited, the exclusions were edited; this check \
             covers 4 addresses and 4 targets, the baseline 3 and 3"
        ),
        "{}",
        output_text(&o)
    );
    let (r, status) = report("expo", &db, dir.path());
    assert_eq!(status, Some(0), "{r}");
    assert!(r.contains("- Protected objects: 1–2 (baseline: 1)"), "{r}");
    assert!(r.contains("- Addresses: 3–4 (baseline: 3)"), "{r}");
    assert!(r.contains("- Checks in the window: 3"), "{r}");
    assert!(r.contains(", 3 targets probed, 3 addresses"), "{r}");
    assert!(r.contains(", 4 targets probed, 4 addresses"), "{r}");
    assert!(r.contains("- (address, port) targets probed in the window: 10"), "{r}");
    assert!(!r.contains("Scope changed since the baseline in scan 2"), "{r}");
    assert!(r.contains("Scope changed since the baseline in scan 3: the exclusions were edited"), "{r}");
    assert!(r.contains("Scope changed since the baseline in scan 4: the ledger was edited"), "{r}");
}
