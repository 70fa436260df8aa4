//! Exit status 2 whenever nothing was probed: an output path that cannot be created (which `--dry-run`
//! checks, leaving no file behind), a history that cannot be written; and "nothing was probed" said
//! only by the commands that probe.

mod common;

use common::{
    banner_device, firmware_library, ledger, otscope_in, otscope_in_blocking, output_text, output_within, Responder,
    FAST,
};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Every file below `dir`, to see that a dry run leaves none behind.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        }
        out.push(p.display().to_string());
    }
    out.sort();
    out
}

#[test]
fn a_dry_run_checks_every_output_path_and_leaves_nothing_behind() {
    let (dir, ledger) = ledger("E1,工厂,浦东新区,water,important,127.127.80.1,c\n");
    let lib = firmware_library(dir.path());
    let (l, f) = (ledger.to_str().unwrap(), lib.to_str().unwrap());
    let scan = ["scan", "--targets", l, "--fingerprints", f, "--ports", "2222", "--no-db", "--dry-run"];
    let before = files(dir.path());
    for (outputs, told) in [
        (&["--out", "ledger.csv/x.jsonl"][..], "ledger.csv/x.jsonl: cannot create: ledger.csv is not a folder"),
        (&["--out", "ok.jsonl", "--csv", "fp"][..], "fp: is a folder, not a file"),
        (
            &["--csv", "ledger.csv/deeper/x.csv"][..],
            "ledger.csv/deeper/x.csv: cannot create: ledger.csv is not a folder",
        ),
    ] {
        let args: Vec<&str> = scan.iter().chain(outputs).copied().collect();
        let o = otscope_in(dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{outputs:?}: {}", output_text(&o));
        assert!(output_text(&o).contains(told), "{told:?} in {}", output_text(&o));
        assert!(output_text(&o).contains("nothing was probed"), "{}", output_text(&o));
    }
    // Paths that can be created pass, missing folders included, and nothing is created.
    let args: Vec<&str> = scan.iter().chain(&["--out", "new/sub/x.jsonl", "--csv", "x.csv"]).copied().collect();
    let o = otscope_in(dir.path(), &args);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(files(dir.path()), before, "a dry run leaves no file behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_creates_the_missing_folders_of_its_outputs() {
    let (dir, ledger) = ledger("E1,工厂,浦东新区,water,important,127.127.80.2,c\n");
    let lib = firmware_library(dir.path());
    let _device = banner_device("127.127.80.2:2222", Some(b"FW 1.0\r\n")).await;
    let (l, f) = (ledger.to_str().unwrap(), lib.to_str().unwrap());
    let mut args = vec!["scan", "--targets", l, "--fingerprints", f, "--ports", "2222", "--no-db"];
    args.extend(["--out", "runs/today/x.jsonl", "--csv", "tables/x.csv"]);
    args.extend(FAST);
    let o = otscope_in_blocking(dir.path(), &args).await;
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("runs/today/x.jsonl")).unwrap().lines().count(), 1);
    assert_eq!(std::fs::read_to_string(dir.path().join("tables/x.csv")).unwrap().lines().count(), 2);
}

/// A folder with a ledger of one object at `ip`, its device (port 2222) and the history `h.db` holding
/// the event `expo` started on it; the ledger's and the library's paths.
async fn event_lab(ip: &str) -> (tempfile::TempDir, String, String, Responder) {
    let (dir, ledger) = ledger(&format!("E1,工厂,浦东新区,water,important,{ip},c\n"));
    let lib = firmware_library(dir.path());
    let device = banner_device(&format!("{ip}:2222"), Some(b"FW 1.0\r\n")).await;
    let (l, f) = (ledger.to_str().unwrap().to_string(), lib.to_str().unwrap().to_string());
    let mut start = vec!["event", "start", "expo", "--targets", &l, "--fingerprints", &f, "--ports", "2222"];
    start.extend(["--db", "h.db"]);
    start.extend(FAST);
    let o = otscope_in_blocking(dir.path(), &start).await;
    assert!(o.status.success(), "{}", output_text(&o));
    (dir, l, f, device)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_that_cannot_be_written_stops_every_probing_command_before_it_probes() {
    let (dir, l, f, device) = event_lab("127.127.80.3").await;
    let lib = dir.path().join("fp");
    let probes_before = device.connections();

    // A database file that cannot be written, in a folder that can (so it opens, read-only). Root
    // writes anything: the commands then run as nobody.
    let db = dir.path().join("h.db");
    for p in [dir.path(), &lib] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    let config = dir.path().join("otscope.toml");
    std::fs::write(
        &config,
        format!("db = \"h.db\"\n[profile.lab]\ntargets = \"{l}\"\nfingerprints = \"{f}\"\nports = \"2222\"\nschedule = \"@daily\"\n"),
    )
    .unwrap();
    let scan = ["scan", "--targets", &l, "--fingerprints", &f, "--ports", "2222", "--db", "h.db"];
    let check = ["check", "--targets", &l, "--fingerprints", &f, "--ports", "2222", "--db", "h.db"];
    let event = ["event", "check", "expo", "--db", "h.db"];
    let daemon = ["daemon", "--config", "otscope.toml"];
    for args in [&scan[..], &check[..], &event[..], &daemon[..]] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_otscope"));
        command.args(args).current_dir(dir.path()).env_remove("RUST_LOG");
        if args[0] != "daemon" {
            command.args(FAST);
        }
        // SAFETY: geteuid only reads the process's credentials.
        if unsafe { libc::geteuid() } == 0 {
            command.uid(65534).gid(65534);
        }
        let o = tokio::task::spawn_blocking(move || output_within(command, std::time::Duration::from_secs(30)))
            .await
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", output_text(&o));
        let told = if args[0] == "daemon" {
            "h.db: the history cannot be written (it opens read-only)"
        } else {
            "the history cannot record the scan: "
        };
        assert!(output_text(&o).contains(told), "{args:?}: {}", output_text(&o));
        assert!(
            output_text(&o).contains("read-only") || output_text(&o).contains("readonly"),
            "{args:?}: {}",
            output_text(&o)
        );
        assert!(output_text(&o).contains("nothing was probed"), "{args:?}: {}", output_text(&o));
    }
    assert_eq!(device.connections(), probes_before, "nothing was probed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_check_out_that_cannot_be_created_is_refused_before_probing() {
    let (dir, _, _, device) = event_lab("127.127.80.4").await;
    let probes_before = device.connections();
    let mut check = vec!["event", "check", "expo", "--db", "h.db", "--out", "ledger.csv/drift.jsonl"];
    check.extend(FAST);
    let o = otscope_in_blocking(dir.path(), &check).await;
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(output_text(&o).contains("ledger.csv/drift.jsonl: cannot create: "), "{}", output_text(&o));
    assert_eq!(device.connections(), probes_before, "nothing was probed");
}

#[test]
fn only_the_commands_that_probe_say_nothing_was_probed() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["history", "--db", "missing.db"][..],
        &["show", "127.0.0.1", "--db", "missing.db"][..],
        &["diff", "--db", "missing.db"][..],
        &["event", "list", "--db", "missing.db"][..],
        &["event", "report", "expo", "--out", "r.md", "--db", "missing.db"][..],
        &["ledger", "check", "missing.csv"][..],
        &["rules", "check", "--fingerprints", "missing"][..],
    ] {
        let o = otscope_in(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", output_text(&o));
        assert!(!output_text(&o).contains("nothing was probed"), "{args:?} probes nothing anyway: {}", output_text(&o));
    }
    for args in [
        &["scan", "--targets", "missing.csv"][..],
        &["check", "--targets", "missing.csv"][..],
        &["event", "start", "expo", "--targets", "missing.csv", "--db", "h.db"][..],
        &["event", "check", "expo", "--db", "missing.db"][..],
    ] {
        let o = otscope_in(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", output_text(&o));
        assert!(output_text(&o).contains("nothing was probed"), "{args:?}: {}", output_text(&o));
    }
}
