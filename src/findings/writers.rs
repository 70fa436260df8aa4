//! The writers of findings (JSONL, CSV) and of every other CSV table the project writes. A CSV file
//! carries a UTF-8 BOM, so Excel shows Chinese names right, and every cell is neutralised against
//! formula injection: device-supplied text and ledger text reach the districts' Excel.

use super::columns::{cell_text, values, COLUMNS};
use super::Finding;
use std::borrow::Cow;
use std::io::{self, Write};

/// A destination for findings as they are found.
pub trait FindingSink: Send {
    fn write(&mut self, finding: &Finding) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
}

/// A sink with the name its errors are reported under (a file's path, or `standard output`).
pub struct Sink {
    pub name: String,
    pub writer: Box<dyn FindingSink>,
}

impl Sink {
    pub fn new(name: impl Into<String>, writer: impl FindingSink + 'static) -> Sink {
        Sink { name: name.into(), writer: Box::new(writer) }
    }
}

pub struct JsonlWriter<W: Write> {
    out: W,
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(out: W) -> Self {
        JsonlWriter { out }
    }
}

impl<W: Write + Send> FindingSink for JsonlWriter<W> {
    fn write(&mut self, finding: &Finding) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, finding)?;
        // Each line is flushed whole, so an interrupted scan leaves no torn record behind.
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Text that a spreadsheet would evaluate as a formula gets a leading apostrophe (OWASP's advice for
/// CSV injection): a cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage return. JSONL and the
/// store keep the raw value.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

/// A CSV table: a BOM, a header, and rows whose cells are all neutralised.
pub struct CsvTable<W: Write> {
    out: csv::Writer<W>,
}

impl<W: Write> CsvTable<W> {
    pub fn new<S: AsRef<str>>(mut out: W, header: impl IntoIterator<Item = S>) -> io::Result<Self> {
        out.write_all("\u{feff}".as_bytes())?;
        let mut table = CsvTable { out: csv::Writer::from_writer(out) };
        table.row(header)?;
        Ok(table)
    }

    pub fn row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) -> io::Result<()> {
        let record: Vec<String> = cells.into_iter().map(|c| neutralise(c.as_ref()).into_owned()).collect();
        self.out.write_record(&record).map_err(io::Error::from)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The scan's CSV: the finding's columns, English headers.
pub struct CsvWriter<W: Write> {
    table: CsvTable<W>,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W) -> io::Result<Self> {
        Ok(CsvWriter { table: CsvTable::new(out, COLUMNS.iter().map(|c| c.key))? })
    }
}

impl<W: Write + Send> FindingSink for CsvWriter<W> {
    fn write(&mut self, finding: &Finding) -> io::Result<()> {
        self.table.row(values(finding).iter().map(cell_text))?;
        self.table.flush()
    }
    fn finish(&mut self) -> io::Result<()> {
        self.table.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_neutralised_and_the_rest_kept() {
        for bad in ["=1+2", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"http://x\",\"y\")"] {
            assert_eq!(neutralise(bad), format!("'{bad}"));
        }
        for good in ["", "浦东新区", "a=b", " =x", "'quoted", "1.0"] {
            assert_eq!(neutralise(good), good);
        }
    }

    #[test]
    fn a_table_neutralises_every_cell_and_quotes_what_needs_it() {
        let mut buf = Vec::new();
        {
            let mut t = CsvTable::new(&mut buf, ["a", "b"]).unwrap();
            t.row(["=cmd|' /C calc'!A0", "x,\"y\"\nz"]).unwrap();
            t.flush().unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text, "\u{feff}a,b\n'=cmd|' /C calc'!A0,\"x,\"\"y\"\"\nz\"\n");
    }
}
