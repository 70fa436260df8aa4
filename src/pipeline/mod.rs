//! The one way into a scan: [`plan`] checks and builds everything from plain options (the ledger, the
//! library, the scope, the target order), then [`run`] drives the engine and hands every finding to the
//! history and the outputs. `scan`, `check`, `event`, the daemon, the tests and the benches all enter
//! here; the command line and the configuration file are converted to these options at the edge.

use crate::discovery::syn::SynConfig;
use crate::engine::{self, Discovery, EngineConfig, EngineEvent, Prober, Progress, ProgressStyle, RunStats};
use crate::error::BadInput;
use crate::findings::{Change, CsvWriter, Finding, JsonlWriter, Sink};
use crate::fingerprints::{HoneypotStage, Library, Pass, Released};
use crate::ledger::{Ledger, LedgerOptions, TargetSpec};
use crate::net::raw::raw_sockets_available;
use crate::probes::{Identifier, ProbeSettings};
use crate::scope::{resolve_hostnames, show_ports, PortSpec, ResolverSettings, Scope, Selection, TargetSpace};
use crate::store::{NotCoveredTarget, Runner, ScanClose, ScanId, ScanStart, Store};
use crate::targets::{content_seed, Shard, TargetStream};
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
    /// The ledger whose registered addresses are scanned, and how to read it; nothing outside it is
    /// ever probed.
    pub ledger: LedgerOptions,
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
    pub fn new(ledger: impl Into<LedgerOptions>, fingerprints: impl Into<PathBuf>) -> ScopeOptions {
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

/// How to scan: how open ports are discovered, pace and politeness, the probes' limits, the target
/// order.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub discovery: DiscoveryMode,
    /// The SYN stage's settings (its rate is the engine's).
    pub syn: SynConfig,
    pub engine: EngineConfig,
    pub probe: ProbeSettings,
    /// Seed of the target permutation (`None`: derived from what the scan covers, so every shard of a
    /// scan walks the same permutation; printed in the summary).
    pub seed: Option<u64>,
    pub shard: Shard,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            discovery: DiscoveryMode::Auto,
            syn: SynConfig::default(),
            engine: EngineConfig { concurrency: AUTO_CONCURRENCY, ..EngineConfig::default() },
            probe: ProbeSettings::default(),
            seed: None,
            shard: Shard::default(),
        }
    }
}

/// How open ports are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryMode {
    /// SYN where the process may open raw sockets, else connect.
    Auto,
    Connect,
    /// Refused when the process may not open raw sockets.
    Syn,
}

/// `EngineConfig::concurrency` in options: the plan chooses it (see [`plan`]).
pub const AUTO_CONCURRENCY: usize = 0;

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
    pub selection: Selection,
    pub library: Arc<Library>,
    pub space: Arc<TargetSpace>,
    pub seed: u64,
    pub shard: Shard,
    pub discovery: Discovery,
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
            ledger_sha256: self.ledger.sha256.clone(),
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
                EXCLUDE_SHA256: self.ledger.exclusions_sha256,
            }),
            coverage: self.stream().coverage(self.seed, self.shard),
            targets_total: self.stream().total(),
            kind: kind.to_string(),
            runner: Some(Runner::current()),
        }
    }
}

/// The key of a scan's parameters that holds the hash of its exclusion file (null without one).
pub const EXCLUDE_SHA256: &str = "exclude_sha256";

/// Now, as the history records times.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("UTC formats")
}

/// Plans scans of exactly these services, within `scope`: the addresses with the same ports make one
/// plan, so nothing else is probed. The services outside the scope (not in the ledger, excluded, or
/// outside the selection) are returned apart and never probed. Nothing is sent.
pub async fn plan_services(
    scope: &ScopeOptions,
    options: &ScanOptions,
    services: impl IntoIterator<Item = (std::net::IpAddr, PortSpec)>,
) -> Result<(Vec<ScanPlan>, Vec<(std::net::IpAddr, PortSpec)>), BadInput> {
    let selected = plan(scope, options).await?;
    let mut by_ip: BTreeMap<std::net::IpAddr, std::collections::BTreeSet<PortSpec>> = BTreeMap::new();
    let mut outside = Vec::new();
    for (ip, port) in services {
        if selected.space.scope().contains(ip) {
            by_ip.entry(ip).or_default().insert(port);
        } else {
            outside.push((ip, port));
        }
    }
    let mut groups: BTreeMap<Vec<PortSpec>, Vec<std::net::IpAddr>> = BTreeMap::new();
    for (ip, ports) in by_ip {
        groups.entry(ports.into_iter().collect()).or_default().push(ip);
    }
    let mut plans = Vec::new();
    for (ports, ips) in groups {
        let selection = Selection { ips: ips.into_iter().map(Into::into).collect(), ..scope.selection.clone() };
        let narrowed = ScopeOptions { selection, ports: Some(ports), ..scope.clone() };
        plans.push(plan(&narrowed, options).await?);
    }
    Ok((plans, outside))
}

/// Loads and checks the ledger, the library and the options, resolves hostnames and builds the scope.
/// Nothing is sent.
pub async fn plan(scope: &ScopeOptions, options: &ScanOptions) -> Result<ScanPlan, BadInput> {
    let lines = |e: crate::ledger::InputErrors| BadInput(e.to_string());
    let mut ledger = Ledger::load(&scope.ledger).map_err(lines)?;
    if let Some(x) = &scope.exclude {
        ledger.add_exclusion_file(x).map_err(lines)?;
    }
    let selection = &scope.selection;
    check_selection(&ledger, selection)?;
    let library = Arc::new(Library::load(&scope.fingerprints).map_err(|e| {
        BadInput(format!("{e}\nthe fingerprint library cannot be used: `otscope rules check` lists every problem"))
    })?);
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
    if options.engine.per_host == 0 {
        return Err(BadInput("--per-host must be at least 1".into()));
    }
    check_durations(options)?;
    let discovery = discovery_of(options)?;
    let concurrency = concurrency_of(options, &discovery);

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
    let space = Arc::new(TargetSpace::new(built, ports));
    Ok(ScanPlan {
        seed: options.seed.unwrap_or_else(|| content_seed(&space, options.shard.count)),
        ledger,
        selection: selection.clone(),
        library,
        space,
        shard: options.shard,
        discovery,
        engine: EngineConfig { concurrency, checkpoint_every: Some(CHECKPOINT_EVERY), ..options.engine.clone() },
        probe: options.probe.clone(),
    })
}

/// Durations that would make a scan vouch for nothing are refused: a zero timeout or deadline, or a
/// target deadline shorter than the connect timeout (every open port would be cut off, unidentified).
fn check_durations(options: &ScanOptions) -> Result<(), BadInput> {
    let limits = &options.probe.limits;
    let named = [
        ("--connect-timeout", limits.connect_timeout),
        ("--read-timeout", limits.read_timeout),
        ("--banner-wait", options.probe.banner_wait),
        ("--target-deadline", options.engine.target_deadline),
        ("--syn-wait", options.syn.wait),
    ];
    if let Some((name, _)) = named.iter().find(|(_, d)| d.is_zero()) {
        return Err(BadInput(format!("{name} 0s: a scan with no time to wait would call every live service gone")));
    }
    if options.engine.target_deadline <= limits.connect_timeout {
        return Err(BadInput(format!(
            "--target-deadline {:?} is not longer than --connect-timeout {:?}: every open port would be cut off",
            options.engine.target_deadline, limits.connect_timeout
        )));
    }
    Ok(())
}

/// The discovery the options ask for, on this machine: SYN needs raw sockets (root or CAP_NET_RAW).
fn discovery_of(options: &ScanOptions) -> Result<Discovery, BadInput> {
    let syn = || Discovery::Syn(SynConfig { rate: options.engine.rate, ..options.syn.clone() });
    match (options.discovery, raw_sockets_available()) {
        (DiscoveryMode::Connect, _) | (DiscoveryMode::Auto, Err(_)) => Ok(Discovery::Connect),
        (DiscoveryMode::Auto | DiscoveryMode::Syn, Ok(())) => Ok(syn()),
        (DiscoveryMode::Syn, Err(e)) => Err(BadInput(format!(
            "--discovery syn: {e}; run as root, grant CAP_NET_RAW (setcap cap_net_raw+ep), or use --discovery connect"
        ))),
    }
}

/// Identifications in flight: as asked, or for `auto` enough connections to keep the rate over the
/// connect timeout (connect discovery; every file descriptor the process may have when the rate is
/// unlimited), or 1024 (SYN discovery, where only open ports take a slot); never more than the file
/// descriptors allow. An identification holds one socket at a time (a probe closes its connection
/// before it opens the next: `Session::reconnect`, the passive read, the TLS handshake), so one slot
/// is one descriptor; should the count ever be off, EMFILE is a local failure, retried and never an
/// answer about the target.
fn concurrency_of(options: &ScanOptions, discovery: &Discovery) -> usize {
    let budget = crate::net::fd_budget();
    let wanted = match (options.engine.concurrency, discovery, options.engine.rate) {
        (AUTO_CONCURRENCY, Discovery::Syn(_), _) => 1024,
        (AUTO_CONCURRENCY, Discovery::Connect, Some(rate)) => {
            let held = options.probe.limits.connect_timeout.as_secs_f64() * 1.1;
            ((f64::from(rate.get()) * held).ceil() as usize).max(16)
        }
        (AUTO_CONCURRENCY, Discovery::Connect, None) => budget,
        (n, _, _) => n,
    };
    if wanted > budget {
        tracing::warn!("concurrency capped to {budget}: the file-descriptor limit allows no more");
    }
    wanted.min(budget).max(1)
}

/// How often a recorded scan commits its position in the target order.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

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
        } else if let Some(e) = &self.stats.failure {
            Some(format!("stopped: {e}"))
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

/// The stage after identification: each observation becomes a finding (classified by the library,
/// marked when it shows a honeypot persona), gets its change status from the history, and reaches
/// every output. It runs on a thread of its own (the store and the writers block).
///
/// A finding whose persona evidence needs another protocol of its address to corroborate it is
/// recorded at once but written when that protocol is seen, marked, or when the scan ends (the
/// targets come in a permuted order); see [`HoneypotStage`].
///
/// An output that cannot be written is dropped and `failed` is cancelled, which stops dispatch; the
/// findings still in flight reach the history and the other outputs. After a history error nothing
/// more is recorded, but the store is kept so the scan can still be closed as partial; the outputs
/// still get every finding.
pub struct Recorder {
    library: Arc<Library>,
    honeypots: HoneypotStage,
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
            honeypots: HoneypotStage::new(library.clone()),
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

    /// A history that cannot be written stops the scan (it could vouch for nothing more); the outputs
    /// still get every finding in flight.
    fn history_failed(&mut self, e: crate::store::StoreError) {
        tracing::error!("the history could not be written, the scan stops (findings still written): {e}");
        self.history_error.get_or_insert(e.to_string());
        self.failed.cancel();
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
            EngineEvent::NotCovered { target, reason } => {
                tracing::warn!(target = %target.socket_addr(), "not covered (a local failure, not an answer): {reason}");
                let t =
                    NotCoveredTarget { ip: target.addr(), port: target.port(), transport: target.transport(), reason };
                if let Some((store, id)) = self.live_history() {
                    if let Err(e) = store.record_not_covered(*id, &t) {
                        self.history_failed(e);
                    }
                }
            }
            EngineEvent::Found(obs) => {
                let classification = self.library.classify(obs.identity.protocol, &obs.identity.fields);
                let mut finding = Finding::new(&obs, classification);
                let pass = self.honeypots.admit(&mut finding);
                self.record(&mut finding);
                match pass {
                    Pass::Now => self.write(finding),
                    Pass::Hold => self.honeypots.hold(finding),
                }
                self.corroborated();
            }
        }
    }

    /// Held findings that the last one corroborated: recorded again with their mark, then written
    /// unless they were written before an interruption.
    fn corroborated(&mut self) {
        for Released { mut finding, written } in self.honeypots.released() {
            self.record(&mut finding);
            if !written {
                self.write(finding);
            }
        }
    }

    /// A resumed scan: what it recorded before its interruption, so that the personas seen then still
    /// corroborate what is seen now.
    pub fn recall(&mut self, earlier: Vec<Finding>) {
        for finding in earlier {
            self.honeypots.recall(finding);
            self.corroborated();
        }
    }

    /// Records a finding in the history (again, for one marked later: the scan's row is replaced).
    fn record(&mut self, finding: &mut Finding) {
        if let Some((store, id)) = self.live_history() {
            if let Err(e) = store.record(*id, finding) {
                self.history_failed(e);
            }
        }
    }

    /// Writes a finding to every output, counts it, and keeps it when asked.
    fn write(&mut self, finding: Finding) {
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

    /// Flushes the outputs and hands back what was counted, kept and recorded.
    fn finish(mut self) -> (ScanReport, Option<History>) {
        // What nothing corroborated is written as it is.
        for held in self.honeypots.finish() {
            self.write(held);
        }
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
    let (stream, history, earlier) = match recording {
        // A history that cannot record the scan stops it before anything is probed.
        Some(Recording::New(mut store, start)) => {
            let cannot = |e: crate::store::StoreError| BadInput(format!("the history cannot record the scan: {e}"));
            let id = store.begin_scan(&start).map_err(cannot)?;
            // The ledger rows of the enterprises covered: what the findings do not carry (their sector).
            store.record_owners(id, plan.space.scope().owners()).map_err(cannot)?;
            (fresh, Some((store, id)), Vec::new())
        }
        Some(Recording::Resume(mut store, id, position)) => {
            let stream = fresh.resume_at(position).map_err(|e| BadInput(format!("scan {id}: {e}")))?;
            store
                .reopen_scan(id, &Runner::current())
                .map_err(|e| BadInput(format!("scan {id} cannot be reopened: {e}")))?;
            let earlier = store
                .findings(id)
                .map_err(|e| BadInput(format!("scan {id}: its findings cannot be read back: {e}")))?;
            (stream, Some((store, id)), earlier)
        }
        None => (fresh, None, Vec::new()),
    };
    let recorded = history.is_some();
    let already_done = total - stream.total();
    let style = options.progress;
    let progress = Arc::new(Progress::new(stream.total(), style));
    let (tx, mut rx) = mpsc::channel::<EngineEvent>(1024);
    // Stopped by the caller (a signal) or by the recorder when an output fails.
    let stop = options.stop.child_token();
    let mut recorder = Recorder::new(plan.library.clone(), history, sinks, stop.clone(), options.keep_findings);
    recorder.recall(earlier);
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
    let discovery = plan.discovery.clone();
    let stats = tokio::spawn(async move {
        engine::run(stream, &discovery, prober, &engine_config, tx, engine_progress, stop).await
    })
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

/// The outputs named by paths: `out` as JSONL, `csv` as CSV, their missing folders created. A file that
/// cannot be created is bad input: nothing has been probed yet.
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

/// Creates (or truncates) an output file, and the folders above it that are missing.
pub fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>, BadInput> {
    let fail = |e: std::io::Error| BadInput(format!("{}: cannot create: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::File::create(path).map(std::io::BufWriter::new).map_err(fail)
}

/// What an output path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    File,
    Folder,
}

/// Whether an output could be written at `path`, found without creating or changing anything (for
/// `--dry-run` and for the daemon's checks at start): an existing path must be of the right kind and
/// writable; a missing one needs its nearest existing ancestor to be a writable folder, since the
/// folders missing in between are created.
pub fn check_output(path: &Path, kind: Output) -> Result<(), String> {
    let writable = |p: &Path, mode: libc::c_int| -> Result<(), std::io::Error> {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
        // SAFETY: a valid NUL-terminated path; access(2) only reads it.
        if unsafe { libc::access(c.as_ptr(), mode) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() && kind == Output::File => Err("is a folder, not a file".into()),
        Ok(m) if !m.is_dir() && kind == Output::Folder => Err("is a file, not a folder".into()),
        Ok(_) => {
            let mode = if kind == Output::Folder { libc::W_OK | libc::X_OK } else { libc::W_OK };
            writable(path, mode).map_err(|e| format!("cannot write: {e}"))
        }
        Err(e) if !matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            Err(format!("cannot write: {e}"))
        }
        Err(_) => {
            let ancestor = path
                .ancestors()
                .skip(1)
                .map(|a| if a.as_os_str().is_empty() { Path::new(".") } else { a })
                .find(|a| std::fs::symlink_metadata(a).is_ok())
                .unwrap_or(Path::new("."));
            if !ancestor.is_dir() {
                return Err(format!("cannot create: {} is not a folder", ancestor.display()));
            }
            writable(ancestor, libc::W_OK | libc::X_OK)
                .map_err(|e| format!("cannot create: cannot write in {}: {e}", ancestor.display()))
        }
    }
}

/// What a scan would cover and how long it would take, for `--dry-run`.
pub fn dry_run_text(plan: &ScanPlan) -> String {
    let scope = plan.space.scope();
    let s = scope.summary();
    let stream = plan.stream();
    let pairs = stream.total();
    let ports = plan.space.ports();
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
    let _ = writeln!(out, "ports: {} ({})", ports.len(), show_ports(ports));
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
    let _ = writeln!(out, "discovery: {}", st.discovery);
    if let Some(syn) = &st.syn {
        let _ = writeln!(
            out,
            "SYN discovery: {} open, {} closed, {} filtered, {} packets ({} retries), {} stray replies ignored",
            syn.open,
            syn.closed,
            syn.filtered,
            syn.packets,
            syn.retries,
            syn.invalid + syn.out_of_scope + syn.other_port
        );
    }
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
    if st.not_covered > 0 {
        let _ = writeln!(
            out,
            "targets not covered (local failures, retried; never counted as closed or gone): {}",
            st.not_covered
        );
    }
    if let Some(e) = &st.failure {
        let _ = writeln!(out, "stopped: {e}");
    }
    let _ = writeln!(out, "elapsed: {:.1}s, achieved rate: {:.1} probes/s", st.elapsed.as_secs_f64(), st.rate());
    out
}
