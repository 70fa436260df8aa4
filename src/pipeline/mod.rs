//! The one way into a scan: [`plan`] checks and builds everything from plain options (the ledger, the
//! library, the scope, the target order), then [`run`] drives the engine and hands every finding to the
//! history and the outputs. `scan`, `check`, `event`, the daemon, the tests and the benches all enter
//! here; the command line and the configuration file are converted to these options at the edge.

use crate::engine::{self, EngineConfig, EngineEvent, Prober, Progress, ProgressStyle, RunStats};
use crate::error::BadInput;
use crate::findings::{Change, CsvWriter, Finding, JsonlWriter, Sink};
use crate::fingerprints::Library;
use crate::ledger::{Ledger, TargetSpec};
use crate::probes::{Identifier, ProbeSettings};
use crate::scope::{resolve_hostnames, PortSpec, ResolverSettings, Scope, Selection, TargetSpace};
use crate::store::{Runner, ScanClose, ScanId, ScanStart, Store};
use crate::targets::{Shard, TargetStream};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What to scan: the ledger and its exclusions, the library, the ports and the selection of objects.
#[derive(Debug, Clone)]
pub struct ScopeOptions {
    /// The ledger whose registered addresses are scanned; nothing outside it is ever probed.
    pub ledger: PathBuf,
    /// Addresses that must never be probed, whatever the ledger says.
    pub exclude: Option<PathBuf>,
    /// The fingerprint library folder.
    pub fingerprints: PathBuf,
    /// The ports to scan; `None` takes the library's default ports.
    pub ports: Option<Vec<PortSpec>>,
    pub selection: Selection,
    /// DNS server for the ledger's hostnames (`None`: the system's).
    pub resolver: Option<SocketAddr>,
}

impl ScopeOptions {
    /// A scope of `ledger` with the library at `fingerprints`, every object and the default ports.
    pub fn new(ledger: impl Into<PathBuf>, fingerprints: impl Into<PathBuf>) -> ScopeOptions {
        ScopeOptions {
            ledger: ledger.into(),
            exclude: None,
            fingerprints: fingerprints.into(),
            ports: None,
            selection: Selection::default(),
            resolver: None,
        }
    }
}

/// How to scan: pace and politeness, the probes' limits, the target order.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    pub engine: EngineConfig,
    pub probe: ProbeSettings,
    /// Seed of the target permutation (`None`: random, printed in the summary).
    pub seed: Option<u64>,
    pub shard: Shard,
}

/// How a run behaves while it runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub progress: ProgressStyle,
    /// Cancelled by the caller (a signal, the daemon stopping) to stop dispatching.
    pub stop: CancellationToken,
    /// Keep every finding in the report (for callers that print them); else only counts are kept, so a
    /// scan's memory does not grow with what it finds.
    pub keep_findings: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { progress: ProgressStyle::Quiet, stop: CancellationToken::new(), keep_findings: false }
    }
}

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

/// Now, as the history records times.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("UTC formats")
}

/// Loads and checks the ledger, the library and the options, resolves hostnames and builds the scope.
/// Nothing is sent.
pub async fn plan(scope: &ScopeOptions, options: &ScanOptions) -> Result<ScanPlan, BadInput> {
    let lines = |e: crate::ledger::InputErrors| BadInput(e.to_string());
    let mut ledger = Ledger::load(&scope.ledger).map_err(lines)?;
    let ledger_sha256 = std::fs::read(&scope.ledger)
        .map(|b| hex::encode(ring::digest::digest(&ring::digest::SHA256, &b)))
        .map_err(|e| BadInput(format!("{}: {e}", scope.ledger.display())))?;
    if let Some(x) = &scope.exclude {
        ledger.add_exclusion_file(x).map_err(lines)?;
    }
    let selection = &scope.selection;
    check_selection(&ledger, selection)?;
    let library = Arc::new(
        Library::load(&scope.fingerprints)
            .map_err(|e| BadInput(format!("{e}\nthe fingerprint library is broken: run `otscope rules check`")))?,
    );
    let ports = scope.ports.clone().unwrap_or_else(|| library.default_ports.clone());
    if ports.is_empty() {
        return Err(BadInput("no ports to scan".into()));
    }
    let opt_in = crate::probes::opt_in_protocols();
    if let Some(unknown) = options.probe.enabled.iter().find(|p| !opt_in.contains(&p.as_str())) {
        return Err(BadInput(format!(
            "--enable-probe {unknown:?}: not an opt-in probe (opt-in probes: {})",
            opt_in.join(", ")
        )));
    }
    if options.engine.concurrency == 0 || options.engine.per_host == 0 {
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
    let resolved = resolve_hostnames(&names, &ResolverSettings { server: scope.resolver, ..Default::default() }).await;
    let built = Scope::build(&ledger, &resolved, selection).map_err(lines)?;
    for u in &built.summary().unresolved_hostnames {
        tracing::warn!("hostname not resolved, not scanned: {u}");
    }
    Ok(ScanPlan {
        ledger,
        ledger_sha256,
        selection: selection.clone(),
        library,
        space: Arc::new(TargetSpace::new(built, ports)),
        seed: options.seed.unwrap_or_else(rand_seed),
        shard: options.shard,
        engine: EngineConfig { checkpoint_every: Some(CHECKPOINT_EVERY), ..options.engine.clone() },
        probe: options.probe.clone(),
    })
}

/// How often a recorded scan commits its position in the target order.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
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

/// What a scan found, counted as it went: the summary and the daemon need only these, so a scan's memory
/// does not grow with its findings.
#[derive(Debug, Default, Clone)]
pub struct FindingCounts {
    pub open: u64,
    pub by_protocol: BTreeMap<String, u64>,
    pub by_district: BTreeMap<String, u64>,
    pub by_change: BTreeMap<Change, u64>,
}

impl FindingCounts {
    fn add(&mut self, f: &Finding) {
        self.open += 1;
        *self.by_protocol.entry(f.protocol.clone()).or_default() += 1;
        *self.by_district.entry(f.district.clone()).or_default() += 1;
        if let Some(c) = f.change {
            *self.by_change.entry(c).or_default() += 1;
        }
    }

    pub fn of(&self, change: Change) -> u64 {
        self.by_change.get(&change).copied().unwrap_or(0)
    }
}

/// What a finished scan found, for the summary and for callers that record it.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub stats: RunStats,
    pub counts: FindingCounts,
    /// Every finding, when [`RunOptions::keep_findings`] asked for them.
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

/// The stage after identification: each observation becomes a finding (classified by the library),
/// gets its change status from the history, and reaches every output. It runs on a thread of its own
/// (the store and the writers block).
///
/// An output that cannot be written is dropped and `failed` is cancelled, which stops dispatch; the
/// findings still in flight reach the history and the other outputs. After a history error nothing
/// more is recorded, but the store is kept so the scan can still be closed as partial; the outputs
/// still get every finding.
pub struct Recorder {
    library: Arc<Library>,
    history: Option<History>,
    sinks: Vec<Sink>,
    failed: CancellationToken,
    keep_findings: bool,
    counts: FindingCounts,
    findings: Vec<Finding>,
    history_error: Option<String>,
    output_errors: Vec<String>,
}

impl Recorder {
    pub fn new(
        library: Arc<Library>,
        history: Option<(Box<dyn Store + Send>, ScanId)>,
        sinks: Vec<Sink>,
        failed: CancellationToken,
        keep_findings: bool,
    ) -> Recorder {
        Recorder {
            library,
            history,
            sinks,
            failed,
            keep_findings,
            counts: FindingCounts::default(),
            findings: Vec::new(),
            history_error: None,
            output_errors: Vec::new(),
        }
    }

    fn history_failed(&mut self, e: crate::store::StoreError) {
        tracing::error!("history not updated, findings still written: {e}");
        self.history_error.get_or_insert(e.to_string());
    }

    fn live_history(&mut self) -> Option<&mut History> {
        self.history.as_mut().filter(|_| self.history_error.is_none())
    }

    pub fn handle(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::Checkpoint(position) => {
                tracing::debug!("checkpoint: every target before position {position} is done");
                if let Some((store, id)) = self.live_history() {
                    if let Err(e) = store.checkpoint(*id, position) {
                        self.history_failed(e);
                    }
                }
            }
            EngineEvent::Found(obs) => {
                let classification = self.library.classify(obs.identity.protocol, &obs.identity.fields);
                let mut finding = Finding::new(&obs, classification);
                if let Some((store, id)) = self.live_history() {
                    if let Err(e) = store.record(*id, &mut finding) {
                        self.history_failed(e);
                    }
                }
                let (errors, failed) = (&mut self.output_errors, &self.failed);
                self.sinks.retain_mut(|sink| match sink.writer.write(&finding) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!("{}: cannot write: {e}; the scan stops", sink.name);
                        errors.push(format!("{}: {e}", sink.name));
                        failed.cancel();
                        false
                    }
                });
                self.counts.add(&finding);
                if self.keep_findings {
                    self.findings.push(finding);
                }
            }
        }
    }

    /// Flushes the outputs and hands back what was counted, kept and recorded.
    fn finish(mut self) -> (ScanReport, Option<History>) {
        for sink in self.sinks.iter_mut() {
            if let Err(e) = sink.writer.finish() {
                self.output_errors.push(format!("{}: {e}", sink.name));
            }
        }
        let report = ScanReport {
            counts: self.counts,
            findings: self.findings,
            scan_id: self.history.as_ref().map(|h| h.1),
            history_error: self.history_error,
            output_errors: self.output_errors,
            ..ScanReport::default()
        };
        (report, self.history)
    }
}

/// Runs a planned scan, recording it (when asked) and writing each finding to the sinks as it arrives,
/// with its change status against the history. A recorded scan checkpoints its progress in the same
/// transactions as its findings, so an interrupted scan resumes without losing or repeating any.
pub async fn run(
    plan: &ScanPlan,
    recording: Option<Recording>,
    sinks: Vec<Sink>,
    options: RunOptions,
) -> anyhow::Result<ScanReport> {
    let prober = Arc::new(Identifier::new(plan.probe.clone(), &plan.library));
    run_with(plan, prober, recording, sinks, options).await
}

/// [`run`] with another identification stage in place of the probes: for benchmarks that measure the
/// stages around it (the engine, the recorder, the store) without a network.
pub async fn run_with(
    plan: &ScanPlan,
    prober: Arc<dyn Prober>,
    recording: Option<Recording>,
    sinks: Vec<Sink>,
    options: RunOptions,
) -> anyhow::Result<ScanReport> {
    let fresh = plan.stream();
    let total = fresh.total();
    let (stream, history) = match recording {
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
    let recorded = history.is_some();
    let already_done = total - stream.total();
    let style = options.progress;
    let progress = Arc::new(Progress::new(stream.total(), style));
    let (tx, mut rx) = mpsc::channel::<EngineEvent>(1024);
    // Stopped by the caller (a signal) or by the recorder when an output fails.
    let stop = options.stop.child_token();
    let mut recorder = Recorder::new(plan.library.clone(), history, sinks, stop.clone(), options.keep_findings);
    let writer = tokio::task::spawn_blocking(move || {
        while let Some(event) = rx.blocking_recv() {
            recorder.handle(event);
        }
        recorder.finish()
    });
    let logger = {
        let p = progress.clone();
        (style != ProgressStyle::Quiet)
            .then(|| tokio::spawn(async move { p.log_periodically(Duration::from_secs(10)).await }))
    };
    // The dispatcher runs on a worker thread: on the thread that blocks on the runtime, every freed
    // slot would cost a cross-thread wake-up.
    let mut engine_config = plan.engine.clone();
    if !recorded {
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
    let (mut report, history) = writer.await?;
    report.stats = stats;
    if let Some((mut store, id)) = history {
        let completed = report.complete();
        let probed = if completed { total } else { already_done + report.stats.probed };
        let end = ScanClose { probed, completed, reason: report.stop_reason() };
        if let Err(e) = tokio::task::spawn_blocking(move || store.finish_scan(id, end, &now_rfc3339())).await? {
            report.history_error.get_or_insert(e.to_string());
        }
    }
    Ok(report)
}

/// The outputs named by paths: `out` as JSONL, `csv` as CSV. A file that cannot be created is bad input:
/// nothing has been probed yet.
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

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>, BadInput> {
    std::fs::File::create(path)
        .map(std::io::BufWriter::new)
        .map_err(|e| BadInput(format!("{}: cannot create: {e}", path.display())))
}

/// What a scan would cover and how long it would take, for `--dry-run`.
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

/// The summary printed when a scan ends.
pub fn summary_text(plan: &ScanPlan, report: &ScanReport) -> String {
    let join = |m: &BTreeMap<String, u64>| m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ");
    let counts = &report.counts;
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
    let _ = writeln!(out, "open services: {}", counts.open);
    if let Some(id) = report.scan_id {
        let _ = writeln!(
            out,
            "recorded as scan {id}: {} new, {} changed, {} persisting",
            counts.of(Change::New),
            counts.of(Change::Changed),
            counts.of(Change::Persisting)
        );
    }
    let none_or = |m: &BTreeMap<String, u64>| if m.is_empty() { "none".into() } else { join(m) };
    let _ = writeln!(out, "findings by protocol: {}", none_or(&counts.by_protocol));
    let _ = writeln!(out, "findings by district: {}", none_or(&counts.by_district));
    if st.deadline_hits > 0 {
        let _ = writeln!(out, "targets cut off at the deadline: {}", st.deadline_hits);
    }
    let _ = writeln!(out, "elapsed: {:.1}s, achieved rate: {:.1} probes/s", st.elapsed.as_secs_f64(), st.rate());
    out
}
