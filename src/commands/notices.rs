//! `notices issue | claim | except | verify | status`.

use super::advisories::{user, vendors};
use super::history::{open_existing, open_for_reading};
use crate::cli::{MatchFormat, MatchingArgs, NoticesCommand};
use crate::config::{self, Config};
use crate::error::{BadInput, EXIT_CHANGES, EXIT_INTERRUPTED};
use crate::notices::{self, day, IssueOptions, LoopError, NoticeSettings, VerifyOptions};
use crate::pipeline::now_rfc3339;
use crate::store::{ItemRecord, ItemState};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

pub async fn run(command: NoticesCommand, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    let at = now_rfc3339();
    match command {
        NoticesCommand::Issue { out, lang, config, by, matching } => {
            let settings = settings(config.as_deref())?;
            issue(&matching, &IssueOptions { settings, out: Some(out), lang, actor: by })
        }
        NoticesCommand::Claim { id, by, note, db } => {
            let mut store = open_existing(&db.db)?;
            let claimed = notices::claim(&mut store, &id, &by, &note, &at).map_err(refused)?;
            for i in &claimed {
                println!("item {} claimed by {by}: {}", i.id.unwrap_or_default(), line(i));
            }
            Ok(ExitCode::SUCCESS)
        }
        NoticesCommand::Except { id, reason, until, by, db } => {
            let mut store = open_existing(&db.db)?;
            let excepted = notices::except(&mut store, &id, &by, &reason, &until, &at).map_err(refused)?;
            for i in &excepted {
                println!("item {} excepted until {until}: {}", i.id.unwrap_or_default(), line(i));
            }
            Ok(ExitCode::SUCCESS)
        }
        NoticesCommand::Verify { scope, engine, by, db } => {
            let matching = MatchingArgs { fingerprints: scope.fingerprints.clone(), db: db.clone() };
            let vendors = vendors(&matching)?;
            open_existing(&db.db)?;
            let options = VerifyOptions {
                scope: scope.options(engine.resolver)?,
                scan: engine.options(),
                run: engine.run_options(stop),
                actor: by,
            };
            let outcome = notices::verify(&db.db, &vendors, &options).await?;
            print_verified(&outcome);
            Ok(if !outcome.complete {
                ExitCode::from(EXIT_INTERRUPTED)
            } else if outcome.reopened.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CHANGES)
            })
        }
        NoticesCommand::Status { format, all, db } => status(&db.db, format, all, &at),
    }
}

fn refused(e: LoopError) -> BadInput {
    BadInput(e.to_string())
}

/// The `[notices]` table of `--config`, else of `otscope.toml` in the current folder if there is one,
/// else the defaults.
pub fn settings(config: Option<&Path>) -> Result<NoticeSettings, BadInput> {
    let default = PathBuf::from("otscope.toml");
    let path = match config {
        Some(p) => p,
        None if default.exists() => &default,
        None => return Ok(NoticeSettings::default()),
    };
    let config: Config = config::load(path)?;
    Ok(config.notices)
}

pub fn issue(matching: &MatchingArgs, options: &IssueOptions) -> anyhow::Result<ExitCode> {
    let vendors = vendors(matching)?;
    let mut store = open_existing(&matching.db.db)?;
    let issued = notices::issue(&mut store, &vendors, options, &now_rfc3339()).map_err(refused)?;
    if issued.exceptions_ended > 0 {
        eprintln!("{} exception(s) ended: their items are notified again", issued.exceptions_ended);
    }
    for (item, advisory, tlp) in &issued.withheld {
        let tlp = tlp.map(|t| t.as_str()).unwrap_or("none");
        eprintln!("item {item} ({advisory}, TLP:{tlp}) stays in the center: no notice may carry it");
    }
    if issued.notices.is_empty() {
        eprintln!("nothing to notify: every affected item is already in a notice, claimed, excepted or closed");
        return Ok(ExitCode::SUCCESS);
    }
    for n in &issued.notices {
        let items: usize = n.advisories.iter().map(|a| a.services.len()).sum();
        println!("{}  {}  {} {}  {} item(s)", n.number, n.kind.as_str(), n.subject, n.subject_name, items);
    }
    for f in &issued.files {
        eprintln!("wrote {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn line(i: &ItemRecord) -> String {
    let d = &i.detail;
    format!("{} {} {} ({})", d.service(), d.enterprise_id, d.advisory, d.status.as_str())
}

fn print_verified(outcome: &notices::Verified) {
    let scans: Vec<String> = outcome.scans.iter().map(ToString::to_string).collect();
    for (id, why) in &outcome.verified {
        println!("item {id} verified: {why}");
    }
    for (id, why) in &outcome.reopened {
        println!("item {id} reopened: {why}");
    }
    for (id, why) in &outcome.unchanged {
        println!("item {id} unchanged: {why}");
    }
    eprintln!(
        "re-check scan(s) {}: {} verified, {} reopened, {} unchanged",
        if scans.is_empty() { "none (no claimed item)".to_string() } else { scans.join(", ") },
        outcome.verified.len(),
        outcome.reopened.len(),
        outcome.unchanged.len()
    );
}

fn status(db: &Path, format: MatchFormat, all: bool, at: &str) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(db)?;
    let lines = notices::status(&store, at).map_err(user)?;
    let shown = lines.iter().filter(|s| all || s.item.state.is_active());
    match format {
        MatchFormat::Jsonl => {
            for s in shown {
                let i = &s.item;
                let d = &i.detail;
                let value = serde_json::json!({
                    "item": i.id,
                    "state": i.state,
                    "ip": d.ip,
                    "port": d.port,
                    "transport": d.transport.as_str(),
                    "enterprise_id": d.enterprise_id,
                    "enterprise": d.enterprise,
                    "district": d.district,
                    "advisory": d.advisory,
                    "status": d.status.as_str(),
                    "version": d.version,
                    "notice": i.notice,
                    "deadline": i.deadline,
                    "except_until": i.except_until,
                    "age_days": s.age_days,
                    "overdue": s.overdue,
                    "transitions": s.transitions,
                });
                println!("{value}");
            }
        }
        MatchFormat::Table => {
            println!(
                "{:>5}  {:<9}  {:<26}  {:<10}  {:<24}  {:<14}  {:>4}  {:<10}  last move",
                "item", "state", "service", "enterprise", "advisory", "notice", "age", "deadline"
            );
            let mut count = 0;
            for s in shown {
                count += 1;
                let i = &s.item;
                let d = &i.detail;
                let last = s.transitions.last().map(|t| format!("{} {}: {}", day(&t.at), t.actor, t.reason));
                let deadline = match (&i.deadline, i.state) {
                    (_, ItemState::Excepted) => format!("until {}", i.except_until.as_deref().unwrap_or("?")),
                    (Some(d), _) => day(d).to_string(),
                    (None, _) => "-".into(),
                };
                println!(
                    "{:>5}  {:<9}  {:<26}  {:<10}  {:<24}  {:<14}  {:>3}d  {:<10}{}  {}",
                    i.id.unwrap_or_default(),
                    i.state.as_str(),
                    d.service(),
                    d.enterprise_id,
                    d.advisory,
                    i.notice.as_deref().unwrap_or("-"),
                    s.age_days,
                    deadline,
                    if s.overdue { " OVERDUE" } else { "" },
                    last.unwrap_or_default()
                );
            }
            let overdue = lines.iter().filter(|s| s.overdue).count();
            eprintln!("{count} item(s) shown, {overdue} overdue");
        }
    }
    Ok(ExitCode::SUCCESS)
}
