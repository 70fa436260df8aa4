//! Scan history behind a narrow interface: record a scan, record its findings, finish it, and query
//! scans, findings and services. The embedded SQLite store needs no server; a shared store for
//! several scanning machines implements the same trait.

mod sqlite;

pub use sqlite::SqliteStore;

use crate::findings::Finding;
use crate::targets::Coverage;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

pub type ScanId = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {message}")]
    Database { path: String, message: String },
    #[error("no scan with id {0} (see `otscope history`)")]
    UnknownScan(ScanId),
    #[error("{0}")]
    Invalid(String),
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
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ScanEnd {
    pub probed: u64,
    pub open: u64,
    /// Every target of the coverage was probed; only then may the scan call anything gone.
    pub completed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanRecord {
    pub id: ScanId,
    pub start: ScanStart,
    pub ended_at: Option<String>,
    pub end: Option<ScanEnd>,
}

impl ScanRecord {
    pub fn completed(&self) -> bool {
        self.end.is_some_and(|e| e.completed)
    }
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
    /// Records a finding of `scan`, setting its change status against the service's history.
    fn record(&mut self, scan: ScanId, finding: &mut Finding) -> Result<(), StoreError>;
    /// Records that every target before `position` of the scan's permutation is done, atomically with
    /// the findings recorded so far.
    fn checkpoint(&mut self, scan: ScanId, position: u64) -> Result<(), StoreError>;
    /// The checkpoint of an unfinished scan, from which it resumes.
    fn resume_point(&self, scan: ScanId) -> Result<u64, StoreError>;
    /// Closes a scan; a completed scan marks as gone every known service it covered but did not see.
    fn finish_scan(&mut self, scan: ScanId, end: ScanEnd, ended_at: &str) -> Result<(), StoreError>;
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
    pub exclude: Option<String>,
    pub fingerprints: String,
    pub ports: Vec<crate::targets::PortSpec>,
    pub selection: crate::scope::Selection,
}

/// Major-event bookkeeping, beside the scan history.
pub trait EventStore {
    fn create_event(&mut self, event: &EventRecord) -> Result<(), StoreError>;
    fn event(&self, name: &str) -> Result<EventRecord, StoreError>;
    fn events(&self) -> Result<Vec<EventRecord>, StoreError>;
    fn close_event(&mut self, name: &str, at: &str) -> Result<(), StoreError>;
}
