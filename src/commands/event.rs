//! `otscope event start|check|report|close|list`.

use super::history::{open_existing, open_for_reading};
use crate::cli::{DbArgs, EngineArgs, EventCommand, ScopeArgs};
use crate::error::{BadInput, EXIT_CHANGES, EXIT_INTERRUPTED};
use crate::event::{self, Verdict};
use crate::export::Lang;
use crate::findings::{Change, FindingSink, JsonlWriter};
use crate::history::diff;
use crate::pipeline::{self, now_rfc3339, summary_text, Recording, ScopeOptions};
use crate::store::{EventPlan, EventRecord, EventStore, SqliteStore, Store, StoreError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

fn user(e: StoreError) -> BadInput {
    BadInput(e.to_string())
}

pub async fn run(command: EventCommand, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    match command {
        EventCommand::Start { name, scope, engine, db } => start(&name, &scope, &engine, &db, stop).await,
        EventCommand::Check { name, out, engine, db } => check(&name, out.as_deref(), &engine, &db, stop).await,
        EventCommand::Report { name, out, lang, window, db } => {
            let store = open_for_reading(&db.db)?;
            let record = store.event(&name).map_err(user)?;
            let window = time::Duration::try_from(window).map_err(|e| BadInput(format!("--window: {e}")))?;
            let notices = crate::store::AdvisoryStore::open_notices(&store).map_err(user)?;
            let report = event::report(&store, &notices, &record, time::OffsetDateTime::now_utc(), window, lang)
                .map_err(user)?;
            std::fs::write(&out, &report.text).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
            // The report is in its file; the terminal gets one line saying where, and its conclusion.
            let conclusion = match report.verdict {
                Verdict::Zero => "no new exposure and no change",
                Verdict::Drift => "drift from the baseline",
                Verdict::NoCoverage => "no complete check in the window: nothing can be vouched for",
            };
            println!("event {name}: report written to {}: {conclusion}", out.display());
            Ok(match report.verdict {
                Verdict::Zero => ExitCode::SUCCESS,
                Verdict::Drift => ExitCode::from(EXIT_CHANGES),
                Verdict::NoCoverage => ExitCode::FAILURE,
            })
        }
        EventCommand::Close { name, db } => {
            let mut store = open_existing(&db.db)?;
            store.close_event(&name, &now_rfc3339()).map_err(user)?;
            println!("event {name} closed");
            Ok(ExitCode::SUCCESS)
        }
        EventCommand::List(db) => {
            let store = open_for_reading(&db.db)?;
            let events = store.events().map_err(user)?;
            if events.is_empty() {
                println!("(no events yet: `otscope event start NAME` opens one)");
            }
            for e in events {
                let state = e.closed_at.as_deref().map(|c| format!("closed {c}")).unwrap_or_else(|| "open".into());
                println!(
                    "{}  started {}  baseline scan {}  {state}  selection {}",
                    e.name,
                    e.started_at,
                    e.baseline_scan,
                    serde_json::to_string(&e.plan.selection)?
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Scans the plan's selection and records it as a scan of the event.
async fn scan_for_event(
    name: &str,
    plan_of: &EventPlan,
    engine: &EngineArgs,
    db: &Path,
    stop: CancellationToken,
) -> anyhow::Result<(i64, bool)> {
    let ledger = crate::ledger::LedgerOptions {
        path: PathBuf::from(&plan_of.ledger),
        sheet: plan_of.sheet.clone(),
        encoding: plan_of.encoding,
    };
    let scope = ScopeOptions {
        exclude: plan_of.exclude.as_ref().map(PathBuf::from),
        ports: Some(plan_of.ports.clone()),
        selection: plan_of.selection.clone(),
        resolver: engine.resolver,
        ..ScopeOptions::new(ledger, &plan_of.fingerprints)
    };
    let plan = pipeline::plan(&scope, &engine.options()).await?;
    let store = SqliteStore::open(db).map_err(user)?;
    let history = Some(Recording::New(Box::new(store), Box::new(plan.scan_start(&event::kind_of(name)))));
    let report = pipeline::run(&plan, history, Vec::new(), engine.run_options(stop)).await?;
    eprint!("{}", summary_text(&plan, &report));
    if let Some(e) = report.history_error {
        anyhow::bail!("the history was not updated: {e}");
    }
    Ok((report.scan_id.expect("recorded"), report.complete()))
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p).unwrap_or_else(|_| PathBuf::from(p)).display().to_string()
}

async fn start(
    name: &str,
    scope: &ScopeArgs,
    engine: &EngineArgs,
    db: &DbArgs,
    stop: CancellationToken,
) -> anyhow::Result<ExitCode> {
    if let Ok(store) = SqliteStore::open(&db.db) {
        if store.event(name).is_ok() {
            return Err(BadInput(format!("event {name:?} already exists (see `otscope event list`)")).into());
        }
    }
    let library = crate::fingerprints::Library::load(&scope.fingerprints).map_err(|e| BadInput(e.to_string()))?;
    let ledger = scope.ledger()?;
    let plan = EventPlan {
        ledger: absolute(&ledger.path),
        sheet: ledger.sheet,
        encoding: ledger.encoding,
        exclude: scope.exclude.as_deref().map(absolute),
        fingerprints: absolute(&scope.fingerprints),
        ports: scope.ports.clone().map(|p| p.0).unwrap_or(library.default_ports),
        selection: scope.selection(),
    };
    let (baseline, completed) = scan_for_event(name, &plan, engine, &db.db, stop).await?;
    if !completed {
        anyhow::bail!("the baseline scan {baseline} was interrupted: the event was not opened; start it again");
    }
    let mut store = SqliteStore::open(&db.db).map_err(user)?;
    store
        .create_event(&EventRecord {
            name: name.to_string(),
            plan,
            started_at: now_rfc3339(),
            baseline_scan: baseline,
            closed_at: None,
        })
        .map_err(user)?;
    let findings = store.findings(baseline).map_err(user)?;
    println!("event {name} opened: baseline scan {baseline}, {} open services", findings.len());
    Ok(ExitCode::SUCCESS)
}

async fn check(
    name: &str,
    out: Option<&Path>,
    engine: &EngineArgs,
    db: &DbArgs,
    stop: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let record = open_for_reading(&db.db)?.event(name).map_err(user)?;
    if let Some(closed) = &record.closed_at {
        return Err(BadInput(format!("event {name:?} was closed at {closed}: no more checks")).into());
    }
    // Created before the check probes anything: a path that cannot be written is bad input.
    let mut sink: Option<Box<dyn FindingSink>> = match out {
        Some(path) => Some(Box::new(JsonlWriter::new(pipeline::create(path)?))),
        None => None,
    };
    let (scan, completed) = scan_for_event(name, &record.plan, engine, &db.db, stop).await?;
    let store = SqliteStore::open(&db.db).map_err(user)?;
    let d = diff(&store, record.baseline_scan, scan).map_err(user)?;
    let drift: Vec<_> = d.entries.iter().filter(|e| e.status != Change::Persisting).collect();
    for e in &drift {
        let mut f = e.finding.clone();
        f.change = Some(e.status);
        f.changed = e.before.keys().cloned().collect();
        println!("{}", e.line());
        if let Some(s) = sink.as_mut() {
            s.write(&f)?;
        }
    }
    if let Some(s) = sink.as_mut() {
        s.finish()?;
    }
    // An event watches the objects of its baseline: a check of another scope says so.
    let scope = event::scope_change(
        &store.scan(record.baseline_scan).map_err(user)?.start,
        &store.scan(scan).map_err(user)?.start,
    );
    if let Some(change) = &scope {
        println!("event {name}: the scope changed since the baseline: {}", change.describe(Lang::En));
    }
    let baseline = record.baseline_scan;
    if !completed {
        println!("event {name}: check scan {scan} against baseline scan {baseline}: interrupted, {} drift in the part probed", drift.len());
        eprintln!(
            "check scan {scan} was interrupted: it is not a complete check (the event report does not count it) and \
             gone services cannot be claimed; run the check again"
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    println!("event {name}: check scan {scan} against baseline scan {baseline}: {} drift", drift.len());
    Ok(if drift.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_CHANGES) })
}
