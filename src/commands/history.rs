//! `history`, `show` and `diff`: reading the scan history.

use crate::cli::{DiffFormat, ExportArgs};
use crate::error::BadInput;
use crate::export;
use crate::findings::Change;
use crate::history;
use crate::store::{SqliteStore, Store, StoreError};
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

pub use crate::error::EXIT_CHANGES;

/// Opens an existing history to record in it; a missing file is a user error, not an empty history.
pub fn open_existing(path: &Path) -> Result<SqliteStore, BadInput> {
    must_exist(path)?;
    SqliteStore::open(path).map_err(user)
}

/// Opens an existing history to read it only (nothing is written, so a read-only place will do).
pub fn open_for_reading(path: &Path) -> Result<SqliteStore, BadInput> {
    must_exist(path)?;
    SqliteStore::open_read_only(path).map_err(user)
}

fn must_exist(path: &Path) -> Result<(), BadInput> {
    if path.exists() {
        return Ok(());
    }
    Err(BadInput(format!("{}: no such history database (scan with --db {} first)", path.display(), path.display())))
}

fn user(e: StoreError) -> BadInput {
    BadInput(e.to_string())
}

pub fn list(db: &Path, upgrade: bool) -> anyhow::Result<ExitCode> {
    if upgrade {
        open_existing(db)?;
    }
    let store = open_for_reading(db)?;
    let scans = store.scans().map_err(user)?;
    println!(
        "{:>5}  {:<20}  {:<20}  {:<10}  {:>10}  {:>10}  {:>6}  {:<10}  selection",
        "scan", "started", "ended", "state", "targets", "probed", "open", "kind"
    );
    for s in &scans {
        let state = s.state().label();
        let selection = s.start.selection.to_string();
        println!(
            "{:>5}  {:<20}  {:<20}  {:<10}  {:>10}  {:>10}  {:>6}  {:<10}  {}",
            s.id,
            short_time(&s.start.started_at),
            s.ended_at.as_deref().map(short_time).unwrap_or_default(),
            state,
            s.start.targets_total,
            s.end.as_ref().map(|e| e.probed.to_string()).unwrap_or_default(),
            s.end.as_ref().map(|e| e.open.to_string()).unwrap_or_default(),
            s.start.kind,
            selection
        );
        if let Some(reason) = s.end.as_ref().and_then(|e| e.reason.as_deref()) {
            println!("{:>5}  {reason}", "");
        }
    }
    if scans.is_empty() {
        println!("(no scans yet)");
    }
    Ok(ExitCode::SUCCESS)
}

fn short_time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}

pub fn show(db: &Path, ip: IpAddr) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(db)?;
    let services = store.services_of(ip).map_err(user)?;
    if services.is_empty() {
        println!("{ip}: never seen open in the history");
        return Ok(ExitCode::SUCCESS);
    }
    let first = &services[0].last;
    println!("{ip}  {} {} ({}, {})", first.enterprise_id, first.enterprise, first.district, first.level.as_str());
    if let Some(h) = &first.hostname {
        println!("hostname: {h}");
    }
    for s in &services {
        let f = &s.last;
        let state = match s.gone_scan {
            Some(g) => format!("gone since scan {g}"),
            None => format!("open, last seen in scan {}", s.last_scan),
        };
        println!(
            "  {}/{}  {}  {} {} {}  severity {}  first seen {} (scan {}), last seen {}  [{state}]",
            s.port,
            s.transport,
            f.protocol,
            f.vendor.as_deref().unwrap_or("-"),
            f.product.as_deref().unwrap_or("-"),
            f.version.as_deref().unwrap_or("-"),
            f.severity.as_str(),
            short_time(&s.first_seen),
            s.first_scan,
            short_time(&s.last_seen),
        );
    }
    println!("observations:");
    for (scan, f) in store.observations_of(ip).map_err(user)? {
        let change = f.change.map(Change::as_str).unwrap_or("-");
        let changed = if f.changed.is_empty() { String::new() } else { format!(" ({})", f.changed.join(", ")) };
        println!(
            "  scan {scan}  {}  {}/{}  {}  {} {} {}  {change}{changed}",
            short_time(&f.observed_at),
            f.port,
            f.transport.as_str(),
            f.protocol,
            f.vendor.as_deref().unwrap_or("-"),
            f.product.as_deref().unwrap_or("-"),
            f.version.as_deref().unwrap_or("-"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn diff(db: &Path, from: Option<i64>, to: Option<i64>, all: bool, format: DiffFormat) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(db)?;
    let (from, to) = match (from, to) {
        (Some(f), Some(t)) => (f, t),
        (None, None) => history::default_pair(&store).map_err(user)?,
        (Some(f), None) => (f, history::latest_completed(&store).map_err(user)?.id),
        (None, Some(_)) => return Err(BadInput("--to needs --from".into()).into()),
    };
    if from == to {
        return Err(BadInput(format!("--from and --to are both scan {from}")).into());
    }
    let d = history::diff(&store, from, to).map_err(user)?;
    match format {
        DiffFormat::Jsonl => {
            for e in d.entries.iter().filter(|e| all || e.status != Change::Persisting) {
                println!("{}", serde_json::to_string(e)?);
            }
        }
        DiffFormat::Text => {
            println!(
                "scan {from} -> scan {to}: {} new, {} changed, {} gone, {} persisting, {} not covered by scan {to}",
                d.count(Change::New),
                d.count(Change::Changed),
                d.count(Change::Gone),
                d.count(Change::Persisting),
                d.not_covered
            );
            for e in d.entries.iter().filter(|e| all || e.status != Change::Persisting) {
                let was = if e.before.is_empty() {
                    String::new()
                } else {
                    let parts: Vec<String> = e.before.iter().map(|(k, v)| format!("{k} was {v}")).collect();
                    format!("  ({})", parts.join(", "))
                };
                println!("  {}{was}", e.line());
            }
        }
    }
    let changes = d.count(Change::New) + d.count(Change::Changed) + d.count(Change::Gone);
    Ok(if changes > 0 { ExitCode::from(EXIT_CHANGES) } else { ExitCode::SUCCESS })
}

/// The scan a `--scan` names, or the latest completed one.
pub fn chosen_scan(store: &dyn Store, scan: Option<i64>) -> Result<i64, BadInput> {
    match scan {
        Some(id) => store.scan(id).map(|s| s.id).map_err(user),
        None => history::latest_completed(store).map(|s| s.id).map_err(user),
    }
}

pub fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(&args.db.db)?;
    let scan = chosen_scan(&store, args.scan)?;
    let by_district = matches!(args.by, Some(crate::cli::Grouping::District));
    if args.format == export::Format::Stix {
        return export_stix(&store, scan, &args.out, by_district);
    }
    let data = export::ScanExport::load(&store, scan).map_err(user)?;
    let written = match args.by {
        Some(crate::cli::Grouping::District) => export::by_district(&data, &args.out, args.format, args.lang),
        None => export::single(&data, &args.out, args.format, args.lang),
    }
    .map_err(refused_export)?;
    eprintln!(
        "scan {scan}: {} findings written to {} file(s) in {}",
        written.findings,
        written.files.len(),
        args.out.display()
    );
    for f in &written.files {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// A manifest that cannot be trusted is the user's to fix; a write that fails is an error.
fn refused_export(e: export::ExportError) -> anyhow::Error {
    match e {
        export::ExportError::Manifest { .. } => BadInput(e.to_string()).into(),
        export::ExportError::Io { .. } => e.into(),
    }
}

/// Writes the scan's STIX 2.1 bundles from the history of every known service.
fn export_stix(store: &SqliteStore, scan: i64, out: &Path, by_district: bool) -> anyhow::Result<ExitCode> {
    let from_store = export::stix::FromStore::read(store, scan).map_err(user)?;
    let matches = affected_services(store).map_err(user)?;
    let input = from_store.input(&matches);
    let written = export::stix::write(&input, out, by_district).map_err(refused_export)?;
    eprintln!(
        "scan {scan}: {} exposed services written to {} STIX bundle(s) in {}",
        written.findings,
        written.files.len(),
        out.display()
    );
    for f in &written.files {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The services the history's open remediation items find affected (never a honeypot), as the STIX
/// bundles link them to their vulnerabilities. A document without a TLP label is handled as AMBER,
/// as notices handle it.
fn affected_services(store: &SqliteStore) -> Result<Vec<export::stix::AdvisoryMatch>, StoreError> {
    use crate::store::AdvisoryStore;
    let released: std::collections::HashMap<String, String> =
        store.advisories()?.into_iter().map(|a| (a.id, a.current_release_date)).collect();
    let items = store.items()?.into_iter().filter(|i| {
        i.state.is_active() && i.detail.status == crate::advisories::Status::Affected && !i.detail.honeypot
    });
    Ok(items
        .map(|i| export::stix::AdvisoryMatch {
            ip: i.detail.ip,
            port: i.detail.port,
            transport: i.detail.transport.as_str().to_string(),
            released: released.get(&i.detail.advisory).cloned().unwrap_or_else(|| i.created_at.clone()),
            advisory: i.detail.advisory,
            cves: i.detail.cves,
            tlp: i.detail.tlp.unwrap_or(crate::advisories::Tlp::Amber),
            since: i.created_at,
        })
        .collect())
}

pub fn report(scan: Option<i64>, out: &Path, lang: export::Lang, db: &Path) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(db)?;
    let scan = chosen_scan(&store, scan)?;
    let notices = crate::store::AdvisoryStore::open_notices(&store).map_err(user)?;
    let html = crate::report::render(&store, &notices, scan, lang).map_err(user)?;
    std::fs::write(out, html).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    eprintln!("report of scan {scan} written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
