//! Unattended operation: each profile of the configuration that has a `schedule` is scanned on it,
//! through the same path as `otscope scan` (plan, run, record in the history), and its exports are
//! written after each complete scan.
//!
//! A profile never runs twice at once: a run that falls due while the previous one is still going is
//! skipped (and logged). SIGHUP, or a change of the file (its modification time and size are looked at
//! every [`POLL`]), reloads the configuration; an invalid one is refused, its problems logged, and the
//! previous one stays in force. SIGTERM or SIGINT stops starting scans and stops the running ones
//! cleanly: they end as partial scans, recorded as such.

use crate::config::{self, Config, ConfigError, Exports, Profile};
use crate::engine::ProgressStyle;
use crate::error::BadInput;
use crate::export::{self, Format};
use crate::findings::Change;
use crate::findings::Sink;
use crate::pipeline::{self, file_sinks, Recording, RunOptions, ScanPlan};
use crate::store::{Runner, ScanClose, ScanId, ScanStart, SqliteStore, Store};
use crate::targets::{Coverage, Shard};
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often the configuration file is looked at for a change.
pub const POLL: Duration = Duration::from_secs(2);

/// What one run of a profile did.
#[derive(Debug)]
pub struct RunOutcome {
    pub scan: ScanId,
    pub found: usize,
    pub new: usize,
    pub changed: usize,
    pub completed: bool,
    pub elapsed: Duration,
    /// The export files written (none after a partial scan).
    pub exports: Vec<PathBuf>,
}

/// One run of a profile, with everything it needs of the configuration it was started under.
#[derive(Debug, Clone)]
pub struct Job {
    pub config: PathBuf,
    pub db: PathBuf,
    pub profile: Profile,
    /// The configuration's `[notices]` table, for the profile's `notices` keys.
    pub notices: crate::notices::NoticeSettings,
}

impl Job {
    /// The command line that runs this profile by hand, as `scan --resume` starts it again.
    fn command_line(&self) -> std::io::Result<Vec<std::ffi::OsString>> {
        let config = std::path::absolute(&self.config)?;
        Ok(vec![
            "otscope".into(),
            "scan".into(),
            "--config".into(),
            config.into_os_string(),
            "--profile".into(),
            self.profile.name.clone().into(),
        ])
    }
}

/// Scans a profile once, as `otscope scan --config --profile` would, recording the scan as
/// `profile:<name>`; writes the profile's outputs, then its exports if the scan completed. Logs one
/// status line. A run that fails before its scan is recorded (its files cannot be used, the plan is
/// refused, an output cannot be created) is recorded as a failed scan with the reason, so that
/// `status` and `history` show it.
pub async fn run_profile(job: &Job, stop: CancellationToken) -> anyhow::Result<RunOutcome> {
    let p = &job.profile;
    let (args, plan, sinks, history) = match prepare(job).await {
        Ok(prepared) => prepared,
        Err(e) => return Err(failed(job, e)),
    };
    let style =
        if args.engine.quiet || std::io::stderr().is_terminal() { ProgressStyle::Quiet } else { ProgressStyle::Auto };
    let stop_after = stop.clone();
    let options = RunOptions { progress: style, stop, keep_findings: false };
    let report = match pipeline::run(&plan, Some(history), sinks, options).await {
        Ok(report) => report,
        // Nothing was recorded: the scan could not begin.
        Err(e) => return Err(failed(job, e)),
    };
    if let Some(e) = &report.history_error {
        anyhow::bail!("the history was not updated: {e}");
    }
    if let Some(e) = report.output_errors.first() {
        anyhow::bail!("cannot write {e}: the scan stopped and is recorded as partial");
    }
    let scan = report.scan_id.expect("a scan with a history is recorded");
    let count = |c: Change| report.counts.of(c) as usize;
    let completed = report.complete();
    let outcome = RunOutcome {
        scan,
        found: report.counts.open as usize,
        new: count(Change::New),
        changed: count(Change::Changed),
        completed,
        elapsed: report.stats.elapsed,
        exports: Vec::new(),
    };
    tracing::info!(
        profile = %p.name,
        scan,
        state = %if completed { "complete" } else { "partial" },
        found = outcome.found,
        new = outcome.new,
        changed = outcome.changed,
        elapsed = %format!("{:.1}s", outcome.elapsed.as_secs_f64()),
        "scan finished"
    );
    let mut outcome = outcome;
    if !p.exports.is_empty() {
        if completed {
            let (db, exports) = (job.db.clone(), p.exports.clone());
            outcome.exports = tokio::task::spawn_blocking(move || write_exports(&db, scan, &exports)).await??;
            tracing::info!(profile = %p.name, scan, files = outcome.exports.len(), "exports written");
        } else {
            tracing::warn!(profile = %p.name, scan, "exports not written: the scan was interrupted");
        }
    }
    if p.notices.verify || p.notices.issue {
        if completed {
            remediation_loop(job, &args, stop_after).await?;
        } else {
            tracing::warn!(profile = %p.name, scan, "notices not verified or issued: the scan was interrupted");
        }
    }
    Ok(outcome)
}

/// The profile's `notices` keys, after its complete scan: re-check the claimed items within the
/// profile's scope and politeness (`notices verify`), then issue notices for what is to notify
/// (`notices issue`).
async fn remediation_loop(job: &Job, args: &crate::cli::ScanArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let p = &job.profile;
    let vendors = crate::notices::load_vendors(&args.scope.fingerprints)?;
    if p.notices.verify {
        let options = crate::notices::VerifyOptions {
            scope: args.scope.options(args.engine.resolver)?,
            scan: args.engine.options(),
            run: RunOptions { progress: ProgressStyle::Quiet, stop, keep_findings: true },
            actor: format!("otscope daemon ({})", p.name),
        };
        let v = crate::notices::verify(&job.db, &vendors, &options).await?;
        tracing::info!(
            profile = %p.name,
            verified = v.verified.len(),
            reopened = v.reopened.len(),
            unchanged = v.unchanged.len(),
            "claimed items re-checked"
        );
    }
    if p.notices.issue {
        let options = crate::notices::IssueOptions {
            settings: job.notices.clone(),
            out: Some(p.notices.out.clone().unwrap_or_else(|| job.config.with_file_name("notices"))),
            lang: p.notices.lang.unwrap_or(p.exports.lang),
            actor: format!("otscope daemon ({})", p.name),
        };
        let (db, now) = (job.db.clone(), pipeline::now_rfc3339());
        let issued = tokio::task::spawn_blocking(move || {
            let mut store = SqliteStore::open(&db)?;
            crate::notices::issue(&mut store, &vendors, &options, &now).map_err(anyhow::Error::from)
        })
        .await??;
        tracing::info!(
            profile = %p.name,
            notices = issued.notices.len(),
            withheld = issued.withheld.len(),
            files = issued.files.len(),
            "notices issued"
        );
    }
    Ok(())
}

/// Everything a run needs before it probes: the profile's files checked, the plan, the outputs, the
/// scan as the history will record it (with how to resume it).
async fn prepare(job: &Job) -> anyhow::Result<(crate::cli::ScanArgs, ScanPlan, Vec<Sink>, Recording)> {
    let p = &job.profile;
    let problems = p.file_problems(&job.config, &job.db, |_| false);
    if !problems.is_empty() {
        return Err(BadInput(problems.join("\n")).into());
    }
    let args = p.scan_args(&job.config, &job.db, &[]).map_err(|e| BadInput(config::clap_message(&e)))?;
    let scope = args.scope.options(args.engine.resolver).map_err(|e| BadInput(p.locate(&e.0)))?;
    let plan = pipeline::plan(&scope, &args.engine.options()).await.map_err(|e| BadInput(p.locate(&e.0)))?;
    let sinks = file_sinks(args.out.as_deref(), args.csv.as_deref())?;
    let store = SqliteStore::open(&job.db)?;
    let mut start = plan.scan_start(&config::kind_of(&p.name));
    config::set_command_line(&mut start.parameters, &job.command_line()?, &std::env::current_dir()?);
    Ok((args, plan, sinks, Recording::New(Box::new(store), Box::new(start))))
}

/// Records a run that failed before its scan was recorded, as a scan that ended at once, failed, with
/// the reason; hands back the error, told with the scan it was recorded as.
fn failed(job: &Job, e: anyhow::Error) -> anyhow::Error {
    let why = format!("{e:#}").replace('\n', "; ");
    let now = pipeline::now_rfc3339();
    let start = ScanStart {
        started_at: now.clone(),
        ledger_path: String::new(),
        ledger_sha256: String::new(),
        library_version: String::new(),
        selection: serde_json::json!({}),
        parameters: serde_json::json!({ "config": job.config.display().to_string(), "profile": job.profile.name }),
        coverage: Coverage { spans: Vec::new(), ports: Vec::new(), shard: Shard::default(), seed: 0 },
        targets_total: 0,
        kind: config::kind_of(&job.profile.name),
        runner: Some(Runner::current()),
    };
    let end = ScanClose { probed: 0, completed: false, reason: Some(format!("{FAILED}{why}")) };
    let recorded = SqliteStore::open(&job.db).and_then(|mut store| {
        let id = store.begin_scan(&start)?;
        store.finish_scan(id, end, &now).map(|()| id)
    });
    match recorded {
        Ok(id) => anyhow::anyhow!("{why} (recorded as failed scan {id})"),
        Err(store) => anyhow::anyhow!("{why} (and the failure could not be recorded: {store})"),
    }
}

/// How the reason of a run that failed before probing begins, in the history.
pub const FAILED: &str = "failed: ";

/// Writes a recorded scan's exports, as `otscope export --by district` and `otscope report` write them.
pub fn write_exports(db: &Path, scan: ScanId, exports: &Exports) -> anyhow::Result<Vec<PathBuf>> {
    let store = SqliteStore::open(db)?;
    let mut files = Vec::new();
    if let Some(dir) = &exports.by_district {
        let written = export::by_district(&export::ScanExport::load(&store, scan)?, dir, Format::Csv, exports.lang)?;
        files.extend(written.files);
    }
    if let Some(path) = &exports.report {
        let notices = crate::store::AdvisoryStore::open_notices(&store)?;
        let html = crate::report::render(&store, &notices, scan, exports.lang)?;
        let fail = |e: std::io::Error| anyhow::anyhow!("{}: {e}", path.display());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        // Written beside and renamed, so a reader never sees half a report.
        let partial = path.with_extension("html.part");
        std::fs::write(&partial, html).map_err(fail)?;
        std::fs::rename(&partial, path).map_err(fail)?;
        files.push(path.clone());
    }
    Ok(files)
}

/// The exports of a configuration's profile, written for a recorded scan: after `scan --resume`
/// completes a profile's scan, as after its first run.
pub fn write_profile_exports(
    config: &Path,
    profile: Option<&str>,
    db: &Path,
    scan: ScanId,
) -> anyhow::Result<Vec<PathBuf>> {
    let config = config::load(config).map_err(BadInput::from)?;
    let profile = config.profile(profile).map_err(BadInput::from)?;
    write_exports(db, scan, &profile.exports)
}

/// What the daemon checks before it runs a configuration (at start and at each reload): a valid file
/// with something scheduled, and every scheduled profile's files usable (see
/// [`Profile::file_problems`]); then the folders its outputs and exports go to are created.
pub fn ready(config: &Config) -> Result<(), ConfigError> {
    config.check_for_daemon()?;
    let scheduled: Vec<&Profile> = config.profiles.values().filter(|p| p.schedule.is_some()).collect();
    let problems: Vec<String> =
        scheduled.iter().flat_map(|p| p.file_problems(&config.path, &config.db, |_| false)).collect();
    if !problems.is_empty() {
        return Err(ConfigError(problems));
    }
    let mut problems = Vec::new();
    for p in scheduled {
        let Ok(args) = p.scan_args(&config.path, &config.db, &[]) else { continue };
        let files = [args.out, args.csv, p.exports.report.clone()];
        let folders = files.iter().flatten().filter_map(|f| f.parent()).chain(p.exports.by_district.as_deref());
        for folder in folders.filter(|f| !f.as_os_str().is_empty()) {
            if let Err(e) = std::fs::create_dir_all(folder) {
                problems.push(format!(
                    "{}:{}: profile.{}: {}: cannot create the folder: {e}",
                    p.file,
                    p.line,
                    p.name,
                    folder.display()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError(problems))
    }
}

/// The daemon's hold on its history: an exclusive lock (`flock`) on a file beside the database, held
/// for the daemon's life and released by the kernel when it ends, however it ends. A second daemon on
/// the same history (the same configuration, or another naming the same database) is refused, so no
/// profile is run twice over.
#[derive(Debug)]
pub struct DaemonLock {
    _file: std::fs::File,
}

impl DaemonLock {
    pub fn take(config: &Config) -> Result<DaemonLock, BadInput> {
        use std::io::{Read, Seek, Write};
        use std::os::fd::AsRawFd;
        let mut name = config.db.file_name().unwrap_or_default().to_os_string();
        name.push(".daemon.lock");
        let path = config.db.with_file_name(name);
        let fail = |e: std::io::Error| BadInput(format!("{}: cannot take the daemon's lock: {e}", path.display()));
        let mut file =
            std::fs::File::options().read(true).write(true).create(true).truncate(false).open(&path).map_err(fail)?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(fail(e));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(BadInput(format!(
                "another otscope daemon already runs on the history {} ({}): one daemon per configuration and history; stop it first",
                config.db.display(),
                holder.trim()
            )));
        }
        let holder = format!("pid {}, configuration {}", std::process::id(), config.path.display());
        file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(holder.as_bytes())).map_err(fail)?;
        Ok(DaemonLock { _file: file })
    }
}

/// A time in the configuration's time zone, to the second, with its offset.
pub fn show_time(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// When each scheduled profile runs next, after `now`.
fn next_runs(config: &Config, now: jiff::Timestamp) -> BTreeMap<String, jiff::Timestamp> {
    let now = now.to_zoned(config.timezone.clone());
    config
        .profiles
        .values()
        .filter_map(|p| {
            let next = p.schedule.as_ref()?.next_after(&now);
            if next.is_none() {
                tracing::warn!(profile = %p.name, "the schedule names no time ahead: never run");
            }
            next.map(|n| (p.name.clone(), n.timestamp()))
        })
        .collect()
}

fn log_schedule(config: &Config, next: &BTreeMap<String, jiff::Timestamp>) {
    for (name, at) in next {
        let expression = config.profiles[name].schedule.as_ref().map(|s| s.expression.as_str()).unwrap_or_default();
        tracing::info!(profile = %name, schedule = %expression, next = %show_time(*at, &config.timezone), "scheduled");
    }
}

/// The file's modification time and size, to notice a change.
fn stamp(path: &Path) -> Option<(Option<SystemTime>, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len()))
}

/// Loads the configuration again; an invalid one is refused and `current` stays.
fn reload(current: &mut Config, why: &str) -> bool {
    let same_history = |c: Config| {
        if c.db == current.db {
            Ok(c)
        } else {
            Err(ConfigError(vec![format!(
                "{}: db changed from {} to {}: the daemon holds its history for its life; restart it",
                c.path.display(),
                current.db.display(),
                c.db.display()
            )]))
        }
    };
    match config::load(&current.path).and_then(same_history).and_then(|c| ready(&c).map(|()| c)) {
        Ok(new) => {
            let scheduled = new.profiles.values().filter(|p| p.schedule.is_some()).count();
            tracing::info!("configuration reloaded ({why}): {} profile(s), {scheduled} scheduled", new.profiles.len());
            *current = new;
            true
        }
        Err(e) => {
            tracing::error!("configuration refused ({why}), the previous one stays in force: {}", e.0.join("; "));
            false
        }
    }
}

struct Running {
    stop: CancellationToken,
    started: jiff::Timestamp,
}

/// Runs the scheduled profiles of `config` until `stop` is cancelled (SIGTERM or SIGINT), then stops
/// the running scans cleanly (they end as partial scans) and returns.
pub async fn serve(mut config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut seen = stamp(&config.path);
    let mut next = next_runs(&config, jiff::Timestamp::now());
    tracing::info!(
        "daemon started: {} ({} profile(s), time zone {}, history {})",
        config.path.display(),
        config.profiles.len(),
        config.timezone_name,
        config.db.display()
    );
    log_schedule(&config, &next);
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut names: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut tasks: JoinSet<anyhow::Result<RunOutcome>> = JoinSet::new();
    let mut last_poll = tokio::time::Instant::now();
    loop {
        let now = jiff::Timestamp::now();
        let until_due = next
            .values()
            .min()
            .map(|t| Duration::try_from(now.duration_until(*t)).unwrap_or(Duration::ZERO))
            .unwrap_or(POLL);
        let wait = until_due.min(POLL.saturating_sub(last_poll.elapsed()));
        let mut reloaded = false;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => break,
            _ = hup.recv() => {
                reloaded = reload(&mut config, "SIGHUP");
                seen = stamp(&config.path);
            }
            Some(done) = tasks.join_next_with_id() => finished(done, &mut running, &mut names),
        }
        if last_poll.elapsed() >= POLL {
            last_poll = tokio::time::Instant::now();
            let now_seen = stamp(&config.path);
            if now_seen != seen {
                seen = now_seen;
                reloaded = reload(&mut config, "the file changed");
            }
        }
        if reloaded {
            next = next_runs(&config, jiff::Timestamp::now());
            log_schedule(&config, &next);
        }
        let now = jiff::Timestamp::now();
        let due: Vec<(String, jiff::Timestamp)> =
            next.iter().filter(|(_, t)| **t <= now).map(|(n, t)| (n.clone(), *t)).collect();
        for (name, due_at) in due {
            let profile = config.profiles[&name].clone();
            let zoned = now.to_zoned(config.timezone.clone());
            match profile.schedule.as_ref().and_then(|s| s.next_after(&zoned)) {
                Some(n) => next.insert(name.clone(), n.timestamp()),
                None => next.remove(&name),
            };
            if let Some(r) = running.get(&name) {
                tracing::warn!(
                    profile = %name,
                    "skipping the run due at {}: the previous run, started at {}, is still going",
                    show_time(due_at, &config.timezone),
                    show_time(r.started, &config.timezone)
                );
                continue;
            }
            tracing::info!(profile = %name, due = %show_time(due_at, &config.timezone), "scan starting");
            let scan_stop = stop.child_token();
            let job =
                Job { config: config.path.clone(), db: config.db.clone(), profile, notices: config.notices.clone() };
            let token = scan_stop.clone();
            let handle = tasks.spawn(async move { run_profile(&job, token).await });
            names.insert(handle.id(), name.clone());
            running.insert(name, Running { stop: scan_stop, started: now });
        }
    }
    tracing::info!("stopping: no new scans, {} running scan(s) stop as partial scans", running.len());
    for r in running.values() {
        r.stop.cancel();
    }
    // Bounded: each running scan stops dispatching at once and its probes in flight end at their deadline.
    // (A second signal makes `main` quit at once.)
    while let Some(done) = tasks.join_next_with_id().await {
        finished(done, &mut running, &mut names);
    }
    tracing::info!("daemon stopped");
    Ok(())
}

fn finished(
    done: Result<(tokio::task::Id, anyhow::Result<RunOutcome>), tokio::task::JoinError>,
    running: &mut HashMap<String, Running>,
    names: &mut HashMap<tokio::task::Id, String>,
) {
    let (id, result) = match done {
        Ok((id, r)) => (id, r),
        Err(e) => (e.id(), Err(anyhow::anyhow!("the run panicked: {e}"))),
    };
    let name = names.remove(&id).unwrap_or_default();
    running.remove(&name);
    if let Err(e) = result {
        tracing::error!(profile = %name, "run failed: {e:#}");
    }
}
