//! Major-event mode end to end: baseline, a check with no drift and its zero report (English and
//! Chinese), then drift on the important objects only, and the closed event refusing more checks.

mod common;

use common::{banner_device, ledger};
use std::path::Path;
use std::process::{Command, Output};

use common::FAST;

fn otscope(args: &[&str], db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otscope")).args(args).arg("--db").arg(db).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn lab_library(dir: &Path) -> String {
    let lib = dir.join("fp");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("ports.toml"), "ports = [\"2222\"]\n").unwrap();
    std::fs::write(
        lib.join("lab.toml"),
        "[[rule]]\nid = \"lab.fw\"\nprotocol = \"unknown\"\nwhen = [{ field = \"banner\", regex = '^FW (?P<v>\\S+)' }]\nset = { protocol = \"labfw\", ics = true, vendor = \"Lab\", version = \"{v}\" }\n[[rule.example]]\nbanner = 'FW 1\\r\\n'\nexpect = { version = \"1\" }\n",
    )
    .unwrap();
    lib.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_from_baseline_to_zero_report_to_drift() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let lib = lab_library(dir.path());
    let (_l, ledger) = ledger(
        "I1,重点水厂,浦东新区,water,important,127.118.0.1-127.118.0.3,c\nI2,重点电厂,闵行区,energy,important,127.118.1.1,c\nG1,一般工厂,闵行区,manufacturing,general,127.118.2.1,c\n",
    );
    let ledger = ledger.display().to_string();
    let plc = banner_device("127.118.0.1:2222", Some(b"FW 1.0\r\n")).await;
    let _rtu = banner_device("127.118.1.1:2222", Some(b"FW 5.0\r\n")).await;
    let general = banner_device("127.118.2.1:2222", Some(b"FW 7.0\r\n")).await;

    let mut start =
        vec!["event", "start", "expo", "--targets", &ledger, "--level", "important", "--fingerprints", &lib];
    start.extend(FAST);
    let o = otscope(&start, &db);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("event expo opened: baseline scan 1, 2 open services"), "{}", text(&o));
    assert_eq!(general.connections(), 0, "the general object is outside the event's selection");

    let mut check: Vec<&str> = vec!["event", "check", "expo"];
    check.extend(FAST);
    let o = otscope(&check, &db);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report = dir.path().join("r.md");
    let report_s = report.display().to_string();
    let o = otscope(&["event", "report", "expo", "--out", &report_s], &db);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = std::fs::read_to_string(&report).unwrap();
    assert!(r.contains("No new exposure and no change."), "{r}");
    assert!(r.contains("- Protected objects: 2"), "{r}");
    assert!(r.contains("- Addresses: 4"), "{r}");
    assert!(r.contains("- Ports: 1 (2222/tcp)"), "{r}");
    assert!(r.contains("- Checks in the window: 1"), "{r}");
    let o = otscope(&["event", "report", "expo", "--lang", "zh", "--out", &report_s], &db);
    assert_eq!(o.status.code(), Some(0));
    let r = std::fs::read_to_string(&report).unwrap();
    assert!(r.contains("无新增暴露，无变化。"), "{r}");
    assert!(r.contains("保护对象数：2"), "{r}");

    // Drift: the PLC's firmware changes and a new device appears on an important object; the general
    // object's change is outside the event.
    plc.stop().await;
    general.stop().await;
    let _plc = banner_device("127.118.0.1:2222", Some(b"FW 1.1\r\n")).await;
    let _new = banner_device("127.118.0.3:2222", Some(b"FW 2.0\r\n")).await;
    let _general = banner_device("127.118.2.1:2222", Some(b"FW 8.0\r\n")).await;
    let drift_file = dir.path().join("drift.jsonl");
    let drift_s = drift_file.display().to_string();
    let mut check2 = check.clone();
    check2.extend(["--out", &drift_s]);
    let o = otscope(&check2, &db);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let lines = std::fs::read_to_string(&drift_file).unwrap();
    let drift: Vec<otscope::findings::Finding> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(String, String)> =
        drift.iter().map(|f| (f.ip.to_string(), f.change.unwrap().as_str().to_string())).collect();
    assert_eq!(got, vec![("127.118.0.3".into(), "new".into()), ("127.118.0.1".into(), "changed".into())]);
    let o = otscope(&["event", "report", "expo", "--out", &report_s], &db);
    assert_eq!(o.status.code(), Some(3));
    let r = std::fs::read_to_string(&report).unwrap();
    assert!(!r.contains("No new exposure"), "{r}");
    assert!(r.contains("Drift from the baseline: 1 new, 1 changed, 0 gone."), "{r}");
    assert!(r.contains("127.118.0.1:2222/tcp labfw Lab - 1.1"), "{r}");
    assert!(r.contains("before: version: \"1.0\""), "{r}");

    let o = otscope(&["event", "close", "expo"], &db);
    assert!(o.status.success());
    let o = otscope(&check, &db);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("was closed at"), "{}", text(&o));
    let o = otscope(&["event", "report", "nosuch", "--out", &report_s], &db);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no event named \"nosuch\""), "{}", text(&o));
}
