//! `advisories import | list | show | match`.

use super::history::open_for_reading;
use crate::advisories::sync::SyncError;
use crate::advisories::{parse_document, Document, Documents, Status, Vendors};
use crate::cli::{AdvisoriesCommand, MatchFormat, MatchingArgs};
use crate::error::{BadInput, EXIT_BAD_INPUT, EXIT_CHANGES};
use crate::exchange::http::{Auth, ClientOptions, HttpError};
use crate::notices;
use crate::pipeline::now_rfc3339;
use crate::store::{AdvisoryStore, SqliteStore, Store, StoreError};
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(command: AdvisoriesCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdvisoriesCommand::Import { paths, matching } => import(&paths, &matching),
        AdvisoriesCommand::Sync { url, ca, matching } => sync(&url, ca, &matching),
        AdvisoriesCommand::List(db) => list(&open_for_reading(&db.db)?),
        AdvisoriesCommand::Show { id, json, db } => show(&open_for_reading(&db.db)?, &id, json),
        AdvisoriesCommand::Match { scan, format, matching } => matches(scan, format, &matching),
    }
}

pub fn user(e: impl std::fmt::Display) -> BadInput {
    BadInput(e.to_string())
}

/// The vendor table of the library folder.
pub fn vendors(matching: &MatchingArgs) -> Result<Vendors, BadInput> {
    notices::load_vendors(&matching.fingerprints)
}

fn import(paths: &[PathBuf], matching: &MatchingArgs) -> anyhow::Result<ExitCode> {
    let vendors = vendors(matching)?;
    // Importing is how a history gets its first advisories: the database is created if missing.
    let mut store = SqliteStore::open(&matching.db.db).map_err(user)?;
    let outcome = notices::import(&mut store, paths, &vendors, &now_rfc3339()).map_err(user)?;
    Ok(told(&outcome))
}

fn sync(url: &str, ca: Option<PathBuf>, matching: &MatchingArgs) -> anyhow::Result<ExitCode> {
    let vendors = vendors(matching)?;
    let mut store = SqliteStore::open(&matching.db.db).map_err(user)?;
    let state = store.sync_state(url).map_err(user)?;
    let options = ClientOptions { ca, ..ClientOptions::default() };
    let report = crate::advisories::sync::sync(url, &state, &options, Auth::None).map_err(|e| match e {
        SyncError::Http(HttpError::Setup(why)) => anyhow::Error::from(BadInput(why)),
        e => anyhow::anyhow!("{url}: {e}"),
    })?;
    let mut documents = Documents::default();
    for fetched in &report.fetched {
        match parse_document(&fetched.bytes, &fetched.url) {
            Ok(advisory) => documents.read.push(Document {
                path: PathBuf::from(&fetched.url),
                bytes: fetched.bytes.clone(),
                advisory,
            }),
            Err(problems) => documents.refused.push((PathBuf::from(&fetched.url), problems)),
        }
    }
    for refused in &report.refused {
        eprintln!("{}: {}", refused.url, refused.reason);
    }
    eprintln!(
        "{url}: {} fetched, {} refused by its checks, {} unchanged since the last sync",
        report.fetched.len(),
        report.refused.len(),
        report.unchanged + report.same_content
    );
    let outcome = notices::import_documents(&mut store, documents, &vendors, &now_rfc3339()).map_err(user)?;
    // Recorded only once the documents are: an interrupted sync fetches them again next time.
    store.set_sync_state(url, &report.state).map_err(user)?;
    let code = told(&outcome);
    Ok(if report.refused.is_empty() { code } else { ExitCode::from(EXIT_BAD_INPUT) })
}

/// Tells what an import did; exit status 2 when any document was refused.
fn told(outcome: &notices::ImportOutcome) -> ExitCode {
    for (_, problems) in &outcome.refused {
        for p in problems {
            eprintln!("{p}");
        }
    }
    for id in &outcome.revised {
        eprintln!("{id}: revised (its content changed): matched again");
    }
    let r = &outcome.refresh;
    eprintln!(
        "{} new, {} revised, {} unchanged, {} refused; {} match results, {} items opened, {} closed",
        outcome.new.len(),
        outcome.revised.len(),
        outcome.unchanged.len(),
        outcome.refused.len(),
        r.results,
        r.opened,
        r.closed
    );
    for (path, _) in &outcome.refused {
        println!("refused: {}", path.display());
    }
    if outcome.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_BAD_INPUT)
    }
}

fn list(store: &SqliteStore) -> anyhow::Result<ExitCode> {
    let advisories = store.advisories().map_err(user)?;
    println!("{:<28}  {:<8}  {:<6}  {:<10}  title", "advisory", "version", "tlp", "released");
    for a in &advisories {
        println!(
            "{:<28}  {:<8}  {:<6}  {:<10}  {}",
            a.id,
            a.version,
            a.tlp.map(|t| t.as_str()).unwrap_or("-"),
            notices::day(&a.current_release_date),
            a.title
        );
    }
    if advisories.is_empty() {
        println!("(no advisories yet: otscope advisories import PATH)");
    }
    Ok(ExitCode::SUCCESS)
}

fn show(store: &SqliteStore, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let Some(a) = store.advisory(id).map_err(user)? else {
        return Err(BadInput(format!("no advisory {id:?} recorded (see `otscope advisories list`)")).into());
    };
    if json {
        println!("{}", String::from_utf8_lossy(&a.document));
        return Ok(ExitCode::SUCCESS);
    }
    let parsed = crate::advisories::parse_document(&a.document, id)
        .map_err(|p| BadInput(format!("{id}: the recorded document no longer reads: {}", p[0])))?;
    println!("{}  {}", a.id, a.title);
    println!(
        "version {}, released {}, TLP:{}",
        a.version,
        a.current_release_date,
        a.tlp.map(|t| t.as_str()).unwrap_or("none")
    );
    println!("publisher {}; imported {} from {}", a.publisher, a.imported_at, a.source);
    if let Some(r) = &a.revised_at {
        println!("revised (content changed) {r}");
    }
    println!("content sha256 {}", a.content_hash);
    println!("products:");
    for p in &parsed.products {
        let version = match &p.version {
            Some(v) if !p.name.ends_with(v.text()) => format!(": {}", v.text()),
            _ => String::new(),
        };
        println!("  {}  {}{version}", p.id, p.name);
    }
    println!("vulnerabilities:");
    for v in &parsed.vulnerabilities {
        let score = v
            .scores
            .iter()
            .filter_map(|s| s.cvss_v3.as_ref().or(s.cvss_v2.as_ref()))
            .map(|c| c.base_score)
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
        println!(
            "  {}  cvss {}  {}",
            v.cve.as_deref().unwrap_or("-"),
            score.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-".into()),
            v.title.as_deref().unwrap_or("")
        );
    }
    let results = store.matches(Some(id)).map_err(user)?;
    println!("match results ({}):", results.len());
    for m in &results {
        println!("  {}  {}  {}: {}", m.service(), m.product_id, m.status.as_str(), m.reason);
    }
    Ok(ExitCode::SUCCESS)
}

fn matches(scan: Option<i64>, format: MatchFormat, matching: &MatchingArgs) -> anyhow::Result<ExitCode> {
    let vendors = vendors(matching)?;
    let store = open_for_reading(&matching.db.db)?;
    if let Some(id) = scan {
        store.scan(id).map_err(user)?;
    }
    let results = notices::current_matches(&store, &vendors, scan).map_err(|e: StoreError| user(e))?;
    match format {
        MatchFormat::Jsonl => {
            for m in &results {
                println!("{}", notices::match_json(m));
            }
        }
        MatchFormat::Table => {
            for m in &results {
                println!(
                    "{}  {} {}  {}  {}  {}  version {}  {}: {}",
                    m.service(),
                    m.enterprise_id,
                    m.enterprise,
                    m.advisory,
                    m.cvss.map(|s| format!("cvss {s:.1}")).unwrap_or_else(|| "cvss -".into()),
                    m.product,
                    m.version.as_deref().unwrap_or("-"),
                    m.status.as_str(),
                    m.reason
                );
            }
            let count = |s: Status| results.iter().filter(|m| m.status == s).count();
            eprintln!(
                "{} results: {} affected, {} undetermined, {} not affected",
                results.len(),
                count(Status::Affected),
                count(Status::Undetermined),
                count(Status::NotAffected)
            );
        }
    }
    let affected = results.iter().any(|m| m.status == Status::Affected);
    Ok(if affected { ExitCode::from(EXIT_CHANGES) } else { ExitCode::SUCCESS })
}
