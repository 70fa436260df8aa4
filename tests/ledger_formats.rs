//! One ledger, saved the ways the districts save it: an Excel workbook (.xlsx, on the first sheet or on
//! a named one that does not start at A1), a legacy Excel 97-2003 workbook (.xls, the committed
//! fixture tests/fixtures/ledger/ledger.xls that make-xls.sh beside it made with LibreOffice), "CSV
//! UTF-8" with a BOM and CRLF line ends, plain UTF-8 with LF, and Chinese Excel's default "CSV
//! (逗号分隔)" in GBK, each with a cell holding a line break. Every form is checked and scanned the same, and its errors point at the same rows: the CSV
//! line, or the sheet and cell.

mod common;

use common::{banner_device, Responder};
use rust_xlsxwriter::Workbook;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_otscope"))
}

type Row = [&'static str; 7];

const HEADER_ZH: Row = ["企业编号", "企业名称", "所属区县", "行业", "重要程度", "IP地址/域名", "联系人"];
const HEADER_EN: Row = ["enterprise_id", "enterprise", "district", "sector", "level", "targets", "contact"];

/// A valid ledger: the first contact takes two lines, levels in both languages, an exclusion row.
const VALID: [Row; 4] = [
    ["LF-1", "甲水厂", "浦东新区", "水务", "重要", "127.163.0.1", "张工\n李工"],
    ["LF-2", "乙制造", "闵行区", "manufacturing", "general", "127.163.0.2;127.163.0.3", "王工"],
    ["LF-3", "丙热电", "闵行区", "能源", "一般", "127.163.0.4", ""],
    ["X-1", "", "", "", "排除", "127.163.0.3", ""],
];

/// An invalid one: after a two-line contact, a bad block, a repeat within a row, an address of another
/// enterprise, and an unknown level.
const INVALID: [Row; 4] = [
    ["E-1", "甲", "浦东新区", "水务", "重要", "127.163.1.1", "张工\n李工"],
    ["E-2", "乙", "闵行区", "能源", "一般", "127.163.1.0/33", ""],
    ["E-3", "丙", "闵行区", "能源", "一般", "127.163.1.5;127.163.1.5", ""],
    ["E-4", "丁", "闵行区", "能源", "紧急", "127.163.1.1", ""],
];

fn csv_text(header: &Row, rows: &[Row], eol: &str) -> String {
    let field = |f: &str| {
        if f.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_string()
        }
    };
    std::iter::once(header)
        .chain(rows)
        .map(|r| r.iter().map(|f| field(f)).collect::<Vec<_>>().join(",") + eol)
        .collect()
}

/// A workbook whose sheet `name` holds the ledger from (`top`, `left`) (0-based), after a sheet of notes
/// when `notes_first`.
fn workbook(path: &Path, name: &str, top: u32, left: u16, header: &Row, rows: &[Row], notes_first: bool) {
    let mut book = Workbook::new();
    if notes_first {
        let notes = book.add_worksheet().set_name("说明").unwrap();
        notes.write_string(0, 0, "填表说明：每行一个企业").unwrap();
    }
    let sheet = book.add_worksheet().set_name(name).unwrap();
    for (r, row) in std::iter::once(header).chain(rows).enumerate() {
        for (c, text) in row.iter().enumerate() {
            if !text.is_empty() {
                sheet.write_string(top + r as u32, left + c as u16, *text).unwrap();
            }
        }
    }
    book.save(path).unwrap();
}

/// One form of a ledger: its file and the options that read it.
struct Form {
    path: PathBuf,
    options: Vec<&'static str>,
}

fn forms(dir: &Path, stem: &'static str, rows: &[Row]) -> Vec<Form> {
    let at = |name: &str| dir.join(format!("{stem}-{name}"));
    let plain = |path: PathBuf| Form { path, options: vec![] };
    let mut forms = Vec::new();

    let path = at("first-sheet.xlsx");
    workbook(&path, "Sheet1", 0, 0, &HEADER_EN, rows, false);
    forms.push(plain(path));

    let path = at("named-sheet.xlsx");
    workbook(&path, "台账", 2, 1, &HEADER_ZH, rows, true);
    forms.push(Form { path, options: vec!["--sheet", "台账"] });

    let path = at("utf8-bom-crlf.csv");
    std::fs::write(&path, format!("\u{feff}{}", csv_text(&HEADER_ZH, rows, "\r\n"))).unwrap();
    forms.push(plain(path));

    let path = at("utf8-lf.csv");
    std::fs::write(&path, csv_text(&HEADER_EN, rows, "\n")).unwrap();
    forms.push(plain(path));

    let text = csv_text(&HEADER_ZH, rows, "\r\n");
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    let path = at("gbk-crlf.csv");
    std::fs::write(&path, &gbk).unwrap();
    forms.push(plain(path.clone()));
    forms.push(Form { path, options: vec!["--encoding", "gbk"] });

    // The .xls fixture holds both ledgers, each on its own sheet named after it.
    let xls = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ledger/ledger.xls");
    forms.push(Form { path: xls, options: vec!["--sheet", stem] });
    forms
}

fn run(args: &[&str], form: &Form) -> Output {
    bin().args(args).arg(&form.path).args(&form.options).output().unwrap()
}

#[test]
fn every_form_of_a_ledger_checks_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut summaries = BTreeSet::new();
    for form in forms(dir.path(), "valid", &VALID) {
        let out = run(&["ledger", "check"], &form);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {}{stdout}", form.path.display(), String::from_utf8_lossy(&out.stderr));
        // The first line names the file (and the sheet); the summary after it is the same for every form.
        summaries.insert(stdout.lines().skip(1).collect::<Vec<_>>().join("\n"));
    }
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    let summary = summaries.pop_first().unwrap();
    assert!(summary.contains("enterprises: 3"), "{summary}");
    assert!(summary.contains("important: 1 enterprises, 1 addresses"), "{summary}");
    assert!(summary.contains("general: 2 enterprises, 3 addresses"), "{summary}");
    assert!(summary.contains("districts: 2 (浦东新区, 闵行区)"), "{summary}");
    assert!(summary.contains("exclusion entries: 1"), "{summary}");
}

#[test]
fn every_form_of_a_ledger_points_its_errors_at_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    for form in forms(dir.path(), "invalid", &INVALID) {
        let out = run(&["ledger", "check"], &form);
        assert_eq!(out.status.code(), Some(2), "{}", form.path.display());
        let err = String::from_utf8_lossy(&out.stderr);
        let name = form.path.display().to_string();
        let zh = !name.contains("first-sheet") && !name.contains("utf8-lf");
        let (targets, level) = if zh { ("IP地址/域名", "重要程度") } else { ("targets", "level") };
        // The sheet row or CSV line of INVALID[i]: the header is on row 1 (row 3 of the named sheet,
        // whose table starts at B3), and the first CSV record takes two lines (its contact holds a line break).
        let sheet = name.contains("first-sheet") || name.contains("named-sheet") || name.ends_with(".xls");
        let row_of = |i: u64| match () {
            _ if name.contains("first-sheet") || name.ends_with(".xls") => i + 2,
            _ if name.contains("named-sheet") => i + 4,
            _ if i == 0 => 2,
            _ => i + 3,
        };
        let place = |i: u64, column: char| match () {
            _ if name.contains("first-sheet") => format!("Sheet1!{column}{}", row_of(i)),
            _ if name.ends_with(".xls") => format!("invalid!{column}{}", row_of(i)),
            _ if name.contains("named-sheet") => format!("台账!{}{}", (column as u8 + 1) as char, row_of(i)),
            _ => row_of(i).to_string(),
        };
        let row_name = |i: u64| format!("{} {}", if sheet { "row" } else { "line" }, row_of(i));
        let expected = [
            format!(
                "{name}:{}: {targets}: \"127.163.1.0/33\" is not a valid CIDR block: prefix /33 is longer than /32",
                place(1, 'F')
            ),
            format!("{name}:{}: {targets}: 127.163.1.5 is listed twice in this row", place(2, 'F')),
            format!("{name}:{}: {level}: unknown level \"紧急\": expected important, general or exclude (重要, 一般, 排除)", place(3, 'E')),
            format!(
                "{name}:{}: {targets}: 127.163.1.1 overlaps 127.163.1.1, registered by enterprise \"E-1\" on {}: an address may belong to one enterprise only",
                place(3, 'F'),
                row_name(0)
            ),
            format!("{name}: 4 problem(s); fix them and run `otscope ledger check` again"),
        ];
        assert_eq!(err.lines().collect::<Vec<_>>(), expected, "{name}");
    }
}

#[test]
fn every_form_of_a_ledger_scans_the_same_and_never_its_exclusions() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let responders: Vec<Responder> = (1..=4)
        .map(|i| rt.block_on(banner_device(&format!("127.163.0.{i}:2222"), Some(b"SSH-2.0-OpenSSH_9.2p1\r\n"))))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut results = BTreeSet::new();
    for (n, form) in forms(dir.path(), "valid", &VALID).iter().enumerate() {
        let out_file = dir.path().join(format!("findings-{n}.jsonl"));
        let out = bin()
            .args(["scan", "--targets"])
            .arg(&form.path)
            .args(&form.options)
            .args(["--no-db", "--ports", "2222", "--rate", "0", "--banner-wait", "200ms", "--quiet", "--out"])
            .arg(&out_file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", form.path.display(), String::from_utf8_lossy(&out.stderr));
        let findings: Vec<String> = std::fs::read_to_string(&out_file)
            .unwrap()
            .lines()
            .map(|line| {
                let f: serde_json::Value = serde_json::from_str(line).unwrap();
                format!(
                    "{} {} {} {} {} {}",
                    f["ip"], f["port"], f["enterprise_id"], f["enterprise"], f["district"], f["level"]
                )
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        results.insert(findings);
    }
    assert_eq!(results.len(), 1, "{results:#?}");
    let findings = results.pop_first().unwrap();
    assert_eq!(
        findings,
        [
            r#""127.163.0.1" 2222 "LF-1" "甲水厂" "浦东新区" "important""#,
            r#""127.163.0.2" 2222 "LF-2" "乙制造" "闵行区" "general""#,
            r#""127.163.0.4" 2222 "LF-3" "丙热电" "闵行区" "general""#,
        ]
    );
    assert_eq!(responders[2].connections(), 0, "the excluded address was connected to");
    drop(responders);
}

#[test]
fn a_workbook_needs_its_sheet_named_and_flags_must_fit_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let forms = forms(dir.path(), "valid", &VALID);
    let named = forms.iter().find(|f| f.path.display().to_string().contains("named-sheet")).unwrap();
    let name = named.path.display().to_string();
    let check = |extra: &[&str]| {
        let out = bin().args(["ledger", "check"]).arg(&named.path).args(extra).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("").to_string())
    };
    // Without --sheet the first sheet is read: the notes, whose only cell is no header.
    let (code, first) = check(&[]);
    assert_eq!(code, Some(2));
    assert!(
        first.starts_with(&format!("{name}:说明!A1: header: unknown column \"填表说明：每行一个企业\"")),
        "{first}"
    );
    let (code, first) = check(&["--sheet", "Sheet9"]);
    assert_eq!(code, Some(2));
    assert_eq!(first, format!("{name}: --sheet: no sheet named \"Sheet9\": the workbook has \"说明\", \"台账\""));
    let (code, first) = check(&["--sheet", "台账", "--encoding", "gbk"]);
    assert_eq!(code, Some(2));
    assert_eq!(first, format!("{name}: --encoding: gbk applies to CSV files: this file is a workbook"));

    let csv = forms.iter().find(|f| f.path.display().to_string().contains("gbk")).unwrap();
    let out = bin().args(["ledger", "check"]).arg(&csv.path).args(["--encoding", "utf-8"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let first = String::from_utf8_lossy(&out.stderr).lines().next().unwrap().to_string();
    assert!(
        first.starts_with(&format!("{}:1: encoding: not valid UTF-8 (given --encoding utf-8)", csv.path.display())),
        "{first}"
    );
}

#[test]
fn what_is_not_a_ledger_file_is_refused_at_once_and_by_name() {
    let started = std::time::Instant::now();
    let out = bin().args(["ledger", "check", "/dev/zero"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next().unwrap(),
        "/dev/zero: file: not a regular file: a character device"
    );
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.csv");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(32 * 1024 * 1024 + 1).unwrap();
    let out = bin().args(["scan", "--dry-run", "--targets"]).arg(&big).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next().unwrap(),
        format!("{}: file: larger than 32 MiB, the limit for this kind of file", big.display())
    );
    let out = bin()
        .args(["ledger", "check", concat!(env!("CARGO_MANIFEST_DIR"), "/targets.example"), "--exclude", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("/dev/zero: file: not a regular file: a character device"));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
fn every_command_that_reads_a_ledger_takes_its_sheet_and_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let forms = forms(dir.path(), "valid", &VALID);
    let find = |part: &str| forms.iter().find(|f| f.path.display().to_string().contains(part)).unwrap();
    let (named, gbk) = (find("named-sheet"), find("gbk"));
    let db = dir.path().join("h.db");
    // Port 2223 is closed on these addresses: the commands run through, finding nothing.
    let quick = ["--ports", "2223", "--rate", "0", "--connect-timeout", "300ms", "--quiet"];
    let run = |args: &[&str], form: &Form| {
        let out = bin()
            .args(args)
            .arg("--targets")
            .arg(&form.path)
            .args(&form.options)
            .args(quick)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    for form in [named, gbk] {
        let (code, text) = run(&["scan", "--dry-run"], form);
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains("enterprises: 3"), "{text}");
        let (code, text) = run(&["check"], form);
        assert_eq!(code, Some(0), "{text}");
    }
    // An event keeps the sheet: its checks read the same sheet without being told again.
    let (code, text) = run(&["event", "start", "expo"], named);
    assert_eq!(code, Some(0), "{text}");
    let out = bin().args(["event", "check", "expo", "--db"]).arg(&db).args(&quick[2..]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("0 drift"), "{text}");

    // Profiles take them as the keys `sheet` and `encoding`, beside `targets`.
    let config = dir.path().join("otscope.toml");
    let profile = |extra: &str, form: &Form| {
        let text = format!(
            "[profile.p]\ntargets = {:?}\n{extra}ports = \"2223\"\n",
            form.path.file_name().unwrap().to_str().unwrap()
        );
        std::fs::write(&config, text).unwrap();
        let out = bin().args(["scan", "--dry-run", "--profile", "p", "--config"]).arg(&config).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, text) = profile("sheet = \"台账\"\n", named);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("enterprises: 3"), "{text}");
    let (code, text) = profile("encoding = \"gbk\"\n", gbk);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = profile("encoding = \"latin1\"\n", gbk);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("otscope.toml:3: profile.p.encoding: invalid value 'latin1' for '--encoding <ENCODING>'"),
        "{text}"
    );
    let (code, text) = profile("", named);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("说明!A1: header: unknown column"), "{text}");
}

/// Damaged workbooks (truncated, bytes overwritten or inserted, as a broken download or disk leaves
/// them) are refused as files that cannot be read: nothing panics, nothing hangs or fills the memory.
#[test]
fn damaged_workbooks_are_refused_not_crashed_on() {
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("l.xlsx");
    workbook(&xlsx, "valid", 0, 0, &HEADER_ZH, &VALID, false);
    let xls = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ledger/ledger.xls");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    let mut damaged = 0;
    for original in [std::fs::read(&xls).unwrap(), std::fs::read(&xlsx).unwrap()] {
        for round in 0..150 {
            let mut bytes = original.clone();
            match round % 3 {
                0 => bytes.truncate(8 + next(bytes.len() - 8)),
                1 => {
                    for _ in 0..1 + next(16) {
                        let at = 8 + next(bytes.len() - 8);
                        bytes[at] = next(256) as u8;
                    }
                }
                _ => {
                    let at = 8 + next(bytes.len() - 8);
                    let junk: Vec<u8> = (0..1 + next(64)).map(|_| next(256) as u8).collect();
                    bytes.splice(at..at, junk);
                }
            }
            let options =
                otscope::ledger::LedgerOptions { path: "damaged".into(), sheet: Some("valid".into()), encoding: None };
            let started = std::time::Instant::now();
            if let Err(e) = otscope::ledger::Ledger::parse(&options, &bytes) {
                assert!(e.0.iter().all(|e| e.to_string().starts_with("damaged")), "{e}");
                damaged += 1;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "round {round} took {:?}",
                started.elapsed()
            );
        }
    }
    assert!(damaged > 150, "only {damaged} of 300 damaged workbooks refused");
}
