//! The history recognises its own files: new ones are stamped with otscope's application id, another
//! program's SQLite file is refused and left byte for byte as it was, an empty file is a new history.
//! The commands that only read (history, show, diff, export, report, status, event report and list)
//! open it read-only and work where it cannot be written (a read-only folder, or a read-only file).

mod common;

use common::{banner_device, firmware_library, ledger, FAST};
use otscope::store::{SqliteStore, Store, APPLICATION_ID};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_otscope")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

fn application_id(db: &Path) -> i32 {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("PRAGMA application_id", [], |r| r.get(0)).unwrap()
}

/// A scan of one address where nothing listens, recorded in `db`.
fn scan_into(db: &Path, ledger: &Path, lib: &Path) -> Output {
    Command::new(bin())
        .args(["scan", "--ports", "2222", "--out", "/dev/null"])
        .args(FAST)
        .arg("--targets")
        .arg(ledger)
        .arg("--fingerprints")
        .arg(lib)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap()
}

#[test]
fn another_programs_database_is_refused_untouched_and_an_empty_file_is_a_new_history() {
    let dir = tempfile::tempdir().unwrap();
    let lib = firmware_library(dir.path());
    let (_l, ledger) = ledger("E1,a,d,s,general,127.157.7.99,c\n");

    // Another program's database (rollback journal, no application id), and one stamped by another
    // program whose tables happen to carry otscope's names.
    let dbs = dir.path().join("dbs");
    std::fs::create_dir_all(&dbs).unwrap();
    let plain = dbs.join("crm.db");
    let conn = rusqlite::Connection::open(&plain).unwrap();
    conn.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers VALUES (1, '张三');",
    )
    .unwrap();
    drop(conn);
    let lookalike = dbs.join("other.db");
    let conn = rusqlite::Connection::open(&lookalike).unwrap();
    conn.execute_batch(
        "PRAGMA application_id = 305419896; CREATE TABLE scans (x); CREATE TABLE services (x); CREATE TABLE observations (x);",
    )
    .unwrap();
    drop(conn);
    for (db, tables) in [(&plain, "customers"), (&lookalike, "observations, scans, services")] {
        let before = snapshot(&dbs);
        for args in [&["history"][..], &["show", "127.157.7.99"], &["export", "--out", "/nonexistent/x"]] {
            let o = Command::new(bin()).args(args).arg("--db").arg(db).output().unwrap();
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
            assert!(text(&o).contains("not an otscope history"), "{}", text(&o));
        }
        let o = scan_into(db, &ledger, &lib);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let message = text(&o);
        assert!(message.contains(&format!("{}: not an otscope history", db.display())), "{message}");
        assert!(message.contains(tables) && message.contains("left untouched"), "{message}");
        assert_eq!(snapshot(&dbs), before, "{}: not a byte changed, no file added", db.display());
    }

    // An empty file, and a file that does not exist yet: new histories, stamped as otscope's.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    for db in [&empty, &dir.path().join("new.db")] {
        let o = scan_into(db, &ledger, &lib);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(application_id(db), APPLICATION_ID);
        assert_eq!(SqliteStore::open(db).unwrap().scans().unwrap().len(), 1);
    }

    // A history from before the stamp: recognised by its tables; reading leaves it as it is, recording
    // stamps it.
    let old = dir.path().join("old.db");
    assert!(scan_into(&old, &ledger, &lib).status.success());
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch("PRAGMA application_id = 0").unwrap();
    drop(conn);
    let bytes = std::fs::read(&old).unwrap();
    let o = Command::new(bin()).args(["history", "--db"]).arg(&old).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&old).unwrap(), bytes, "a read-only command writes nothing");
    assert_eq!(application_id(&old), 0);
    assert!(scan_into(&old, &ledger, &lib).status.success());
    assert_eq!(application_id(&old), APPLICATION_ID);

    // A history from an older otscope (before the owners table): a read-only command refuses it,
    // writing nothing and naming the command that upgrades it; `history --upgrade` does, then lists.
    let older = dir.path().join("older.db");
    assert!(scan_into(&older, &ledger, &lib).status.success());
    let conn = rusqlite::Connection::open(&older).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    conn.execute_batch(&format!("DROP TABLE owners; PRAGMA user_version = {}", version - 1)).unwrap();
    drop(conn);
    let bytes = std::fs::read(&older).unwrap();
    for args in [&["history", "--db"][..], &["export", "--format", "jsonl", "--out", "x", "--db"][..]] {
        let o = Command::new(bin()).args(args).arg(&older).current_dir(dir.path()).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let message = text(&o);
        assert!(message.contains("older than this otscope's") && message.contains("history --upgrade"), "{message}");
        assert_eq!(std::fs::read(&older).unwrap(), bytes, "{args:?}: a read-only command writes nothing");
    }
    let o = Command::new(bin()).args(["history", "--upgrade", "--db"]).arg(&older).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).lines().filter(|l| l.contains("complete")).count(), 1, "{}", text(&o));
    let o = Command::new(bin()).args(["history", "--db"]).arg(&older).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// Runs otscope with `args` while `place` (a folder, or one file) cannot be written: tests run as root,
/// whom file permissions do not stop, so as root `place` is bind-mounted read-only in a mount namespace
/// of its own (and a write into it is first checked to fail); otherwise it (and a folder's files) is
/// made read-only.
fn in_read_only_place(place: &Path, args: &[&OsStr]) -> Output {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let script = r#"mount --bind -o ro "$0" "$0" || exit 97
if [ -d "$0" ]; then touch "$0/probe"; else (: >> "$0"); fi 2>/dev/null && exit 98
exec "$@""#;
        let o = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
            .arg(place)
            .arg(bin())
            .args(args)
            .output()
            .expect("unshare (util-linux) runs the command in a mount namespace");
        assert!(!matches!(o.status.code(), Some(97 | 98)), "no read-only bind mount here: {}", text(&o));
        o
    } else {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        if place.is_dir() {
            for entry in std::fs::read_dir(place).unwrap() {
                mode(&entry.unwrap().path(), 0o444);
            }
            mode(place, 0o555);
        } else {
            mode(place, 0o444);
        }
        let o = Command::new(bin()).args(args).output().unwrap();
        mode(place, if place.is_dir() { 0o755 } else { 0o644 });
        o
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_work_on_a_history_in_a_read_only_place() {
    let dir = tempfile::tempdir().unwrap();
    let lib = firmware_library(dir.path());
    let (_l, ledger) = ledger("E1,一号水厂,浦东新区,water,important,127.157.7.1-127.157.7.2,c\n");
    let _a = banner_device("127.157.7.1:2222", Some(b"FW 1.0\r\n")).await;
    let _b = banner_device("127.157.7.2:2222", Some(b"FW 2.0\r\n")).await;
    let place = dir.path().join("readonly");
    std::fs::create_dir_all(&place).unwrap();
    let db = place.join("h.db");
    let (ledger_s, lib_s) = (ledger.display().to_string(), lib.display().to_string());
    let mut start = vec!["event", "start", "expo", "--targets", &ledger_s, "--fingerprints", &lib_s, "--ports", "2222"];
    start.extend(FAST);
    let mut check = vec!["event", "check", "expo"];
    check.extend(FAST);
    for args in [start, check] {
        let o = tokio::task::spawn_blocking({
            let db = db.clone();
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            move || Command::new(bin()).args(&args).arg("--db").arg(&db).output().unwrap()
        })
        .await
        .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    let config = dir.path().join("otscope.toml");
    std::fs::write(&config, "[profile.daily]\ntargets = \"ledger.csv\"\nschedule = \"0 2 * * *\"\n").unwrap();
    let out = dir.path().join("out");
    let before = snapshot(&place);
    assert_eq!(before.len(), 1, "only the database, cleanly closed: {:?}", before.keys());

    let db_arg = db.as_os_str();
    let o = |s: &'static str| OsStr::new(s);
    let path = |p: PathBuf| p.into_os_string();
    let commands: Vec<Vec<std::ffi::OsString>> = vec![
        vec![o("history").into()],
        vec![o("show").into(), o("127.157.7.1").into()],
        vec![o("diff").into(), o("--from").into(), o("1").into(), o("--to").into(), o("2").into()],
        vec![o("export").into(), o("--by").into(), o("district").into(), o("--out").into(), path(out.join("x"))],
        vec![o("report").into(), o("--out").into(), path(out.join("r.html"))],
        vec![o("status").into(), o("--config").into(), path(config.clone())],
        vec![o("event").into(), o("report").into(), o("expo").into(), o("--out").into(), path(out.join("e.md"))],
        vec![o("event").into(), o("list").into()],
    ];
    std::fs::create_dir_all(&out).unwrap();
    for command in &commands {
        let mut args: Vec<&OsStr> = command.iter().map(|a| a.as_os_str()).collect();
        args.extend([o("--db"), db_arg]);
        let output = in_read_only_place(&place, &args);
        assert!(output.status.success(), "{command:?}: {}", text(&output));
        assert!(snapshot(&place) == before, "{command:?} left the read-only place as it was");
    }
    // The database file alone read-only, in a folder that can be written.
    for command in &commands {
        let mut args: Vec<&OsStr> = command.iter().map(|a| a.as_os_str()).collect();
        args.extend([o("--db"), db_arg]);
        let output = in_read_only_place(&db, &args);
        assert!(output.status.success(), "{command:?} on a read-only file: {}", text(&output));
        assert!(std::fs::read(&db).unwrap() == before[&db], "{command:?} left the read-only file as it was");
    }
    assert!(std::fs::read_to_string(out.join("e.md")).unwrap().contains("No new exposure and no change."));
    assert!(out.join("x/浦东新区.csv").exists());
}
