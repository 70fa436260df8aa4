//! Exports of one scan's findings: per district (one file per district and a summary), as CSV or
//! Excel workbooks for people (English or Chinese headers) or JSONL for the monitoring platform.

pub mod stix;
pub mod xlsx;

use crate::findings::{
    cell_text, values, Change, Column, CsvTable, Finding, FindingSink, JsonlWriter, Severity, COLUMNS,
};
use crate::ledger::Level;
use crate::store::{ScanId, ScanRecord, Sighting, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    En,
    Zh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
    Xlsx,
    /// STIX 2.1 bundles, written by [`stix::write`] from the store's history.
    Stix,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Xlsx => "xlsx",
            Format::Stix => "json",
        }
    }
}

/// The district files hold every column of the finding (see [`crate::findings::COLUMNS`]), the owner's
/// first since a district reads its files by enterprise, then when each service was first and last seen.
const OWNER_FIRST: [&str; 4] = ["district", "enterprise_id", "enterprise", "level"];
const SIGHTING_COLUMNS: [(&str, &str); 2] = [("first_seen", "首次发现"), ("last_seen", "最近发现")];

/// The finding's columns in the order of the district files.
fn district_columns() -> Vec<Column> {
    let owner = OWNER_FIRST.iter().filter_map(|k| COLUMNS.iter().find(|c| c.key == *k));
    owner.chain(COLUMNS.iter().filter(|c| !OWNER_FIRST.contains(&c.key))).copied().collect()
}

const SUMMARY_COLUMNS: [(&str, &str); 12] = [
    ("district", "区县"),
    ("enterprises", "涉及企业数"),
    ("findings", "暴露服务数"),
    ("ics", "工控服务数"),
    ("critical", "严重"),
    ("high", "高危"),
    ("medium", "中危"),
    ("low", "低危"),
    ("info", "信息"),
    ("new", "新增"),
    ("changed", "变化"),
    ("file", "文件"),
];

pub fn level_text(level: Level, lang: Lang) -> &'static str {
    match (level, lang) {
        (_, Lang::En) => level.as_str(),
        (Level::Important, Lang::Zh) => "重要",
        (Level::General, Lang::Zh) => "一般",
    }
}

pub fn severity_text(s: Severity, lang: Lang) -> &'static str {
    match (s, lang) {
        (_, Lang::En) => s.as_str(),
        (Severity::Critical, Lang::Zh) => "严重",
        (Severity::High, Lang::Zh) => "高危",
        (Severity::Medium, Lang::Zh) => "中危",
        (Severity::Low, Lang::Zh) => "低危",
        (Severity::Info, Lang::Zh) => "信息",
    }
}

pub fn change_text(c: Option<Change>, lang: Lang) -> &'static str {
    match (c, lang) {
        (None, _) => "",
        (Some(c), Lang::En) => c.as_str(),
        (Some(Change::New), Lang::Zh) => "新增",
        (Some(Change::Changed), Lang::Zh) => "变化",
        (Some(Change::Persisting), Lang::Zh) => "持续",
        (Some(Change::Gone), Lang::Zh) => "消失",
        (Some(Change::NotCovered), Lang::Zh) => "未覆盖",
    }
}

/// A file name that is valid on Windows, macOS and Linux whatever the district is called: reserved
/// characters and control characters become `_`, reserved device names get a prefix, the length is bounded.
pub fn safe_file_stem(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_control() || "<>:\"/\\|?*".contains(c) { '_' } else { c }).collect();
    s = s.trim().trim_end_matches(['.', ' ']).to_string();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        s = "_".into();
    }
    let upper = s.split('.').next().unwrap_or("").to_ascii_uppercase();
    let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&upper.as_str())
        || (upper.len() == 4
            && (upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.as_bytes()[3].is_ascii_digit());
    if reserved {
        s.insert(0, '_');
    }
    // Most file systems allow 255 bytes; stay well below to leave room for a suffix and an extension.
    while s.len() > 120 {
        s.pop();
    }
    s
}

/// The file each export leaves in its folder, listing what it wrote there: the next export into the
/// folder removes the files of that list it does not write again, and never any other file.
pub const MANIFEST: &str = ".otscope-export.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    /// The manifest's format.
    otscope_export: u32,
    #[serde(default)]
    scan: Option<ScanId>,
    files: Vec<String>,
    /// Each district that got a file, with the number of findings in it.
    #[serde(default)]
    districts: BTreeMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The folder's manifest cannot be trusted to say which files are the previous export's.
    #[error("{}: {message}; nothing was removed: fix or delete this file to export into its folder", path.display())]
    Manifest { path: PathBuf, message: String },
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_path_buf(), source }
}

/// One recorded scan, as the exports need it.
pub struct ScanExport {
    pub scan: ScanId,
    pub findings: Vec<Finding>,
    pub sightings: Vec<Sighting>,
    /// The districts every target of which the scan probed (none unless it completed): a district of
    /// these without findings is one where nothing is exposed.
    pub covered_districts: BTreeSet<String>,
}

impl ScanExport {
    pub fn load(store: &dyn Store, scan: ScanId) -> Result<ScanExport, StoreError> {
        let covered_districts = covered_districts(&store.scan(scan)?);
        Ok(ScanExport { scan, findings: store.findings(scan)?, sightings: store.sightings()?, covered_districts })
    }
}

/// The districts every target of which the scan probed (none unless it completed).
pub fn covered_districts(record: &ScanRecord) -> BTreeSet<String> {
    match record.start.parameters.get("districts") {
        Some(serde_json::Value::Array(names)) if record.completed() => {
            names.iter().filter_map(|n| n.as_str().map(String::from)).collect()
        }
        _ => BTreeSet::new(),
    }
}

/// A district's file name in a folder where `used` counts the stems already taken: two districts whose
/// names differ only in characters [`safe_file_stem`] replaces must not share a file.
pub fn district_file_name(used: &mut HashMap<String, usize>, district: &str, extension: &str) -> String {
    let stem = safe_file_stem(district);
    let n = used.entry(stem.to_lowercase()).or_default();
    *n += 1;
    if *n == 1 {
        format!("{stem}.{extension}")
    } else {
        format!("{stem}-{n}.{extension}")
    }
}

/// What an export wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub findings: usize,
}

/// When each service was first and last seen, by (address, port, transport).
type Seen = HashMap<(std::net::IpAddr, u16, String), (String, String)>;

fn sightings_map(sightings: &[Sighting]) -> Seen {
    sightings
        .iter()
        .map(|s| ((s.ip, s.port, s.transport.clone()), (s.first_seen.clone(), s.last_seen.clone())))
        .collect()
}

/// An export folder: what the previous export wrote into it, and this export's writes, each to a file
/// beside its name and renamed into place, so a reader never sees half a file.
struct Folder<'a> {
    dir: &'a Path,
    previous: Manifest,
}

impl<'a> Folder<'a> {
    fn open(dir: &'a Path) -> Result<Folder<'a>, ExportError> {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let path = dir.join(MANIFEST);
        let previous = match std::fs::read(&path) {
            Ok(bytes) => {
                let bad = |message: String| ExportError::Manifest { path: path.clone(), message };
                let manifest: Manifest = serde_json::from_slice(&bytes)
                    .map_err(|e| bad(format!("not a manifest of an otscope export: {e}")))?;
                if let Some(name) = manifest.files.iter().find(|n| !is_plain_name(n)) {
                    return Err(bad(format!("lists {name:?}, which is not a file of this folder")));
                }
                manifest
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(at(&path)(e)),
        };
        Ok(Folder { dir, previous })
    }

    /// The districts the previous export had a file for that the scan covered: each gets a file that
    /// says zero when the scan found nothing there.
    fn zero_districts<'d>(&'d self, covered: &'d BTreeSet<String>) -> impl Iterator<Item = &'d str> {
        self.previous.districts.keys().filter(|d| covered.contains(*d)).map(String::as_str)
    }

    /// Writes the file `name` with `write`.
    fn write(
        &self,
        name: &str,
        write: impl FnOnce(&mut io::BufWriter<std::fs::File>) -> io::Result<()>,
    ) -> Result<PathBuf, ExportError> {
        let path = self.dir.join(name);
        let partial = self.dir.join(format!(".{name}.part"));
        let written = std::fs::File::create(&partial).and_then(|file| {
            let mut out = io::BufWriter::new(file);
            write(&mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&partial, &path)) {
            let _ = std::fs::remove_file(&partial);
            return Err(at(&path)(e));
        }
        Ok(path)
    }

    /// Records what is about to be written beside what the previous export wrote, so that an export
    /// that dies half-way leaves no file the next one would not know to remove.
    fn announce(&self, files: &[String]) -> Result<(), ExportError> {
        let mut all = self.previous.files.clone();
        all.extend(files.iter().cloned());
        all.sort();
        all.dedup();
        let manifest = Manifest { otscope_export: 1, files: all, ..Manifest::default() };
        self.write(MANIFEST, |out| write_json(out, &manifest)).map(drop)
    }

    /// Records what this export wrote and removes the previous export's files it did not write again.
    fn finish(self, manifest: Manifest) -> Result<(), ExportError> {
        self.write(MANIFEST, |out| write_json(out, &manifest))?;
        for stale in self.previous.files.iter().filter(|f| !manifest.files.contains(f)) {
            let path = self.dir.join(stale);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&path)(e)),
                _ => {}
            }
        }
        Ok(())
    }
}

fn write_json(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")
}

/// A name of a file directly in the folder: one normal path component, not the manifest itself.
fn is_plain_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None))
        && !name.contains(['/', '\\', '\0'])
        && name != MANIFEST
}

/// Writes one file per district (only its enterprises' findings) and a summary file into `dir`, in place
/// of the previous export's files there. A district the previous export had a file for, that the scan
/// covered and found nothing in, gets a file that says zero (a header only, a summary row of zeros).
pub fn by_district(data: &ScanExport, dir: &Path, format: Format, lang: Lang) -> Result<Written, ExportError> {
    let folder = Folder::open(dir)?;
    let mut groups: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &data.findings {
        groups.entry(f.district.as_str()).or_default().push(f);
    }
    for district in folder.zero_districts(&data.covered_districts) {
        groups.entry(district).or_default();
    }
    let seen = sightings_map(&data.sightings);
    let extension = format.extension();
    let mut used: HashMap<String, usize> = HashMap::new();
    let names: Vec<String> = groups.keys().map(|district| district_file_name(&mut used, district, extension)).collect();
    let summary = format!("summary.{}", if format == Format::Jsonl { "json" } else { extension });
    let mut files = names.clone();
    files.push(summary.clone());
    folder.announce(&files)?;
    let mut written = Written::default();
    let mut summary_rows = Vec::new();
    for ((district, rows), name) in groups.iter().zip(&names) {
        let path = folder.write(name, |out| match format {
            Format::Csv => write_csv(out, rows, &seen, lang),
            Format::Jsonl => write_jsonl(out, rows),
            Format::Xlsx => xlsx::district_workbook(out, district, rows, &seen, lang),
            Format::Stix => unreachable!("STIX bundles are written by export::stix::write"),
        })?;
        written.findings += rows.len();
        written.files.push(path);
        summary_rows.push((district.to_string(), rows.clone(), name.clone()));
    }
    let path = folder.write(&summary, |out| match format {
        Format::Csv => write_summary_csv(out, &summary_rows, lang),
        Format::Xlsx => xlsx::summary_workbook(out, &summary_rows, lang),
        Format::Jsonl => {
            let doc: Vec<serde_json::Value> =
                summary_rows.iter().map(|(d, rows, file)| summary_json(d, rows, file)).collect();
            write_json(out, &doc)
        }
        Format::Stix => unreachable!("STIX bundles are written by export::stix::write"),
    })?;
    written.files.push(path);
    let districts = summary_rows.iter().map(|(d, rows, _)| (d.clone(), rows.len())).collect();
    folder.finish(Manifest { otscope_export: 1, scan: Some(data.scan), files, districts })?;
    Ok(written)
}

/// Writes every finding into one file, in place of the previous export's files in `dir`:
/// `findings.csv`, `findings.jsonl`, or `findings.xlsx` (a sheet per district and a summary sheet).
pub fn single(data: &ScanExport, dir: &Path, format: Format, lang: Lang) -> Result<Written, ExportError> {
    let folder = Folder::open(dir)?;
    let rows: Vec<&Finding> = data.findings.iter().collect();
    let name = format!("findings.{}", format.extension());
    let files = vec![name.clone()];
    folder.announce(&files)?;
    let seen = sightings_map(&data.sightings);
    let path = folder.write(&name, |out| match format {
        Format::Csv => write_csv(out, &rows, &seen, lang),
        Format::Jsonl => write_jsonl(out, &rows),
        Format::Xlsx => xlsx::center_workbook(out, &rows, &seen, lang),
        Format::Stix => unreachable!("STIX bundles are written by export::stix::write"),
    })?;
    folder.finish(Manifest { otscope_export: 1, scan: Some(data.scan), files, districts: BTreeMap::new() })?;
    Ok(Written { files: vec![path], findings: rows.len() })
}

fn header(columns: &[(&str, &str)], lang: Lang) -> Vec<String> {
    columns.iter().map(|(en, zh)| if lang == Lang::Zh { zh.to_string() } else { en.to_string() }).collect()
}

/// A finding's cells as people read them, in `columns` order: values in the export's language where they
/// are words of otscope's own (level, severity, change, whether the protocol is industrial).
fn localised_cells(f: &Finding, columns: &[Column], lang: Lang) -> Vec<String> {
    let values: HashMap<&str, serde_json::Value> = COLUMNS.iter().map(|c| c.key).zip(values(f)).collect();
    columns
        .iter()
        .map(|column| match (column.key, lang) {
            ("level", Lang::Zh) => level_text(f.level, lang).to_string(),
            ("severity", Lang::Zh) => severity_text(f.severity, lang).to_string(),
            ("change", Lang::Zh) => change_text(f.change, lang).to_string(),
            ("ics", Lang::Zh) => if f.ics { "是" } else { "否" }.to_string(),
            (key, _) => cell_text(&values[key]),
        })
        .collect()
}

fn write_jsonl(out: impl Write + Send, rows: &[&Finding]) -> io::Result<()> {
    let mut w = JsonlWriter::new(out);
    for f in rows {
        w.write(f)?;
    }
    w.finish()
}

/// The header of the district files: the finding's columns in district order, then the sightings.
fn district_header(lang: Lang) -> Vec<String> {
    let names: Vec<(&str, &str)> = district_columns().iter().map(|c| (c.key, c.zh)).chain(SIGHTING_COLUMNS).collect();
    header(&names, lang)
}

/// A finding's row of the district files, in [`district_header`] order.
fn district_row(f: &Finding, columns: &[Column], seen: &Seen, lang: Lang) -> Vec<String> {
    let (first, last) = seen.get(&(f.ip, f.port, f.transport.as_str().to_string())).cloned().unwrap_or_default();
    let mut cells = localised_cells(f, columns, lang);
    cells.extend([first, last]);
    cells
}

fn write_csv(out: impl Write, rows: &[&Finding], seen: &Seen, lang: Lang) -> io::Result<()> {
    let columns = district_columns();
    let mut table = CsvTable::new(out, district_header(lang))?;
    for f in rows {
        table.row(district_row(f, &columns, seen, lang))?;
    }
    table.flush()
}

/// The counts of a district's findings, in the order of [`SUMMARY_COLUMNS`] between the district and
/// the file: enterprises, findings, ICS findings, each severity from critical to info, new, changed.
fn summary_counts(rows: &[&Finding]) -> [usize; 10] {
    let mut enterprises: Vec<&str> = rows.iter().map(|f| f.enterprise_id.as_str()).collect();
    enterprises.sort();
    enterprises.dedup();
    let mut counts = [0usize; 10];
    counts[0] = enterprises.len();
    counts[1] = rows.len();
    counts[2] = rows.iter().filter(|f| f.ics).count();
    for f in rows {
        counts[3 + 4 - f.severity as usize] += 1;
    }
    counts[8] = rows.iter().filter(|f| f.change == Some(Change::New)).count();
    counts[9] = rows.iter().filter(|f| f.change == Some(Change::Changed)).count();
    counts
}

fn write_summary_csv(out: impl Write, rows: &[(String, Vec<&Finding>, String)], lang: Lang) -> io::Result<()> {
    let mut table = CsvTable::new(out, header(&SUMMARY_COLUMNS, lang))?;
    for (district, findings, file) in rows {
        let mut record = vec![district.clone()];
        record.extend(summary_counts(findings).iter().map(|n| n.to_string()));
        record.push(file.clone());
        table.row(record)?;
    }
    table.flush()
}

fn summary_json(district: &str, rows: &[&Finding], file: &str) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    doc.insert("district".into(), district.into());
    for ((key, _), n) in SUMMARY_COLUMNS[1..11].iter().zip(summary_counts(rows)) {
        doc.insert(key.to_string(), n.into());
    }
    doc.insert("file".into(), file.into());
    serde_json::Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_everywhere() {
        assert_eq!(safe_file_stem("浦东新区"), "浦东新区");
        assert_eq!(safe_file_stem("a/b\\c:d*e?f\"g<h>i|j"), "a_b_c_d_e_f_g_h_i_j");
        assert_eq!(safe_file_stem("CON"), "_CON");
        assert_eq!(safe_file_stem("com1.x"), "_com1.x");
        assert_eq!(safe_file_stem("  ..  "), "_");
        assert_eq!(safe_file_stem("name. "), "name");
        assert_eq!(safe_file_stem("tab\there"), "tab_here");
        assert!(safe_file_stem(&"区".repeat(100)).len() <= 120);
        assert_eq!(safe_file_stem(""), "_");
    }
}
