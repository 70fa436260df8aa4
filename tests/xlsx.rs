//! The Excel workbooks: the district exports, the center's workbook and the ledger template, read
//! back by two independent readers, calamine and openpyxl (from PyPI, pinned in
//! tests/servers/requirements.txt and installed by tests/servers/install). The findings sheets hold
//! exactly the cells of the district CSV files of the same scan; sheet names are valid for Excel; the
//! header is frozen and filtered; severities are coloured; nothing is a formula; Chinese text is intact.

mod common;

use calamine::Reader;
use common::banner_device;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_otscope"))
}

fn run(args: &[&str], path: &Path) {
    let out = bin().args(args).arg(path).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A library that names a service by its banner and gives it the severity the banner says.
fn severity_library(dir: &Path) -> PathBuf {
    let lib = dir.join("fp");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("ports.toml"), "ports = [\"2222\"]\n").unwrap();
    let rules: String = ["critical", "high", "medium", "low"]
        .iter()
        .map(|s| {
            format!(
                "[[rule]]\nid = \"lab.{s}\"\nprotocol = \"unknown\"\nwhen = [{{ field = \"banner\", regex = '^SEV {s} ' }}]\n\
                 set = {{ protocol = \"labsev\", vendor = \"Lab\", product = \"Gadget\", severity = \"{s}\" }}\n\
                 [[rule.example]]\nbanner = 'SEV {s} x'\nexpect = {{ protocol = \"labsev\", severity = \"{s}\" }}\n\n"
            )
        })
        .collect();
    std::fs::write(lib.join("lab.toml"), rules).unwrap();
    lib
}

/// Every sheet of a workbook as calamine reads it: (name, rows of cell texts).
fn calamine_sheets(path: &Path) -> Vec<(String, Vec<Vec<String>>)> {
    let mut book = calamine::open_workbook_auto(path).unwrap();
    book.sheet_names()
        .into_iter()
        .map(|name| {
            let range = book.worksheet_range(&name).unwrap();
            assert_eq!(range.start(), Some((0, 0)), "{name}: the table starts at A1");
            let rows = range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
            (name, rows)
        })
        .collect()
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// openpyxl's interpreter: `$OTSCOPE_SERVERS_PYTHON`, else the environment of tests/servers/install.
fn openpyxl_python() -> Option<PathBuf> {
    common::servers_python("openpyxl")
}

/// What openpyxl sees in each workbook: per sheet its name, frozen panes, filter range, data
/// validations, and every cell's value, type and fill colour.
const OPENPYXL_DUMP: &str = r#"
import json, sys, openpyxl
out = {}
for path in sys.argv[1:]:
    book = openpyxl.load_workbook(path)
    sheets = []
    for ws in book.worksheets:
        rows = []
        for row in ws.iter_rows():
            rows.append([{
                "value": "" if c.value is None else c.value if isinstance(c.value, str)
                    else str(int(c.value)) if isinstance(c.value, float) and c.value.is_integer() else str(c.value),
                "type": c.data_type,
                "fill": c.fill.fgColor.rgb if c.fill is not None and c.fill.fill_type == "solid" else None,
            } for c in row])
        sheets.append({
            "name": ws.title,
            "freeze": ws.freeze_panes,
            "filter": ws.auto_filter.ref,
            "validations": [{"sqref": str(v.sqref), "formula": v.formula1, "type": v.type} for v in ws.data_validations.dataValidation],
            "rows": rows,
        })
    out[path] = sheets
json.dump(out, sys.stdout, ensure_ascii=False)
"#;

fn openpyxl_dump(python: &Path, paths: &[PathBuf]) -> BTreeMap<String, Value> {
    let out = Command::new(python).args(["-c", OPENPYXL_DUMP]).args(paths).output().unwrap();
    assert!(out.status.success(), "openpyxl: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// openpyxl's cell texts of a sheet (whole numbers without a decimal point, as calamine shows them).
fn openpyxl_texts(sheet: &Value) -> Vec<Vec<String>> {
    sheet["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap().to_string()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_read_back_in_both_readers_with_the_csv_cells() {
    let dir = tempfile::tempdir().unwrap();
    let lib = severity_library(dir.path());
    // Districts whose names Excel refuses as sheet names, one too long for one, and one called like the
    // summary sheet; an enterprise name that a spreadsheet would take for a formula.
    let long = "一个名字非常非常非常非常非常非常非常长的区县名称超过了三十一个字的限制";
    let (_l, ledger) = common::ledger(&format!(
        "P1,浦东一厂,浦东新区,water,important,127.163.2.1,c\n\
         P2,\"=cmd|' /C calc'!A0\",浦东新区,water,general,127.163.2.2,c\n\
         M1,闵行<化工>,闵行区/莘庄[一]:*?,chemical,important,127.163.2.3,c\n\
         L1,长名企业,{long},x,general,127.163.2.4,c\n\
         H1,汇总企业,汇总,x,general,127.163.2.5,c\n"
    ));
    let banners: [Option<&'static [u8]>; 5] =
        [Some(b"SEV critical a\r\n"), None, Some(b"SEV high b\r\n"), Some(b"SEV medium c\r\n"), Some(b"SEV low d\r\n")];
    let mut responders = Vec::new();
    for (i, banner) in banners.iter().enumerate() {
        responders.push(banner_device(&format!("127.163.2.{}:2222", i + 1), *banner).await);
    }
    let db = dir.path().join("h.db");
    let scan = bin()
        .args(["scan", "--ports", "2222", "--rate", "0", "--banner-wait", "300ms", "--quiet", "--targets"])
        .arg(&ledger)
        .arg("--fingerprints")
        .arg(&lib)
        .arg("--db")
        .arg(&db)
        .arg("--out")
        .arg(dir.path().join("f.jsonl"))
        .output()
        .unwrap();
    assert!(scan.status.success(), "{}", String::from_utf8_lossy(&scan.stderr));
    drop(responders);

    let d = |name: &str| dir.path().join(name);
    let export = |args: &[&str], out: &str| {
        let status = bin().arg("export").args(args).arg("--db").arg(&db).arg("--out").arg(d(out)).output().unwrap();
        assert!(status.status.success(), "{args:?}: {}", String::from_utf8_lossy(&status.stderr));
    };
    for lang in ["zh", "en"] {
        export(&["--by", "district", "--format", "csv", "--lang", lang], &format!("csv-{lang}"));
        export(&["--by", "district", "--format", "xlsx", "--lang", lang], &format!("xlsx-{lang}"));
        export(&["--format", "xlsx", "--lang", lang], &format!("center-{lang}"));
    }

    let mut workbooks = Vec::new();
    for lang in ["zh", "en"] {
        let (findings_sheet, summary_sheet) =
            if lang == "zh" { ("暴露服务", "汇总") } else { ("findings", "summary") };
        let csv_dir = d(&format!("csv-{lang}"));
        let xlsx_dir = d(&format!("xlsx-{lang}"));
        // By district: each district's workbook holds its CSV file's cells, and a summary row.
        let mut csv_by_district: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for entry in std::fs::read_dir(&csv_dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            // The summary is compared below; the export's manifest is no district.
            if stem == "summary" || path.extension().is_none_or(|e| e != "csv") {
                continue;
            }
            let rows = csv_rows(&path);
            let workbook = xlsx_dir.join(format!("{stem}.xlsx"));
            let sheets = calamine_sheets(&workbook);
            let names: Vec<&str> = sheets.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, [findings_sheet, summary_sheet], "{}", workbook.display());
            assert_eq!(sheets[0].1, rows, "{}: the findings sheet holds the CSV cells", workbook.display());
            let district = rows[1][0].clone();
            let summary = &sheets[1].1;
            assert_eq!(summary.len(), 2);
            assert_eq!(summary[1][0], district);
            assert_eq!(summary[1][2], (rows.len() - 1).to_string(), "findings counted");
            csv_by_district.insert(district, rows);
            workbooks.push(workbook);
        }
        assert_eq!(csv_by_district.len(), 4, "{:?}", csv_by_district.keys());
        // The summary workbook is summary.csv with its counts as numbers.
        let summary = calamine_sheets(&xlsx_dir.join("summary.xlsx"));
        let csv_summary = csv_rows(&csv_dir.join("summary.csv"));
        let as_xlsx: Vec<Vec<String>> =
            csv_summary.iter().map(|r| r.iter().map(|c| c.replace(".csv", ".xlsx")).collect()).collect();
        assert_eq!(summary, [(summary_sheet.to_string(), as_xlsx)]);
        workbooks.push(xlsx_dir.join("summary.xlsx"));

        // The center's workbook: the summary names each district's sheet, which holds its CSV cells.
        let center = d(&format!("center-{lang}")).join("findings.xlsx");
        let sheets: BTreeMap<String, Vec<Vec<String>>> = calamine_sheets(&center).into_iter().collect();
        let summary = &sheets[summary_sheet];
        assert_eq!(summary.len(), 5);
        assert_eq!(summary[0].last().unwrap(), if lang == "zh" { "工作表" } else { "sheet" });
        for row in &summary[1..] {
            let (district, sheet) = (&row[0], row.last().unwrap());
            assert_eq!(&sheets[sheet], &csv_by_district[district], "{lang}: sheet {sheet} of {district}");
            assert!(sheet.chars().count() <= 31 && !sheet.contains(['[', ']', ':', '*', '?', '/', '\\']), "{sheet}");
        }
        assert_eq!(sheets.len(), 5);
        let names: Vec<&String> = sheets.keys().collect();
        if lang == "zh" {
            assert!(names.contains(&&"汇总 (2)".to_string()), "{names:?}");
        }
        assert!(names.contains(&&"闵行区_莘庄_一____".to_string()), "{names:?}");
        assert!(names.iter().any(|n| n.chars().count() == 31 && long.starts_with(n.as_str())), "{names:?}");
        workbooks.push(center);
    }

    // Chinese text and neutralised cells, as calamine reads them.
    let pudong = calamine_sheets(&d("xlsx-zh").join("浦东新区.xlsx"));
    let rows = &pudong[0].1;
    let col = |name: &str| rows[0].iter().position(|h| h == name).unwrap();
    assert!(rows.iter().any(|r| r[col("企业名称")] == "浦东一厂" && r[col("严重程度")] == "严重"), "{rows:?}");
    assert!(rows.iter().any(|r| r[col("企业名称")] == "'=cmd|' /C calc'!A0" && r[col("严重程度")] == "信息"));

    // openpyxl, a second reader: the same cells, text everywhere (never a formula), the header frozen and
    // filtered, the severity cells coloured.
    let Some(python) = openpyxl_python() else { return };
    let seen = openpyxl_dump(&python, &workbooks);
    let colours: BTreeMap<&str, &str> = BTreeMap::from([
        ("critical", "FFC00000"),
        ("严重", "FFC00000"),
        ("high", "FFF8696B"),
        ("高危", "FFF8696B"),
        ("medium", "FFFFD966"),
        ("中危", "FFFFD966"),
        ("low", "FFDDEBF7"),
        ("低危", "FFDDEBF7"),
        ("info", "FFEDEDED"),
        ("信息", "FFEDEDED"),
    ]);
    let mut coloured = 0;
    for workbook in &workbooks {
        let sheets = seen[&workbook.display().to_string()].as_array().unwrap();
        let ours = calamine_sheets(workbook);
        assert_eq!(sheets.len(), ours.len());
        for (sheet, (name, cells)) in sheets.iter().zip(&ours) {
            assert_eq!(sheet["name"], name.as_str());
            assert_eq!(&openpyxl_texts(sheet), cells, "{}: {name}", workbook.display());
            assert_eq!(sheet["freeze"], "A2", "{}: {name}", workbook.display());
            let width = cells[0].len();
            let last = otscope::ledger::column_letters(width as u32 - 1);
            assert_eq!(sheet["filter"], format!("A1:{last}{}", cells.len()), "{}: {name}", workbook.display());
            let rows = sheet["rows"].as_array().unwrap();
            for row in rows {
                for cell in row.as_array().unwrap() {
                    assert_ne!(cell["type"], "f", "a formula in {}", workbook.display());
                }
            }
            let Some(severity) = cells[0].iter().position(|h| h == "severity" || h == "严重程度") else { continue };
            for (r, row) in rows.iter().enumerate().skip(1) {
                let cell = &row[severity];
                assert_eq!(cell["type"], "s");
                assert_eq!(
                    cell["fill"],
                    colours[cell["value"].as_str().unwrap()],
                    "{}: {name} row {r}",
                    workbook.display()
                );
                coloured += 1;
            }
        }
    }
    assert_eq!(coloured, 4 * 5, "every finding's severity coloured in each of its four workbooks");
}

#[test]
fn the_ledger_template_reads_back_and_checks_valid() {
    let dir = tempfile::tempdir().unwrap();
    let zh = dir.path().join("台账模板.xlsx");
    let en = dir.path().join("ledger-template.xlsx");
    run(&["ledger", "template", "--lang", "zh", "--out"], &zh);
    run(&["ledger", "template", "--lang", "en", "--out"], &en);
    // An existing file is never replaced.
    let before = std::fs::read(&zh).unwrap();
    let out = bin().args(["ledger", "template", "--out"]).arg(&zh).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    assert_eq!(std::fs::read(&zh).unwrap(), before);

    let sheets = calamine_sheets(&zh);
    assert_eq!(sheets[0].0, "台账");
    assert_eq!(sheets[0].1[0], ["企业编号", "企业名称", "所属区县", "行业", "重要程度", "IP地址/域名", "联系人"]);
    assert_eq!(sheets[0].1[1][4], "一般");
    assert_eq!(sheets[0].1[1][5], "127.0.0.1");
    let sheets = calamine_sheets(&en);
    assert_eq!(sheets[0].1[0], ["enterprise_id", "enterprise", "district", "sector", "level", "targets", "contact"]);
    for path in [&zh, &en] {
        let out = bin().args(["ledger", "check"]).arg(path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("enterprises: 1"));
    }

    let Some(python) = openpyxl_python() else { return };
    let seen = openpyxl_dump(&python, &[zh.clone(), en.clone()]);
    for (path, words) in [(&zh, "\"重要,一般,排除\""), (&en, "\"important,general,exclude\"")] {
        let sheet = &seen[&path.display().to_string()][0];
        assert_eq!(sheet["freeze"], "A2");
        assert_eq!(
            sheet["validations"],
            serde_json::json!([{"sqref": "E2:E1048576", "formula": words, "type": "list"}])
        );
        assert_eq!(openpyxl_texts(sheet), calamine_sheets(path)[0].1);
    }
}
