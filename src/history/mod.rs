//! Change detection between two scans: each service is new, changed, persisting or gone. Gone is
//! claimed only for services the later scan covered and only when it completed, so a partial scan,
//! a shard or a one-district scan never makes the rest look resolved.

use crate::findings::{classify, identity_key, Change, Finding};
use crate::scope::Transport;
use crate::store::{ScanId, ScanRecord, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub type ServiceKey = (IpAddr, u16, Transport);

#[derive(Debug, Clone, Serialize)]
pub struct DiffEntry {
    pub status: Change,
    pub ip: IpAddr,
    pub port: u16,
    pub transport: Transport,
    /// The finding of the later scan, or for a gone service the last one of the earlier scan.
    pub finding: Finding,
    /// For a changed service, the identity keys that changed, with their values before.
    pub before: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub from: ScanId,
    pub to: ScanId,
    pub entries: Vec<DiffEntry>,
    /// Services of the earlier scan that the later one did not cover (or could not vouch for, being
    /// incomplete): neither gone nor persisting.
    pub not_covered: usize,
}

impl DiffEntry {
    /// The entry as one line for a person: status, service, identity, owner.
    pub fn line(&self) -> String {
        let f = &self.finding;
        format!(
            "{:<10} {}:{}/{}  {}  {} {} {}  {} {} ({})",
            self.status.as_str(),
            self.ip,
            self.port,
            self.transport.as_str(),
            f.protocol,
            f.vendor.as_deref().unwrap_or("-"),
            f.product.as_deref().unwrap_or("-"),
            f.version.as_deref().unwrap_or("-"),
            f.enterprise_id,
            f.enterprise,
            f.district,
        )
    }
}

impl Diff {
    pub fn count(&self, status: Change) -> usize {
        self.entries.iter().filter(|e| e.status == status).count()
    }
}

fn key(f: &Finding) -> ServiceKey {
    (f.ip, f.port, f.transport)
}

/// Compares the findings of scan `from` with those of the later scan `to`.
pub fn diff(store: &dyn Store, from: ScanId, to: ScanId) -> Result<Diff, StoreError> {
    let later = store.scan(to)?;
    let before: BTreeMap<ServiceKey, Finding> = store.findings(from)?.into_iter().map(|f| (key(&f), f)).collect();
    let after: BTreeMap<ServiceKey, Finding> = store.findings(to)?.into_iter().map(|f| (key(&f), f)).collect();
    let index = later.start.coverage.index();
    // What the later scan could not probe (local failures) is not covered, whatever its coverage says.
    let uncovered: std::collections::HashSet<ServiceKey> =
        store.not_covered(to)?.into_iter().map(|t| (t.ip, t.port, t.transport)).collect();
    let mut keys: Vec<&ServiceKey> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut entries = Vec::new();
    let mut not_covered = 0;
    for k in keys {
        let (old, new) = (before.get(k), after.get(k));
        let (a, b) = (old.map(identity_key), new.map(identity_key));
        let covered = later.completed() && index.contains(k.0, k.1, k.2) && !uncovered.contains(k);
        let Some((status, changed)) = classify(a.as_ref(), b.as_ref(), covered) else { continue };
        if status == Change::NotCovered {
            not_covered += 1;
            continue;
        }
        let before_values = changed
            .iter()
            .map(|name| {
                (name.clone(), a.as_ref().and_then(|a| a.get(name)).cloned().unwrap_or(serde_json::Value::Null))
            })
            .collect();
        let finding = new.or(old).expect("a classified service is in one of the scans").clone();
        entries.push(DiffEntry { status, ip: k.0, port: k.1, transport: k.2, finding, before: before_values });
    }
    entries.sort_by_key(|e| (e.status, e.ip, e.port, e.transport));
    Ok(Diff { from, to, entries, not_covered })
}

/// Whether two scans looked at the same objects: same selection, ports and shard.
pub fn same_objects(a: &ScanRecord, b: &ScanRecord) -> bool {
    a.start.selection == b.start.selection
        && a.start.coverage.ports == b.start.coverage.ports
        && a.start.coverage.shard == b.start.coverage.shard
}

/// The newest completed scan, the default of every `--scan`.
pub fn latest_completed(store: &dyn Store) -> Result<ScanRecord, StoreError> {
    store
        .scans()?
        .into_iter()
        .rev()
        .find(|s| s.completed())
        .ok_or_else(|| StoreError::Invalid("no completed scan in the history yet: run `otscope scan` first".into()))
}

/// The default pair for `diff`: the last two completed scans of the same objects.
pub fn default_pair(store: &dyn Store) -> Result<(ScanId, ScanId), StoreError> {
    let scans: Vec<ScanRecord> = store.scans()?.into_iter().filter(|s| s.completed()).collect();
    let latest = scans.last().ok_or_else(|| StoreError::Invalid("no completed scan in the history yet".into()))?;
    let previous = scans[..scans.len() - 1].iter().rev().find(|s| same_objects(s, latest)).ok_or_else(|| {
        StoreError::Invalid(format!(
            "scan {} has no earlier completed scan of the same objects to compare with: give --from and --to",
            latest.id
        ))
    })?;
    Ok((previous.id, latest.id))
}
