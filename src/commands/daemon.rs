//! `daemon`, `status`, and `scan --config`: the profiles of a configuration file.

use super::history::open_for_reading;
use super::scan;
use crate::cli::ScanArgs;
use crate::config::{self, kind_of, Profile};
use crate::daemon::{self, show_time};
use crate::error::BadInput;
use crate::store::{ScanId, ScanRecord, SqliteStore, Store};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// `otscope daemon --config FILE`: refuses a second daemon on the same history, an invalid file, a
/// scheduled profile whose files cannot be used, or a history it cannot write, before anything runs.
pub async fn daemon(path: &Path, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    let config = config::load(path).map_err(BadInput::from)?;
    let _lock = daemon::DaemonLock::take(&config)?;
    daemon::ready(&config).map_err(BadInput::from)?;
    let store = SqliteStore::open(&config.db).map_err(|e| BadInput(e.to_string()))?;
    // A history that opens but only for reading would fail every run.
    if store.connection().is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        return Err(
            BadInput(format!("{}: the history cannot be written (it opens read-only)", config.db.display())).into()
        );
    }
    drop(store);
    daemon::serve(config, stop).await?;
    Ok(ExitCode::SUCCESS)
}

/// `otscope status --config FILE [--db PATH]`: each profile's last run (from the history) and next run.
pub fn status(path: &Path, db: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = config::load(path).map_err(BadInput::from)?;
    let db = db.unwrap_or(&config.db);
    let scans =
        if db.exists() { open_for_reading(db)?.scans().map_err(|e| BadInput(e.to_string()))? } else { Vec::new() };
    let tz = &config.timezone;
    let now = jiff::Zoned::now().with_time_zone(tz.clone());
    println!(
        "{}: {} profile(s), time zone {}, history {}",
        config.path.display(),
        config.profiles.len(),
        config.timezone_name,
        db.display()
    );
    let time = |t: &str| t.parse::<jiff::Timestamp>().map(|t| show_time(t, tz)).unwrap_or_else(|_| t.to_string());
    for p in config.profiles.values() {
        let kind = kind_of(&p.name);
        let last = scans.iter().filter(|s| s.start.kind == kind).max_by_key(|s| s.id);
        let last = match last {
            None => "never".to_string(),
            Some(s) => last_run(s, &time),
        };
        let next = match &p.schedule {
            None => "not scheduled".to_string(),
            Some(s) => match s.next_after(&now) {
                Some(n) => format!("{} (schedule \"{}\")", show_time(n.timestamp(), tz), s.expression),
                None => format!("never (schedule \"{}\" names no time ahead)", s.expression),
            },
        };
        println!("profile {}\n  last run: {last}\n  next run: {next}", p.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// A profile's last run as `status` shows it: complete, partial (interrupted), failed with the reason,
/// or, when it never ended, running or interrupted (its process is gone).
fn last_run(s: &ScanRecord, time: &dyn Fn(&str) -> String) -> String {
    let (Some(ended), Some(end)) = (&s.ended_at, &s.end) else {
        return format!("scan {}, started {}, {}", s.id, time(&s.start.started_at), s.state().label());
    };
    let counts = format!("{} of {} targets probed, {} open", end.probed, s.start.targets_total, end.open);
    let span = format!("scan {}, {} to {}", s.id, time(&s.start.started_at), time(ended));
    match end.reason.as_deref() {
        _ if end.completed => format!("{span}, complete, {counts}"),
        Some(why) if why.starts_with(daemon::FAILED) => format!("{why}; scan {}, {}", s.id, time(ended)),
        Some("interrupted") => format!("{span}, partial (interrupted), {counts}"),
        Some(why) => format!("failed: {why}; {span}, {counts}"),
        None => format!("{span}, partial, {counts}"),
    }
}

/// `otscope scan --config FILE [--profile NAME]`: the scan with the profile's options (already put on
/// the command line), recorded as the profile's, then the profile's exports.
pub async fn scan_profile(args: ScanArgs, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    let path = args.config.clone().expect("scan_profile is called with --config");
    let config = config::load(&path).map_err(BadInput::from)?;
    let profile = config.profile(args.profile.as_deref()).map_err(BadInput::from)?.clone();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let given = config::scan_options_given(&argv);
    let problems = profile.file_problems(&config.path, &config.db, |key| given.contains(key));
    if !problems.is_empty() {
        return Err(BadInput(problems.join("\n")).into());
    }
    let (dry_run, db) = (args.dry_run, args.db.clone().filter(|_| !args.no_db));
    let scanned = match scan::run(args, stop).await {
        Ok(scanned) => scanned,
        Err(e) => return Err(locate(e, &profile, &given)),
    };
    if dry_run || profile.exports.is_empty() {
        return Ok(scanned.code);
    }
    match (db, scanned.recorded) {
        (None, _) => eprintln!("exports not written: they are made from the history, and --no-db records nothing"),
        (Some(db), Some((scan, true))) => print_exports(&db, scan, &profile.exports)?,
        _ => eprintln!("exports not written: the scan did not complete"),
    }
    Ok(scanned.code)
}

fn print_exports(db: &Path, scan: ScanId, exports: &config::Exports) -> anyhow::Result<()> {
    for f in daemon::write_exports(db, scan, exports)? {
        eprintln!("export written: {}", f.display());
    }
    Ok(())
}

/// A bad option of the profile is told at its line, unless the command line gave that option itself.
fn locate(e: anyhow::Error, profile: &Profile, given: &BTreeSet<String>) -> anyhow::Error {
    match e.downcast::<BadInput>() {
        Ok(BadInput(message)) => {
            let long = message.strip_prefix("--").and_then(|m| m.split([' ', '=', ':']).next()).unwrap_or("");
            BadInput(if given.contains(long) { message } else { profile.locate(&message) }).into()
        }
        Err(e) => e,
    }
}
