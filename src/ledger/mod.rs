//! The asset ledger (台账): a CSV of registered protected objects, validated with `file:line: field:` errors.
//!
//! Columns: `enterprise_id, enterprise, district, sector, level, targets, contact`. `level` is
//! `important`, `general`, or `exclude` for rows listing addresses that must never be probed.

mod target_spec;

pub(crate) use target_spec::to_u128;
pub use target_spec::TargetSpec;

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

pub const COLUMNS: [&str; 7] = ["enterprise_id", "enterprise", "district", "sector", "level", "targets", "contact"];

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
        match s.trim().to_ascii_lowercase().as_str() {
            "important" => Ok(Level::Important),
            "general" => Ok(Level::General),
            other => Err(format!("unknown level {other:?}: expected important or general")),
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
    pub line: u64,
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
    pub line: u64,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone)]
pub struct Ledger {
    pub path: PathBuf,
    pub enterprises: Vec<Enterprise>,
    pub exclusions: Vec<Exclusion>,
}

/// One problem in an input file, printed as `file:line: field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub file: PathBuf,
    pub line: u64,
    pub field: String,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file.display(), self.line, self.field, self.message)
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

impl Ledger {
    /// Reads and validates a ledger file; every problem is reported, none is skipped silently.
    pub fn load(path: &Path) -> Result<Ledger, InputErrors> {
        let bytes = std::fs::read(path).map_err(|e| {
            InputErrors(vec![InputError {
                file: path.to_path_buf(),
                line: 0,
                field: "file".into(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Self::parse(path, &bytes)
    }

    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Ledger, InputErrors> {
        let mut errors = Vec::new();
        let err = |line: u64, field: &str, message: String| InputError {
            file: path.to_path_buf(),
            line,
            field: field.to_string(),
            message,
        };
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t.strip_prefix('\u{feff}').unwrap_or(t),
            Err(e) => {
                let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u64;
                return Err(InputErrors(vec![err(line, "file", "not valid UTF-8 (save the ledger as UTF-8)".into())]));
            }
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());

        let mut columns: Option<HashMap<&'static str, usize>> = None;
        let mut enterprises: Vec<Enterprise> = Vec::new();
        let mut exclusions = Vec::new();
        let mut first_line_of_id: HashMap<String, u64> = HashMap::new();

        for record in reader.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    errors.push(err(line, "row", format!("unreadable CSV: {e}")));
                    continue;
                }
            };
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            // Comments are recognised here rather than by the CSV reader, which would miscount line numbers.
            if record.iter().all(|f| f.is_empty()) || record.get(0).is_some_and(|f| f.starts_with('#')) {
                continue;
            }
            let Some(cols) = &columns else {
                match header_columns(&record) {
                    Ok(c) => columns = Some(c),
                    Err(msg) => {
                        errors.push(err(line, "header", msg));
                        return Err(InputErrors(errors));
                    }
                }
                continue;
            };
            if record.len() != COLUMNS.len() {
                errors.push(err(
                    line,
                    "row",
                    format!(
                        "expected {} fields, found {} (a ';' list must not contain ',')",
                        COLUMNS.len(),
                        record.len()
                    ),
                ));
                continue;
            }
            let get = |name: &str| record.get(cols[name]).unwrap_or("").to_string();
            let level_text = get("level");
            let targets_text = get("targets");
            let mut row_errors = Vec::new();
            let targets = parse_targets(&targets_text, &mut |msg| row_errors.push(err(line, "targets", msg)));

            if level_text.trim().eq_ignore_ascii_case("exclude") {
                errors.extend(row_errors);
                exclusions.extend(
                    targets
                        .into_iter()
                        .map(|spec| Exclusion { spec, origin: Origin { file: path.to_path_buf(), line } }),
                );
                continue;
            }
            let level = match level_text.parse::<Level>() {
                Ok(l) => Some(l),
                Err(_) => {
                    row_errors.push(err(
                        line,
                        "level",
                        format!("unknown level {level_text:?}: expected important, general or exclude"),
                    ));
                    None
                }
            };
            let id = get("enterprise_id");
            if id.is_empty() {
                row_errors.push(err(line, "enterprise_id", "empty".into()));
            } else if let Some(first) = first_line_of_id.get(&id) {
                row_errors.push(err(line, "enterprise_id", format!("duplicate {id:?}: already used on line {first}")));
            } else {
                first_line_of_id.insert(id.clone(), line);
            }
            for field in ["enterprise", "district"] {
                if get(field).is_empty() {
                    row_errors.push(err(line, field, "empty".into()));
                }
            }
            let ok = row_errors.is_empty();
            errors.extend(row_errors);
            if let (true, Some(level)) = (ok, level) {
                enterprises.push(Enterprise {
                    id,
                    name: get("enterprise"),
                    district: get("district"),
                    sector: get("sector"),
                    level,
                    contact: get("contact"),
                    targets,
                    line,
                });
            }
        }
        if columns.is_none() {
            errors.push(err(1, "header", format!("no header row: expected {}", COLUMNS.join(","))));
        }
        errors.extend(overlap_errors(path, &enterprises));
        if errors.is_empty() {
            Ok(Ledger { path: path.to_path_buf(), enterprises, exclusions })
        } else {
            errors.sort_by_key(|e| e.line);
            Err(InputErrors(errors))
        }
    }

    /// Adds the exclusions of a `--exclude FILE`: one or more `;`-separated targets per line, `#` comments.
    pub fn add_exclusion_file(&mut self, path: &Path) -> Result<(), InputErrors> {
        let text = crate::input::read_bounded_text(path, crate::input::EXCLUSIONS_LIMIT).map_err(|e| {
            InputErrors(vec![InputError {
                file: path.to_path_buf(),
                line: 0,
                field: "file".into(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i as u64 + 1;
            let content = raw.split('#').next().unwrap_or("").trim().trim_start_matches('\u{feff}');
            if content.is_empty() {
                continue;
            }
            let specs = parse_targets(content, &mut |message| {
                errors.push(InputError { file: path.to_path_buf(), line, field: "exclude".into(), message })
            });
            self.exclusions.extend(
                specs.into_iter().map(|spec| Exclusion { spec, origin: Origin { file: path.to_path_buf(), line } }),
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

fn header_columns(record: &csv::StringRecord) -> Result<HashMap<&'static str, usize>, String> {
    let names: Vec<String> =
        record.iter().map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase()).collect();
    let mut map = HashMap::new();
    let mut missing = Vec::new();
    for col in COLUMNS {
        match names.iter().position(|n| n == col) {
            Some(i) => {
                map.insert(col, i);
            }
            None => missing.push(col),
        }
    }
    if let Some(unknown) = names.iter().find(|n| !COLUMNS.contains(&n.as_str())) {
        return Err(format!("unknown column {unknown:?}: expected {}", COLUMNS.join(",")));
    }
    if !missing.is_empty() {
        return Err(format!("missing column(s) {}: expected {}", missing.join(", "), COLUMNS.join(",")));
    }
    Ok(map)
}

fn parse_targets(text: &str, report: &mut dyn FnMut(String)) -> Vec<TargetSpec> {
    if text.trim().is_empty() {
        report("empty: list at least one address, block, range or hostname".into());
        return Vec::new();
    }
    let mut specs = Vec::new();
    let tokens: Vec<&str> = text.split(';').collect();
    for (i, token) in tokens.iter().enumerate() {
        // A trailing ';' is a common spreadsheet habit, not a mistake worth refusing.
        if token.trim().is_empty() && i == tokens.len() - 1 && i > 0 {
            continue;
        }
        match TargetSpec::parse(token) {
            Ok(spec) => specs.push(spec),
            Err(msg) => report(msg),
        }
    }
    specs
}

/// Two enterprises registering the same address makes attribution ambiguous: refuse it.
fn overlap_errors(path: &Path, enterprises: &[Enterprise]) -> Vec<InputError> {
    let mut spans: Vec<(u128, u128, bool, usize, &TargetSpec)> = Vec::new();
    for (i, e) in enterprises.iter().enumerate() {
        for t in &e.targets {
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
                let (first, second) = (&enterprises[r_owner], &enterprises[owner]);
                errors.push(InputError {
                    file: path.to_path_buf(),
                    line: second.line,
                    field: "targets".into(),
                    message: format!(
                        "{spec} overlaps {r_spec}, registered by enterprise {:?} on line {}: an address may belong to one enterprise only",
                        first.id, first.line
                    ),
                });
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
        Ledger::parse(Path::new("t.csv"), text.as_bytes())
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
        assert_eq!(l.enterprises[0].line, 3);
        assert_eq!(l.exclusions.len(), 1);
        assert_eq!(l.exclusions[0].origin.line, 4);
    }

    #[test]
    fn reports_every_problem_with_file_line_and_field() {
        let e = parse(&format!(
            "{HEADER}E1,a,d,s,important,127.0.0.0/33,c\nE1,b,d,s,urgent,127.0.2.1,c\nE3,c,d,s,general,,c\nE4,e,d,s,general,127.0.2.0/30,c\n"
        ))
        .unwrap_err();
        let lines: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
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
        assert_eq!(lines.len(), 4, "{lines:#?}");
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
    fn header_problems_are_named() {
        let e = parse("enterprise_id,enterprise,district,level,targets,contact\n").unwrap_err();
        assert_eq!(e.0[0].to_string(), "t.csv:1: header: missing column(s) sector: expected enterprise_id,enterprise,district,sector,level,targets,contact");
        let e = parse(&format!("{HEADER}E1,a,d,s,general,127.0.0.1\n")).unwrap_err();
        assert!(e.0[0].to_string().starts_with("t.csv:2: row: expected 7 fields, found 6"));
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
