//! The ledger file as rows of text cells, each row knowing where it was written: a CSV file (UTF-8 with
//! or without a BOM, or GB18030/GBK as Chinese Excel saves "CSV (逗号分隔)") by line, a workbook
//! (.xlsx, .xls, ...) by sheet and row. The file is read whole, after checking that it is a regular
//! file within [`crate::input::LEDGER_LIMIT`].

use super::{InputError, Place};
use std::io::Cursor;

use std::path::{Path, PathBuf};

/// The text encoding of a CSV ledger. Without one, a file that is valid UTF-8 is read as UTF-8 and any
/// other as GB18030 (of which GBK is a subset, so both read the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
pub enum Encoding {
    #[value(name = "utf-8")]
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "gb18030")]
    Gb18030,
    #[serde(rename = "gbk")]
    Gbk,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Gb18030 => "gb18030",
            Encoding::Gbk => "gbk",
        }
    }
}

/// Which ledger to read and how: the options every command that reads a ledger passes on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerOptions {
    pub path: PathBuf,
    /// The sheet of a workbook (default: the first).
    pub sheet: Option<String>,
    /// The encoding of a CSV file (default: UTF-8 when valid, else GB18030).
    pub encoding: Option<Encoding>,
}

impl From<&Path> for LedgerOptions {
    fn from(path: &Path) -> LedgerOptions {
        LedgerOptions { path: path.to_path_buf(), ..Default::default() }
    }
}

impl From<PathBuf> for LedgerOptions {
    fn from(path: PathBuf) -> LedgerOptions {
        LedgerOptions { path, ..Default::default() }
    }
}

impl From<&PathBuf> for LedgerOptions {
    fn from(path: &PathBuf) -> LedgerOptions {
        LedgerOptions::from(path.as_path())
    }
}

/// One row of the file: the line its record starts on (CSV) or its row number (sheets), and its cells.
#[derive(Debug)]
pub(super) struct RawRow {
    pub number: u64,
    pub cells: Vec<String>,
    /// Cells that hold no text (an Excel error value such as `#N/A`): (index in `cells`, what is wrong).
    pub unreadable: Vec<(usize, String)>,
}

/// Where a file's cells are: lines of a CSV file, or a sheet's rows and columns.
#[derive(Debug, Clone)]
pub(super) struct Grid {
    /// The sheet; `None` for a CSV file.
    pub sheet: Option<String>,
    /// The sheet column (0 = A) of each row's first cell; 0 for a CSV file.
    pub first_column: u32,
}

impl Grid {
    /// Where cell `index` of the row numbered `number` is.
    pub fn place(&self, number: u64, index: usize) -> Place {
        match &self.sheet {
            None => Place::Line(number),
            Some(sheet) => Place::Cell { sheet: sheet.clone(), row: number, column: self.first_column + index as u32 },
        }
    }

    /// The row numbered `number` in words.
    pub fn row_name(&self, number: u64) -> String {
        match self.sheet {
            None => format!("line {number}"),
            Some(_) => format!("row {number}"),
        }
    }
}

/// The rows of a ledger file.
#[derive(Debug)]
pub(super) struct Table {
    pub grid: Grid,
    pub rows: Vec<RawRow>,
    /// Records that the CSV reader could not read: (line, message).
    pub broken: Vec<(u64, String)>,
}

fn file_error(path: &Path, field: &str, message: String) -> InputError {
    InputError { file: path.to_path_buf(), place: Place::File, field: field.into(), message }
}

/// [`crate::input::read_bounded`], its refusal told as a problem with the file.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    crate::input::read_bounded(path, limit).map_err(|e| file_error(path, "file", e.to_string()))
}

/// Whether the file's first bytes are those of a workbook: a zip archive (.xlsx, .xlsm, .xlsb, .ods)
/// or an OLE compound file (.xls).
fn is_workbook(bytes: &[u8]) -> bool {
    const ZIP: &[u8] = b"PK\x03\x04";
    const OLE: &[u8] = &[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];
    bytes.starts_with(ZIP) || bytes.starts_with(OLE)
}

/// Reads the rows of a ledger file's bytes, as a workbook or as CSV text, by what the bytes are.
pub(super) fn read_table(options: &LedgerOptions, bytes: &[u8]) -> Result<Table, InputError> {
    let path = options.path.as_path();
    if is_workbook(bytes) {
        if let Some(e) = options.encoding {
            return Err(file_error(
                path,
                "--encoding",
                format!("{} applies to CSV files: this file is a workbook", e.name()),
            ));
        }
        read_workbook(path, bytes, options.sheet.as_deref())
    } else {
        if let Some(s) = &options.sheet {
            return Err(file_error(path, "--sheet", format!("{s:?}: this file is CSV text, not a workbook")));
        }
        let text = decode(path, bytes, options.encoding)?;
        Ok(read_csv(&text))
    }
}

/// The file's text: as `forced` says, else UTF-8 when it is valid UTF-8, else GB18030.
fn decode(path: &Path, bytes: &[u8], forced: Option<Encoding>) -> Result<String, InputError> {
    let at = |offset: usize, message: String| InputError {
        file: path.to_path_buf(),
        place: Place::Line(LineStarts::new(&bytes[..offset]).line_of(offset)),
        field: "encoding".into(),
        message,
    };
    if forced.is_none() && (bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff])) {
        return Err(at(
            0,
            "UTF-16 text (Excel's \"Unicode text\"): save the ledger as \"CSV UTF-8\", \"CSV\" or as the workbook itself"
                .into(),
        ));
    }
    if matches!(forced, None | Some(Encoding::Utf8)) {
        match std::str::from_utf8(bytes) {
            Ok(text) => return Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_string()),
            Err(e) if forced.is_some() => {
                return Err(at(
                    e.valid_up_to(),
                    "not valid UTF-8 (given --encoding utf-8): save the ledger as \"CSV UTF-8\" or give the encoding it has".into(),
                ))
            }
            Err(_) => {}
        }
    }
    let encoding = match forced {
        Some(Encoding::Gbk) => encoding_rs::GBK,
        _ => encoding_rs::GB18030,
    };
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut text = String::with_capacity(bytes.len() * 3 / 2 + 16);
    let mut read = 0;
    loop {
        let needed = decoder.max_utf8_buffer_length_without_replacement(bytes.len() - read).unwrap_or(usize::MAX);
        text.reserve(needed.min(bytes.len() * 4 + 16));
        let (result, n) = decoder.decode_to_string_without_replacement(&bytes[read..], &mut text, true);
        read += n;
        match result {
            encoding_rs::DecoderResult::InputEmpty => break,
            encoding_rs::DecoderResult::OutputFull => continue,
            encoding_rs::DecoderResult::Malformed(bad, after) => {
                let what = match forced {
                    Some(e) => format!("not valid {} (given --encoding {})", e.name(), e.name()),
                    None => "neither UTF-8 nor GB18030/GBK".into(),
                };
                return Err(at(
                    read - bad as usize - after as usize,
                    format!("{what}: save the ledger as \"CSV UTF-8\" or as the workbook itself"),
                ));
            }
        }
    }
    Ok(text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text))
}

/// The offsets where lines start, for line numbers that are right whatever ends the lines: `\r\n`
/// (as Excel writes), `\n` or a lone `\r`.
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn new(text: &[u8]) -> LineStarts {
        let mut starts = vec![0];
        for (i, &b) in text.iter().enumerate() {
            if b == b'\n' || (b == b'\r' && text.get(i + 1) != Some(&b'\n')) {
                starts.push(i + 1);
            }
        }
        LineStarts(starts)
    }

    /// The 1-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> u64 {
        self.0.partition_point(|&start| start <= offset) as u64
    }
}

fn read_csv(text: &str) -> Table {
    let lines = LineStarts::new(text.as_bytes());
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let mut table = Table { grid: Grid { sheet: None, first_column: 0 }, rows: Vec::new(), broken: Vec::new() };
    // A record's line is that of its first byte: the reader's own line count is off with `\r\n`.
    let line_at = |p: Option<&csv::Position>| p.map_or(0, |p| lines.line_of(first_content(text, p.byte() as usize)));
    for record in reader.records() {
        match record {
            Ok(r) => table.rows.push(RawRow {
                number: line_at(r.position()),
                cells: r.iter().map(str::to_string).collect(),
                unreadable: Vec::new(),
            }),
            Err(e) => table.broken.push((line_at(e.position()), format!("unreadable CSV: {e}"))),
        }
    }
    table
}

/// The first offset at or after `offset` that is not a line end (the reader may place a record at
/// the blank line before it).
fn first_content(text: &str, offset: usize) -> usize {
    let rest = &text.as_bytes()[offset.min(text.len())..];
    offset + rest.iter().take_while(|&&b| b == b'\n' || b == b'\r').count()
}

/// The most non-empty cells read from a sheet: a hundred thousand rows of a ledger hold under a
/// million, and a bound keeps a sheet with stray cells far away from costing more than its size.
const MAX_CELLS: usize = 4_000_000;

/// Reads a sheet of a workbook. The reader may panic on a damaged file (an index out of range in a
/// corrupted .xls): that is reported as a damaged file, without the panic's message on the terminal.
fn read_workbook(path: &Path, bytes: &[u8], sheet: Option<&str>) -> Result<Table, InputError> {
    quietly_unwinding(|| read_sheet(path, bytes, sheet)).unwrap_or_else(|why| {
        Err(file_error(path, "file", format!("the workbook is damaged and cannot be read ({why}): save it again")))
    })
}

/// Runs `read`, turning a panic into its message; the panic hook stays silent for this thread meanwhile.
fn quietly_unwinding<T>(read: impl FnOnce() -> T) -> Result<T, String> {
    thread_local!(static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
    QUIET.with(|q| q.set(false));
    result.map_err(|panic| {
        let text =
            panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
        text.and_then(|t| t.lines().next().map(str::to_string)).unwrap_or_else(|| "the reader failed".into())
    })
}

fn read_sheet(path: &Path, bytes: &[u8], sheet: Option<&str>) -> Result<Table, InputError> {
    use calamine::{Data, Reader, Sheets};
    let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes))
        .map_err(|e| file_error(path, "file", format!("not a workbook that can be read: {e}")))?;
    let names = book.sheet_names();
    let name = match sheet {
        Some(wanted) => names.iter().find(|n| *n == wanted).cloned().ok_or_else(|| {
            file_error(path, "--sheet", format!("no sheet named {wanted:?}: the workbook has {}", quoted(&names)))
        })?,
        None => names.first().cloned().ok_or_else(|| file_error(path, "file", "the workbook has no sheet".into()))?,
    };
    let unreadable =
        |e: &dyn std::fmt::Display| file_error(path, "--sheet", format!("sheet {name:?} cannot be read: {e}"));
    let too_many = || file_error(path, "file", format!("sheet {name:?} has more than {MAX_CELLS} cells: not a ledger"));
    // (row, column, value) of every non-empty cell, 0-based.
    let mut cells: Vec<(u32, u32, Data)> = Vec::new();
    match &mut book {
        // An .xlsx sheet is read cell by cell: its used range may span far more cells than it holds.
        Sheets::Xlsx(xlsx) => {
            let mut reader = xlsx.worksheet_cells_reader(&name).map_err(|e| unreadable(&e))?;
            while let Some(cell) = reader.next_cell().map_err(|e| unreadable(&e))? {
                let (row, column) = cell.get_position();
                let value = Data::from(cell.get_value().clone());
                if value != Data::Empty {
                    if cells.len() == MAX_CELLS {
                        return Err(too_many());
                    }
                    cells.push((row, column, value));
                }
            }
        }
        other => {
            let range = other.worksheet_range(&name).map_err(|e| unreadable(&e))?;
            let (top, left) = range.start().unwrap_or((0, 0));
            for (row, column, value) in range.used_cells() {
                if cells.len() == MAX_CELLS {
                    return Err(too_many());
                }
                cells.push((top + row as u32, left + column as u32, value.clone()));
            }
        }
    }
    cells.sort_by_key(|&(row, column, _)| (row, column));
    let first_column = cells.iter().map(|c| c.1).min().unwrap_or(0);
    let mut table = Table { grid: Grid { sheet: Some(name), first_column }, rows: Vec::new(), broken: Vec::new() };
    for (row, column, value) in cells {
        let number = u64::from(row) + 1;
        if table.rows.last().is_none_or(|r| r.number != number) {
            table.rows.push(RawRow { number, cells: Vec::new(), unreadable: Vec::new() });
        }
        let raw = table.rows.last_mut().expect("pushed above");
        let index = (column - first_column) as usize;
        raw.cells.resize(index, String::new());
        match cell_text(&value) {
            Ok(text) => raw.cells.push(text.trim().to_string()),
            Err(why) => {
                raw.unreadable.push((index, why));
                raw.cells.push(String::new());
            }
        }
    }
    Ok(table)
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}

/// A cell as the text a person sees in it: whole numbers without a decimal point (an id typed as
/// 1001 is stored as the number 1001.0).
fn cell_text(cell: &calamine::Data) -> Result<String, String> {
    use calamine::Data;
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(_) => cell.to_string(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => return Err(format!("the cell holds the Excel error {e}: give its value as text")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(u64, Vec<String>)> {
        read_csv(text).rows.into_iter().map(|r| (r.number, r.cells)).collect()
    }

    #[test]
    fn csv_line_numbers_are_right_with_any_line_end_and_multi_line_fields() {
        let expected = |a, b, c| {
            vec![
                (1, vec!["h".to_string()]),
                (a, vec!["x".into(), "1\n2".into()]),
                (b, vec!["y".into()]),
                (c, vec!["z".into()]),
            ]
        };
        assert_eq!(lines("h\nx,\"1\n2\"\ny\n\nz\n"), expected(2, 4, 6));
        assert_eq!(lines("h\r\nx,\"1\n2\"\r\ny\r\n\r\nz\r\n"), expected(2, 4, 6));
        assert_eq!(lines("h\rx,\"1\n2\"\ry\r\rz"), expected(2, 4, 6));
        assert_eq!(lines("\r\n\r\nh\r\nx,\"1\n2\"\r\ny\r\n\r\nz")[0].0, 3);
    }

    #[test]
    fn encodings_are_told_apart_and_can_be_forced() {
        let p = Path::new("t.csv");
        let (gbk, _, _) = encoding_rs::GBK.encode("企业编号,浦东新区\r\n");
        assert_eq!(decode(p, &gbk, None).unwrap(), "企业编号,浦东新区\r\n");
        assert_eq!(decode(p, &gbk, Some(Encoding::Gbk)).unwrap(), "企业编号,浦东新区\r\n");
        assert_eq!(decode(p, "\u{feff}a,浦东".as_bytes(), None).unwrap(), "a,浦东");
        let e = decode(p, &gbk, Some(Encoding::Utf8)).unwrap_err();
        assert_eq!(e.to_string().split(" (").next().unwrap(), "t.csv:1: encoding: not valid UTF-8");
        // A valid UTF-8 file read as GB18030 is mojibake, not an error: the override is the user's call.
        assert_ne!(decode(p, "浦东".as_bytes(), Some(Encoding::Gb18030)).unwrap(), "浦东");
        let e = decode(p, b"a\nb\r\nc\xff\xff", None).unwrap_err();
        assert!(e.to_string().starts_with("t.csv:3: encoding: neither UTF-8 nor GB18030/GBK"), "{e}");
        let e = decode(p, b"\xff\xfea\x00", None).unwrap_err();
        assert!(e.to_string().starts_with("t.csv:1: encoding: UTF-16 text"), "{e}");
    }

    #[test]
    fn a_refused_file_is_named() {
        let e = read_bounded(Path::new("/dev/zero"), crate::input::LEDGER_LIMIT).unwrap_err().to_string();
        assert_eq!(e, "/dev/zero: file: not a regular file: a character device");
    }
}
