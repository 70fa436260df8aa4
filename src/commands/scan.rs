//! `otscope scan`: the pipeline with the command line's options, its outputs and its history.

use crate::cli::{EngineArgs, ScanArgs};
use crate::error::{BadInput, EXIT_INTERRUPTED};
use crate::findings::{JsonlWriter, Sink};
use crate::pipeline::{self, dry_run_text, file_sinks, summary_text, Recording, ScanPlan, ScanReport};
use crate::store::{SqliteStore, Store};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

pub async fn command(args: ScanArgs, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    if let Some(which) = args.resume {
        return resume(which, &args, stop).await;
    }
    let plan = pipeline::plan(&args.scope.options(args.engine.resolver)?, &args.engine.options()).await?;
    if args.dry_run {
        print!("{}", dry_run_text(&plan));
        return Ok(ExitCode::SUCCESS);
    }
    let sinks = sinks_of(&args)?;
    let recording = match args.db.as_ref().filter(|_| !args.no_db) {
        Some(path) => {
            let store = SqliteStore::open(path).map_err(|e| BadInput(e.to_string()))?;
            let kind = args.profile.as_deref().map_or_else(|| "scan".to_string(), crate::config::kind_of);
            let mut start = plan.scan_start(&kind);
            // How to start this scan again, for --resume: the same options from the same folder.
            start.parameters["argv"] = serde_json::json!(std::env::args().collect::<Vec<_>>());
            start.parameters["cwd"] = serde_json::json!(std::env::current_dir()?.display().to_string());
            Some(Recording::New(Box::new(store), Box::new(start)))
        }
        None => None,
    };
    finish(&plan, recording, sinks, &args.engine, stop).await
}

/// `scan`'s outputs: JSONL goes to standard output unless `--out` names a file.
fn sinks_of(args: &ScanArgs) -> Result<Vec<Sink>, BadInput> {
    let mut sinks = file_sinks(args.out.as_deref(), args.csv.as_deref())?;
    if args.out.is_none() {
        sinks.insert(0, Sink::new("standard output", JsonlWriter::new(std::io::stdout())));
    }
    Ok(sinks)
}

async fn finish(
    plan: &ScanPlan,
    recording: Option<Recording>,
    sinks: Vec<Sink>,
    engine: &EngineArgs,
    stop: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let report = pipeline::run(plan, recording, sinks, engine.run_options(stop)).await?;
    eprint!("{}", summary_text(plan, &report));
    Ok(exit_status(&report))
}

/// 1 when an output or the history failed (each named on standard error), 130 when interrupted, else 0.
pub fn exit_status(report: &ScanReport) -> ExitCode {
    let recorded = match report.scan_id {
        Some(id) => format!(" (recorded as partial scan {id})"),
        None => String::new(),
    };
    for e in &report.output_errors {
        eprintln!("error: cannot write {e}: the scan stopped{recorded}");
    }
    if let Some(e) = &report.history_error {
        eprintln!("error: the history was not updated: {e}");
    }
    if !report.output_errors.is_empty() || report.history_error.is_some() {
        ExitCode::FAILURE
    } else if report.stats.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}

/// `scan --resume [SCAN]`: the scan's own options, from its own folder, continued from its checkpoint.
async fn resume(which: Option<i64>, args: &ScanArgs, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    if args.no_db {
        return Err(BadInput("--resume needs the history (--db), not --no-db".into()).into());
    }
    let db = args.db.clone().unwrap_or_else(|| "otscope.db".into());
    let db = std::path::absolute(&db)?;
    let store = super::history::open_existing(&db)?;
    let id = match which {
        Some(id) => id,
        None => store
            .scans()
            .map_err(|e| BadInput(e.to_string()))?
            .into_iter()
            .rev()
            .find(|s| s.start.kind == "scan" && !s.completed())
            .map(|s| s.id)
            .ok_or_else(|| BadInput(format!("{}: no unfinished scan to resume", db.display())))?,
    };
    let record = store.scan(id).map_err(|e| BadInput(e.to_string()))?;
    let position = store.resume_point(id).map_err(|e| BadInput(e.to_string()))?;
    let params = &record.start.parameters;
    let argv: Vec<String> = serde_json::from_value(params["argv"].clone())
        .map_err(|_| BadInput(format!("scan {id} was not started by `otscope scan`: it cannot be resumed")))?;
    let cwd = params["cwd"].as_str().unwrap_or(".").to_string();
    // Outputs named now are relative to the folder the resume runs in, before moving to the scan's own.
    let sinks = sinks_of(args)?;
    std::env::set_current_dir(&cwd).map_err(|e| BadInput(format!("scan {id} ran in {cwd}: {e}")))?;
    let argv = crate::config::expand_command_line(argv.into_iter().map(Into::into).collect())
        .map_err(|e| BadInput(format!("scan {id}: {e}")))?;
    let original = match <crate::cli::Cli as clap::Parser>::try_parse_from(&argv).map(|c| c.command) {
        Ok(crate::cli::Command::Scan(a)) => a,
        _ => return Err(BadInput(format!("scan {id}: its stored command line does not parse")).into()),
    };
    let mut options = original.engine.options();
    options.seed = params["seed"].as_u64();
    let plan = pipeline::plan(&original.scope.options(original.engine.resolver)?, &options).await?;
    if plan.stream().coverage(plan.seed, plan.shard) != record.start.coverage {
        return Err(BadInput(format!(
            "scan {id}: the ledger, exclusions or ports changed since it started, so its target order would differ: start a new scan"
        ))
        .into());
    }
    eprintln!("resuming scan {id} from position {position} of {}", record.start.targets_total);
    finish(&plan, Some(Recording::Resume(Box::new(store), id, position)), sinks, &original.engine, stop).await
}
