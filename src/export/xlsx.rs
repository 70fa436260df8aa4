//! Excel workbooks (.xlsx): the district exports, the center's workbook, and the empty ledger template.
//!
//! The findings sheets hold exactly the columns and cells of the district CSV files ([`super::district_header`],
//! [`super::district_row`]), under a frozen header with filters, the severity cell coloured. Every cell
//! that holds text is neutralised against formula injection as the CSV files are, and written as a
//! string: nothing otscope writes is ever a formula.

use super::{district_columns, district_header, district_row, header, summary_counts, Lang, Seen, SUMMARY_COLUMNS};
use crate::findings::{neutralise, Finding, Severity};
use crate::ledger::{FIELDS, LEVEL, LEVEL_WORDS};
use rust_xlsxwriter::{Color, DataValidation, Format, FormatBorder, Workbook, Worksheet, XlsxError};
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Seek, Write};
use std::path::Path;

/// Excel's limit on the text of one cell, in UTF-16 code units.
const MAX_CELL_UNITS: usize = 32_767;
/// Excel's limit on a sheet's name, in UTF-16 code units.
const MAX_SHEET_NAME_UNITS: usize = 31;
/// The widest a column is made, in characters: wider cells wrap in Excel's formula bar, not the sheet.
const MAX_COLUMN_WIDTH: usize = 60;

fn xlsx_error(e: XlsxError) -> io::Error {
    match e {
        XlsxError::IoError(e) => e,
        e => io::Error::other(e.to_string()),
    }
}

/// The names of a workbook's own sheets, in the export's language.
fn sheet_label(english: &'static str, lang: Lang) -> &'static str {
    match (english, lang) {
        (_, Lang::En) => english,
        ("findings", Lang::Zh) => "暴露服务",
        ("summary", Lang::Zh) => "汇总",
        ("ledger", Lang::Zh) => "台账",
        _ => english,
    }
}

/// Text as a cell holds it: neutralised like a CSV cell, and cut (with `…`) at Excel's limit.
fn cell_text(text: &str) -> String {
    let text = neutralise(text);
    if text.encode_utf16().count() <= MAX_CELL_UNITS {
        return text.into_owned();
    }
    let mut units = 0;
    let mut cut: String = text
        .chars()
        .take_while(|c| {
            units += c.len_utf16();
            units < MAX_CELL_UNITS
        })
        .collect();
    cut.push('…');
    cut
}

/// Sheet names that Excel accepts: at most 31 characters, none of `[]:*?/\`, no apostrophe at either
/// end, not `History` (reserved by Excel), and each unique without regard to case.
#[derive(Default)]
struct SheetNames(HashSet<String>);

impl SheetNames {
    fn unique(&mut self, wanted: &str) -> String {
        let base: String =
            wanted.chars().map(|c| if "[]:*?/\\".contains(c) || c.is_control() { '_' } else { c }).collect();
        let base = base.trim().trim_matches('\'');
        let base = if base.is_empty() { "_".to_string() } else { base.to_string() };
        let base = if base.eq_ignore_ascii_case("history") { format!("{base}_") } else { base };
        for n in 1.. {
            let suffix = if n == 1 { String::new() } else { format!(" ({n})") };
            let mut units = 0;
            let room = MAX_SHEET_NAME_UNITS - suffix.len();
            let stem: String = base
                .chars()
                .take_while(|c| {
                    units += c.len_utf16();
                    units <= room
                })
                .collect();
            let stem = stem.trim_end_matches('\'');
            let name = format!("{}{suffix}", if stem.is_empty() { "_" } else { stem });
            if self.0.insert(name.to_lowercase()) {
                return name;
            }
        }
        unreachable!("some suffix is free")
    }
}

struct Formats {
    header: Format,
    severity: BTreeMap<Severity, Format>,
}

impl Formats {
    fn new() -> Formats {
        let fill = |rgb: u32| Format::new().set_background_color(Color::RGB(rgb));
        Formats {
            header: Format::new()
                .set_bold()
                .set_background_color(Color::RGB(0xD9E1F2))
                .set_border_bottom(FormatBorder::Thin),
            severity: BTreeMap::from([
                (Severity::Critical, fill(0xC00000).set_font_color(Color::White).set_bold()),
                (Severity::High, fill(0xF8696B)),
                (Severity::Medium, fill(0xFFD966)),
                (Severity::Low, fill(0xDDEBF7)),
                (Severity::Info, fill(0xEDEDED)),
            ]),
        }
    }
}

/// The width of text in Excel's character units: CJK and other wide characters take two.
fn display_width(text: &str) -> usize {
    text.chars().map(|c| if (c as u32) >= 0x1100 && !c.is_ascii() { 2 } else { 1 }).sum()
}

/// A table: the header on row 0 (frozen, with filters), the rows under it, every column as wide as its
/// widest cell (within [`MAX_COLUMN_WIDTH`]). `style` may give a cell its own format.
fn write_table(
    sheet: &mut Worksheet,
    header: &[String],
    rows: impl Iterator<Item = Vec<String>>,
    formats: &Formats,
    style: impl Fn(usize, usize) -> Option<Format>,
) -> Result<(), XlsxError> {
    let mut widths: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    for (c, name) in header.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, cell_text(name), &formats.header)?;
    }
    let mut last_row = 0u32;
    for (r, cells) in rows.enumerate() {
        last_row = r as u32 + 1;
        for (c, text) in cells.iter().enumerate() {
            if text.is_empty() {
                continue;
            }
            let text = cell_text(text);
            widths[c] = widths[c].max(display_width(&text));
            match style(r, c) {
                Some(format) => sheet.write_string_with_format(last_row, c as u16, text, &format)?,
                None => sheet.write_string(last_row, c as u16, text)?,
            };
        }
    }
    for (c, w) in widths.iter().enumerate() {
        sheet.set_column_width(c as u16, (*w).min(MAX_COLUMN_WIDTH) as f64 + 2.0)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofilter(0, 0, last_row, header.len() as u16 - 1)?;
    Ok(())
}

/// One district's findings, as its CSV file holds them, the severity cell coloured.
fn write_findings(
    sheet: &mut Worksheet,
    rows: &[&Finding],
    seen: &Seen,
    lang: Lang,
    formats: &Formats,
) -> Result<(), XlsxError> {
    let columns = district_columns();
    let severity = columns.iter().position(|c| c.key == "severity").expect("findings have a severity");
    let cells = rows.iter().map(|f| district_row(f, &columns, seen, lang));
    write_table(sheet, &district_header(lang), cells, formats, |r, c| {
        (c == severity).then(|| formats.severity[&rows[r].severity].clone())
    })
}

/// The summary table of `super::SUMMARY_COLUMNS`: one row per district, its counts as numbers, and in
/// the last column where its findings are (`place`: the file or the sheet), when there is more than one.
fn write_summary(
    sheet: &mut Worksheet,
    districts: &[(&str, &[&Finding], Option<&str>)],
    place: Option<(&str, &str)>,
    lang: Lang,
    formats: &Formats,
) -> Result<(), XlsxError> {
    let mut columns: Vec<(&str, &str)> = SUMMARY_COLUMNS[..SUMMARY_COLUMNS.len() - 1].to_vec();
    columns.extend(place);
    let text_rows = districts.iter().map(|(district, _, at)| {
        let mut cells = vec![district.to_string()];
        cells.resize(columns.len() - usize::from(place.is_some()), String::new());
        cells.extend(place.map(|_| at.unwrap_or_default().to_string()));
        cells
    });
    write_table(sheet, &header(&columns, lang), text_rows, formats, |_, _| None)?;
    for (r, (_, findings, _)) in districts.iter().enumerate() {
        for (i, n) in summary_counts(findings).iter().enumerate() {
            sheet.write_number(r as u32 + 1, i as u16 + 1, *n as f64)?;
        }
    }
    Ok(())
}

fn save(mut book: Workbook, out: impl Write + Seek + Send) -> io::Result<()> {
    book.save_to_writer(out).map_err(xlsx_error)
}

/// A district's workbook: its findings, and its summary.
pub(super) fn district_workbook(
    out: impl Write + Seek + Send,
    district: &str,
    rows: &[&Finding],
    seen: &Seen,
    lang: Lang,
) -> io::Result<()> {
    let formats = Formats::new();
    let mut names = SheetNames::default();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet().set_name(names.unique(sheet_label("findings", lang))).map_err(xlsx_error)?;
    write_findings(sheet, rows, seen, lang, &formats).map_err(xlsx_error)?;
    let sheet = book.add_worksheet().set_name(names.unique(sheet_label("summary", lang))).map_err(xlsx_error)?;
    write_summary(sheet, &[(district, rows, None)], None, lang, &formats).map_err(xlsx_error)?;
    // The notices sheet (the advisories that concern these findings) goes here, after the summary,
    // once the advisory notices exist.
    save(book, out)
}

/// The summary of a district export: one row per district with the file that holds its findings.
pub(super) fn summary_workbook(
    out: impl Write + Seek + Send,
    districts: &[(String, Vec<&Finding>, String)],
    lang: Lang,
) -> io::Result<()> {
    let formats = Formats::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet().set_name(sheet_label("summary", lang)).map_err(xlsx_error)?;
    let rows: Vec<(&str, &[&Finding], Option<&str>)> =
        districts.iter().map(|(d, rows, file)| (d.as_str(), rows.as_slice(), Some(file.as_str()))).collect();
    let file_column = SUMMARY_COLUMNS[SUMMARY_COLUMNS.len() - 1];
    write_summary(sheet, &rows, Some(file_column), lang, &formats).map_err(xlsx_error)?;
    save(book, out)
}

/// The center's workbook: a summary sheet naming each district's sheet, then one sheet per district.
pub(super) fn center_workbook(
    out: impl Write + Seek + Send,
    findings: &[&Finding],
    seen: &Seen,
    lang: Lang,
) -> io::Result<()> {
    let formats = Formats::new();
    let mut groups: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        groups.entry(f.district.as_str()).or_default().push(f);
    }
    let mut names = SheetNames::default();
    let summary_name = names.unique(sheet_label("summary", lang));
    let sheets: Vec<String> = groups.keys().map(|district| names.unique(district)).collect();
    let mut book = Workbook::new();
    let summary = book.add_worksheet().set_name(&summary_name).map_err(xlsx_error)?;
    let rows: Vec<(&str, &[&Finding], Option<&str>)> =
        groups.iter().zip(&sheets).map(|((d, rows), sheet)| (*d, rows.as_slice(), Some(sheet.as_str()))).collect();
    write_summary(summary, &rows, Some(("sheet", "工作表")), lang, &formats).map_err(xlsx_error)?;
    for ((_, rows), name) in groups.iter().zip(&sheets) {
        let sheet = book.add_worksheet().set_name(name).map_err(xlsx_error)?;
        write_findings(sheet, rows, seen, lang, &formats).map_err(xlsx_error)?;
    }
    save(book, out)
}

/// An empty ledger workbook for a district to fill in: the headers in `lang`, every column formatted
/// as text (an id such as 007 keeps its zeros), a list to pick the level from, and one example row
/// whose address is on loopback. An existing file is never replaced: it may be a filled-in ledger.
pub fn ledger_template(lang: Lang, out: &Path) -> io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(out).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            io::Error::new(e.kind(), "exists already: a template never replaces a file (it may be a filled-in ledger)")
        } else {
            e
        }
    })?;
    let zh = lang == Lang::Zh;
    let example: [&str; 7] = if zh {
        ["示例-001", "示例水务有限公司", "示例区", "水务", "一般", "127.0.0.1", "张工 000-0000-0000"]
    } else {
        [
            "EXAMPLE-001",
            "Example Water Works",
            "Example District",
            "water",
            "general",
            "127.0.0.1",
            "Zhang 000-0000-0000",
        ]
    };
    let levels: Vec<&str> = LEVEL_WORDS.iter().map(|(_, en, cn)| if zh { *cn } else { *en }).collect();
    let formats = Formats::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet().set_name(sheet_label("ledger", lang)).map_err(xlsx_error)?;
    let text = Format::new().set_num_format("@");
    for c in 0..FIELDS.len() as u16 {
        sheet.set_column_format(c, &text).map_err(xlsx_error)?;
    }
    let header: Vec<String> = FIELDS.iter().map(|f| f.name(zh).to_string()).collect();
    let rows = std::iter::once(example.iter().map(|s| s.to_string()).collect());
    write_table(sheet, &header, rows, &formats, |_, _| None).map_err(xlsx_error)?;
    let level = FIELDS.iter().position(|f| *f == LEVEL).expect("a level column") as u16;
    let (title, message) = if zh {
        ("重要程度", "重要、一般，或排除（该行地址永不探测）")
    } else {
        ("level", "important, general, or exclude (the row's addresses are never probed)")
    };
    let rule = DataValidation::new()
        .allow_list_strings(&levels)
        .and_then(|v| v.set_input_title(title))
        .and_then(|v| v.set_input_message(message))
        .and_then(|v| v.set_error_title(title))
        .and_then(|v| v.set_error_message(message))
        .map_err(xlsx_error)?;
    sheet.add_data_validation(1, level, 1_048_575, level, &rule).map_err(xlsx_error)?;
    save(book, io::BufWriter::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_are_valid_for_excel_and_unique() {
        let mut names = SheetNames::default();
        assert_eq!(names.unique("浦东新区"), "浦东新区");
        assert_eq!(names.unique("a/b\\c:d*e?f[g]h"), "a_b_c_d_e_f_g_h");
        assert_eq!(names.unique("'quoted'"), "quoted");
        assert_eq!(names.unique("History"), "History_");
        assert_eq!(names.unique(""), "_");
        assert_eq!(names.unique("汇总"), "汇总");
        assert_eq!(names.unique("汇总"), "汇总 (2)");
        assert_eq!(names.unique("QUOTED"), "QUOTED (2)");
        let long = "区".repeat(40);
        let first = names.unique(&long);
        assert_eq!(first.chars().count(), 31);
        let second = names.unique(&long);
        assert_eq!(second, format!("{} (2)", "区".repeat(27)));
        let astral = "😀".repeat(20);
        assert_eq!(names.unique(&astral).encode_utf16().count(), 30);
        assert_eq!(names.unique("x'''"), "x");
    }

    #[test]
    fn cells_are_neutralised_and_cut_at_excels_limit() {
        assert_eq!(cell_text("=1+1"), "'=1+1");
        assert_eq!(cell_text("浦东"), "浦东");
        let long = cell_text(&"a".repeat(40_000));
        assert_eq!(long.encode_utf16().count(), MAX_CELL_UNITS);
        assert!(long.ends_with('…'));
        assert!(cell_text(&"😀".repeat(20_000)).encode_utf16().count() <= MAX_CELL_UNITS);
    }
}
