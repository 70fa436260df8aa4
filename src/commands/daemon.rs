//! `daemon`, `status`, and `scan --config`: the profiles of a configuration file.

use super::history::open_for_reading;
use super::scan;
use crate::cli::ScanArgs;
use crate::config::{self, kind_of, Profile};
use crate::daemon::{self, show_time};
use crate::error::BadInput;
use crate::store::{SqliteStore, Store};
use std::path::Path;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// `otscope daemon --config FILE`: refuses an invalid file or an unusable history before anything runs.
pub async fn daemon(path: &Path, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    let config = config::load(path).map_err(BadInput::from)?;
    config.check_for_daemon().map_err(BadInput::from)?;
    SqliteStore::open(&config.db).map_err(|e| BadInput(e.to_string()))?;
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
            Some(s) => match (&s.ended_at, &s.end) {
                (Some(ended), Some(end)) => format!(
                    "scan {}, {} to {}, {}{}, {} of {} targets probed, {} open",
                    s.id,
                    time(&s.start.started_at),
                    time(ended),
                    s.state().label(),
                    end.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
                    end.probed,
                    s.start.targets_total,
                    end.open
                ),
                _ => format!("scan {}, started {}, {}", s.id, time(&s.start.started_at), s.state().label()),
            },
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

/// `otscope scan --config FILE [--profile NAME]`: the scan with the profile's options (already put on
/// the command line), recorded as the profile's, then the profile's exports.
pub async fn scan_profile(args: ScanArgs, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    let path = args.config.clone().expect("scan_profile is called with --config");
    let config = config::load(&path).map_err(BadInput::from)?;
    let profile = config.profile(args.profile.as_deref()).map_err(BadInput::from)?.clone();
    let (dry_run, db) = (args.dry_run, args.db.clone().filter(|_| !args.no_db));
    let code = match scan::command(args, stop).await {
        Ok(code) => code,
        Err(e) => return Err(locate(e, &profile)),
    };
    if dry_run || profile.exports.is_empty() {
        return Ok(code);
    }
    let Some(db) = db else {
        eprintln!("exports not written: they are made from the history, and --no-db records nothing");
        return Ok(code);
    };
    let store = SqliteStore::open(&db).map_err(|e| anyhow::anyhow!("{e}"))?;
    let kind = kind_of(&profile.name);
    let last = store.scans()?.into_iter().filter(|s| s.start.kind == kind).max_by_key(|s| s.id);
    match last {
        Some(s) if s.completed() => {
            for f in daemon::write_exports(&db, s.id, &profile.exports)? {
                eprintln!("export written: {}", f.display());
            }
        }
        _ => eprintln!("exports not written: the scan did not complete"),
    }
    Ok(code)
}

/// A bad option of the profile is told at its line, unless the command line gave that option itself.
fn locate(e: anyhow::Error, profile: &Profile) -> anyhow::Error {
    match e.downcast::<BadInput>() {
        Ok(BadInput(message)) => {
            let long = message.strip_prefix("--").and_then(|m| m.split([' ', '=', ':']).next()).unwrap_or("");
            let on_command_line = !long.is_empty()
                && std::env::args().any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")));
            BadInput(if on_command_line { message } else { profile.locate(&message) }).into()
        }
        Err(e) => e,
    }
}
