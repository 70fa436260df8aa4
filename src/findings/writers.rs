//! JSONL and CSV writers of findings; the CSV carries a UTF-8 BOM so Excel shows Chinese names right.

use super::Finding;
use std::io::{self, Write};

/// A destination for findings as they are found.
pub trait FindingSink: Send {
    fn write(&mut self, finding: &Finding) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
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

pub const CSV_COLUMNS: [&str; 18] = [
    "ip",
    "port",
    "transport",
    "protocol",
    "ics",
    "vendor",
    "product",
    "version",
    "attributes",
    "hostname",
    "enterprise_id",
    "enterprise",
    "district",
    "level",
    "severity",
    "rule",
    "evidence",
    "observed_at",
];

pub struct CsvWriter<W: Write> {
    out: csv::Writer<W>,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all("\u{feff}".as_bytes())?;
        let mut out = csv::Writer::from_writer(out);
        out.write_record(CSV_COLUMNS)?;
        Ok(CsvWriter { out })
    }
}

impl<W: Write + Send> FindingSink for CsvWriter<W> {
    fn write(&mut self, f: &Finding) -> io::Result<()> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        self.out.write_record([
            f.ip.to_string(),
            f.port.to_string(),
            f.transport.as_str().to_string(),
            f.protocol.clone(),
            f.ics.to_string(),
            opt(&f.vendor),
            opt(&f.product),
            opt(&f.version),
            opt(&f.device_type),
            opt(&f.cpe),
            f.tags.join(";"),
            serde_json::Value::Object(f.attributes.clone()).to_string(),
            opt(&f.hostname),
            f.enterprise_id.clone(),
            f.enterprise.clone(),
            f.district.clone(),
            f.level.as_str().to_string(),
            f.severity.as_str().to_string(),
            opt(&f.rule),
            f.evidence.clone(),
            f.observed_at.clone(),
            f.change.map(|c| c.as_str().to_string()).unwrap_or_default(),
            f.changed.join(";"),
        ])?;
        self.out.flush()
    }
    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
