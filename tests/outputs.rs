//! Every output the project writes, from the one definition of the finding's columns: the README's
//! main command (`scan --out --csv`) against simulated devices, the district exports (CSV and JSONL,
//! English and Chinese), `diff --format jsonl` and `check`. Findings with every optional field null,
//! with every one set, Chinese text, and values holding quotes, commas, newlines and formula starts.
//! A second, independent reader (Python's `csv` module) reads every CSV back.
//!
//! Also: an output that cannot be written stops the scan, which is recorded as partial with its
//! findings kept; a scan whose process died reads as interrupted, never as running.

mod common;

use common::dns::dns_responder;
use common::{banner_device, lab_library, ledger};
use otscope::findings::{cell_text, neutralise, Finding, COLUMNS};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_otscope");

/// A library whose rule names every output from a banner `LAB <version> <product>`, so a device chooses
/// what lands in the product cell (quotes, commas, a newline, a leading `=`).
fn library(dir: &Path) -> PathBuf {
    lab_library(
        dir,
        r#"
[[rule]]
id = "lab.full"
protocol = "unknown"
when = [{ field = "banner", regex = '(?s)^LAB (?P<v>\S+) (?P<p>.*\S)' }]
[rule.set]
protocol = "labplc"
ics = true
vendor = "Lab 实验室"
product = "{p}"
version = "{v}"
device_type = "PLC"
cpe = "cpe:2.3:h:lab:plc:{v}:*:*:*:*:*:*:*"
tags = ["plc", "lab"]
[[rule.example]]
banner = 'LAB 1.0 Gadget'
expect = { protocol = "labplc", vendor = "Lab 实验室", product = "Gadget", version = "1.0", device_type = "PLC" }
"#,
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Reads a CSV file with Python's `csv` module (UTF-8 with BOM), as a list of rows of cells.
fn python_csv(path: &Path) -> Vec<Vec<String>> {
    let script = "import csv, json, sys\n\
                  with open(sys.argv[1], encoding='utf-8-sig', newline='') as f:\n    \
                  json.dump(list(csv.reader(f)), sys.stdout)\n";
    let out = Command::new("python3").arg("-c").arg(script).arg(path).output().expect("python3 runs");
    assert!(out.status.success(), "python could not read {}: {}", path.display(), text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Reads a CSV file with the `csv` crate.
fn rust_csv(path: &Path) -> Vec<Vec<String>> {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with("\u{feff}".as_bytes()), "{}: no BOM", path.display());
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(&bytes[3..]);
    reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect()
}

/// The CSV cells a JSON finding must give: each column's text, neutralised against formulas.
fn expected_cells(finding: &Value) -> Vec<String> {
    let map = finding.as_object().unwrap();
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    let columns: Vec<&str> = COLUMNS.iter().map(|c| c.key).collect();
    assert_eq!(keys, columns, "a JSONL line's keys are the columns, in order");
    COLUMNS.iter().map(|c| neutralise(&cell_text(&map[c.key])).into_owned()).collect()
}

/// Both readers read the same table from the file, and it is the header plus one row per finding.
fn assert_csv_matches(path: &Path, header: &[String], findings: &[Value]) -> Vec<Vec<String>> {
    let rows = rust_csv(path);
    assert_eq!(python_csv(path), rows, "{}: the two readers disagree", path.display());
    assert_eq!(rows[0], header, "{}: header", path.display());
    assert_eq!(rows.len(), findings.len() + 1, "{}: one row per finding", path.display());
    for row in &rows {
        assert_eq!(row.len(), header.len(), "{}: every row has the header's width", path.display());
    }
    for f in findings {
        let expected = expected_cells(f);
        let row = rows[1..]
            .iter()
            .find(|r| r[0] == f["ip"].as_str().unwrap() && r[1] == cell_text(&f["port"]))
            .unwrap_or_else(|| panic!("{}: no row for {f}", path.display()));
        assert_eq!(row, &expected, "{}: the row is the JSONL line, column by column", path.display());
    }
    rows
}

fn english_header() -> Vec<String> {
    COLUMNS.iter().map(|c| c.key.to_string()).collect()
}

const TRICKY: &[u8] = b"LAB 2.0 =HYPERLINK(\"http://x\",\"y\"), \"quoted\"\nsecond line\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_command_writes_every_finding_to_jsonl_and_csv_column_by_column() {
    static RECORDS: [(&str, Ipv4Addr); 1] = [("plc.lab.test", Ipv4Addr::new(127, 141, 0, 2))];
    let dns = dns_responder("127.141.0.53:5353", &RECORDS).await;
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    // 1: every optional field null (an open port whose bytes no rule knows);
    // 2: every field set, through a hostname; 3: device text with quotes, commas, a newline and `=`.
    let bare = banner_device("127.141.0.1:2222", Some(b"\x00\x01\x02zz")).await;
    let full = banner_device("127.141.0.2:2222", Some(b"LAB 1.0 Gadget 100\r\n")).await;
    let tricky = banner_device("127.141.0.3:2222", Some(TRICKY)).await;
    let (_l, ledger) = ledger(
        "E-1,\"上海化工, \"\"一厂\"\"\",浦东新区,化工,important,127.141.0.1;plc.lab.test,张三\n\
         E-2,=cmd|' /C calc'!A0,\"闵行区\n莘庄\",water,general,127.141.0.3,c\n",
    );
    let db = dir.path().join("h.db");
    let (out, csv) = (dir.path().join("findings.jsonl"), dir.path().join("findings.csv"));
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let scan = |extra: &[&str]| {
        let mut args = vec![
            "scan".to_string(),
            "--targets".into(),
            path(&ledger),
            "--out".into(),
            path(&out),
            "--csv".into(),
            path(&csv),
            "--db".into(),
            path(&db),
            "--fingerprints".into(),
            path(&lib),
            "--resolver".into(),
            "127.141.0.53:5353".into(),
            "--quiet".into(),
            "--rate".into(),
            "0".into(),
            "--host-interval".into(),
            "0ms".into(),
            "--banner-wait".into(),
            "500ms".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Command::new(BIN).args(&args).output().unwrap()
    };

    let first = scan(&[]);
    assert!(first.status.success(), "{}", text(&first));
    let findings = jsonl(&out);
    assert_eq!(findings.len(), 3, "{}", text(&first));
    let by_ip = |ip: &str| findings.iter().find(|f| f["ip"] == ip).unwrap().clone();
    let bare_finding = by_ip("127.141.0.1");
    for key in ["vendor", "product", "version", "device_type", "cpe", "hostname", "rule"] {
        assert_eq!(bare_finding[key], Value::Null, "{key} of an unknown service is null");
    }
    assert_eq!(bare_finding["tags"], serde_json::json!([]));
    let full_finding = by_ip("127.141.0.2");
    for key in ["vendor", "product", "version", "device_type", "cpe", "hostname", "rule", "change"] {
        assert!(full_finding[key].is_string(), "{key} is set: {full_finding}");
    }
    assert_eq!(full_finding["tags"], serde_json::json!(["plc", "lab"]));
    assert_eq!(full_finding["hostname"], "plc.lab.test");
    let tricky_finding = by_ip("127.141.0.3");
    assert_eq!(tricky_finding["product"], "=HYPERLINK(\"http://x\",\"y\"), \"quoted\"\nsecond line");
    assert_eq!(tricky_finding["enterprise"], "=cmd|' /C calc'!A0", "JSONL keeps the raw value");

    let rows = assert_csv_matches(&csv, &english_header(), &findings);
    let product = COLUMNS.iter().position(|c| c.key == "product").unwrap();
    let enterprise = COLUMNS.iter().position(|c| c.key == "enterprise").unwrap();
    let tricky_row = rows.iter().find(|r| r[0] == "127.141.0.3").unwrap();
    assert_eq!(tricky_row[product], "'=HYPERLINK(\"http://x\",\"y\"), \"quoted\"\nsecond line");
    assert_eq!(tricky_row[enterprise], "'=cmd|' /C calc'!A0");
    let full_row = rows.iter().find(|r| r[0] == "127.141.0.2").unwrap();
    assert_eq!(full_row[enterprise], "上海化工, \"一厂\"");

    // A second scan: the full device's version changed, so `change` and `changed` are set too.
    full.stop().await;
    let full = banner_device("127.141.0.2:2222", Some(b"LAB 1.1 Gadget 100\r\n")).await;
    let second = scan(&[]);
    assert!(second.status.success(), "{}", text(&second));
    let findings = jsonl(&out);
    let changed = findings.iter().find(|f| f["ip"] == "127.141.0.2").unwrap();
    assert_eq!(changed["change"], "changed");
    assert_eq!(changed["changed"], serde_json::json!(["version"]));
    assert_csv_matches(&csv, &english_header(), &findings);

    let history = run(&["history", "--db", &path(&db)]);
    let listing = text(&history);
    assert_eq!(listing.matches("complete").count(), 2, "{listing}");

    // The district exports: CSV (English and Chinese) and JSONL, one file per district.
    for lang in ["en", "zh"] {
        let exports = dir.path().join(format!("exports-{lang}"));
        let out = run(&[
            "export",
            "--by",
            "district",
            "--format",
            "csv",
            "--lang",
            lang,
            "--out",
            &path(&exports),
            "--db",
            &path(&db),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let pudong = exports.join("浦东新区.csv");
        let rows = rust_csv(&pudong);
        assert_eq!(python_csv(&pudong), rows);
        // The owner's columns first, then the rest of the finding's, then first and last seen.
        let owner = ["district", "enterprise_id", "enterprise", "level"];
        let order: Vec<usize> = owner
            .iter()
            .map(|k| COLUMNS.iter().position(|c| c.key == *k).unwrap())
            .chain((0..COLUMNS.len()).filter(|i| !owner.contains(&COLUMNS[*i].key)))
            .collect();
        let header: Vec<String> = order
            .iter()
            .map(|&i| if lang == "zh" { COLUMNS[i].zh } else { COLUMNS[i].key })
            .chain(if lang == "zh" { ["首次发现", "最近发现"] } else { ["first_seen", "last_seen"] })
            .map(str::to_string)
            .collect();
        assert_eq!(rows[0], header);
        assert_eq!(rows.len(), 3, "two services of 浦东新区: {rows:?}");
        let ip_cell = order.iter().position(|&i| COLUMNS[i].key == "ip").unwrap();
        let cell = |row: &[String], key: &str| row[order.iter().position(|&i| COLUMNS[i].key == key).unwrap()].clone();
        for finding in findings.iter().filter(|f| f["district"] == "浦东新区") {
            let row = rows.iter().find(|r| r[ip_cell] == finding["ip"].as_str().unwrap()).unwrap();
            let expected = expected_cells(finding);
            for (i, column) in COLUMNS.iter().enumerate() {
                if lang == "zh" && ["ics", "level", "severity", "change"].contains(&column.key) {
                    continue; // localised words, checked below
                }
                assert_eq!(cell(row, column.key), expected[i], "{lang}: column {}", column.key);
            }
            assert!(!row[COLUMNS.len()].is_empty() && !row[COLUMNS.len() + 1].is_empty(), "first and last seen");
        }
        if lang == "zh" {
            let full_row = rows.iter().find(|r| r[ip_cell] == "127.141.0.2").unwrap();
            let words = ["level", "severity", "change", "ics"].map(|k| cell(full_row, k));
            assert_eq!(words, ["重要", "严重", "变化", "是"]);
        }
        // The district whose name holds a newline gets a safe file name and neutralised cells.
        let minhang = std::fs::read_dir(&exports)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("闵行区"))
            .unwrap();
        let rows = rust_csv(&minhang);
        assert_eq!(python_csv(&minhang), rows);
        assert_eq!(cell(&rows[1], "enterprise"), "'=cmd|' /C calc'!A0");
        assert_eq!(cell(&rows[1], "product"), "'=HYPERLINK(\"http://x\",\"y\"), \"quoted\"\nsecond line");
        let summary = exports.join("summary.csv");
        assert_eq!(python_csv(&summary), rust_csv(&summary));
    }
    let exports = dir.path().join("exports-jsonl");
    let out = run(&["export", "--by", "district", "--format", "jsonl", "--out", &path(&exports), "--db", &path(&db)]);
    assert!(out.status.success(), "{}", text(&out));
    let exported = jsonl(&exports.join("浦东新区.jsonl"));
    assert_eq!(exported.len(), 2);
    for f in &exported {
        assert_eq!(f, findings.iter().find(|g| g["ip"] == f["ip"]).unwrap(), "the export is the scan's JSONL line");
    }

    // `diff --format jsonl`: the changed service, as a finding line with its status.
    let diff = run(&["diff", "--format", "jsonl", "--db", &path(&db)]);
    assert_eq!(diff.status.code(), Some(3), "{}", text(&diff));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&diff.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], "changed");
    assert_eq!(lines[0]["finding"]["product"], "Gadget 100");

    // `check` prints the selection for a person, Chinese text as written.
    let check = run(&[
        "check",
        "--targets",
        &path(&ledger),
        "--enterprise",
        "E-1",
        "--db",
        &path(&db),
        "--fingerprints",
        &path(&lib),
        "--resolver",
        "127.141.0.53:5353",
        "--quiet",
        "--host-interval",
        "0ms",
        "--banner-wait",
        "500ms",
    ]);
    let printed = text(&check);
    assert_eq!(check.status.code(), Some(0), "{printed}");
    assert!(printed.contains("上海化工, \"一厂\""), "{printed}");
    assert!(printed.contains("127.141.0.2:2222/tcp") && printed.contains("Gadget 100"), "{printed}");

    for r in [bare, full, tricky] {
        r.stop().await;
    }
    dns.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_cannot_be_written_stops_the_scan_which_is_recorded_as_partial() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let mut devices = Vec::new();
    for i in 1..=4 {
        devices.push(banner_device(&format!("127.141.1.{i}:2222"), Some(b"LAB 1.0 Gadget\r\n")).await);
    }
    // Many silent addresses after them, so the scan is still running when the CSV fails.
    let (_l, ledger) = ledger("E-1,a,浦东新区,s,important,127.141.1.0/24,c\n");
    let db = dir.path().join("h.db");
    let out = dir.path().join("f.jsonl");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let scan = run(&[
        "scan",
        "--targets",
        &p(&ledger),
        "--out",
        &p(&out),
        "--csv",
        "/dev/full",
        "--db",
        &p(&db),
        "--fingerprints",
        &p(&lib),
        "--quiet",
        "--rate",
        "20",
        "--host-interval",
        "0ms",
        "--seed",
        "1",
    ]);
    let printed = text(&scan);
    assert_eq!(scan.status.code(), Some(1), "{printed}");
    assert!(printed.contains("cannot write /dev/full"), "the message names the file: {printed}");

    // Recorded as partial, with the reason; what was found is in the store and in the other output.
    let store = otscope::store::SqliteStore::open(&db).unwrap();
    use otscope::store::Store;
    let record = store.scans().unwrap().pop().unwrap();
    assert!(!record.completed());
    let reason = record.end.as_ref().and_then(|e| e.reason.clone()).unwrap_or_default();
    assert!(reason.contains("/dev/full"), "{reason}");
    assert!(record.end.as_ref().unwrap().probed < 256, "the scan stopped early");
    let stored = store.findings(record.id).unwrap();
    let written: Vec<Finding> = jsonl(&out).into_iter().map(|v| serde_json::from_value(v).unwrap()).collect();
    assert!(!stored.is_empty());
    assert_eq!(stored.len(), written.len(), "the JSONL got every finding the store got");
    let listing = text(&run(&["history", "--db", &p(&db)]));
    assert!(listing.contains("partial") && listing.contains("/dev/full"), "{listing}");
    let export = run(&["export", "--by", "district", "--out", &p(&dir.path().join("x")), "--db", &p(&db)]);
    assert_eq!(export.status.code(), Some(2), "a partial scan is no completed scan: {}", text(&export));
    for d in devices {
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_whose_process_died_reads_as_interrupted_and_a_live_one_as_running() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let (_l, ledger) = ledger("E-1,a,d,s,important,127.141.2.0/24,c\n");
    let db = dir.path().join("h.db");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    // One probe a second over 256 closed ports: the scan runs for minutes unless killed.
    let mut child = Command::new(BIN)
        .args(["scan", "--targets", &p(&ledger), "--db", &p(&db), "--fingerprints", &p(&lib), "--quiet"])
        .args(["--rate", "1", "--out", &p(&dir.path().join("f.jsonl"))])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let listing = loop {
        let listing = text(&run(&["history", "--db", &p(&db)]));
        if listing.contains("running") || std::time::Instant::now() > deadline {
            break listing;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(listing.contains(" running "), "a live scan reads as running: {listing}");
    child.kill().unwrap();
    child.wait().unwrap();
    let listing = text(&run(&["history", "--db", &p(&db)]));
    assert!(listing.contains("interrupted"), "{listing}");
    assert!(!listing.contains("running"), "{listing}");
}
