//! Exports into a folder replace the previous export's files: each export leaves a manifest of what it
//! wrote (`.otscope-export.json`), the next one removes the files of that list it does not write again
//! (and no other file), in every format (CSV, JSONL, workbooks, STIX bundles), a district whose
//! findings all went away gets a file that says zero, and the daemon's profile exports go the same way.

mod common;

use common::{banner_device, firmware_library, ledger, FAST};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

const LEDGER: &str = "P1,浦东一厂,浦东新区,water,important,127.157.5.1,c\n\
                      M1,闵行二厂,闵行区,energy,general,127.157.5.2,c\n\
                      J1,嘉定三厂,嘉定区,gas,important,127.157.5.3,c\n";

fn otscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otscope")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The data rows of a CSV export (BOM and header dropped).
fn rows(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.trim_start_matches('\u{feff}').lines().skip(1).map(String::from).collect()
}

/// Every sheet of a workbook, in order, as rows of cell texts.
fn workbook(path: &Path) -> Vec<Vec<Vec<String>>> {
    use calamine::Reader;
    let mut book = calamine::open_workbook_auto(path).unwrap();
    book.worksheets()
        .into_iter()
        .map(|(_, range)| range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_export_replaces_the_files_of_the_previous_one_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let lib = firmware_library(dir.path());
    let (_l, ledger) = ledger(LEDGER);
    let (lib, ledger) = (lib.display().to_string(), ledger.display().to_string());
    let db = dir.path().join("h.db").display().to_string();
    let out = dir.path().join("exports");
    let out_s = out.display().to_string();
    let scan = |extra: &[&str]| {
        let mut args = vec!["scan", "--targets", &ledger, "--fingerprints", &lib, "--ports", "2222", "--db", &db];
        args.extend(FAST);
        args.extend(["--out", "/dev/null"]);
        args.extend(extra);
        let o = otscope(&args);
        assert!(o.status.success(), "{}", text(&o));
    };
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--out", &out_s, "--db", &db];
        args.extend(extra);
        otscope(&args)
    };
    let _pudong = banner_device("127.157.5.1:2222", Some(b"FW 1.0\r\n")).await;
    let _minhang = banner_device("127.157.5.2:2222", Some(b"FW 2.0\r\n")).await;
    let jiading = banner_device("127.157.5.3:2222", Some(b"FW 3.0\r\n")).await;
    scan(&[]);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "the district officers' own file").unwrap();
    let o = export(&["--by", "district"]);
    assert!(o.status.success(), "{}", text(&o));
    let manifest = ".otscope-export.json";
    let csv = ["浦东新区.csv", "闵行区.csv", "嘉定区.csv", "summary.csv"];
    assert_eq!(files(&out), names(&[&csv[..], &["notes.txt", manifest]].concat()));
    assert_eq!(rows(&out.join("嘉定区.csv")).len(), 1);

    // 嘉定区's only device goes away: its file now says zero, in the summary too.
    jiading.stop().await;
    scan(&[]);
    let o = export(&["--by", "district"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(files(&out), names(&[&csv[..], &["notes.txt", manifest]].concat()));
    assert_eq!(rows(&out.join("嘉定区.csv")), Vec::<String>::new(), "header only");
    assert_eq!(rows(&out.join("浦东新区.csv")).len(), 1);
    let summary = rows(&out.join("summary.csv"));
    let jd = summary.iter().find(|r| r.starts_with("嘉定区,")).expect("嘉定区 in the summary");
    assert!(jd.starts_with("嘉定区,0,0,0,0,0,0,0,0,0,0,"), "{jd}");

    // Another format: the CSV files are replaced by JSONL ones; 嘉定区 still says zero (an empty file).
    let o = export(&["--by", "district", "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o));
    let jsonl = ["浦东新区.jsonl", "闵行区.jsonl", "嘉定区.jsonl", "summary.json"];
    assert_eq!(files(&out), names(&[&jsonl[..], &["notes.txt", manifest]].concat()));
    assert_eq!(std::fs::read_to_string(out.join("嘉定区.jsonl")).unwrap(), "");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let jd = summary.as_array().unwrap().iter().find(|d| d["district"] == "嘉定区").unwrap();
    assert_eq!(jd["findings"], 0);

    // Workbooks replace the JSONL files; 嘉定区's says zero (a header only, a summary row of zeros).
    let o = export(&["--by", "district", "--format", "xlsx"]);
    assert!(o.status.success(), "{}", text(&o));
    let xlsx = ["浦东新区.xlsx", "闵行区.xlsx", "嘉定区.xlsx", "summary.xlsx"];
    assert_eq!(files(&out), names(&[&xlsx[..], &["notes.txt", manifest]].concat()));
    let jiading_book = workbook(&out.join("嘉定区.xlsx"));
    assert_eq!(jiading_book[0].len(), 1, "header only: {jiading_book:?}");
    assert_eq!(jiading_book[1][1][..4], ["嘉定区", "0", "0", "0"], "{jiading_book:?}");
    assert_eq!(workbook(&out.join("浦东新区.xlsx"))[0].len(), 2);
    let summary = workbook(&out.join("summary.xlsx"));
    let jd = summary[0].iter().find(|r| r[0] == "嘉定区").expect("嘉定区 in the summary");
    assert_eq!(jd[1..4], ["0", "0", "0"], "{jd:?}");

    // Back to JSONL: the workbooks go.
    let o = export(&["--by", "district", "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(files(&out), names(&[&jsonl[..], &["notes.txt", manifest]].concat()));

    // STIX bundles replace the JSONL files; 嘉定区's bundle says zero (no service, a report of none).
    let o = export(&["--by", "district", "--format", "stix"]);
    assert!(o.status.success(), "{}", text(&o));
    let stix = ["浦东新区.json", "闵行区.json", "嘉定区.json"];
    assert_eq!(files(&out), names(&[&stix[..], &["notes.txt", manifest]].concat()));
    let bundle = |name: &str| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["objects"].as_array().unwrap().clone()
    };
    let services = |name: &str| bundle(name).iter().filter(|o| o["type"] == "infrastructure").count();
    assert_eq!((services("浦东新区.json"), services("嘉定区.json")), (1, 0));
    let report = bundle("嘉定区.json").into_iter().find(|o| o["type"] == "report").unwrap();
    assert!(report["description"].as_str().unwrap().starts_with("0 exposed service(s)"), "{report}");
    let listed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(manifest)).unwrap()).unwrap();
    assert_eq!(listed["districts"], serde_json::json!({ "浦东新区": 1, "闵行区": 1, "嘉定区": 0 }));

    // A scan of one district: the files of the districts it did not cover go (they are not zero: nobody
    // looked), the one it covered stays; bundles as files of the other formats.
    scan(&["--district", "浦东新区"]);
    let o = export(&["--by", "district", "--format", "stix"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(files(&out), names(&["浦东新区.json", "notes.txt", manifest]));
    let o = export(&["--by", "district", "--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(files(&out), names(&["浦东新区.jsonl", "summary.json", "notes.txt", manifest]));

    // One file for the platform in the same folder: it replaces the district files.
    let o = export(&["--format", "jsonl"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(files(&out), names(&["findings.jsonl", "notes.txt", manifest]));
    let o = export(&["--format", "stix"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(files(&out), names(&["bundle.json", "notes.txt", manifest]));
    let o = export(&["--format", "xlsx"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(files(&out), names(&["findings.xlsx", "notes.txt", manifest]));
    let o = export(&["--format", "csv"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(files(&out), names(&["findings.csv", "notes.txt", manifest]));
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "the district officers' own file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_naming_files_outside_its_folder_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lib = firmware_library(dir.path());
    let (_l, ledger) = ledger("P1,浦东一厂,浦东新区,water,important,127.157.5.11,c\n");
    let _device = banner_device("127.157.5.11:2222", Some(b"FW 1.0\r\n")).await;
    let db = dir.path().join("h.db");
    let mut args: Vec<&str> = vec!["scan", "--ports", "2222", "--out", "/dev/null"];
    args.extend(FAST);
    let o = Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(&args)
        .arg("--targets")
        .arg(&ledger)
        .arg("--fingerprints")
        .arg(&lib)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = dir.path().join("exports");
    std::fs::create_dir_all(&out).unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    for listed in ["../victim.txt", "/etc/hostname", "sub/dir.csv", ".."] {
        std::fs::write(
            out.join(".otscope-export.json"),
            serde_json::json!({ "otscope_export": 1, "files": [listed], "districts": {} }).to_string(),
        )
        .unwrap();
        for format in ["csv", "stix"] {
            let o = Command::new(env!("CARGO_BIN_EXE_otscope"))
                .args(["export", "--by", "district", "--format", format, "--out"])
                .arg(&out)
                .arg("--db")
                .arg(&db)
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(2), "{format}: {}", text(&o));
            let err = text(&o);
            assert!(err.contains(".otscope-export.json") && err.contains(listed), "{format}: {err}");
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_exports_replace_their_previous_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let lib = firmware_library(dir.path());
    std::fs::write(
        dir.path().join("ledger.csv"),
        format!("{}{LEDGER}", common::HEADER).replace("127.157.5.", "127.157.5.2"),
    )
    .unwrap();
    let config = dir.path().join("otscope.toml");
    std::fs::write(
        &config,
        format!(
            "db = \"h.db\"\n[profile.lab]\ntargets = \"ledger.csv\"\nfingerprints = \"{}\"\nports = \"2222\"\nrate = 0\n\
             host-interval = \"0ms\"\nbanner-wait = \"300ms\"\nconnect-timeout = \"500ms\"\nquiet = true\n\
             out = \"lab.jsonl\"\n[profile.lab.exports]\nby-district = \"exports\"\nlang = \"zh\"\n",
            lib.display()
        ),
    )
    .unwrap();
    let _pudong = banner_device("127.157.5.21:2222", Some(b"FW 1.0\r\n")).await;
    let minhang = banner_device("127.157.5.22:2222", Some(b"FW 2.0\r\n")).await;
    let run = || {
        let config = config.clone();
        async move {
            let o = tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_otscope")).arg("scan").arg("--config").arg(&config).output().unwrap()
            })
            .await
            .unwrap();
            assert!(o.status.success(), "{}", text(&o));
        }
    };
    run().await;
    let out = dir.path().join("exports");
    assert_eq!(rows(&out.join("闵行区.csv")).len(), 1);
    minhang.stop().await;
    run().await;
    assert_eq!(rows(&out.join("闵行区.csv")), Vec::<String>::new(), "闵行区 now says zero");
    let summary = rows(&out.join("summary.csv"));
    assert!(summary.iter().any(|r| r.starts_with("闵行区,0,0,")), "{summary:?}");
    assert!(files(&out).contains(".otscope-export.json"));
}
