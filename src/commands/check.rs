//! `otscope check`: scan a selection now and print what answers, grouped by enterprise, each service
//! with its change since the last scan that saw it. The check is recorded as a scan of kind "check".
//!
//! Every narrowing (`--ip`, `--vendor`) goes through the [`Selection`] and the port list, so the
//! targets still come only from the scope: nothing outside the ledger can be probed.

use super::history::open_existing;
use crate::cli::CheckArgs;
use crate::error::{BadInput, EXIT_CHANGES, EXIT_INTERRUPTED};
use crate::findings::{identity_key, Change, Finding};
use crate::pipeline::{self, Recording, RunOptions, ScanPlan};
use crate::scope::PortSpec;
use crate::scope::{Selection, Transport};
use crate::store::{ScanId, ServiceRecord, SqliteStore, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

type Key = (IpAddr, u16, Transport);

fn user(e: StoreError) -> BadInput {
    BadInput(e.to_string())
}

pub async fn command(args: CheckArgs, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    let scope = &args.scope;
    let mut selection = scope.selection();
    selection.ips = args.ip.clone();
    let protocols = protocol_set(&args.protocol, &args.engine.enable_probe)?;
    let ports = port_filter(scope.ports.as_ref().map(|p| p.0.clone()), &protocols)?;
    let base = scope.options(args.engine.resolver)?;
    let options = args.engine.options();
    let plan = |selection: Selection, ports: Option<Vec<PortSpec>>| {
        let narrowed = pipeline::ScopeOptions { selection, ports, ..base.clone() };
        let options = &options;
        async move { pipeline::plan(&narrowed, options).await }
    };

    // Every plan is made (and every input checked) before anything is sent.
    let mut plans = Vec::new();
    match args.vendor.as_deref() {
        None => plans.push(plan(selection, ports).await?),
        Some(text) => {
            let services = last_identified_as(&args.db.db, text)?;
            let (wanted, unwanted): (Vec<_>, Vec<_>) =
                services.into_iter().partition(|(_, port)| ports.as_ref().is_none_or(|p| p.contains(port)));
            let narrowed = pipeline::ScopeOptions { selection: selection.clone(), ..base.clone() };
            let (vendor_plans, outside) = pipeline::plan_services(&narrowed, &options, wanted).await?;
            for (ip, port) in unwanted.into_iter().chain(outside) {
                eprintln!("not re-checked (outside the ledger's scope or the selection): {ip}:{port}");
            }
            if vendor_plans.is_empty() {
                return Err(BadInput(format!(
                    "--vendor {text:?}: none of the services last identified as this vendor is in the selection"
                ))
                .into());
            }
            plans.extend(vendor_plans);
        }
    }

    let run_options = RunOptions { keep_findings: true, ..args.engine.run_options(stop) };
    let mut rows = Vec::new();
    let mut scans = Vec::new();
    let mut interrupted = false;
    for plan in &plans {
        let (scan, mut found, completed) = check_one(plan, &args.db.db, run_options.clone()).await?;
        scans.push(scan);
        rows.append(&mut found);
        if !completed {
            interrupted = true;
            break;
        }
    }
    rows.retain(|r| protocols.is_empty() || r.protocols.iter().any(|p| protocols.contains(p)));
    let order: HashMap<&str, usize> =
        plans[0].ledger.enterprises.iter().enumerate().map(|(i, e)| (e.id.as_str(), i)).collect();
    rows.sort_by_key(|r| {
        let f = &r.finding;
        (order.get(f.enterprise_id.as_str()).copied().unwrap_or(usize::MAX), f.ip, f.port, f.transport)
    });
    print!("{}", table(&rows, &scans));
    if interrupted {
        eprintln!("check interrupted: only part of the selection was probed; gone services cannot be claimed");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    let news = rows.iter().filter(|r| r.change != Change::Persisting).count();
    Ok(if news > 0 { ExitCode::from(EXIT_CHANGES) } else { ExitCode::SUCCESS })
}

/// The protocol ids of `--protocol`, each known to the probe registry (opt-in ones enabled).
fn protocol_set(given: &[String], enabled: &[String]) -> Result<BTreeSet<String>, BadInput> {
    let mut known: Vec<&str> = crate::probes::registry().iter().map(|p| p.protocol).collect();
    known.sort();
    let mut out = BTreeSet::new();
    for p in given.iter().map(|p| p.trim().to_ascii_lowercase()) {
        if !known.contains(&p.as_str()) {
            return Err(BadInput(format!(
                "--protocol {p:?}: no probe for this protocol (known: {})",
                known.join(", ")
            )));
        }
        if crate::probes::opt_in_protocols().contains(&p.as_str()) && !enabled.contains(&p) {
            return Err(BadInput(format!("--protocol {p}: an opt-in probe: add --enable-probe {p}")));
        }
        out.insert(p);
    }
    Ok(out)
}

/// The ports to probe: where the protocols are expected (in the clear or in TLS), within `--ports` if given.
fn port_filter(ports: Option<Vec<PortSpec>>, protocols: &BTreeSet<String>) -> Result<Option<Vec<PortSpec>>, BadInput> {
    if protocols.is_empty() {
        return Ok(ports);
    }
    let mut expected = BTreeSet::new();
    for p in crate::probes::registry().iter().filter(|p| protocols.contains(p.protocol)) {
        expected.extend(p.ports());
    }
    let chosen: Vec<PortSpec> =
        expected.into_iter().filter(|p| ports.as_ref().is_none_or(|given| given.contains(p))).collect();
    if chosen.is_empty() {
        return Err(BadInput("--protocol and --ports have no port in common: nothing to probe".into()));
    }
    Ok(Some(chosen))
}

fn transport_of(text: &str) -> Option<Transport> {
    match text {
        "tcp" => Some(Transport::Tcp),
        "udp" => Some(Transport::Udp),
        _ => None,
    }
}

/// Every service of the history whose last finding names a vendor containing `text` (any case).
fn last_identified_as(db: &Path, text: &str) -> Result<Vec<(IpAddr, PortSpec)>, BadInput> {
    let needle = text.trim().to_lowercase();
    if needle.is_empty() {
        return Err(BadInput("--vendor: give some text of the vendor's name".into()));
    }
    let store = open_existing(db)?;
    let ips: BTreeSet<IpAddr> = store.sightings().map_err(user)?.into_iter().map(|s| s.ip).collect();
    let mut out = Vec::new();
    for ip in ips {
        for s in store.services_of(ip).map_err(user)? {
            let matches = s.last.vendor.as_deref().is_some_and(|v| v.to_lowercase().contains(&needle));
            if let (true, Some(transport)) = (matches, transport_of(&s.transport)) {
                out.push((ip, PortSpec { port: s.port, transport }));
            }
        }
    }
    if out.is_empty() {
        return Err(BadInput(format!(
            "--vendor {text:?}: no service in the history {} was last identified as this vendor",
            db.display()
        )));
    }
    Ok(out)
}

/// The services of the history that a plan covers, with their last finding.
fn known_services(store: &dyn Store, plan: &ScanPlan) -> Result<BTreeMap<Key, ServiceRecord>, StoreError> {
    let coverage = plan.stream().coverage(plan.seed, plan.shard);
    let index = coverage.index();
    let ips: BTreeSet<IpAddr> = store
        .sightings()?
        .into_iter()
        .filter(|s| transport_of(&s.transport).is_some_and(|t| index.contains(s.ip, s.port, t)))
        .map(|s| s.ip)
        .collect();
    let mut out = BTreeMap::new();
    for ip in ips {
        for s in store.services_of(ip)? {
            if let Some(t) = transport_of(&s.transport).filter(|t| index.contains(ip, s.port, *t)) {
                out.insert((ip, s.port, t), s);
            }
        }
    }
    Ok(out)
}

/// One line of the table: a service as the check found it (or last saw it, when gone).
struct Row {
    finding: Finding,
    change: Change,
    /// For a changed service: each changed identity key, before -> now.
    detail: Vec<String>,
    /// The protocol now and before, for `--protocol`.
    protocols: Vec<String>,
}

/// Runs one planned check scan, recorded in the history; returns its id, its rows and whether it completed.
async fn check_one(plan: &ScanPlan, db: &Path, options: RunOptions) -> anyhow::Result<(ScanId, Vec<Row>, bool)> {
    let store = SqliteStore::open(db).map_err(user)?;
    let before = known_services(&store, plan).map_err(user)?;
    let history = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("check"))));
    let report = pipeline::run(plan, history, Vec::new(), options).await?;
    if let Some(e) = report.history_error {
        anyhow::bail!("the history was not updated: {e}");
    }
    let scan = report.scan_id.expect("a check is recorded");
    eprintln!(
        "check scan {scan}: {} of {} targets probed in {:.1}s",
        report.stats.probed,
        plan.stream().total(),
        report.stats.elapsed.as_secs_f64()
    );
    let complete = report.complete();
    let mut rows = Vec::new();
    for f in report.findings {
        let previous = before.get(&(f.ip, f.port, f.transport)).map(|s| &s.last);
        let change = f.change.unwrap_or(Change::New);
        // The store classified the change; the values before and now are shown beside its keys.
        let (a, b) = (previous.map(identity_key).unwrap_or_default(), identity_key(&f));
        let detail =
            f.changed.iter().map(|name| format!("{name} {} -> {}", short(a.get(name)), short(b.get(name)))).collect();
        let mut protocols = vec![f.protocol.clone()];
        protocols.extend(previous.map(|p| p.protocol.clone()));
        rows.push(Row { finding: f, change, detail, protocols });
    }
    // What the check covered and no longer found: the store marked it gone in this scan.
    let store = SqliteStore::open(db).map_err(user)?;
    let ips: BTreeSet<IpAddr> = before.keys().map(|k| k.0).collect();
    for ip in ips {
        for s in store.services_of(ip).map_err(user)? {
            if s.gone_scan == Some(scan) {
                let protocols = vec![s.last.protocol.clone()];
                rows.push(Row { finding: s.last, change: Change::Gone, detail: Vec::new(), protocols });
            }
        }
    }
    Ok((scan, rows, complete))
}

fn short(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "-".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Columns a terminal gives the text: CJK and full-width characters take two.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF => 2,
            0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 => 2,
            0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

const HEADINGS: [&str; 7] = ["ADDRESS", "PROTOCOL", "VENDOR", "PRODUCT", "VERSION", "SEVERITY", "CHANGE"];

/// The rows grouped by enterprise under a header line, columns aligned across the whole table, and a summary.
fn table(rows: &[Row], scans: &[ScanId]) -> String {
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let f = &r.finding;
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let change = if r.detail.is_empty() {
                r.change.as_str().to_string()
            } else {
                format!("{}: {}", r.change.as_str(), r.detail.join(", "))
            };
            // A finding that shows a honeypot persona says so beside its protocol.
            let protocol = match f.attributes.get(crate::fingerprints::HONEYPOT_ATTRIBUTE) {
                Some(mark) => format!("{} [honeypot: {}]", f.protocol, mark["name"].as_str().unwrap_or("?")),
                None => f.protocol.clone(),
            };
            [
                format!("{}:{}/{}", f.ip, f.port, f.transport.as_str()),
                protocol,
                dash(&f.vendor),
                dash(&f.product),
                dash(&f.version),
                f.severity.as_str().to_string(),
                change,
            ]
        })
        .collect();
    let mut widths = HEADINGS.map(width);
    for c in &cells {
        for (w, text) in widths.iter_mut().zip(c) {
            *w = (*w).max(width(text));
        }
    }
    let line = |out: &mut String, texts: &[&str]| {
        out.push_str("  ");
        for (i, t) in texts.iter().enumerate() {
            out.push_str(t);
            if i + 1 < texts.len() {
                out.push_str(&" ".repeat(widths[i] - width(t) + 2));
            }
        }
        out.push('\n');
    };
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for (r, c) in rows.iter().zip(&cells) {
        let f = &r.finding;
        if current != Some(f.enterprise_id.as_str()) {
            if current.is_some() {
                out.push('\n');
            }
            let _ = writeln!(out, "{} {} ({}, {})", f.enterprise_id, f.enterprise, f.district, f.level.as_str());
            line(&mut out, &HEADINGS);
            current = Some(&f.enterprise_id);
        }
        line(&mut out, &c.each_ref().map(String::as_str));
    }
    if rows.is_empty() {
        out.push_str("no open service found\n");
    } else {
        out.push('\n');
    }
    let count = |c: Change| rows.iter().filter(|r| r.change == c).count();
    let ids: Vec<String> = scans.iter().map(|s| s.to_string()).collect();
    let _ = writeln!(
        out,
        "summary: {} open, {} new, {} changed, {} gone, {} persisting; recorded as scan {}",
        rows.len() - count(Change::Gone),
        count(Change::New),
        count(Change::Changed),
        count(Change::Gone),
        count(Change::Persisting),
        ids.join(", ")
    );
    out
}
