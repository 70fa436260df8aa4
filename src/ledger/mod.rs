//! The asset ledger (台账): the registered protected objects, read from a CSV file or from a sheet of
//! a workbook, and validated with every problem named where it is written: `file:line: field:
//! message` in a CSV file, `file:sheet!F12: field: message` in a workbook.
//!
//! Columns ([`FIELDS`] has their Chinese names): `enterprise_id, enterprise, district, sector, level,
//! targets, contact`. `level` is `important`, `general`, or `exclude` for rows listing addresses that
//! must never be probed (重要, 一般, 排除).

mod fields;
mod table;
mod target_spec;

pub use fields::{
    Field, RowLevel, CONTACT, DISTRICT, ENTERPRISE, ENTERPRISE_ID, FIELDS, LEVEL, LEVEL_WORDS, SECTOR, TARGETS,
};
pub use table::{read_bounded, Encoding, LedgerOptions};
pub(crate) use target_spec::to_u128;
pub use target_spec::TargetSpec;

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use table::{Grid, RawRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Important,
    General,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Important => "important",
            Level::General => "general",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match fields::row_level(s) {
            Some(RowLevel::Object(level)) => Ok(level),
            _ => Err(format!("unknown level {:?}: expected important or general (重要, 一般)", s.trim())),
        }
    }
}

/// A registered protected object (one ledger row that is not an exclusion).
#[derive(Debug, Clone)]
pub struct Enterprise {
    pub id: String,
    pub name: String,
    pub district: String,
    pub sector: String,
    pub level: Level,
    pub contact: String,
    pub targets: Vec<TargetSpec>,
    /// Its line in a CSV file, or its row in the sheet ([`Ledger::place`] says where a field of it is).
    pub row: u64,
}

/// An address set that must never be probed, with where it was written.
#[derive(Debug, Clone)]
pub struct Exclusion {
    pub spec: TargetSpec,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub place: Place,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.file.display(), self.place)
    }
}

/// Where something is written in an input file. Displayed with its leading `:` (nothing for the
/// file as a whole), to follow the file's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// The file as a whole.
    File,
    /// A line of a text file (1-based).
    Line(u64),
    /// A cell of a workbook: its sheet, its row (1-based) and its column (0 is A).
    Cell { sheet: String, row: u64, column: u32 },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File => Ok(()),
            Place::Line(n) => write!(f, ":{n}"),
            Place::Cell { sheet, row, column } => {
                write!(f, ":{}!{}{row}", sheet_reference(sheet), column_letters(*column))
            }
        }
    }
}

/// A sheet's name as a cell reference writes it: quoted when it holds anything but letters, digits
/// and `_` (as Excel does: `'My sheet'!A1`).
fn sheet_reference(name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("'{}'", name.replace('\'', "''"))
    }
}

/// A column's letters: 0 is A, 25 is Z, 26 is AA.
pub fn column_letters(column: u32) -> String {
    let mut n = column + 1;
    let mut letters = Vec::new();
    while n > 0 {
        letters.push(b'A' + ((n - 1) % 26) as u8);
        n = (n - 1) / 26;
    }
    letters.iter().rev().map(|&b| b as char).collect()
}

#[derive(Debug, Clone)]
pub struct Ledger {
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, as the history records it.
    pub sha256: String,
    pub enterprises: Vec<Enterprise>,
    pub exclusions: Vec<Exclusion>,
    /// SHA-256 of the exclusion file added to the ledger, if any (of each file's hash in turn when there
    /// are several), so the history can tell when the exclusions were edited.
    pub exclusions_sha256: Option<String>,
    layout: Layout,
}

/// One problem in an input file, printed as `file:line: field: message` (or `file:sheet!A12: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub file: PathBuf,
    pub place: Place,
    pub field: String,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}: {}: {}", self.file.display(), self.place, self.field, self.message)
    }
}

/// Every problem found in one pass, so a ledger editor fixes them all at once.
#[derive(Debug, Clone, thiserror::Error)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Where the ledger's columns are and what its header calls them.
#[derive(Debug, Clone)]
struct Layout {
    path: PathBuf,
    grid: Grid,
    /// For each of [`FIELDS`], in order: the index of its cell in a row, and its header as written.
    columns: Vec<(usize, String)>,
    /// The header's cells up to its last name: a CSV record with fewer fields, or with a value past
    /// them, is malformed.
    width: usize,
}

impl Layout {
    fn column(&self, field: &Field) -> &(usize, String) {
        &self.columns[FIELDS.iter().position(|f| f == field).expect("every field has a column")]
    }

    fn place(&self, row: u64, field: &Field) -> Place {
        self.grid.place(row, self.column(field).0)
    }

    fn error(&self, row: u64, field: &Field, message: String) -> InputError {
        InputError {
            file: self.path.clone(),
            place: self.place(row, field),
            field: self.column(field).1.clone(),
            message,
        }
    }

    fn get<'r>(&self, row: &'r RawRow, field: &Field) -> &'r str {
        row.cells.get(self.column(field).0).map_or("", String::as_str)
    }
}

/// The targets one object row registers, for the check that no address belongs to two objects.
struct Claim {
    row: u64,
    id: String,
    targets: Vec<TargetSpec>,
}

impl Ledger {
    /// Reads and validates a ledger file; every problem is reported, none is skipped silently.
    pub fn load(options: &LedgerOptions) -> Result<Ledger, InputErrors> {
        let bytes = read_bounded(&options.path, crate::input::LEDGER_LIMIT).map_err(|e| InputErrors(vec![e]))?;
        Self::parse(options, &bytes)
    }

    /// Validates a ledger file's bytes (a workbook or CSV text, told apart by the bytes themselves).
    pub fn parse(options: &LedgerOptions, bytes: &[u8]) -> Result<Ledger, InputErrors> {
        let path = options.path.as_path();
        let table = table::read_table(options, bytes).map_err(|e| InputErrors(vec![e]))?;
        let at = |place: Place, field: &str, message: String| InputError {
            file: path.to_path_buf(),
            place,
            field: field.to_string(),
            message,
        };
        let mut errors: Vec<InputError> =
            table.broken.iter().map(|(line, message)| at(Place::Line(*line), "row", message.clone())).collect();
        let mut layout: Option<Layout> = None;
        let mut enterprises: Vec<Enterprise> = Vec::new();
        let mut exclusions = Vec::new();
        let mut claims: Vec<Claim> = Vec::new();
        let mut first_row_of_id: HashMap<String, u64> = HashMap::new();

        for row in &table.rows {
            let blank = row.cells.iter().all(|c| c.is_empty()) && row.unreadable.is_empty();
            // Comments are recognised here rather than by the CSV reader, which would miscount line numbers.
            if blank || row.cells.first().is_some_and(|c| c.starts_with('#')) {
                continue;
            }
            let Some(layout) = &layout else {
                match header_layout(path, &table.grid, row) {
                    Ok(l) => layout = Some(l),
                    Err(e) => {
                        errors.extend(e);
                        return Err(sorted(errors));
                    }
                }
                continue;
            };
            if let Some(e) = shape_error(layout, row) {
                errors.push(e);
                continue;
            }
            let n = row.number;
            let mut row_errors = Vec::new();
            for (index, why) in &row.unreadable {
                let field = layout.columns.iter().find(|(i, _)| i == index).map_or("row", |(_, name)| name.as_str());
                row_errors.push(at(table.grid.place(n, *index), field, why.clone()));
            }
            if !row_errors.is_empty() {
                errors.extend(row_errors);
                continue;
            }
            let get = |field: &Field| layout.get(row, field).to_string();
            let targets = parse_targets(&get(&TARGETS), &mut |msg| row_errors.push(layout.error(n, &TARGETS, msg)));
            let targets = distinct_in_row(targets, &mut |msg| row_errors.push(layout.error(n, &TARGETS, msg)));
            for field in [ENTERPRISE_ID, ENTERPRISE, DISTRICT, SECTOR, CONTACT] {
                // Line breaks (Alt+Enter in an Excel cell) and tabs are text; other control characters
                // (a NUL, an escape) are debris that no name holds.
                if let Some(c) = get(&field).chars().find(|c| c.is_control() && !['\n', '\r', '\t'].contains(c)) {
                    row_errors.push(layout.error(
                        n,
                        &field,
                        format!("contains the control character U+{:04X}: retype the cell", c as u32),
                    ));
                }
            }

            let level_text = get(&LEVEL);
            let level = match fields::row_level(&level_text) {
                Some(RowLevel::Exclude) => {
                    errors.extend(row_errors);
                    exclusions.extend(targets.into_iter().map(|spec| Exclusion {
                        spec,
                        origin: Origin { file: path.to_path_buf(), place: layout.place(n, &TARGETS) },
                    }));
                    continue;
                }
                Some(RowLevel::Object(level)) => Some(level),
                None => {
                    row_errors.push(layout.error(
                        n,
                        &LEVEL,
                        format!(
                            "unknown level {level_text:?}: expected important, general or exclude (重要, 一般, 排除)"
                        ),
                    ));
                    None
                }
            };
            let id = get(&ENTERPRISE_ID);
            if id.is_empty() {
                row_errors.push(layout.error(n, &ENTERPRISE_ID, "empty".into()));
            } else if let Some(first) = first_row_of_id.get(&id) {
                row_errors.push(layout.error(
                    n,
                    &ENTERPRISE_ID,
                    format!("duplicate {id:?}: already used on {}", layout.grid.row_name(*first)),
                ));
            } else {
                first_row_of_id.insert(id.clone(), n);
            }
            for field in [ENTERPRISE, DISTRICT] {
                if get(&field).is_empty() {
                    row_errors.push(layout.error(n, &field, "empty".into()));
                }
            }
            claims.push(Claim { row: n, id: id.clone(), targets: targets.clone() });
            let ok = row_errors.is_empty();
            errors.extend(row_errors);
            if let (true, Some(level)) = (ok, level) {
                enterprises.push(Enterprise {
                    id,
                    name: get(&ENTERPRISE),
                    district: get(&DISTRICT),
                    sector: get(&SECTOR),
                    level,
                    contact: get(&CONTACT),
                    targets,
                    row: n,
                });
            }
        }
        let Some(layout) = layout else {
            let names = FIELDS.iter().map(|f| f.key).collect::<Vec<_>>().join(",");
            errors.push(at(table.grid.place(1, 0), "header", format!("no header row: expected {names}")));
            return Err(sorted(errors));
        };
        errors.extend(overlap_errors(&layout, &claims));
        if errors.is_empty() {
            let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes));
            Ok(Ledger { path: path.to_path_buf(), sha256, enterprises, exclusions, exclusions_sha256: None, layout })
        } else {
            Err(sorted(errors))
        }
    }

    /// The sheet the ledger was read from; `None` for a CSV file.
    pub fn sheet(&self) -> Option<&str> {
        self.layout.grid.sheet.as_deref()
    }

    /// Where `field` of the row numbered `row` is written.
    pub fn place(&self, row: u64, field: &Field) -> Place {
        self.layout.place(row, field)
    }

    /// A problem with `field` of the row numbered `row`, named as the file's header names the field.
    pub fn error(&self, row: u64, field: &Field, message: String) -> InputError {
        self.layout.error(row, field, message)
    }

    /// The row numbered `row` in words: `line 12` in a CSV file, `row 12` in a sheet.
    pub fn row_name(&self, row: u64) -> String {
        self.layout.grid.row_name(row)
    }

    /// Adds the exclusions of a `--exclude FILE`: one or more `;`-separated targets per line, `#` comments.
    pub fn add_exclusion_file(&mut self, path: &Path) -> Result<(), InputErrors> {
        let bytes = read_bounded(path, crate::input::EXCLUSIONS_LIMIT).map_err(|e| InputErrors(vec![e]))?;
        let digest = |b: &[u8]| hex::encode(ring::digest::digest(&ring::digest::SHA256, b));
        let file = digest(&bytes);
        self.exclusions_sha256 = Some(match self.exclusions_sha256.take() {
            None => file,
            Some(before) => digest(format!("{before}{file}").as_bytes()),
        });
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count();
            InputErrors(vec![InputError {
                file: path.to_path_buf(),
                place: Place::Line(line as u64),
                field: "exclude".into(),
                message: "not valid UTF-8".into(),
            }])
        })?;
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i as u64 + 1;
            let content = raw.split('#').next().unwrap_or("").trim().trim_start_matches('\u{feff}');
            if content.is_empty() {
                continue;
            }
            let place = Place::Line(line);
            let specs = parse_targets(content, &mut |message| {
                errors.push(InputError {
                    file: path.to_path_buf(),
                    place: place.clone(),
                    field: "exclude".into(),
                    message,
                })
            });
            self.exclusions.extend(
                specs
                    .into_iter()
                    .map(|spec| Exclusion { spec, origin: Origin { file: path.to_path_buf(), place: place.clone() } }),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(InputErrors(errors))
        }
    }

    pub fn summary(&self) -> LedgerSummary {
        let mut s = LedgerSummary::default();
        for e in &self.enterprises {
            s.enterprises += 1;
            *s.enterprises_by_level.entry(e.level.as_str()).or_default() += 1;
            s.districts.insert(e.district.clone());
            let count: u128 =
                e.targets.iter().filter_map(|t| t.interval()).map(|(a, b)| to_u128(b) - to_u128(a) + 1).sum();
            *s.addresses_by_level.entry(e.level.as_str()).or_default() += count;
            s.hostnames += e.targets.iter().filter(|t| matches!(t, TargetSpec::Hostname(_))).count();
        }
        s.exclusions = self.exclusions.len();
        s
    }
}

fn sorted(mut errors: Vec<InputError>) -> InputErrors {
    errors.sort_by(|a, b| a.place.cmp(&b.place));
    InputErrors(errors)
}

#[derive(Debug, Default, Serialize)]
pub struct LedgerSummary {
    pub enterprises: usize,
    pub enterprises_by_level: BTreeMap<&'static str, usize>,
    pub districts: BTreeSet<String>,
    /// Literal addresses registered per level, before exclusions and before resolving hostnames.
    pub addresses_by_level: BTreeMap<&'static str, u128>,
    pub hostnames: usize,
    pub exclusions: usize,
}

impl fmt::Display for LedgerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "enterprises: {}", self.enterprises)?;
        for (level, n) in &self.enterprises_by_level {
            let addrs = self.addresses_by_level.get(level).copied().unwrap_or(0);
            writeln!(f, "  {level}: {n} enterprises, {addrs} addresses")?;
        }
        writeln!(
            f,
            "districts: {} ({})",
            self.districts.len(),
            self.districts.iter().cloned().collect::<Vec<_>>().join(", ")
        )?;
        writeln!(f, "hostnames: {}", self.hostnames)?;
        write!(f, "exclusion entries: {}", self.exclusions)
    }
}

/// The columns a header row names: each field once, every cell a known name or empty.
fn header_layout(path: &Path, grid: &Grid, row: &RawRow) -> Result<Layout, Vec<InputError>> {
    let error = |index: usize, message: String| InputError {
        file: path.to_path_buf(),
        place: grid.place(row.number, index),
        field: "header".into(),
        message,
    };
    let mut errors = Vec::new();
    let mut columns: Vec<Option<(usize, String)>> = vec![None; FIELDS.len()];
    for (index, why) in &row.unreadable {
        errors.push(error(*index, why.clone()));
    }
    for (index, name) in row.cells.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        match fields::field_named(name) {
            None => errors
                .push(error(index, format!("unknown column {name:?}: the columns are {}", fields::accepted_names()))),
            Some(field) => {
                let slot = &mut columns[FIELDS.iter().position(|f| *f == field).expect("a field")];
                match slot {
                    Some((_, first)) => {
                        errors.push(error(index, format!("column {name:?} is {} again (after {first:?})", field.key)))
                    }
                    None => *slot = Some((index, name.clone())),
                }
            }
        }
    }
    let missing: Vec<String> = FIELDS
        .iter()
        .zip(&columns)
        .filter(|(_, c)| c.is_none())
        .map(|(f, _)| format!("{} ({})", f.key, f.zh[0]))
        .collect();
    if !missing.is_empty() {
        let english = FIELDS.iter().map(|f| f.key).collect::<Vec<_>>().join(",");
        let chinese = FIELDS.iter().map(|f| f.zh[0]).collect::<Vec<_>>().join(",");
        errors.push(error(0, format!("missing column(s) {}: expected {english} (or {chinese})", missing.join(", "))));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let width = row.cells.iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
    Ok(Layout {
        path: path.to_path_buf(),
        grid: grid.clone(),
        columns: columns.into_iter().map(|c| c.expect("no column is missing")).collect(),
        width,
    })
}

/// A row whose cells do not fit the header: a CSV record with too few or too many fields (a `,`
/// inside a targets list splits it), or a value in a sheet column that has no header.
fn shape_error(layout: &Layout, row: &RawRow) -> Option<InputError> {
    let used = row.cells.iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
    if layout.grid.sheet.is_none() && (row.cells.len() < layout.width || used > layout.width) {
        let found = if row.cells.len() < layout.width { row.cells.len() } else { used };
        return Some(InputError {
            file: layout.path.clone(),
            place: Place::Line(row.number),
            field: "row".into(),
            message: format!("expected {} fields, found {found} (a ';' list must not contain ',')", layout.width),
        });
    }
    let headed = |i: usize| layout.columns.iter().any(|(c, _)| *c == i);
    let stray = row.cells.iter().enumerate().position(|(i, c)| !c.is_empty() && !headed(i))?;
    Some(InputError {
        file: layout.path.clone(),
        place: layout.grid.place(row.number, stray),
        field: "row".into(),
        message: "a value in a column without a header: give the column a header or empty it".into(),
    })
}

/// The entries of a targets cell: separated by `;` (or `；` as a Chinese input method types it), or
/// on lines of their own within the cell.
fn parse_targets(text: &str, report: &mut dyn FnMut(String)) -> Vec<TargetSpec> {
    if text.trim().is_empty() {
        report("empty: list at least one address, block, range or hostname".into());
        return Vec::new();
    }
    let mut specs = Vec::new();
    let tokens: Vec<&str> = text.split([';', '；', '\n', '\r']).collect();
    for (i, token) in tokens.iter().enumerate() {
        // A trailing ';' is a common spreadsheet habit, and so is a line break in a cell: not mistakes.
        let separator_only = token.trim().is_empty() && i > 0;
        let line_break = text.contains(['\n', '\r']);
        if separator_only && (i == tokens.len() - 1 || line_break) {
            continue;
        }
        match TargetSpec::parse(token) {
            Ok(spec) => specs.push(spec),
            Err(msg) => report(msg),
        }
    }
    specs
}

/// One row's targets without repeats: an entry that repeats or overlaps an earlier one of the same
/// row is reported as such and left out (so it is not taken for another enterprise's address).
fn distinct_in_row(specs: Vec<TargetSpec>, report: &mut dyn FnMut(String)) -> Vec<TargetSpec> {
    let mut repeated: BTreeMap<usize, String> = BTreeMap::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut spans: Vec<(bool, u128, u128, usize)> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        match spec.interval() {
            Some((a, b)) => spans.push((a.is_ipv4(), to_u128(a), to_u128(b), i)),
            None => {
                if !names.insert(spec.to_string().to_ascii_lowercase()) {
                    repeated.insert(i, format!("{spec} is listed twice in this row"));
                }
            }
        }
    }
    // Sweep in address order, keeping the entry that reaches furthest; an entry starting inside it overlaps it.
    spans.sort();
    let mut reach: Option<(bool, u128, usize)> = None;
    for &(v4, start, end, i) in &spans {
        if let Some((r_v4, r_end, r)) = reach {
            if r_v4 == v4 && start <= r_end {
                // Name the entry written later as the repeat.
                let (earlier, later) = if r < i { (r, i) } else { (i, r) };
                let message = if specs[earlier] == specs[later] {
                    format!("{} is listed twice in this row", specs[later])
                } else {
                    format!("{} overlaps {}, also in this row: list each address once", specs[later], specs[earlier])
                };
                repeated.entry(later).or_insert(message);
                if r_end >= end || later == i {
                    continue;
                }
            }
        }
        reach = Some((v4, end, i));
    }
    for message in repeated.values() {
        report(message.clone());
    }
    specs.into_iter().enumerate().filter(|(i, _)| !repeated.contains_key(i)).map(|(_, s)| s).collect()
}

/// Two enterprises registering the same address makes attribution ambiguous: refuse it.
fn overlap_errors(layout: &Layout, claims: &[Claim]) -> Vec<InputError> {
    let mut spans: Vec<(u128, u128, bool, usize, &TargetSpec)> = Vec::new();
    for (i, claim) in claims.iter().enumerate() {
        for t in &claim.targets {
            if let Some((a, b)) = t.interval() {
                spans.push((to_u128(a), to_u128(b), a.is_ipv4(), i, t));
            }
        }
    }
    spans.sort_by_key(|s| (s.2, s.0, s.1));
    let mut errors = Vec::new();
    // Sweep: keep the span reaching furthest so far; any span starting inside it with another owner overlaps.
    let mut reach: Option<(u128, bool, usize, &TargetSpec)> = None;
    for &(start, end, v4, owner, spec) in &spans {
        if let Some((r_end, r_v4, r_owner, r_spec)) = reach {
            if r_v4 == v4 && start <= r_end && r_owner != owner {
                let (first, second) = (&claims[r_owner], &claims[owner]);
                errors.push(layout.error(
                    second.row,
                    &TARGETS,
                    format!(
                        "{spec} overlaps {r_spec}, registered by enterprise {:?} on {}: an address may belong to one enterprise only",
                        first.id,
                        layout.grid.row_name(first.row)
                    ),
                ));
            }
            if r_v4 == v4 && r_end >= end {
                continue;
            }
        }
        reach = Some((end, v4, owner, spec));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Ledger, InputErrors> {
        Ledger::parse(&LedgerOptions::from(Path::new("t.csv")), text.as_bytes())
    }

    fn messages(e: InputErrors) -> Vec<String> {
        e.0.iter().map(|e| e.to_string()).collect()
    }

    const HEADER: &str = "enterprise_id,enterprise,district,sector,level,targets,contact\n";

    #[test]
    fn reads_rows_comments_and_exclusions() {
        let l = parse(&format!(
            "\u{feff}{HEADER}# a comment\nE1,甲水务,浦东新区,water,important,127.0.0.1;127.0.1.0/24,张三\nX,,,,exclude,127.0.1.7,\n"
        ))
        .unwrap();
        assert_eq!(l.enterprises.len(), 1);
        assert_eq!(l.enterprises[0].name, "甲水务");
        assert_eq!(l.enterprises[0].row, 3);
        assert_eq!(l.exclusions.len(), 1);
        assert_eq!(l.exclusions[0].origin.to_string(), "t.csv:4");
        assert_eq!(l.row_name(3), "line 3");
        assert_eq!(l.sheet(), None);
    }

    #[test]
    fn reports_every_problem_with_file_line_and_field() {
        let e = parse(&format!(
            "{HEADER}E1,a,d,s,important,127.0.0.0/33,c\nE1,b,d,s,urgent,127.0.2.1,c\nE3,c,d,s,general,,c\nE4,e,d,s,general,127.0.2.0/30,c\n"
        ))
        .unwrap_err();
        let lines = messages(e);
        assert!(
            lines.contains(
                &"t.csv:2: targets: \"127.0.0.0/33\" is not a valid CIDR block: prefix /33 is longer than /32"
                    .to_string()
            ),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l.starts_with("t.csv:3: level: unknown level \"urgent\"")), "{lines:#?}");
        assert!(
            lines.iter().any(|l| l.starts_with("t.csv:3: enterprise_id: duplicate \"E1\": already used on line 2")),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l.starts_with("t.csv:4: targets: empty")), "{lines:#?}");
        // A row with other problems is still checked against the other rows' addresses.
        assert!(
            lines.iter().any(|l| l.starts_with(
                "t.csv:3: targets: 127.0.2.1 overlaps 127.0.2.0/30, registered by enterprise \"E4\" on line 5"
            )),
            "{lines:#?}"
        );
        assert_eq!(lines.len(), 5, "{lines:#?}");
    }

    #[test]
    fn an_address_registered_twice_is_an_error_but_exclusions_may_overlap() {
        let e = parse(&format!(
            "{HEADER}E1,a,d,s,important,127.0.0.0/24,c\nE2,b,d,s,general,127.0.0.200-127.0.1.4,c\nX,,,,exclude,127.0.0.0/16,\n"
        ))
        .unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(e.0[0].to_string().starts_with("t.csv:3: targets: 127.0.0.200-127.0.1.4 overlaps 127.0.0.0/24, registered by enterprise \"E1\" on line 2"), "{}", e.0[0]);
    }

    #[test]
    fn repeats_within_a_row_are_named_as_such_and_not_as_another_enterprise() {
        let e = parse(&format!(
            "{HEADER}A,a,d,s,important,127.1.2.3;127.1.2.3,c\nB,b,d,s,general,127.1.2.5;127.1.2.4/30;PLC.example;plc.example,c\nC,c,d,s,general,127.1.2.3,c\n"
        ))
        .unwrap_err();
        assert_eq!(
            messages(e),
            [
                "t.csv:2: targets: 127.1.2.3 is listed twice in this row",
                "t.csv:3: targets: 127.1.2.4/30 overlaps 127.1.2.5, also in this row: list each address once",
                "t.csv:3: targets: plc.example is listed twice in this row",
                "t.csv:4: targets: 127.1.2.3 overlaps 127.1.2.3, registered by enterprise \"A\" on line 2: an address may belong to one enterprise only",
            ]
        );
        // Once listed once, the row is valid and counts its address once.
        let l = parse(&format!("{HEADER}A,a,d,s,important,127.1.2.3,c\n")).unwrap();
        assert_eq!(l.summary().addresses_by_level["important"], 1);
    }

    #[test]
    fn chinese_headers_levels_and_separators_are_read() {
        let l = parse(
            "企业编号,企业名称,区县,行业,重要程度,IP地址,联系人\nE1,甲,浦东新区,水务,重要,\"127.0.0.1；127.0.0.2\n127.0.0.3;\",\"张三\n李四\"\nX,,,,排除,127.0.0.2,\nE2,乙,闵行区,能源,一般,127.0.1.1,\n",
        )
        .unwrap();
        assert_eq!(l.enterprises.len(), 2);
        assert_eq!(l.enterprises[0].level, Level::Important);
        assert_eq!(l.enterprises[0].targets.len(), 3);
        assert_eq!(l.enterprises[0].contact, "张三\n李四");
        // The first record takes lines 2 to 4: its targets and its contact each hold a line break.
        assert_eq!((l.enterprises[1].level, l.enterprises[1].row), (Level::General, 6));
        assert_eq!(l.exclusions[0].origin.to_string(), "t.csv:5");
        let e = parse("企业编号,企业名称,所属区县,行业,重要程度,IP/域名,联系人\nE1,甲,浦东新区,水务,紧急,127.0.0.1,\n")
            .unwrap_err();
        assert_eq!(
            messages(e),
            ["t.csv:2: 重要程度: unknown level \"紧急\": expected important, general or exclude (重要, 一般, 排除)"]
        );
        assert_eq!("重要".parse::<Level>(), Ok(Level::Important));
    }

    #[test]
    fn control_characters_are_refused_but_line_breaks_and_tabs_kept() {
        let e = parse(&format!(
            "{HEADER}E\u{0}1,a,d,s,general,127.0.0.1,\"x\ny\"\nE2,\"b\tc\",\"d\ne\",s\u{1b}[1m,general,127.0.0.2,\n"
        ))
        .unwrap_err();
        assert_eq!(
            messages(e),
            [
                "t.csv:2: enterprise_id: contains the control character U+0000: retype the cell",
                "t.csv:4: sector: contains the control character U+001B: retype the cell",
            ]
        );
    }

    #[test]
    fn header_problems_are_named() {
        let e = parse("enterprise_id,enterprise,district,level,targets,contact\n").unwrap_err();
        assert_eq!(e.0[0].to_string(), "t.csv:1: header: missing column(s) sector (行业): expected enterprise_id,enterprise,district,sector,level,targets,contact (or 企业编号,企业名称,所属区县,行业,重要程度,IP地址/域名,联系人)");
        let e = parse("enterprise_id,enterprise,district,sector,level,targets,contact,序号\n").unwrap_err();
        assert!(
            e.0[0]
                .to_string()
                .starts_with("t.csv:1: header: unknown column \"序号\": the columns are enterprise_id | 企业编号, "),
            "{}",
            e.0[0]
        );
        let e = parse("enterprise_id,enterprise,district,区县,sector,level,targets,contact\n").unwrap_err();
        assert_eq!(e.0[0].to_string(), "t.csv:1: header: column \"区县\" is district again (after \"district\")");
        let e = parse(&format!("{HEADER}E1,a,d,s,general,127.0.0.1\n")).unwrap_err();
        assert!(e.0[0].to_string().starts_with("t.csv:2: row: expected 7 fields, found 6"));
        let e = parse(&format!("{HEADER}E1,a,d,s,general,127.0.0.1,127.0.0.2,c\n")).unwrap_err();
        assert!(e.0[0].to_string().starts_with("t.csv:2: row: expected 7 fields, found 8"));
        // Excel pads every row with empty fields when one row is longer: harmless.
        assert!(parse(
            "enterprise_id,enterprise,district,sector,level,targets,contact,,\nE1,a,d,s,general,127.0.0.1,c,,\n"
        )
        .is_ok());
    }

    #[test]
    fn places_in_sheets_name_the_cell() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(16383), "XFD");
        let cell = |sheet: &str| Place::Cell { sheet: sheet.into(), row: 12, column: 5 }.to_string();
        assert_eq!(cell("台账"), ":台账!F12");
        assert_eq!(cell("Sheet1"), ":Sheet1!F12");
        assert_eq!(cell("my sheet"), ":'my sheet'!F12");
        assert_eq!(cell("O'Brien"), ":'O''Brien'!F12");
        assert_eq!(Place::File.to_string(), "");
    }

    #[test]
    fn summary_counts_addresses_per_level() {
        let l =
            parse(&format!("{HEADER}E1,a,d1,s,important,127.0.0.0/30,c\nE2,b,d2,s,general,127.0.1.1;plc.example,c\n"))
                .unwrap();
        let s = l.summary();
        assert_eq!(s.enterprises, 2);
        assert_eq!(s.addresses_by_level["important"], 4);
        assert_eq!(s.addresses_by_level["general"], 1);
        assert_eq!(s.hostnames, 1);
        assert_eq!(s.districts.len(), 2);
    }
}
