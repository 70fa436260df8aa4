//! `otscope scan`: ledger -> scope -> permuted targets -> engine -> findings.

use super::{BadInput, EXIT_INTERRUPTED};
use crate::cli::{EngineArgs, ScanArgs};
use crate::engine::{self, EngineConfig, EngineEvent, Progress, ProgressStyle, RunStats};
use crate::findings::{Change, CsvWriter, Finding, JsonlWriter, Sink};
use crate::fingerprints::{HoneypotStage, Library, Pass};
use crate::ledger::{Ledger, TargetSpec};
use crate::net::Limits;
use crate::probes::{Identifier, ProbeSettings};
use crate::scope::{resolve_hostnames, ResolverSettings, Scope, Selection, TargetSpace};
use crate::store::{Runner, ScanEnd, ScanId, ScanStart, SqliteStore, Store};
use crate::targets::{PortSpec, Shard, TargetStream};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Everything a scan needs, validated, before anything is sent.
pub struct ScanPlan {
    pub ledger: Ledger,
    pub ledger_sha256: String,
    pub selection: Selection,
    pub library: Arc<Library>,
    pub space: Arc<TargetSpace>,
    pub seed: u64,
    pub shard: Shard,
    pub engine: EngineConfig,
    pub probe: ProbeSettings,
}

impl ScanPlan {
    pub fn stream(&self) -> TargetStream {
        TargetStream::new(self.space.clone(), self.seed, self.shard)
    }

    /// The scan as the history records it when it starts.
    pub fn scan_start(&self, kind: &str) -> ScanStart {
        let e = &self.engine;
        ScanStart {
            started_at: now_rfc3339(),
            ledger_path: self.ledger.path.display().to_string(),
            ledger_sha256: self.ledger_sha256.clone(),
            library_version: self.library.version.clone(),
            selection: serde_json::to_value(&self.selection).expect("selections serialise"),
            parameters: serde_json::json!({
                "ports": self.space.ports().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "seed": self.seed,
                "shard": self.shard.to_string(),
                "rate": e.rate.map(|r| r.get()),
                "concurrency": e.concurrency,
                "per_host": e.per_host,
                "host_interval_ms": e.host_interval.as_millis() as u64,
                "deep": self.probe.deep,
                "enterprises": self.space.scope().summary().enterprises,
                "districts": self.space.scope().summary().districts.keys().collect::<Vec<_>>(),
                "addresses": self.space.scope().address_count(),
            }),
            coverage: self.stream().coverage(self.seed, self.shard),
            targets_total: self.stream().total(),
            kind: kind.to_string(),
            runner: Some(Runner::current()),
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("UTC formats")
}

/// Loads and checks the ledger, the library and the flags, resolves hostnames and builds the scope.
pub async fn plan_scan(
    ledger_path: &Path,
    exclude: Option<&Path>,
    library_dir: &Path,
    ports: Option<Vec<PortSpec>>,
    selection: &Selection,
    args: &EngineArgs,
) -> Result<ScanPlan, BadInput> {
    let lines = |e: crate::ledger::InputErrors| BadInput(e.to_string());
    let mut ledger = Ledger::load(ledger_path).map_err(lines)?;
    let ledger_sha256 = std::fs::read(ledger_path)
        .map(|b| hex::encode(ring::digest::digest(&ring::digest::SHA256, &b)))
        .map_err(|e| BadInput(format!("{}: {e}", ledger_path.display())))?;
    if let Some(x) = exclude {
        ledger.add_exclusion_file(x).map_err(lines)?;
    }
    check_selection(&ledger, selection)?;
    let library = Arc::new(
        Library::load(library_dir)
            .map_err(|e| BadInput(format!("{e}\nthe fingerprint library is broken: run `otscope rules check`")))?,
    );
    let ports = ports.unwrap_or_else(|| library.default_ports.clone());
    if ports.is_empty() {
        return Err(BadInput("no ports to scan".into()));
    }
    let opt_in = crate::probes::opt_in_protocols();
    if let Some(unknown) = args.enable_probe.iter().find(|p| !opt_in.contains(&p.as_str())) {
        return Err(BadInput(format!(
            "--enable-probe {unknown:?}: not an opt-in probe (opt-in probes: {})",
            opt_in.join(", ")
        )));
    }
    if args.concurrency == 0 || args.per_host == 0 {
        return Err(BadInput("--concurrency and --per-host must be at least 1".into()));
    }

    let mut names: Vec<String> = ledger
        .enterprises
        .iter()
        .flat_map(|e| e.targets.iter())
        .chain(ledger.exclusions.iter().map(|x| &x.spec))
        .filter_map(|t| match t {
            TargetSpec::Hostname(h) => Some(h.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    let resolved = resolve_hostnames(&names, &ResolverSettings { server: args.resolver, ..Default::default() }).await;
    let scope = Scope::build(&ledger, &resolved, selection).map_err(lines)?;
    for u in &scope.summary().unresolved_hostnames {
        tracing::warn!("hostname not resolved, not scanned: {u}");
    }

    let engine = EngineConfig {
        concurrency: args.concurrency,
        rate: NonZeroU32::new(args.rate),
        per_host: args.per_host,
        host_interval: args.host_interval,
        target_deadline: args.target_deadline,
        checkpoint_every: Some(Duration::from_secs(1)),
    };
    let probe = ProbeSettings {
        limits: Limits {
            connect_timeout: args.connect_timeout,
            read_timeout: args.read_timeout,
            udp_retries: args.udp_retries,
            ..Limits::default()
        },
        banner_wait: args.banner_wait,
        deep: args.deep,
        enabled: args.enable_probe.clone(),
    };
    let seed = args.seed.unwrap_or_else(rand_seed);
    Ok(ScanPlan {
        ledger,
        ledger_sha256,
        selection: selection.clone(),
        library,
        space: Arc::new(TargetSpace::new(scope, ports)),
        seed,
        shard: args.shard,
        engine,
        probe,
    })
}

fn check_selection(ledger: &Ledger, selection: &Selection) -> Result<(), BadInput> {
    for d in &selection.districts {
        if !ledger.enterprises.iter().any(|e| &e.district == d) {
            return Err(BadInput(format!("--district {d:?}: no object of the ledger is in this district")));
        }
    }
    for id in &selection.enterprises {
        if !ledger.enterprises.iter().any(|e| &e.id == id) {
            return Err(BadInput(format!("--enterprise {id:?}: no such enterprise_id in the ledger")));
        }
    }
    Ok(())
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// What a finished scan found, for the summary and for callers that record it.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub stats: RunStats,
    pub findings: Vec<Finding>,
    /// The scan's id in the history, when it was recorded.
    pub scan_id: Option<ScanId>,
    /// Why the history could not be updated (the findings still reached every output).
    pub history_error: Option<String>,
    /// The outputs that could not be written, each as `name: error` (the scan stopped; the findings still
    /// reached the history and the other outputs).
    pub output_errors: Vec<String>,
}

impl ScanReport {
    /// Whether every target was probed and every finding reached every output and the history.
    pub fn complete(&self) -> bool {
        !self.stats.interrupted && self.history_error.is_none() && self.output_errors.is_empty()
    }

    /// Why the scan did not complete, as the history records it.
    fn stop_reason(&self) -> Option<String> {
        if let Some(e) = self.output_errors.first() {
            Some(format!("stopped: cannot write {e}"))
        } else if let Some(e) = &self.history_error {
            Some(format!("stopped: the history could not be written: {e}"))
        } else {
            self.stats.interrupted.then(|| "interrupted".to_string())
        }
    }
}

/// A history being written: the store and the scan's id in it.
type History = (Box<dyn Store + Send>, ScanId);

/// Where a scan is recorded: a new scan, or an interrupted one continued from its checkpoint.
pub enum Recording {
    New(Box<dyn Store + Send>, Box<ScanStart>),
    Resume(Box<dyn Store + Send>, ScanId, u64),
}

/// What the writer hands back when the engine is done.
struct Written {
    findings: Vec<Finding>,
    history: Option<History>,
    history_error: Option<String>,
    output_errors: Vec<String>,
}

/// Runs a planned scan, recording it (when asked) and writing each finding to the sinks as it arrives,
/// with its change status against the history. A recorded scan checkpoints its progress in the same
/// transactions as its findings, so an interrupted scan resumes without losing or repeating any.
///
/// An output that cannot be written stops the scan: nothing more is dispatched, the probes in flight
/// finish, their findings still reach the history and the other outputs, and the scan is recorded as
/// partial with the reason. A history that cannot be written is reported, and the outputs still get
/// every finding.
pub async fn run_scan(
    plan: &ScanPlan,
    recording: Option<Recording>,
    sinks: Vec<Sink>,
    style: ProgressStyle,
    stop: CancellationToken,
) -> anyhow::Result<ScanReport> {
    let fresh = plan.stream();
    let total = fresh.total();
    let (stream, mut history) = match recording {
        Some(Recording::New(mut store, start)) => {
            let id = store.begin_scan(&start)?;
            (fresh, Some((store, id)))
        }
        Some(Recording::Resume(mut store, id, position)) => {
            let stream = fresh.resume_at(position).map_err(|e| BadInput(format!("scan {id}: {e}")))?;
            store.reopen_scan(id, &Runner::current())?;
            (stream, Some((store, id)))
        }
        None => (fresh, None),
    };
    let already_done = total - stream.total();
    let progress = Arc::new(Progress::new(stream.total(), style));
    let (tx, mut rx) = mpsc::channel::<EngineEvent>(1024);
    let library = plan.library.clone();
    let scan_id = history.as_ref().map(|h| h.1);
    // Stopped by the caller (a signal) or by the writer when an output fails.
    let stop = stop.child_token();
    let failed = stop.clone();
    let writer = tokio::task::spawn_blocking(move || -> Written {
        let mut sinks = sinks;
        let mut findings = Vec::new();
        let mut history_error = None;
        let mut output_errors = Vec::new();
        // After a history error nothing more is recorded, but the store is kept: the scan is still closed
        // as partial when the database lets it. The outputs still get every finding.
        let history_failed = |error: &mut Option<String>, e: crate::store::StoreError| {
            tracing::error!("history not updated, findings still written: {e}");
            error.get_or_insert(e.to_string());
        };
        let record = |history: &mut Option<History>, finding: &mut Finding, error: &mut Option<String>| {
            if let Some((store, id)) = history.as_mut().filter(|_| error.is_none()) {
                if let Err(e) = store.record(*id, finding) {
                    history_failed(error, e);
                }
            }
        };
        let mut write = |finding: Finding, findings: &mut Vec<Finding>, output_errors: &mut Vec<String>| {
            sinks.retain_mut(|sink| match sink.writer.write(&finding) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!("{}: cannot write: {e}; the scan stops", sink.name);
                    output_errors.push(format!("{}: {e}", sink.name));
                    failed.cancel();
                    false
                }
            });
            findings.push(finding);
        };
        // Findings that need another port of their address to name a honeypot are recorded at once but
        // written when that port is seen or the scan ends (the targets come in a permuted order).
        let mut honeypots = HoneypotStage::new(&library.honeypots);
        while let Some(event) = rx.blocking_recv() {
            let obs = match event {
                EngineEvent::Found(obs) => obs,
                EngineEvent::Checkpoint(position) => {
                    tracing::debug!("checkpoint: every target before position {position} is done");
                    if let Some((store, id)) = history.as_mut().filter(|_| history_error.is_none()) {
                        if let Err(e) = store.checkpoint(*id, position) {
                            history_failed(&mut history_error, e);
                        }
                    }
                    continue;
                }
            };
            let classification = library.classify(obs.identity.protocol, &obs.identity.fields);
            let mut finding = Finding::new(&obs, classification);
            let pass = honeypots.admit(&mut finding);
            record(&mut history, &mut finding, &mut history_error);
            match pass {
                Pass::Now => write(finding, &mut findings, &mut output_errors),
                Pass::Hold => honeypots.hold(finding),
            }
            for mut corroborated in honeypots.released() {
                record(&mut history, &mut corroborated, &mut history_error);
                write(corroborated, &mut findings, &mut output_errors);
            }
        }
        for held in honeypots.finish() {
            write(held, &mut findings, &mut output_errors);
        }
        for sink in sinks.iter_mut() {
            if let Err(e) = sink.writer.finish() {
                output_errors.push(format!("{}: {e}", sink.name));
            }
        }
        Written { findings, history, history_error, output_errors }
    });
    let prober = Arc::new(Identifier::new(plan.probe.clone(), &plan.library));
    let logger = {
        let p = progress.clone();
        (style != ProgressStyle::Quiet)
            .then(|| tokio::spawn(async move { p.log_periodically(Duration::from_secs(10)).await }))
    };
    // The dispatcher runs on a worker thread: on the thread that blocks on the runtime, every freed
    // slot would cost a cross-thread wake-up.
    let mut engine_config = plan.engine.clone();
    if scan_id.is_none() {
        engine_config.checkpoint_every = None;
    }
    let engine_progress = progress.clone();
    let stats =
        tokio::spawn(async move { engine::run(stream, prober, &engine_config, tx, engine_progress, stop).await })
            .await?;
    if let Some(l) = logger {
        l.abort();
    }
    progress.finish();
    let written = writer.await?;
    let mut report = ScanReport {
        stats,
        findings: written.findings,
        scan_id,
        history_error: written.history_error,
        output_errors: written.output_errors,
    };
    if let Some((mut store, id)) = written.history {
        let completed = report.complete();
        let probed = if completed { total } else { already_done + report.stats.probed };
        let end = ScanEnd { probed, open: report.findings.len() as u64, completed, reason: report.stop_reason() };
        if let Err(e) = tokio::task::spawn_blocking(move || store.finish_scan(id, end, &now_rfc3339())).await? {
            report.history_error.get_or_insert(e.to_string());
        }
    }
    Ok(report)
}

pub async fn command(args: ScanArgs) -> anyhow::Result<ExitCode> {
    if let Some(which) = args.resume {
        return resume(which, &args).await;
    }
    let scope = &args.scope;
    let plan = plan_scan(
        scope.ledger()?,
        scope.exclude.as_deref(),
        &scope.fingerprints,
        scope.ports.clone().map(|p| p.0),
        &scope.selection(),
        &args.engine,
    )
    .await?;
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
    finish(&plan, recording, sinks, &args).await
}

/// The outputs named on the command line: `out` as JSONL, `csv` as CSV. A file that cannot be created
/// is bad input: nothing has been probed yet.
pub fn file_sinks(out: Option<&Path>, csv: Option<&Path>) -> Result<Vec<Sink>, BadInput> {
    let mut sinks = Vec::new();
    if let Some(path) = out {
        sinks.push(Sink::new(path.display().to_string(), JsonlWriter::new(create(path)?)));
    }
    if let Some(path) = csv {
        let writer = CsvWriter::new(create(path)?).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        sinks.push(Sink::new(path.display().to_string(), writer));
    }
    Ok(sinks)
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
    args: &ScanArgs,
) -> anyhow::Result<ExitCode> {
    let stop = CancellationToken::new();
    spawn_signal_handler(stop.clone());
    let style = if args.engine.quiet { ProgressStyle::Quiet } else { ProgressStyle::Auto };
    let report = run_scan(plan, recording, sinks, style, stop).await?;
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
async fn resume(which: Option<i64>, args: &ScanArgs) -> anyhow::Result<ExitCode> {
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
    let mut engine = original.engine.clone();
    engine.seed = params["seed"].as_u64();
    let scope = &original.scope;
    let plan = plan_scan(
        scope.ledger()?,
        scope.exclude.as_deref(),
        &scope.fingerprints,
        scope.ports.clone().map(|p| p.0),
        &scope.selection(),
        &engine,
    )
    .await?;
    if plan.stream().coverage(plan.seed, plan.shard) != record.start.coverage {
        return Err(BadInput(format!(
            "scan {id}: the ledger, exclusions or ports changed since it started, so its target order would differ: start a new scan"
        ))
        .into());
    }
    eprintln!("resuming scan {id} from position {position} of {}", record.start.targets_total);
    finish(&plan, Some(Recording::Resume(Box::new(store), id, position)), sinks, &original).await
}

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>, BadInput> {
    std::fs::File::create(path)
        .map(std::io::BufWriter::new)
        .map_err(|e| BadInput(format!("{}: cannot create: {e}", path.display())))
}

/// The first Ctrl-C or SIGTERM stops dispatching and lets in-flight probes finish; a second one exits at once.
pub fn spawn_signal_handler(stop: CancellationToken) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        for round in 0..2 {
            match term.as_mut() {
                Some(t) => tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = t.recv() => {} },
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            if round == 0 {
                tracing::warn!("stopping: finishing the probes in flight (signal again to quit at once)");
                stop.cancel();
            }
        }
        std::process::exit(EXIT_INTERRUPTED as i32);
    });
}

pub fn dry_run_text(plan: &ScanPlan) -> String {
    let scope = plan.space.scope();
    let s = scope.summary();
    let stream = plan.stream();
    let pairs = stream.total();
    let ports: Vec<String> = plan.space.ports().iter().map(|p| p.to_string()).collect();
    let mut out = String::new();
    let _ = writeln!(out, "dry run: nothing will be probed");
    let _ = writeln!(out, "ledger: {}", plan.ledger.path.display());
    let _ = writeln!(out, "enterprises: {}", s.enterprises);
    let _ = writeln!(
        out,
        "districts: {} ({})",
        s.districts.len(),
        s.districts.iter().map(|(d, n)| format!("{d}: {n}")).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        out,
        "addresses: {} ({})",
        s.addresses,
        s.addresses_by_level.iter().map(|(l, n)| format!("{l}: {n}")).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        out,
        "exclusions applied: {} entries, {} registered addresses removed",
        plan.ledger.exclusions.len(),
        s.excluded_addresses
    );
    for u in &s.unresolved_hostnames {
        let _ = writeln!(out, "unresolved (not scanned): {u}");
    }
    let _ = writeln!(out, "ports: {} ({})", ports.len(), ports.join(","));
    let _ = writeln!(out, "shard: {}, seed: {}", plan.shard, plan.seed);
    let _ = writeln!(out, "(address, port) pairs: {pairs}");
    let e = &plan.engine;
    let by_rate = e.rate.map(|r| pairs as f64 / r.get() as f64).unwrap_or(0.0);
    // One address's ports are probed one after another, separated by the pause.
    let per_host = plan.space.ports().len() as f64 * e.host_interval.as_secs_f64() / e.per_host as f64;
    let worst_probe = plan.probe.limits.connect_timeout.as_secs_f64();
    let worst = pairs as f64 * worst_probe / e.concurrency as f64;
    let _ = writeln!(
        out,
        "expected duration: at least {} (rate {}/s, {} per address for politeness); up to {} if every port is filtered ({} in flight, {:?} connect timeout)",
        human(by_rate.max(per_host)),
        e.rate.map(|r| r.to_string()).unwrap_or_else(|| "unlimited".into()),
        human(per_host),
        human(worst.max(by_rate).max(per_host)),
        e.concurrency,
        plan.probe.limits.connect_timeout,
    );
    out
}

fn human(secs: f64) -> String {
    humantime::format_duration(Duration::from_secs(secs.ceil() as u64)).to_string()
}

pub fn summary_text(plan: &ScanPlan, report: &ScanReport) -> String {
    let mut by_protocol: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_district: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &report.findings {
        *by_protocol.entry(&f.protocol).or_default() += 1;
        *by_district.entry(&f.district).or_default() += 1;
    }
    let join = |m: &BTreeMap<&str, usize>| m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ");
    let st = &report.stats;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scan {}: seed {}, shard {}",
        if report.complete() {
            "complete"
        } else if !report.output_errors.is_empty() {
            "stopped"
        } else if st.interrupted {
            "interrupted"
        } else {
            "partial"
        },
        plan.seed,
        plan.shard
    );
    let _ = writeln!(out, "targets probed: {} of {}", st.probed, plan.stream().total());
    let _ = writeln!(out, "open services: {}", report.findings.len());
    if let Some(id) = report.scan_id {
        let count = |c: Change| report.findings.iter().filter(|f| f.change == Some(c)).count();
        let _ = writeln!(
            out,
            "recorded as scan {id}: {} new, {} changed, {} persisting",
            count(Change::New),
            count(Change::Changed),
            count(Change::Persisting)
        );
    }
    let _ = writeln!(
        out,
        "findings by protocol: {}",
        if by_protocol.is_empty() { "none".into() } else { join(&by_protocol) }
    );
    let _ = writeln!(
        out,
        "findings by district: {}",
        if by_district.is_empty() { "none".into() } else { join(&by_district) }
    );
    if st.deadline_hits > 0 {
        let _ = writeln!(out, "targets cut off at the deadline: {}", st.deadline_hits);
    }
    let _ = writeln!(out, "elapsed: {:.1}s, achieved rate: {:.1} probes/s", st.elapsed.as_secs_f64(), st.rate());
    out
}
