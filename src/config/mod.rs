//! The configuration file (`otscope.toml`): named scan profiles, their schedules and exports, the time
//! zone of the schedules and the history database.
//!
//! Every option keeps one definition, the one in [`crate::cli`]: a profile key is the long name of a
//! `scan` option and its value becomes that option on a command line (`rate = 500` is `--rate=500`, a
//! list gives the option once per element, `true` gives a bare flag). Clap parses that command line,
//! so a profile accepts exactly what `scan` accepts and rejects it with the same message, reported here
//! as `file:line: key: message`. Options given on the real command line win over the profile's. The keys
//! that are not `scan` options (`schedule`, `exports`, and at the top `timezone`, `db`) are read here.

use crate::cli::{Cli, Command as CliCommand, ScanArgs};
use crate::error::BadInput;
use crate::export::Lang;
use crate::ledger::Level;
use crate::pipeline::{check_output, Output};
use clap::{ArgAction, CommandFactory, Parser, ValueEnum};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The default history database, as `scan --db` has it.
pub const DEFAULT_DB: &str = "otscope.db";

/// `scan` options a profile may not set: `db` belongs to the whole file (every profile records in the
/// same history, the one `daemon` and `status` read), the others make no sense inside a file.
const NOT_IN_PROFILE: [(&str, &str); 5] = [
    ("db", "set `db` once at the top of the file: every profile records in the same history"),
    ("no-db", "a profile is always recorded in the history (its `status` and exports read it)"),
    ("config", "not allowed inside a configuration file"),
    ("profile", "not allowed inside a configuration file"),
    ("help", "not allowed inside a configuration file"),
];

/// Every problem found in a configuration file, one `file:line: key: message` per line.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for BadInput {
    fn from(e: ConfigError) -> BadInput {
        BadInput(e.to_string())
    }
}

/// A loaded, checked configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// The time zone of every schedule (the system's local time unless `timezone` names one).
    pub timezone: jiff::tz::TimeZone,
    /// `timezone` as written, or `local`.
    pub timezone_name: String,
    /// The history every profile records in (`db`, default `otscope.db` beside the file).
    pub db: PathBuf,
    pub profiles: BTreeMap<String, Profile>,
    /// The `[notices]` table: deadlines by level and severity, and the notice numbers' prefix.
    pub notices: crate::notices::NoticeSettings,
}

/// One named profile: `scan` options, and what the daemon does with them.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// The line of the profile's table header.
    pub line: usize,
    /// The profile as `scan` options (`--rate=500`, `--deep`, ...), paths made relative to the file's folder.
    pub args: Vec<OsString>,
    /// Each `scan` option the profile sets (its long name), and each path of its exports
    /// (`exports.by-district`, `exports.report`), with the line it is set on.
    pub keys: BTreeMap<String, usize>,
    pub schedule: Option<Schedule>,
    pub exports: Exports,
    /// The `[profile.NAME.notices]` table: the remediation loop run after each complete scan.
    pub notices: ProfileNotices,
    /// The configuration file (for messages).
    pub file: String,
}

/// A cron schedule: 5 fields (minute hour day month weekday) or 6 (seconds first), or `@daily` and the like.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    cron: croner::Cron,
}

impl Schedule {
    /// A schedule that names a time ahead: a wrong field count, or fields that no date matches
    /// (`0 0 30 2 *`), are refused rather than left to never run.
    pub fn parse(expression: &str) -> Result<Schedule, String> {
        let fields = expression.split_whitespace().count();
        if !expression.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "not a cron schedule: {fields} field(s); a schedule has 5 (minute hour day month weekday) or 6 (seconds first)"
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| format!("not a cron schedule ({e})"))?;
        let schedule = Schedule { expression: expression.to_string(), cron };
        if schedule.next_after(&jiff::Zoned::now()).is_none() {
            return Err("never fires: no date matches every field".to_string());
        }
        Ok(schedule)
    }

    /// The first time strictly after `t` that the schedule names (in `t`'s time zone).
    pub fn next_after(&self, t: &jiff::Zoned) -> Option<jiff::Zoned> {
        self.cron.find_next_occurrence(t, false).ok()
    }
}

/// What is written after each scan of a profile, from the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Exports {
    /// A folder receiving one CSV per district and `summary.csv` (as `otscope export --by district`).
    pub by_district: Option<PathBuf>,
    /// The HTML report file (as `otscope report`).
    pub report: Option<PathBuf>,
    /// Headers and labels in English or Chinese.
    pub lang: Lang,
}

impl Default for Exports {
    fn default() -> Exports {
        Exports { by_district: None, report: None, lang: Lang::En }
    }
}

impl Exports {
    pub fn is_empty(&self) -> bool {
        self.by_district.is_none() && self.report.is_none()
    }
}

/// What the daemon runs of the remediation loop after a profile's complete scan: `notices verify`
/// (re-check the claimed items within the profile's scope), then `notices issue`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfileNotices {
    pub verify: bool,
    pub issue: bool,
    /// Where `issue` writes the notices (default `notices` beside the configuration file).
    pub out: Option<PathBuf>,
    pub lang: Option<Lang>,
}

/// The history's `kind` of a profile's scans.
pub fn kind_of(profile: &str) -> String {
    format!("profile:{profile}")
}

impl Profile {
    /// The profile's `scan` options as clap parses them, recording in `db`, with `extra` options after
    /// the profile's (they win).
    pub fn scan_args(&self, config: &Path, db: &Path, extra: &[&str]) -> Result<ScanArgs, clap::Error> {
        let mut argv: Vec<OsString> = vec!["otscope".into(), "scan".into()];
        argv.push(format!("--db={}", db.display()).into());
        argv.push(format!("--config={}", config.display()).into());
        argv.push(format!("--profile={}", self.name).into());
        argv.extend(self.args.iter().cloned());
        argv.extend(extra.iter().map(OsString::from));
        match Cli::try_parse_from(argv)?.command {
            CliCommand::Scan(a) => Ok(*a),
            _ => unreachable!("the command line is a scan"),
        }
    }

    /// The files the profile names that cannot be used, each told at its line: a ledger or exclusion file
    /// that is not a readable regular file within its size limit, a library folder that cannot be read,
    /// an output or export that cannot be written (a missing folder is fine: it is created). The options
    /// for which `given` holds come from the command line instead, and are left out.
    pub fn file_problems(&self, config: &Path, db: &Path, given: impl Fn(&str) -> bool) -> Vec<String> {
        // Values clap refuses are reported by the configuration's own checks.
        let Ok(args) = self.scan_args(config, db, &[]) else { return Vec::new() };
        let readable = |limit: u64| move |p: &Path| crate::input::check_bounded(p, limit).map_err(|e| e.to_string());
        let library = |p: &Path| match std::fs::read_dir(p) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("cannot read the fingerprint library: {e}")),
        };
        let output = |kind: Output| move |p: &Path| check_output(p, kind);
        let checks: [(&str, Option<&Path>, &PathCheck); 7] = [
            ("targets", args.scope.targets.as_deref(), &readable(crate::input::LEDGER_LIMIT)),
            ("exclude", args.scope.exclude.as_deref(), &readable(crate::input::EXCLUSIONS_LIMIT)),
            ("fingerprints", Some(&args.scope.fingerprints), &library),
            ("out", args.out.as_deref(), &output(Output::File)),
            ("csv", args.csv.as_deref(), &output(Output::File)),
            ("exports.by-district", self.exports.by_district.as_deref(), &output(Output::Folder)),
            ("exports.report", self.exports.report.as_deref(), &output(Output::File)),
        ];
        let mut problems = Vec::new();
        for (key, path, check) in checks {
            let (Some(line), Some(path)) = (self.keys.get(key), path) else { continue };
            if given(key) {
                continue;
            }
            if let Err(why) = check(path) {
                problems.push(format!("{}:{line}: profile.{}.{key}: {}: {why}", self.file, self.name, path.display()));
            }
        }
        problems
    }

    /// A message about an option (`--district "X": ...`) told at the profile line that set it, when the
    /// profile set it; otherwise the message as it is.
    pub fn locate(&self, message: &str) -> String {
        let long = message.strip_prefix("--").and_then(|m| m.split([' ', '=', ':']).next());
        match long.and_then(|l| self.keys.get(l).map(|line| (l, line))) {
            Some((key, line)) => {
                let rest = message["--".len() + key.len()..].trim_start();
                format!("{}:{line}: profile.{}.{key}: {rest}", self.file, self.name)
            }
            None => message.to_string(),
        }
    }
}

impl Config {
    /// The profile `name`, or the only one when no name is given.
    pub fn profile(&self, name: Option<&str>) -> Result<&Profile, ConfigError> {
        let names = || self.profiles.keys().cloned().collect::<Vec<_>>().join(", ");
        let file = self.path.display();
        match name {
            Some(n) => self
                .profiles
                .get(n)
                .ok_or_else(|| ConfigError(vec![format!("{file}: no profile named {n:?} (profiles: {})", names())])),
            None if self.profiles.len() == 1 => Ok(self.profiles.values().next().expect("one profile")),
            None if self.profiles.is_empty() => Err(ConfigError(vec![format!("{file}: no profile ([profile.NAME])")])),
            None => Err(ConfigError(vec![format!("{file}: choose a profile with --profile ({})", names())])),
        }
    }

    /// What the daemon needs beyond a valid file: something scheduled, and every scheduled profile a
    /// complete scan (a ledger, not a dry run).
    pub fn check_for_daemon(&self) -> Result<(), ConfigError> {
        let file = self.path.display().to_string();
        let mut errors = Vec::new();
        if self.profiles.values().all(|p| p.schedule.is_none()) {
            errors.push(format!("{file}: no profile has a schedule: the daemon would have nothing to run"));
        }
        for p in self.profiles.values().filter(|p| p.schedule.is_some()) {
            if !p.keys.contains_key("targets") {
                errors.push(format!(
                    "{file}:{}: profile.{}: no `targets`: a scheduled profile names its ledger",
                    p.line, p.name
                ));
                continue;
            }
            if let Some(line) = p.keys.get("dry-run") {
                errors.push(format!(
                    "{file}:{line}: profile.{}.dry-run: a scheduled profile cannot be a dry run",
                    p.name
                ));
            }
            if let Err(e) = p.scan_args(&self.path, &self.db, &[]) {
                errors.push(format!("{file}:{}: profile.{}: {}", p.line, p.name, clap_message(&e)));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }
}

/// Reads and checks a configuration file: every problem is reported, as `file:line: key: message`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = crate::input::read_bounded_text(path, crate::input::CONFIG_LIMIT)
        .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
    parse(path, &text)
}

/// A check of one path a profile names: why it cannot be used.
type PathCheck<'a> = dyn Fn(&Path) -> Result<(), String> + 'a;

/// A `scan` option as a profile key.
#[derive(Debug, Clone)]
struct OptionSpec {
    kind: Kind,
    /// A path, resolved against the configuration file's folder.
    path: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `true` gives the bare flag.
    Flag,
    /// One value.
    Single,
    /// Repeatable: a list gives the option once per element.
    List,
}

/// The `scan` options, by long name, from clap's own definitions.
fn scan_options() -> BTreeMap<String, OptionSpec> {
    let mut cli = Cli::command();
    cli.build();
    let scan = cli.find_subcommand("scan").expect("scan is a command");
    let mut out = BTreeMap::new();
    for arg in scan.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let kind = match arg.get_action() {
            ArgAction::SetTrue => Kind::Flag,
            ArgAction::Set => Kind::Single,
            ArgAction::Append => Kind::List,
            _ => continue,
        };
        let path = matches!(
            arg.get_value_hint(),
            clap::ValueHint::AnyPath | clap::ValueHint::FilePath | clap::ValueHint::DirPath
        );
        out.insert(long.to_string(), OptionSpec { kind, path });
    }
    out
}

/// The clap ids of the `scan` options given on a command line (`argv` without the profile's).
fn ids_by_long() -> BTreeMap<String, String> {
    let cli = Cli::command();
    let scan = cli.find_subcommand("scan").expect("scan is a command");
    scan.get_arguments()
        .filter_map(|a| a.get_long().map(|l| (l.to_string(), a.get_id().as_str().to_string())))
        .collect()
}

/// A clap error's message without its `error: ` prefix, tips and usage, on one line.
pub fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let head: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).collect();
    let joined = head.join(" ");
    let joined = joined.trim().strip_prefix("error:").unwrap_or(&joined).trim().to_string();
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

struct Problems<'a> {
    file: String,
    text: &'a str,
    lines: Vec<(usize, String)>,
}

impl Problems<'_> {
    fn at<T>(&self, s: &Spanned<T>) -> usize {
        line_of(self.text, s.span().start)
    }

    fn push(&mut self, line: usize, key: &str, message: impl fmt::Display) {
        self.lines.push((line, format!("{}:{line}: {key}: {message}", self.file)));
    }
}

/// A TOML scalar as the text of an option's value; `None` for arrays and tables.
fn scalar(v: &DeValue<'_>) -> Option<String> {
    Some(match v {
        DeValue::String(s) => s.to_string(),
        DeValue::Integer(i) => {
            i64::from_str_radix(i.as_str(), i.radix()).map(|n| n.to_string()).unwrap_or_else(|_| i.as_str().into())
        }
        DeValue::Float(f) => f.as_str().to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(_) | DeValue::Table(_) => return None,
    })
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() || p.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Parses the text of a configuration file named `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    // A file in the current folder has an empty parent: its relative paths stay as they are written.
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let doc = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        ConfigError(vec![format!("{file}:{line}: not valid TOML: {}", e.message().trim())])
    })?;
    let mut problems = Problems { file: file.clone(), text, lines: Vec::new() };
    let options = scan_options();
    let mut timezone = None;
    let mut db = None;
    let mut profiles = BTreeMap::new();
    let mut notices = crate::notices::NoticeSettings::default();
    for (key, value) in doc.get_ref().iter() {
        let line = problems.at(key);
        let k: &str = key.get_ref();
        match (k, value.get_ref()) {
            ("timezone", DeValue::String(name)) => match jiff::tz::TimeZone::get(name) {
                Ok(tz) => timezone = Some((tz, name.to_string())),
                Err(e) => problems.push(line, k, format!("unknown time zone {name:?} ({e})")),
            },
            ("db", DeValue::String(p)) if !p.is_empty() => db = Some(resolve(&base, p)),
            ("timezone", v) | ("db", v) => {
                problems.push(line, k, format!("expects a string, not {}", type_name(v)));
            }
            ("profile", DeValue::Table(table)) => {
                for (name, value) in table.iter() {
                    let line = problems.at(name);
                    let name: &str = name.get_ref();
                    match value.get_ref() {
                        DeValue::Table(t) => {
                            let p = parse_profile(name, line, t, &options, &base, &mut problems);
                            profiles.insert(name.to_string(), p);
                        }
                        v => problems.push(
                            line,
                            &format!("profile.{name}"),
                            format!("expects a table ([profile.{name}]), not {}", type_name(v)),
                        ),
                    }
                }
            }
            ("profile", v) => problems.push(line, k, format!("expects tables ([profile.NAME]), not {}", type_name(v))),
            ("notices", DeValue::Table(table)) => notices = parse_notices(table, &mut problems),
            ("notices", v) => problems.push(line, k, format!("expects a table ([notices]), not {}", type_name(v))),
            _ => {
                let hint = suggestion(k, ["timezone", "db", "profile", "notices"].into_iter());
                problems.push(
                    line,
                    k,
                    format!("unknown key{hint} (the file has timezone, db, [notices] and [profile.NAME] tables)"),
                );
            }
        }
    }
    if !problems.lines.is_empty() {
        problems.lines.sort_by_key(|(line, _)| *line);
        return Err(ConfigError(problems.lines.into_iter().map(|(_, m)| m).collect()));
    }
    let (timezone, timezone_name) = timezone.unwrap_or_else(|| (jiff::tz::TimeZone::system(), "local".to_string()));
    Ok(Config {
        path: path.to_path_buf(),
        timezone,
        timezone_name,
        db: db.unwrap_or_else(|| base.join(DEFAULT_DB)),
        profiles,
        notices,
    })
}

fn parse_profile(
    name: &str,
    line: usize,
    table: &DeTable<'_>,
    options: &BTreeMap<String, OptionSpec>,
    base: &Path,
    problems: &mut Problems<'_>,
) -> Profile {
    let mut profile = Profile {
        name: name.to_string(),
        line,
        args: Vec::new(),
        keys: BTreeMap::new(),
        schedule: None,
        exports: Exports::default(),
        notices: ProfileNotices::default(),
        file: problems.file.clone(),
    };
    for (key, value) in table.iter() {
        let line = problems.at(key);
        let k: &str = key.get_ref();
        let dotted = format!("profile.{name}.{k}");
        if let Some((_, why)) = NOT_IN_PROFILE.iter().find(|(n, _)| *n == k) {
            problems.push(line, &dotted, why);
            continue;
        }
        match k {
            "schedule" => match value.get_ref() {
                DeValue::String(s) => match Schedule::parse(s) {
                    Ok(s) => profile.schedule = Some(s),
                    Err(e) => problems.push(line, &dotted, e),
                },
                v => problems.push(line, &dotted, format!("expects a cron expression string, not {}", type_name(v))),
            },
            "exports" => match value.get_ref() {
                DeValue::Table(t) => profile.exports = parse_exports(&dotted, t, base, &mut profile.keys, problems),
                v => problems.push(line, &dotted, format!("expects a table, not {}", type_name(v))),
            },
            "notices" => match value.get_ref() {
                DeValue::Table(t) => profile.notices = parse_profile_notices(&dotted, t, base, problems),
                v => problems.push(line, &dotted, format!("expects a table, not {}", type_name(v))),
            },
            _ => match options.get(k) {
                Some(spec) => {
                    let before = problems.lines.len();
                    for (line, arg) in option_args(k, spec, value, base, &dotted, problems) {
                        check_option(&arg, line, &dotted, problems);
                        profile.args.push(arg);
                    }
                    if problems.lines.len() == before {
                        profile.keys.insert(k.to_string(), line);
                    }
                }
                None => {
                    let known = options.keys().map(String::as_str).chain(["schedule", "exports", "notices"]);
                    let hint = suggestion(k, known);
                    problems.push(line, &dotted, format!("unknown key{hint} (a profile's keys are `otscope scan`'s options, schedule, exports and notices)"));
                }
            },
        }
    }
    profile
}

/// The command-line arguments a profile key stands for, each with the line of its value.
fn option_args(
    long: &str,
    spec: &OptionSpec,
    value: &Spanned<DeValue<'_>>,
    base: &Path,
    dotted: &str,
    problems: &mut Problems<'_>,
) -> Vec<(usize, OsString)> {
    let line = problems.at(value);
    let one = |v: &DeValue<'_>| -> Option<OsString> {
        let s = scalar(v)?;
        let s = match v {
            DeValue::String(p) if spec.path => resolve(base, p).display().to_string(),
            _ => s,
        };
        Some(format!("--{long}={s}").into())
    };
    match (spec.kind, value.get_ref()) {
        (Kind::Flag, DeValue::Boolean(true)) => vec![(line, format!("--{long}").into())],
        (Kind::Flag, DeValue::Boolean(false)) => Vec::new(),
        (Kind::Flag, v) => {
            problems.push(line, dotted, format!("expects true or false, not {}", type_name(v)));
            Vec::new()
        }
        (Kind::List, DeValue::Array(items)) => {
            let mut out = Vec::new();
            for item in items.iter() {
                let line = problems.at(item);
                match one(item.get_ref()) {
                    Some(a) => out.push((line, a)),
                    None => problems.push(
                        line,
                        dotted,
                        format!(
                            "expects a list of values, not of {}s",
                            type_name(item.get_ref()).trim_start_matches("a ").trim_start_matches("an ")
                        ),
                    ),
                }
            }
            out
        }
        (_, v) => match one(v) {
            Some(a) => vec![(line, a)],
            None => {
                problems.push(line, dotted, format!("expects one value, not {}", type_name(v)));
                Vec::new()
            }
        },
    }
}

/// Clap's verdict on one option of a profile, alone on a `scan` command line.
fn check_option(arg: &OsString, line: usize, dotted: &str, problems: &mut Problems<'_>) {
    let argv: Vec<OsString> = vec!["otscope".into(), "scan".into(), "--targets=-".into(), arg.clone()];
    if let Err(e) = Cli::try_parse_from(argv) {
        problems.push(line, dotted, clap_message(&e));
    }
}

/// The `exports` table; the line of each path it names goes into `keys` (as `exports.by-district`, ...).
fn parse_exports(
    dotted: &str,
    table: &DeTable<'_>,
    base: &Path,
    keys: &mut BTreeMap<String, usize>,
    problems: &mut Problems<'_>,
) -> Exports {
    let mut exports = Exports::default();
    for (key, value) in table.iter() {
        let line = problems.at(key);
        let k: &str = key.get_ref();
        let here = format!("{dotted}.{k}");
        if k != "lang" {
            keys.insert(format!("exports.{k}"), line);
        }
        match (k, value.get_ref()) {
            ("by-district", DeValue::String(p)) if !p.is_empty() => exports.by_district = Some(resolve(base, p)),
            ("report", DeValue::String(p)) if !p.is_empty() => exports.report = Some(resolve(base, p)),
            ("lang", DeValue::String(l)) => match Lang::from_str(l, false) {
                Ok(l) => exports.lang = l,
                Err(_) => problems.push(line, &here, format!("invalid value {l:?} (possible values: en, zh)")),
            },
            ("by-district", v) | ("report", v) => {
                problems.push(line, &here, format!("expects a path, not {}", type_name(v)));
            }
            ("lang", v) => problems.push(line, &here, format!("expects \"en\" or \"zh\", not {}", type_name(v))),
            _ => {
                let hint = suggestion(k, ["by-district", "report", "lang"].into_iter());
                problems.push(line, &here, format!("unknown key{hint} (exports has by-district, report and lang)"));
            }
        }
    }
    exports
}

/// The `[notices]` table: `prefix`, and `[notices.important]` / `[notices.general]` tables of days by
/// severity (critical, high, medium, low, unscored).
fn parse_notices(table: &DeTable<'_>, problems: &mut Problems<'_>) -> crate::notices::NoticeSettings {
    use crate::notices::Band;
    let mut settings = crate::notices::NoticeSettings::default();
    for (key, value) in table.iter() {
        let line = problems.at(key);
        let k: &str = key.get_ref();
        let here = format!("notices.{k}");
        let level = match k {
            "important" => Level::Important,
            "general" => Level::General,
            "prefix" => {
                match value.get_ref() {
                    DeValue::String(p) if !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '-') => {
                        settings.prefix = p.to_string()
                    }
                    v => {
                        problems.push(line, &here, format!("expects letters, digits and dashes, not {}", type_name(v)))
                    }
                }
                continue;
            }
            _ => {
                let hint = suggestion(k, ["important", "general", "prefix"].into_iter());
                problems.push(
                    line,
                    &here,
                    format!("unknown key{hint} (notices has prefix, [notices.important] and [notices.general])"),
                );
                continue;
            }
        };
        let DeValue::Table(days) = value.get_ref() else {
            problems.push(
                line,
                &here,
                format!("expects a table of days by severity, not {}", type_name(value.get_ref())),
            );
            continue;
        };
        for (band, n) in days.iter() {
            let line = problems.at(band);
            let b: &str = band.get_ref();
            let at = format!("{here}.{b}");
            let Some(band) = Band::parse(b) else {
                let hint = suggestion(b, Band::ALL.into_iter().map(Band::as_str));
                problems.push(line, &at, format!("unknown severity{hint} (critical, high, medium, low, unscored)"));
                continue;
            };
            match n.get_ref() {
                DeValue::Integer(i) => match i.as_str().parse::<u32>() {
                    Ok(d) if d > 0 => {
                        settings.deadlines.days.insert((level, band), d);
                    }
                    _ => problems.push(line, &at, format!("expects a number of days (1 or more), not {}", i.as_str())),
                },
                v => problems.push(line, &at, format!("expects a number of days, not {}", type_name(v))),
            }
        }
    }
    settings
}

/// A profile's `notices` table: verify, issue, out, lang.
fn parse_profile_notices(
    dotted: &str,
    table: &DeTable<'_>,
    base: &Path,
    problems: &mut Problems<'_>,
) -> ProfileNotices {
    let mut notices = ProfileNotices::default();
    for (key, value) in table.iter() {
        let line = problems.at(key);
        let k: &str = key.get_ref();
        let here = format!("{dotted}.{k}");
        match (k, value.get_ref()) {
            ("verify", DeValue::Boolean(b)) => notices.verify = *b,
            ("issue", DeValue::Boolean(b)) => notices.issue = *b,
            ("out", DeValue::String(p)) if !p.is_empty() => notices.out = Some(resolve(base, p)),
            ("lang", DeValue::String(l)) => match Lang::from_str(l, false) {
                Ok(l) => notices.lang = Some(l),
                Err(_) => problems.push(line, &here, format!("invalid value {l:?} (possible values: en, zh)")),
            },
            ("verify", v) | ("issue", v) => {
                problems.push(line, &here, format!("expects true or false, not {}", type_name(v)))
            }
            ("out", v) => problems.push(line, &here, format!("expects a path, not {}", type_name(v))),
            ("lang", v) => problems.push(line, &here, format!("expects \"en\" or \"zh\", not {}", type_name(v))),
            _ => {
                let hint = suggestion(k, ["verify", "issue", "out", "lang"].into_iter());
                problems.push(line, &here, format!("unknown key{hint} (notices has verify, issue, out and lang)"));
            }
        }
    }
    notices
}

/// ` (did you mean "x"?)` for a key close to a known one.
fn suggestion<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> String {
    let normal = key.replace('_', "-").to_lowercase();
    known
        .map(|k| (distance(&normal, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The command line with a `scan --config FILE [--profile NAME]`'s profile put in: the file's `db` and
/// the profile's options go right after `scan`, before the real options, less the options the real
/// command line gives itself (they win). Any other command line is returned as it is.
pub fn expand_command_line(argv: Vec<OsString>) -> Result<Vec<OsString>, ConfigError> {
    let Ok(matches) = Cli::command().ignore_errors(true).try_get_matches_from(argv.iter()) else {
        return Ok(argv);
    };
    let Some(("scan", sm)) = matches.subcommand() else { return Ok(argv) };
    let Some(path) = sm.get_one::<PathBuf>("config").cloned() else { return Ok(argv) };
    let config = load(&path)?;
    let profile = config.profile(sm.get_one::<String>("profile").map(String::as_str))?;
    let given = given_in(sm);
    let mut inserted: Vec<OsString> = vec![format!("--db={}", config.db.display()).into()];
    if !given.contains("profile") {
        inserted.push(format!("--profile={}", profile.name).into());
    }
    inserted.extend(profile.args.iter().filter(|a| !given.contains(long_of(a))).cloned());
    // The subcommand is the first argument that is not a (global, value-less) flag.
    let at =
        argv.iter().skip(1).position(|a| !a.to_string_lossy().starts_with('-')).map(|i| i + 2).unwrap_or(argv.len());
    let mut out = argv[..at].to_vec();
    out.extend(inserted);
    out.extend_from_slice(&argv[at..]);
    Ok(out)
}

/// The long names of the `scan` options a command line gives itself (before any profile is put in).
pub fn scan_options_given(argv: &[OsString]) -> BTreeSet<String> {
    match Cli::command().ignore_errors(true).try_get_matches_from(argv.iter()) {
        Ok(matches) => match matches.subcommand() {
            Some(("scan", sm)) => given_in(sm),
            _ => BTreeSet::new(),
        },
        Err(_) => BTreeSet::new(),
    }
}

fn given_in(sm: &clap::ArgMatches) -> BTreeSet<String> {
    ids_by_long()
        .into_iter()
        .filter(|(_, id)| sm.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|(long, _)| long)
        .collect()
}

fn long_of(arg: &OsString) -> &str {
    let s = arg.to_str().unwrap_or("");
    s.trim_start_matches("--").split('=').next().unwrap_or("")
}

/// Why a command line could not be used.
#[derive(Debug)]
pub enum CommandLineError {
    /// Clap's own error, or a request for help or the version: clap prints it and knows its status.
    Clap(clap::Error),
    /// The configuration file that `scan --config` names is broken.
    Config(ConfigError),
}

/// A command line parsed, a `scan --config`'s profile put in.
pub fn parse_command_line(argv: Vec<OsString>) -> Result<Cli, CommandLineError> {
    let argv = expand_command_line(argv).map_err(CommandLineError::Config)?;
    Cli::try_parse_from(argv).map_err(CommandLineError::Clap)
}

/// Keeps in a scan's parameters how to start it again (for `scan --resume`): its command line and the
/// folder it ran in.
pub fn set_command_line(parameters: &mut serde_json::Value, argv: &[OsString], cwd: &Path) {
    let argv: Vec<String> = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    parameters["argv"] = serde_json::json!(argv);
    parameters["cwd"] = serde_json::json!(cwd.display().to_string());
}

/// The command line and folder [`set_command_line`] kept, if the scan has them.
pub fn command_line_of(parameters: &serde_json::Value) -> Option<(Vec<OsString>, PathBuf)> {
    let argv: Vec<String> = serde_json::from_value(parameters.get("argv")?.clone()).ok()?;
    let cwd = parameters.get("cwd")?.as_str()?;
    Some((argv.into_iter().map(OsString::from).collect(), PathBuf::from(cwd)))
}

/// The `scan` options that `argv` (run in `cwd`) gives itself with another value than `original` (run in
/// `original_cwd`) has, its own or the default, each as `--name value (was ...)`; a profile is put in
/// both first, and paths are compared made absolute. The options in `may_differ` are left out.
pub fn options_changed(
    argv: &[OsString],
    cwd: &Path,
    original: &[OsString],
    original_cwd: &Path,
    may_differ: &[&str],
) -> Result<Vec<String>, ConfigError> {
    let options = scan_options();
    let ids = ids_by_long();
    let now = given_scan_options(argv, cwd, &options, &ids)?;
    let then = given_scan_options(original, original_cwd, &options, &ids)?;
    let shown = |values: Option<&Vec<OsString>>| match values {
        Some(v) if !v.is_empty() => v.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
        Some(_) => "set".to_string(),
        None => "not given".to_string(),
    };
    Ok(now
        .iter()
        .filter(|(long, _)| !may_differ.contains(&long.as_str()))
        .filter(|(long, values)| {
            normal_form(long, Some(values), &options) != normal_form(long, then.get(*long), &options)
        })
        .map(|(long, values)| format!("--{long} {} (was {})", shown(Some(values)), shown(then.get(long))))
        .collect())
}

/// The `scan` options a command line gives itself (a profile put in), each with its values as written
/// (none for a flag), paths made absolute against `cwd`.
fn given_scan_options(
    argv: &[OsString],
    cwd: &Path,
    options: &BTreeMap<String, OptionSpec>,
    ids: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<OsString>>, ConfigError> {
    let argv = expand_command_line(argv.to_vec())?;
    let matches = Cli::command().try_get_matches_from(argv).map_err(|e| ConfigError(vec![clap_message(&e)]))?;
    let Some(("scan", sm)) = matches.subcommand() else {
        return Err(ConfigError(vec!["not a `scan` command line".into()]));
    };
    let mut given = BTreeMap::new();
    for (long, id) in ids {
        if sm.value_source(id) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        let spec = options.get(long);
        let values: Vec<OsString> = match spec.map(|s| s.kind) {
            Some(Kind::Flag) | None => Vec::new(),
            Some(_) => sm
                .get_raw(id)
                .into_iter()
                .flatten()
                .map(|v| match spec {
                    Some(s) if s.path && !v.is_empty() => cwd.join(v).into_os_string(),
                    _ => v.to_os_string(),
                })
                .collect(),
        };
        given.insert(long.clone(), values);
    }
    Ok(given)
}

/// What one option's values mean, to compare two spellings: the `scan` arguments clap makes of them
/// alone (the defaults when the option is not given), or the values themselves when they do not parse
/// alone.
fn normal_form(long: &str, values: Option<&Vec<OsString>>, options: &BTreeMap<String, OptionSpec>) -> String {
    let mut argv: Vec<OsString> = vec!["otscope".into(), "scan".into()];
    match (values, options.get(long).map(|s| s.kind)) {
        (None, _) => {}
        (Some(_), Some(Kind::Flag)) => argv.push(format!("--{long}").into()),
        (Some(values), _) => argv.extend(values.iter().map(|v| {
            let mut a = OsString::from(format!("--{long}="));
            a.push(v);
            a
        })),
    }
    match Cli::try_parse_from(&argv) {
        Ok(cli) => format!("{:?}", cli.command),
        Err(_) => format!("{values:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/otscope/otscope.toml"), text)
    }

    #[test]
    fn every_scan_option_is_a_key_with_its_kind() {
        let o = scan_options();
        assert_eq!(o["rate"].kind, Kind::Single);
        assert_eq!(o["level"].kind, Kind::List);
        assert_eq!(o["deep"].kind, Kind::Flag);
        assert!(o["targets"].path && o["fingerprints"].path && o["out"].path && o["csv"].path);
        assert!(!o["rate"].path && !o["ports"].path);
        for long in ["per-host", "host-interval", "banner-wait", "target-deadline", "enable-probe", "resolver", "seed"]
        {
            assert!(o.contains_key(long), "{long}");
        }
    }

    #[test]
    fn values_become_options_and_paths_follow_the_file() {
        let c = parsed(
            "[profile.a]\ntargets = \"ledger.csv\"\nrate = 500\nlevel = [\"important\", \"general\"]\ndeep = true\nquiet = false\nschedule = \"*/2 * * * * *\"\n[profile.a.exports]\nby-district = \"/srv/x\"\nlang = \"zh\"\n",
        )
        .unwrap();
        let p = &c.profiles["a"];
        let args: Vec<String> = p.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            ["--deep", "--level=important", "--level=general", "--rate=500", "--targets=/etc/otscope/ledger.csv"]
        );
        assert_eq!(p.exports, Exports { by_district: Some("/srv/x".into()), report: None, lang: Lang::Zh });
        assert_eq!(p.schedule.as_ref().unwrap().expression, "*/2 * * * * *");
        assert_eq!(c.db, PathBuf::from("/etc/otscope/otscope.db"));
        let a = p.scan_args(&c.path, &c.db, &["--rate", "7"]).unwrap();
        assert_eq!(a.engine.rate, 7, "the later option wins");
        assert!(a.engine.deep);
        assert_eq!(a.scope.level.len(), 2);
    }

    #[test]
    fn the_time_zone_and_db_are_read() {
        let c = parsed("timezone = \"Asia/Shanghai\"\ndb = \"state/h.db\"\n[profile.a]\nrate = 1\n").unwrap();
        assert_eq!(c.timezone_name, "Asia/Shanghai");
        assert_eq!(c.timezone.iana_name(), Some("Asia/Shanghai"));
        assert_eq!(c.db, PathBuf::from("/etc/otscope/state/h.db"));
        let local = parsed("[profile.a]\nrate = 1\n").unwrap();
        assert_eq!(local.timezone_name, "local");
    }

    #[test]
    fn every_problem_is_reported_with_file_line_and_key() {
        let text = "timezon = \"UTC\"\n[profile.a]\nconcurency = 4\nrate = \"fast\"\nlevel = [\"important\",\n  \"bogus\"]\ndeep = \"yes\"\nports = [\"502\", \"102\"]\ndb = \"x\"\nschedule = \"every day\"\n[profile.a.exports]\nlang = \"fr\"\nformat = \"csv\"\n";
        let lines = parsed(text).unwrap_err().0;
        let f = "/etc/otscope/otscope.toml";
        let expected = [
            format!("{f}:1: timezon: unknown key (did you mean \"timezone\"?)"),
            format!("{f}:3: profile.a.concurency: unknown key (did you mean \"concurrency\"?)"),
            format!("{f}:4: profile.a.rate: invalid value 'fast' for '--rate <N>': invalid digit found in string"),
            format!("{f}:6: profile.a.level: invalid value 'bogus' for '--level <LEVEL>'"),
            format!("{f}:7: profile.a.deep: expects true or false, not a string"),
            format!("{f}:8: profile.a.ports: expects one value, not a list"),
            format!("{f}:9: profile.a.db: set `db` once at the top"),
            format!("{f}:10: profile.a.schedule: not a cron schedule"),
            format!("{f}:12: profile.a.exports.lang: invalid value \"fr\" (possible values: en, zh)"),
            format!("{f}:13: profile.a.exports.format: unknown key"),
        ];
        assert_eq!(lines.len(), expected.len(), "{lines:#?}");
        for (got, want) in lines.iter().zip(&expected) {
            assert!(got.starts_with(want.as_str()), "{got:?} does not start with {want:?}");
        }
    }

    #[test]
    fn syntax_errors_have_their_line() {
        let e = parsed("[profile.a]\nrate = 5\nrate = 6\n").unwrap_err();
        assert!(e.0[0].starts_with("/etc/otscope/otscope.toml:3: not valid TOML"), "{e}");
        let e = parsed("[profile.a]\ntargets = \"x\n").unwrap_err();
        assert!(e.0[0].starts_with("/etc/otscope/otscope.toml:2: not valid TOML"), "{e}");
    }

    #[test]
    fn the_daemon_needs_complete_scheduled_profiles() {
        let c = parsed("[profile.a]\nrate = 1\n").unwrap();
        assert_eq!(
            c.check_for_daemon().unwrap_err().0,
            ["/etc/otscope/otscope.toml: no profile has a schedule: the daemon would have nothing to run"]
        );
        let c = parsed("[profile.a]\nrate = 1\nschedule = \"@daily\"\n[profile.b]\ntargets = \"l.csv\"\ndry-run = true\nschedule = \"0 2 * * *\"\n").unwrap();
        assert_eq!(
            c.check_for_daemon().unwrap_err().0,
            [
                "/etc/otscope/otscope.toml:1: profile.a: no `targets`: a scheduled profile names its ledger",
                "/etc/otscope/otscope.toml:6: profile.b.dry-run: a scheduled profile cannot be a dry run",
            ]
        );
    }

    #[test]
    fn schedules_with_and_without_seconds() {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let t: jiff::Zoned = jiff::civil::date(2026, 5, 9).at(1, 59, 59, 0).to_zoned(tz).unwrap();
        let next = |e: &str| Schedule::parse(e).unwrap().next_after(&t).unwrap().to_string();
        assert_eq!(next("0 2 * * *"), "2026-05-09T02:00:00+08:00[Asia/Shanghai]");
        assert_eq!(next("*/2 * * * * *"), "2026-05-09T02:00:00+08:00[Asia/Shanghai]");
        assert_eq!(next("30 0 3 * * *"), "2026-05-09T03:00:30+08:00[Asia/Shanghai]");
        assert_eq!(next("@daily"), "2026-05-10T00:00:00+08:00[Asia/Shanghai]");
        assert!(Schedule::parse("61 * * * *").is_err());
    }

    #[test]
    fn the_notices_table_sets_deadlines_and_a_profile_runs_the_loop() {
        use crate::notices::Band;
        let c = parsed(
            "[notices]\nprefix = \"SH-ICS\"\n[notices.important]\ncritical = 3\n[notices.general]\nlow = 365\n\
             [profile.p]\ntargets = \"l.csv\"\n[profile.p.notices]\nverify = true\nissue = true\nout = \"n\"\nlang = \"zh\"\n",
        )
        .unwrap();
        assert_eq!(c.notices.prefix, "SH-ICS");
        assert_eq!(c.notices.deadlines.days(Level::Important, Band::Critical), 3);
        assert_eq!(c.notices.deadlines.days(Level::General, Band::Low), 365);
        assert_eq!(c.notices.deadlines.days(Level::Important, Band::High), 15, "the defaults fill the rest");
        let n = &c.profiles["p"].notices;
        assert!(n.verify && n.issue);
        assert_eq!((n.out.as_deref(), n.lang), (Some(Path::new("/etc/otscope/n")), Some(Lang::Zh)));

        let e = parsed(
            "[notices]\nprefx = \"A\"\n[notices.important]\ncritcal = 3\nhigh = 0\nlow = \"x\"\n[notices.vip]\n\
             [profile.p]\ntargets = \"l.csv\"\n[profile.p.notices]\nverify = \"yes\"\nissu = true\n",
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            [
                "/etc/otscope/otscope.toml:2: notices.prefx: unknown key (did you mean \"prefix\"?) (notices has prefix, [notices.important] and [notices.general])",
                "/etc/otscope/otscope.toml:4: notices.important.critcal: unknown severity (did you mean \"critical\"?) (critical, high, medium, low, unscored)",
                "/etc/otscope/otscope.toml:5: notices.important.high: expects a number of days (1 or more), not 0",
                "/etc/otscope/otscope.toml:6: notices.important.low: expects a number of days, not a string",
                "/etc/otscope/otscope.toml:7: notices.vip: unknown key (notices has prefix, [notices.important] and [notices.general])",
                "/etc/otscope/otscope.toml:11: profile.p.notices.verify: expects true or false, not a string",
                "/etc/otscope/otscope.toml:12: profile.p.notices.issu: unknown key (did you mean \"issue\"?) (notices has verify, issue, out and lang)",
            ]
        );
    }

    #[test]
    fn schedules_with_a_wrong_field_count_or_that_never_fire_are_refused() {
        let started = std::time::Instant::now();
        assert_eq!(
            Schedule::parse("0 0 2 * * * 2030").unwrap_err(),
            "not a cron schedule: 7 field(s); a schedule has 5 (minute hour day month weekday) or 6 (seconds first)"
        );
        assert!(Schedule::parse("0 2 * *").unwrap_err().starts_with("not a cron schedule: 4 field(s)"));
        assert_eq!(Schedule::parse("0 0 30 2 *").unwrap_err(), "never fires: no date matches every field");
        assert_eq!(Schedule::parse("0 0 31 4,6,9,11 *").unwrap_err(), "never fires: no date matches every field");
        assert!(Schedule::parse("0 0 29 2 *").is_ok(), "every leap year");
        assert!(Schedule::parse("@weekly").is_ok());
        eprintln!("schedules checked in {:?}", started.elapsed());
    }

    #[test]
    fn the_profile_goes_after_scan_and_the_command_line_wins() {
        let dir = std::env::temp_dir().join(format!("otscope-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("o.toml");
        std::fs::write(&file, "[profile.a]\ntargets = \"l.csv\"\nrate = 5\ndistrict = [\"浦东新区\"]\n").unwrap();
        let argv: Vec<OsString> =
            ["otscope", "-v", "scan", "--config", file.to_str().unwrap(), "--district", "闵行区", "--rate=9"]
                .iter()
                .map(OsString::from)
                .collect();
        let out: Vec<String> =
            expand_command_line(argv).unwrap().iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let l = dir.join("l.csv").display().to_string();
        let db = dir.join("otscope.db").display().to_string();
        assert_eq!(
            out,
            [
                "otscope".to_string(),
                "-v".into(),
                "scan".into(),
                format!("--db={db}"),
                "--profile=a".into(),
                format!("--targets={l}"),
                "--config".into(),
                file.display().to_string(),
                "--district".into(),
                "闵行区".into(),
                "--rate=9".into(),
            ]
        );
        let cli = Cli::try_parse_from(&out).unwrap();
        let CliCommand::Scan(a) = cli.command else { panic!() };
        assert_eq!(a.scope.district, ["闵行区"]);
        assert_eq!(a.engine.rate, 9);
        let untouched: Vec<OsString> = ["otscope", "history"].iter().map(OsString::from).collect();
        assert_eq!(expand_command_line(untouched.clone()).unwrap(), untouched);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_about_an_option_point_at_the_profile_line() {
        let c = parsed("[profile.a]\ntargets = \"l.csv\"\n\ndistrict = [\"X\"]\n").unwrap();
        let p = &c.profiles["a"];
        assert_eq!(
            p.locate("--district \"X\": no object of the ledger is in this district"),
            "/etc/otscope/otscope.toml:4: profile.a.district: \"X\": no object of the ledger is in this district"
        );
        assert_eq!(p.locate("--enterprise \"E\": no such"), "--enterprise \"E\": no such");
        assert_eq!(p.locate("ledger.csv:3: bad"), "ledger.csv:3: bad");
    }
}
