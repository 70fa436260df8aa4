//! `otscope scan`: the pipeline with the command line's options, its outputs and its history.

use crate::cli::{EngineArgs, ScanArgs};
use crate::config;
use crate::error::{BadInput, EXIT_INTERRUPTED};
use crate::findings::{Finding, FindingSink, JsonlWriter, Sink};
use crate::pipeline::{
    self, check_output, dry_run_text, file_sinks, summary_text, Output, Recording, ScanPlan, ScanReport,
};
use crate::store::{ScanId, ScanState, SqliteStore, Store};
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// What a scan run by `scan` ended as: its exit status, and the scan the history recorded (with whether
/// it completed), for the profile's exports.
pub struct Scanned {
    pub code: ExitCode,
    pub recorded: Option<(ScanId, bool)>,
}

pub async fn command(args: ScanArgs, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    Ok(run(args, stop).await?.code)
}

/// Runs `scan` (or `scan --resume`) and tells what the history recorded.
pub async fn run(args: ScanArgs, stop: CancellationToken) -> anyhow::Result<Scanned> {
    if let Some(which) = args.resume {
        return resume(which, &args, stop).await;
    }
    let plan = pipeline::plan(&args.scope.options(args.engine.resolver)?, &args.engine.options()).await?;
    if args.dry_run {
        check_outputs(&args)?;
        print!("{}", dry_run_text(&plan));
        return Ok(Scanned { code: ExitCode::SUCCESS, recorded: None });
    }
    let mut sinks = file_sinks(args.out.as_deref(), args.csv.as_deref())?;
    if args.out.is_none() {
        sinks.insert(0, Sink::new("standard output", JsonlWriter::new(std::io::stdout())));
    }
    let recording = match args.db.as_ref().filter(|_| !args.no_db) {
        Some(path) => {
            let store = SqliteStore::open(path).map_err(|e| BadInput(e.to_string()))?;
            let kind = args.profile.as_deref().map_or_else(|| "scan".to_string(), crate::config::kind_of);
            let mut start = plan.scan_start(&kind);
            // How to start this scan again, for --resume: the same options from the same folder.
            let argv: Vec<OsString> = std::env::args_os().collect();
            config::set_command_line(&mut start.parameters, &argv, &std::env::current_dir()?);
            Some(Recording::New(Box::new(store), Box::new(start)))
        }
        None => None,
    };
    finish(&plan, recording, sinks, &args.engine, stop).await
}

/// `--dry-run` probes nothing but checks that every output could be written, leaving no file behind.
fn check_outputs(args: &ScanArgs) -> Result<(), BadInput> {
    let problems: Vec<String> = [&args.out, &args.csv]
        .into_iter()
        .flatten()
        .filter_map(|p| check_output(p, Output::File).err().map(|e| format!("{}: {e}", p.display())))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BadInput(problems.join("\n")))
    }
}

async fn finish(
    plan: &ScanPlan,
    recording: Option<Recording>,
    sinks: Vec<Sink>,
    engine: &EngineArgs,
    stop: CancellationToken,
) -> anyhow::Result<Scanned> {
    let report = pipeline::run(plan, recording, sinks, engine.run_options(stop)).await?;
    eprint!("{}", summary_text(plan, &report));
    Ok(Scanned { code: exit_status(&report), recorded: report.scan_id.map(|id| (id, report.complete())) })
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

/// The options `scan --resume` takes besides the scan's own: where the history is, where the findings of
/// the resumed part go, and how much it shows. Any other option would make it another scan.
const RESUME_OPTIONS: [&str; 5] = ["resume", "db", "out", "csv", "quiet"];

/// `scan --resume [SCAN]`: the scan's own options, from its own folder, continued from its checkpoint.
/// Its `--out` and `--csv` files are continued unless new ones are named.
async fn resume(which: Option<i64>, args: &ScanArgs, stop: CancellationToken) -> anyhow::Result<Scanned> {
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
            .find(|s| !s.completed() && config::command_line_of(&s.start.parameters).is_some())
            .map(|s| s.id)
            .ok_or_else(|| BadInput(format!("{}: no unfinished scan to resume", db.display())))?,
    };
    let record = store.scan(id).map_err(|e| BadInput(e.to_string()))?;
    let position = store.resume_point(id).map_err(|e| BadInput(e.to_string()))?;
    if record.state() == ScanState::Running {
        return Err(BadInput(format!("scan {id} is still running: it can be resumed once it has stopped")).into());
    }
    let Some((argv, cwd)) = config::command_line_of(&record.start.parameters) else {
        return Err(BadInput(format!(
            "scan {id} ({}) was not started by `otscope scan` or the daemon: it cannot be resumed",
            record.start.kind
        ))
        .into());
    };
    let here = std::env::current_dir()?;
    let now: Vec<OsString> = std::env::args_os().collect();
    let changed = config::options_changed(&now, &here, &argv, &cwd, &RESUME_OPTIONS)
        .map_err(|e| BadInput(format!("scan {id}: {e}")))?;
    if !changed.is_empty() {
        return Err(BadInput(format!(
            "scan {id} resumes with the options it was started with; these would change it: {}\n(only --db, --out, --csv and --quiet may be given with --resume; start a new scan to change the others)",
            changed.join(", ")
        ))
        .into());
    }
    let original = original_args(id, &argv)?;
    // Outputs named now are relative to the folder the resume runs in, before moving to the scan's own.
    let named_out = args.out.as_deref().map(std::path::absolute).transpose()?;
    let named_csv = args.csv.as_deref().map(std::path::absolute).transpose()?;
    std::env::set_current_dir(&cwd).map_err(|e| BadInput(format!("scan {id} ran in {}: {e}", cwd.display())))?;
    let mut options = original.engine.options();
    options.seed = record.start.parameters["seed"].as_u64();
    let plan = pipeline::plan(&original.scope.options(original.engine.resolver)?, &options).await?;
    if plan.stream().coverage(plan.seed, plan.shard) != record.start.coverage {
        return Err(BadInput(format!(
            "scan {id}: the ledger, exclusions or ports changed since it started, so its target order would differ: start a new scan"
        ))
        .into());
    }
    let mut sinks = file_sinks(named_out.as_deref(), named_csv.as_deref())?;
    let continued_out = original.out.as_deref().filter(|_| named_out.is_none());
    let continued_csv = original.csv.as_deref().filter(|_| named_csv.is_none());
    if continued_out.is_some() || continued_csv.is_some() {
        let recorded = store.findings(id).map_err(|e| BadInput(e.to_string()))?;
        sinks.extend(continued_sinks(continued_out, continued_csv, &recorded)?);
    }
    if named_out.is_none() && original.out.is_none() {
        sinks.insert(0, Sink::new("standard output", JsonlWriter::new(std::io::stdout())));
    }
    eprintln!("resuming scan {id} from position {position} of {}", record.start.targets_total);
    let recording = Some(Recording::Resume(Box::new(store), id, position));
    let scanned = finish(&plan, recording, sinks, &original.engine, stop).await?;
    if let (Some(config), Some((_, true))) = (&original.config, scanned.recorded) {
        for file in crate::daemon::write_profile_exports(config, original.profile.as_deref(), &db, id)? {
            eprintln!("export written: {}", file.display());
        }
    }
    Ok(scanned)
}

/// The scan's stored command line, its profile put in, parsed.
fn original_args(id: ScanId, argv: &[OsString]) -> Result<ScanArgs, BadInput> {
    let argv = config::expand_command_line(argv.to_vec()).map_err(|e| BadInput(format!("scan {id}: {e}")))?;
    match <crate::cli::Cli as clap::Parser>::try_parse_from(&argv).map(|c| c.command) {
        Ok(crate::cli::Command::Scan(a)) => Ok(*a),
        _ => Err(BadInput(format!("scan {id}: its stored command line does not parse"))),
    }
}

/// The scan's own `--out` and `--csv` files, continued: written again with the findings the scan had
/// recorded before it stopped, then given those of the resumed part. The resume probes again the
/// targets that were in flight, so a service already written is not written twice.
fn continued_sinks(out: Option<&Path>, csv: Option<&Path>, recorded: &[Finding]) -> Result<Vec<Sink>, BadInput> {
    let mut sinks = Vec::new();
    for sink in file_sinks(out, csv)? {
        let mut writer = Continued { written: HashSet::new(), inner: sink.writer };
        for f in recorded {
            writer.write(f).map_err(|e| BadInput(format!("{}: cannot write: {e}", sink.name)))?;
        }
        sinks.push(Sink::new(sink.name, writer));
    }
    Ok(sinks)
}

/// A writer that writes each service (ip, port, transport) once.
struct Continued {
    written: HashSet<(std::net::IpAddr, u16, &'static str)>,
    inner: Box<dyn FindingSink>,
}

impl FindingSink for Continued {
    fn write(&mut self, f: &Finding) -> std::io::Result<()> {
        if self.written.insert((f.ip, f.port, f.transport.as_str())) {
            self.inner.write(f)
        } else {
            Ok(())
        }
    }
    fn finish(&mut self) -> std::io::Result<()> {
        self.inner.finish()
    }
}
