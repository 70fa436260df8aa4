//! Scan history behind a narrow interface: record a scan, record its findings, finish it, and query
//! scans, findings and services. The embedded SQLite store needs no server; a shared store for
//! several scanning machines implements the same trait.

mod access;
mod advisories;
mod schema;
mod sqlite;

pub use access::{AuditEntry, FindingQuery, OwnerCount, SessionRecord, TokenRecord};
pub use advisories::{
    AdvisoryStore, Change, ItemId, ItemRecord, ItemState, ItemWrite, KnownService, MatchRecord, NoticeKind,
    NoticeRecord, OpenItem, OpenNotice, Stored, StoredAdvisory, Transition,
};
pub use sqlite::SqliteStore;

use crate::findings::Finding;
use crate::scope::Owner;
use crate::targets::Coverage;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

pub type ScanId = i64;

/// Stamped into every otscope history (SQLite's `PRAGMA application_id`, "OTSC"), so that a file of
/// another program is recognised and left alone.
pub const APPLICATION_ID: i32 = 0x4F54_5343;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {message}")]
    Database { path: String, message: String },
    #[error("no scan with id {0} (see `otscope history`)")]
    UnknownScan(ScanId),
    #[error("{0}")]
    Invalid(String),
}

/// A target a scan could not probe, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotCoveredTarget {
    pub ip: IpAddr,
    pub port: u16,
    pub transport: crate::scope::Transport,
    pub reason: String,
}

/// What is known of a scan when it starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanStart {
    pub started_at: String,
    pub ledger_path: String,
    pub ledger_sha256: String,
    pub library_version: String,
    /// The selection (levels, districts, enterprises) as given, so "the same objects" can be found again.
    pub selection: Value,
    pub parameters: Value,
    pub coverage: Coverage,
    pub targets_total: u64,
    /// `scan`, or `event:<name>` for a major-event baseline or check.
    pub kind: String,
    /// The process that runs the scan, so that a scan whose process died reads as interrupted.
    pub runner: Option<Runner>,
}

/// How a scan ended, as the history shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanEnd {
    pub probed: u64,
    /// The scan's observations in the history (a resumed scan's earlier runs included).
    pub open: u64,
    /// Every target of the coverage was probed.
    pub completed: bool,
    /// Why it did not complete.
    pub reason: Option<String>,
}

/// How a run of a scan ended, as it tells the history when it closes the scan (which counts the
/// scan's open services itself, from what was recorded).
#[derive(Debug, Clone)]
pub struct ScanClose {
    pub probed: u64,
    /// Every target of the coverage was probed; only then may the scan call anything gone.
    pub completed: bool,
    /// Why a scan that did not complete stopped (a signal, an output that could not be written, ...).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanRecord {
    pub id: ScanId,
    pub start: ScanStart,
    pub ended_at: Option<String>,
    pub end: Option<ScanEnd>,
}

/// Where a scan stands, as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanState {
    Complete,
    /// It ended without covering everything, for the reason given.
    Partial(Option<String>),
    /// Its process is alive on this machine.
    Running,
    /// It never ended and its process is gone (killed, crashed, the machine restarted).
    Interrupted,
    /// It never ended and it runs, or ran, on another machine, which this one cannot ask.
    RunningElsewhere(String),
}

impl ScanState {
    /// One word or two, for tables.
    pub fn label(&self) -> String {
        match self {
            ScanState::Complete => "complete".into(),
            ScanState::Partial(_) => "partial".into(),
            ScanState::Running => "running".into(),
            ScanState::Interrupted => "interrupted".into(),
            ScanState::RunningElsewhere(host) => format!("running? (on {host})"),
        }
    }
}

impl ScanRecord {
    pub fn completed(&self) -> bool {
        self.end.as_ref().is_some_and(|e| e.completed)
    }

    pub fn state(&self) -> ScanState {
        match (&self.end, &self.start.runner) {
            (Some(e), _) if e.completed => ScanState::Complete,
            (Some(e), _) => ScanState::Partial(e.reason.clone()),
            (None, Some(runner)) => match runner.alive() {
                Some(true) => ScanState::Running,
                Some(false) => ScanState::Interrupted,
                None => ScanState::RunningElsewhere(runner.host.clone()),
            },
            // Recorded before runners were: its process cannot be asked.
            (None, None) => ScanState::RunningElsewhere("an unknown process".into()),
        }
    }
}

/// A process, named so that it can be asked later whether it still runs: the pid alone would not do,
/// since pids are reused, so the kernel's boot id and the process's start time go with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    pub host: String,
    pub boot_id: String,
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
    pub start_ticks: u64,
}

impl Runner {
    pub fn current() -> Runner {
        let pid = std::process::id();
        Runner { host: host_name(), boot_id: boot_id(), pid, start_ticks: start_ticks(pid).unwrap_or(0) }
    }

    /// Whether the process still runs; `None` when it ran on another machine.
    pub fn alive(&self) -> Option<bool> {
        if self.host != host_name() {
            return None;
        }
        if self.boot_id != boot_id() {
            return Some(false);
        }
        Some(start_ticks(self.pid).is_some_and(|t| t == self.start_ticks))
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|b| b.trim().to_string()).unwrap_or_default()
}

fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// When one service was first and last seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sighting {
    pub ip: IpAddr,
    pub port: u16,
    pub transport: String,
    pub first_seen: String,
    pub last_seen: String,
}

/// One service (ip, port, transport) across scans.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub ip: IpAddr,
    pub port: u16,
    pub transport: String,
    pub first_seen: String,
    pub last_seen: String,
    pub first_scan: ScanId,
    pub last_scan: ScanId,
    /// The completed scan that first missed it, if it is gone.
    pub gone_scan: Option<ScanId>,
    pub last: Finding,
}

/// The narrow interface the scanner and the history commands use.
pub trait Store {
    fn begin_scan(&mut self, start: &ScanStart) -> Result<ScanId, StoreError>;
    /// Records the ledger rows of the enterprises `scan` covers, as it begins: each one's name, district,
    /// sector and level, kept only when they differ from what the history has.
    fn record_owners(&mut self, scan: ScanId, owners: &[Owner]) -> Result<(), StoreError>;
    /// Every enterprise's ledger rows as scans recorded them, each with the scan from which it held,
    /// oldest first.
    fn owners(&self) -> Result<Vec<(ScanId, Owner)>, StoreError>;
    /// Records a finding of `scan`, setting its change status against the service's history.
    fn record(&mut self, scan: ScanId, finding: &mut Finding) -> Result<(), StoreError>;
    /// Records that every target before `position` of the scan's permutation is done, atomically with
    /// the findings recorded so far.
    fn checkpoint(&mut self, scan: ScanId, position: u64) -> Result<(), StoreError>;
    /// Records a target the scan could not probe (a local failure): it leaves the scan's coverage, so
    /// nothing there is called gone.
    fn record_not_covered(&mut self, scan: ScanId, target: &NotCoveredTarget) -> Result<(), StoreError>;
    /// The targets a scan could not probe.
    fn not_covered(&self, scan: ScanId) -> Result<Vec<NotCoveredTarget>, StoreError>;
    /// The checkpoint of an unfinished scan, from which it resumes.
    fn resume_point(&self, scan: ScanId) -> Result<u64, StoreError>;
    /// Reopens an unfinished scan for `runner`, which continues it from its checkpoint.
    fn reopen_scan(&mut self, scan: ScanId, runner: &Runner) -> Result<(), StoreError>;
    /// Closes a scan and counts its open services from what it recorded. A completed scan marks as gone
    /// every known service it covered whose observations are all older than it; scans may run at the
    /// same time, so whatever this scan saw late is weighed against the completed scans after it too.
    fn finish_scan(&mut self, scan: ScanId, close: ScanClose, ended_at: &str) -> Result<(), StoreError>;
    fn scans(&self) -> Result<Vec<ScanRecord>, StoreError>;
    fn scan(&self, id: ScanId) -> Result<ScanRecord, StoreError>;
    fn findings(&self, scan: ScanId) -> Result<Vec<Finding>, StoreError>;
    /// The services of one address, each with its last finding.
    fn services_of(&self, ip: IpAddr) -> Result<Vec<ServiceRecord>, StoreError>;
    /// Every observation of one address, oldest first, with the scan it was made in.
    fn observations_of(&self, ip: IpAddr) -> Result<Vec<(ScanId, Finding)>, StoreError>;
    /// When each known service was first and last seen.
    fn sightings(&self) -> Result<Vec<Sighting>, StoreError>;
}

/// A major event: the selection watched, how to scan it again, and its baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub name: String,
    pub plan: EventPlan,
    pub started_at: String,
    pub baseline_scan: ScanId,
    pub closed_at: Option<String>,
}

/// What `event check` needs to scan exactly what the baseline scanned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPlan {
    pub ledger: String,
    /// How to read the ledger (absent from events recorded before workbooks could be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<crate::ledger::Encoding>,
    pub exclude: Option<String>,
    pub fingerprints: String,
    pub ports: Vec<crate::scope::PortSpec>,
    pub selection: crate::scope::Selection,
}

/// Major-event bookkeeping, beside the scan history.
pub trait EventStore {
    fn create_event(&mut self, event: &EventRecord) -> Result<(), StoreError>;
    fn event(&self, name: &str) -> Result<EventRecord, StoreError>;
    fn events(&self) -> Result<Vec<EventRecord>, StoreError>;
    fn close_event(&mut self, name: &str, at: &str) -> Result<(), StoreError>;
}
