//! Warning notices and the remediation loop, over the store: advisories imported and matched
//! against the services the history knows, one remediation item per (service, advisory), numbered
//! notices per enterprise and per district, claims, exceptions and re-checks.
//!
//! Every function takes the store (or, for re-checks that scan, its path), so the command line and
//! any other front end (an HTTP API) drive the same loop. An item moves
//! `open -> notified -> claimed -> verified | reopened`, or to `excepted` until a date, or to
//! `closed` when a revised advisory no longer covers it; every move is recorded with its time,
//! actor and reason.
//!
//! A re-check changes an item only for a service it covered: found again (its version decides),
//! or gone as the history records it (a completed scan that covered it and did not find it). A
//! service the re-check did not reach keeps its state.

pub mod render;

use crate::advisories::{
    parse_document, read_documents, Documents, Index, MatchResult, Problem, ServiceIdentity, Status, Tlp, Vendors,
};
use crate::export::Lang;
use crate::findings::Finding;
use crate::ledger::Level;
use crate::pipeline::{self, Recording, RunOptions, ScanOptions, ScopeOptions};
use crate::scope::Transport;
use crate::store::{
    AdvisoryStore, Change, ItemId, ItemRecord, ItemState, ItemWrite, MatchRecord, NoticeKind, NoticeRecord, OpenNotice,
    ScanId, SqliteStore, Store, StoreError, Stored, StoredAdvisory,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Who otscope itself records as the actor of what it decides (matching, re-checks, issuing).
pub const SYSTEM_ACTOR: &str = "otscope";

/// Why a loop operation did not happen.
#[derive(Debug)]
pub enum LoopError {
    Store(StoreError),
    /// The request does not fit the item's state or names nothing known: nothing was changed.
    Refused(String),
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopError::Store(e) => e.fmt(f),
            LoopError::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for LoopError {}

impl From<StoreError> for LoopError {
    fn from(e: StoreError) -> LoopError {
        LoopError::Store(e)
    }
}

type Key = (IpAddr, u16, Transport, String);

fn key_of(m: &MatchRecord) -> Key {
    (m.ip, m.port, m.transport, m.advisory.clone())
}

/// The vendor table of a fingerprint library folder; its problems, one per line, as bad input.
pub fn load_vendors(fingerprints: &Path) -> Result<Vendors, crate::error::BadInput> {
    Vendors::load(fingerprints).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        crate::error::BadInput(lines.join("\n"))
    })
}

/// The stored advisories, parsed and indexed for matching, with each one's content hash.
pub struct Matcher {
    pub index: Index,
    hashes: HashMap<String, String>,
}

impl Matcher {
    /// Parses every stored document (each was checked when imported) and indexes it.
    pub fn load<S: AdvisoryStore + ?Sized>(store: &S, vendors: &Vendors) -> Result<Matcher, StoreError> {
        let mut advisories = Vec::new();
        for (id, bytes) in store.advisory_documents()? {
            let advisory = parse_document(&bytes, &id).map_err(|problems| {
                let first = problems.first().map(ToString::to_string).unwrap_or_default();
                StoreError::Invalid(format!("the stored advisory {id} no longer reads: {first}"))
            })?;
            advisories.push(advisory);
        }
        let hashes = advisories.iter().map(|a| (a.id.clone(), a.content_hash.clone())).collect();
        Ok(Matcher { index: Index::build(&advisories, vendors), hashes })
    }

    /// Every (advisory, product) result for a finding, as the store keeps them.
    pub fn results(&self, finding: &Finding, scan: ScanId) -> Vec<MatchRecord> {
        let identity = identity_of(finding);
        self.index.matches(&identity).into_iter().map(|r| self.record(finding, &identity, scan, r)).collect()
    }

    fn record(&self, f: &Finding, identity: &ServiceIdentity, scan: ScanId, r: MatchResult<'_>) -> MatchRecord {
        MatchRecord {
            ip: f.ip,
            port: f.port,
            transport: f.transport,
            protocol: f.protocol.clone(),
            enterprise_id: f.enterprise_id.clone(),
            enterprise: f.enterprise.clone(),
            district: f.district.clone(),
            level: f.level,
            device_vendor: f.vendor.clone(),
            device_product: f.product.clone(),
            version: identity.version.clone(),
            order_numbers: identity.order_numbers.clone(),
            honeypot: identity.honeypot,
            advisory: r.advisory.to_string(),
            title: r.title.to_string(),
            tlp: r.tlp,
            advisory_hash: self.hashes.get(r.advisory).cloned().unwrap_or_default(),
            cves: r.cves.to_vec(),
            cvss: r.cvss,
            severity: r.severity.map(str::to_string),
            product_id: r.product_id.to_string(),
            product: r.product.to_string(),
            versions: r.versions.map(str::to_string),
            status: r.status,
            reason: r.reason,
            evidence: r.evidence,
            remediations: r.remediations.to_vec(),
            scan,
            observed_at: f.observed_at.clone(),
        }
    }
}

/// What matching reads of a finding: its identity, its order numbers and firmware among its
/// attributes, and whether it shows a honeypot's traits.
pub fn identity_of(f: &Finding) -> ServiceIdentity {
    let honeypot = f.attributes.contains_key(crate::fingerprints::HONEYPOT_ATTRIBUTE);
    ServiceIdentity::from_finding_fields(
        f.vendor.as_deref(),
        f.product.as_deref(),
        f.version.as_deref(),
        f.cpe.as_deref(),
        &f.attributes,
        honeypot,
    )
}

/// The results a remediation item is made of: `affected`, or `undetermined` with the product
/// found (every result has its product found), never for a honeypot.
fn actionable(m: &MatchRecord) -> bool {
    !m.honeypot && matches!(m.status, Status::Affected | Status::Undetermined)
}

/// Of one (service, advisory)'s results, the one the item shows: affected before undetermined,
/// then the highest score.
fn strongest<'a>(results: impl Iterator<Item = &'a MatchRecord>) -> Option<&'a MatchRecord> {
    results.filter(|m| actionable(m)).max_by(|a, b| {
        let rank = |m: &MatchRecord| (m.status == Status::Affected, m.cvss.unwrap_or(-1.0));
        rank(a).partial_cmp(&rank(b)).unwrap_or(std::cmp::Ordering::Equal)
    })
}

/// What an import did, document by document.
#[derive(Debug, Default)]
pub struct ImportOutcome {
    pub new: Vec<String>,
    pub unchanged: Vec<String>,
    /// Changed documents that replaced the stored ones.
    pub revised: Vec<String>,
    /// Each refused file with its problems (`file: /pointer: what is wrong`).
    pub refused: Vec<(PathBuf, Vec<Problem>)>,
    pub refresh: Refresh,
}

/// Reads files and folders of CSAF 2.0 documents, stores each valid one (a changed document
/// replaces the stored one of its id), and, when any was new or changed, matches the history's
/// services again.
pub fn import<S: Store + AdvisoryStore + ?Sized>(
    store: &mut S,
    paths: &[PathBuf],
    vendors: &Vendors,
    at: &str,
) -> Result<ImportOutcome, StoreError> {
    import_documents(store, read_documents(paths), vendors, at)
}

/// [`import`] of documents already read (from files, or fetched by `advisories sync`).
pub fn import_documents<S: Store + AdvisoryStore + ?Sized>(
    store: &mut S,
    documents: Documents,
    vendors: &Vendors,
    at: &str,
) -> Result<ImportOutcome, StoreError> {
    let mut outcome = ImportOutcome { refused: documents.refused, ..Default::default() };
    for d in documents.read {
        let a = &d.advisory;
        let stored = StoredAdvisory {
            id: a.id.clone(),
            version: a.version.clone(),
            content_hash: a.content_hash.clone(),
            tlp: a.tlp,
            title: a.title.clone(),
            publisher: a.publisher.clone(),
            current_release_date: a.current_release_date.clone(),
            source: d.path.display().to_string(),
            imported_at: at.to_string(),
            revised_at: None,
            document: d.bytes,
        };
        match store.store_advisory(&stored)? {
            Stored::New => outcome.new.push(a.id.clone()),
            Stored::Unchanged => outcome.unchanged.push(a.id.clone()),
            Stored::Revised { .. } => outcome.revised.push(a.id.clone()),
        }
    }
    // Nothing recorded changed: the results are those of the last match.
    if !(outcome.new.is_empty() && outcome.revised.is_empty()) {
        outcome.refresh = refresh(store, vendors, at)?;
    }
    Ok(outcome)
}

/// What matching the history again changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// (service, advisory, product) results recorded.
    pub results: usize,
    /// Items opened (new, or affected again after being verified or closed).
    pub opened: usize,
    /// Items closed: a revised advisory no longer covers them, or (never notified) the service no
    /// longer matches.
    pub closed: usize,
}

/// Matches the last finding of every service still open in the history against every stored
/// advisory, records the results, and updates the items: new affected (or undetermined) pairs
/// open an item; an item whose advisory was revised and no longer covers the service is closed
/// ("advisory revised"); an item never notified that no longer matches is closed. Items already in
/// a notice wait for a re-check ([`verify`]): only a re-check verifies a fix.
pub fn refresh<S: Store + AdvisoryStore + ?Sized>(
    store: &mut S,
    vendors: &Vendors,
    at: &str,
) -> Result<Refresh, StoreError> {
    let matcher = Matcher::load(store, vendors)?;
    let mut results = Vec::new();
    for s in store.known_services()?.into_iter().filter(|s| s.gone_scan.is_none()) {
        results.extend(matcher.results(&s.finding, s.last_scan));
    }
    store.replace_matches(&results)?;
    let mut by_key: BTreeMap<Key, Vec<&MatchRecord>> = BTreeMap::new();
    for m in &results {
        by_key.entry(key_of(m)).or_default().push(m);
    }
    let items: HashMap<Key, ItemRecord> = store.items()?.into_iter().map(|i| (key_of(&i.detail), i)).collect();
    let mut writes = Vec::new();
    let mut outcome = Refresh { results: results.len(), ..Default::default() };
    let system = |reason: String| Some(Change { actor: SYSTEM_ACTOR.into(), reason });
    for (key, found) in &by_key {
        let Some(best) = strongest(found.iter().copied()) else { continue };
        match items.get(key) {
            None => {
                outcome.opened += 1;
                writes.push(ItemWrite {
                    item: ItemRecord {
                        id: None,
                        state: ItemState::Open,
                        detail: best.clone(),
                        created_at: at.to_string(),
                        updated_at: at.to_string(),
                        deadline: None,
                        notice: None,
                        claim_scan: None,
                        except_until: None,
                    },
                    transition: system(format!("{}: {}", best.status.as_str(), best.reason)),
                });
            }
            Some(item) if !item.state.is_active() => {
                outcome.opened += 1;
                let item = ItemRecord { state: ItemState::Open, detail: best.clone(), deadline: None, ..item.clone() };
                writes.push(ItemWrite {
                    item,
                    transition: system(format!("{} again (scan {}): {}", best.status.as_str(), best.scan, best.reason)),
                });
            }
            Some(item) if item.detail != *best => {
                writes.push(ItemWrite { item: ItemRecord { detail: best.clone(), ..item.clone() }, transition: None });
            }
            Some(_) => {}
        }
    }
    for (key, item) in &items {
        if !item.state.is_active() || by_key.get(key).and_then(|f| strongest(f.iter().copied())).is_some() {
            continue;
        }
        let now_hash = matcher.hashes.get(&item.detail.advisory);
        let reason = if now_hash.is_some_and(|h| *h != item.detail.advisory_hash) {
            "advisory revised".to_string()
        } else if item.state == ItemState::Open {
            match by_key.get(key).and_then(|f| f.first()) {
                Some(m) => format!("no longer matches (scan {}): {}", m.scan, m.reason),
                None => "the service no longer matches the advisory's products, or is gone".to_string(),
            }
        } else {
            continue;
        };
        outcome.closed += 1;
        writes.push(ItemWrite {
            item: ItemRecord { state: ItemState::Closed, ..item.clone() },
            transition: system(reason),
        });
    }
    store.save_items(&writes, at)?;
    Ok(outcome)
}

/// The results of one scan's findings (or, without a scan, of the last finding of every service
/// still open in the history) against every stored advisory. Nothing is written.
pub fn current_matches<S: Store + AdvisoryStore + ?Sized>(
    store: &S,
    vendors: &Vendors,
    scan: Option<ScanId>,
) -> Result<Vec<MatchRecord>, StoreError> {
    let matcher = Matcher::load(store, vendors)?;
    let mut out = Vec::new();
    match scan {
        Some(scan) => {
            for f in store.findings(scan)? {
                out.extend(matcher.results(&f, scan));
            }
        }
        None => {
            for s in store.known_services()?.into_iter().filter(|s| s.gone_scan.is_none()) {
                out.extend(matcher.results(&s.finding, s.last_scan));
            }
        }
    }
    Ok(out)
}

/// One result as `advisories match --format jsonl` prints it.
pub fn match_json(m: &MatchRecord) -> serde_json::Value {
    serde_json::json!({
        "ip": m.ip,
        "port": m.port,
        "transport": m.transport.as_str(),
        "enterprise_id": m.enterprise_id,
        "enterprise": m.enterprise,
        "district": m.district,
        "advisory": m.advisory,
        "cves": m.cves,
        "cvss": m.cvss,
        "product": m.product,
        "version": m.version,
        "status": m.status.as_str(),
        "reason": m.reason,
        "remediation": m.vendor_fix().join("\n"),
    })
}

// ---------------------------------------------------------------------------------------------
// Deadlines and TLP.

/// A severity band for deadlines: the CVSS v3 severity, or the band of the base score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    Critical,
    High,
    Medium,
    Low,
    /// No score given.
    Unscored,
}

impl Band {
    pub const ALL: [Band; 5] = [Band::Critical, Band::High, Band::Medium, Band::Low, Band::Unscored];

    pub fn of(severity: Option<&str>, cvss: Option<f64>) -> Band {
        match (severity.map(str::to_ascii_uppercase).as_deref(), cvss) {
            (Some("CRITICAL"), _) => Band::Critical,
            (Some("HIGH"), _) => Band::High,
            (Some("MEDIUM"), _) => Band::Medium,
            (Some("LOW" | "NONE"), _) => Band::Low,
            (_, Some(s)) if s >= 9.0 => Band::Critical,
            (_, Some(s)) if s >= 7.0 => Band::High,
            (_, Some(s)) if s >= 4.0 => Band::Medium,
            (_, Some(_)) => Band::Low,
            (_, None) => Band::Unscored,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Band::Critical => "critical",
            Band::High => "high",
            Band::Medium => "medium",
            Band::Low => "low",
            Band::Unscored => "unscored",
        }
    }

    pub fn parse(text: &str) -> Option<Band> {
        Band::ALL.into_iter().find(|b| b.as_str() == text)
    }
}

/// Days to fix, by the object's level and the severity band (the `[notices]` table of
/// `otscope.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadlines {
    pub days: BTreeMap<(Level, Band), u32>,
}

impl Default for Deadlines {
    /// Important objects: 7 days for critical, 15 high, 30 medium, 60 low, 30 unscored; general
    /// objects: 30, 60, 90, 180, 90.
    fn default() -> Deadlines {
        let important = [7, 15, 30, 60, 30];
        let general = [30, 60, 90, 180, 90];
        let mut days = BTreeMap::new();
        for (i, band) in Band::ALL.into_iter().enumerate() {
            days.insert((Level::Important, band), important[i]);
            days.insert((Level::General, band), general[i]);
        }
        Deadlines { days }
    }
}

impl Deadlines {
    pub fn days(&self, level: Level, band: Band) -> u32 {
        self.days.get(&(level, band)).copied().unwrap_or(30)
    }
}

/// The most a notice for this audience may carry. An advisory without a label is treated as
/// TLP:AMBER (shared only with the enterprise that runs the device); TLP:RED never leaves the
/// center.
pub fn may_carry(tlp: Option<Tlp>, audience: NoticeKind) -> bool {
    let tlp = tlp.unwrap_or(Tlp::Amber);
    match audience {
        NoticeKind::Enterprise => tlp <= Tlp::Amber,
        NoticeKind::District => tlp <= Tlp::Green,
    }
}

fn add_days(at: &str, days: u32) -> String {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(at, &Rfc3339).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    (t + time::Duration::days(days.into())).format(&Rfc3339).expect("UTC formats")
}

/// The day (YYYY-MM-DD) of a recorded time.
pub fn day(at: &str) -> &str {
    at.get(..10).unwrap_or(at)
}

// ---------------------------------------------------------------------------------------------
// Notices.

/// What a notice holds, as issued: recorded with it, and what every format is written from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoticeContent {
    pub number: String,
    pub kind: NoticeKind,
    /// The enterprise id, or the district.
    pub subject: String,
    /// The enterprise's name, or the district.
    pub subject_name: String,
    pub district: String,
    pub issued_at: String,
    /// For a district notice: its enterprises with their notices.
    pub enterprises: Vec<EnterpriseLine>,
    /// Per advisory, the services it concerns.
    pub advisories: Vec<AdvisoryEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnterpriseLine {
    pub enterprise_id: String,
    pub enterprise: String,
    pub level: Level,
    pub notice: String,
    pub items: usize,
    pub earliest_deadline: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdvisoryEntry {
    pub advisory: String,
    pub title: String,
    pub tlp: Option<Tlp>,
    pub cves: Vec<String>,
    pub cvss: Option<f64>,
    pub severity: Band,
    pub vendor_fix: Vec<String>,
    pub mitigations: Vec<String>,
    pub services: Vec<ServiceLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceLine {
    pub item: ItemId,
    pub enterprise_id: String,
    pub enterprise: String,
    /// `address:port/transport`.
    pub service: String,
    pub protocol: String,
    /// The advisory's product name.
    pub product: String,
    /// The device as its finding names it.
    pub device: String,
    /// The firmware as the device stated it.
    pub firmware: Option<String>,
    pub status: Status,
    /// How the product was found, and why the status.
    pub evidence: String,
    pub reason: String,
    pub deadline: String,
    /// Whether the item was notified before (reopened).
    pub again: bool,
}

/// The center's notice policy (the `[notices]` table of the configuration file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeSettings {
    pub deadlines: Deadlines,
    /// Notice numbers are `PREFIX-YEAR-NNNN`.
    pub prefix: String,
}

impl Default for NoticeSettings {
    fn default() -> NoticeSettings {
        NoticeSettings { deadlines: Deadlines::default(), prefix: "OTS".into() }
    }
}

/// How `notices issue` numbers and writes.
#[derive(Clone, Debug)]
pub struct IssueOptions {
    pub settings: NoticeSettings,
    /// The folder the Markdown, HTML and CSV files are written to (none: only recorded).
    pub out: Option<PathBuf>,
    pub lang: Lang,
    /// Who issues (recorded with every transition).
    pub actor: String,
}

impl Default for IssueOptions {
    fn default() -> IssueOptions {
        IssueOptions { settings: NoticeSettings::default(), out: None, lang: Lang::En, actor: SYSTEM_ACTOR.into() }
    }
}

/// What `notices issue` did.
#[derive(Debug, Default)]
pub struct Issued {
    pub refresh: Refresh,
    pub notices: Vec<NoticeContent>,
    /// Items left out of every notice by their advisory's TLP (TLP:RED), which stay open.
    pub withheld: Vec<(ItemId, String, Option<Tlp>)>,
    /// Exceptions that ended and reopened their items.
    pub exceptions_ended: usize,
    pub files: Vec<PathBuf>,
}

/// Issues numbered notices for every item to notify (open, or reopened), one per enterprise and
/// one per district listing its enterprises, records them and moves their items to `notified`
/// with a deadline, in one transaction; then writes the files. Items already notified are not
/// notified again, so issuing twice adds nothing.
pub fn issue<S: Store + AdvisoryStore + ?Sized>(
    store: &mut S,
    vendors: &Vendors,
    options: &IssueOptions,
    at: &str,
) -> Result<Issued, LoopError> {
    let refresh = refresh(store, vendors, at)?;
    let exceptions_ended = end_exceptions(store, at)?;
    let items = store.items()?;
    let mut issued = Issued { refresh, exceptions_ended, ..Default::default() };
    let mut by_enterprise: BTreeMap<String, Vec<&ItemRecord>> = BTreeMap::new();
    for item in items.iter().filter(|i| matches!(i.state, ItemState::Open | ItemState::Reopened)) {
        if may_carry(item.detail.tlp, NoticeKind::Enterprise) {
            by_enterprise.entry(item.detail.enterprise_id.clone()).or_default().push(item);
        } else {
            issued.withheld.push((item.id.expect("stored"), item.detail.advisory.clone(), item.detail.tlp));
        }
    }
    if by_enterprise.is_empty() {
        return Ok(issued);
    }
    let year: i32 = at.get(..4).and_then(|y| y.parse().ok()).unwrap_or_default();
    let mut sequence = store.last_notice_sequence(year)?;
    let mut next_number = || {
        sequence += 1;
        (format!("{}-{year}-{sequence:04}", options.settings.prefix), sequence)
    };
    let mut records = Vec::new();
    let mut writes = Vec::new();
    let mut by_district: BTreeMap<String, Vec<(NoticeContent, Vec<&ItemRecord>)>> = BTreeMap::new();
    for (enterprise_id, carried) in by_enterprise {
        let (number, seq) = next_number();
        let first = &carried[0].detail;
        let deadline = |i: &ItemRecord| {
            let band = Band::of(i.detail.severity.as_deref(), i.detail.cvss);
            add_days(at, options.settings.deadlines.days(i.detail.level, band))
        };
        let content = NoticeContent {
            number: number.clone(),
            kind: NoticeKind::Enterprise,
            subject: enterprise_id.clone(),
            subject_name: first.enterprise.clone(),
            district: first.district.clone(),
            issued_at: at.to_string(),
            enterprises: Vec::new(),
            advisories: entries(carried.iter().map(|i| (*i, deadline(i)))),
        };
        for item in &carried {
            let due = deadline(item);
            writes.push(ItemWrite {
                item: ItemRecord {
                    state: ItemState::Notified,
                    deadline: Some(due.clone()),
                    notice: Some(number.clone()),
                    ..(*item).clone()
                },
                transition: Some(Change {
                    actor: options.actor.clone(),
                    reason: format!("notice {number} issued, due {}", day(&due)),
                }),
            });
        }
        records.push((notice_record(&content, carried.iter().filter_map(|i| i.id).collect()), seq));
        by_district.entry(first.district.clone()).or_default().push((content, carried));
    }
    let mut contents: Vec<NoticeContent> = Vec::new();
    for (district, notices) in by_district {
        let (number, seq) = next_number();
        let enterprises = notices
            .iter()
            .map(|(n, carried)| EnterpriseLine {
                enterprise_id: n.subject.clone(),
                enterprise: n.subject_name.clone(),
                level: carried[0].detail.level,
                notice: n.number.clone(),
                items: carried.len(),
                earliest_deadline: n
                    .advisories
                    .iter()
                    .flat_map(|a| a.services.iter().map(|s| s.deadline.clone()))
                    .min()
                    .unwrap_or_default(),
            })
            .collect();
        let shown: Vec<(&ItemRecord, String)> = notices
            .iter()
            .flat_map(|(n, carried)| {
                let deadlines: HashMap<ItemId, String> =
                    n.advisories.iter().flat_map(|a| a.services.iter().map(|s| (s.item, s.deadline.clone()))).collect();
                carried
                    .iter()
                    .filter(|i| may_carry(i.detail.tlp, NoticeKind::District))
                    .map(move |i| (*i, deadlines[&i.id.expect("stored")].clone()))
            })
            .collect();
        let content = NoticeContent {
            number,
            kind: NoticeKind::District,
            subject: district.clone(),
            subject_name: district.clone(),
            district: district.clone(),
            issued_at: at.to_string(),
            enterprises,
            advisories: entries(shown.iter().map(|(i, d)| (*i, d.clone()))),
        };
        records.push((notice_record(&content, shown.iter().filter_map(|(i, _)| i.id).collect()), seq));
        contents.extend(notices.into_iter().map(|(n, _)| n));
        contents.push(content);
    }
    store.record_notices(&records, &writes, at)?;
    issued.notices = contents;
    if let Some(dir) = &options.out {
        issued.files = render::write_all(dir, &issued.notices, options.lang)
            .map_err(|e| LoopError::Refused(format!("{}: {e}", dir.display())))?;
    }
    Ok(issued)
}

fn notice_record(content: &NoticeContent, items: Vec<ItemId>) -> NoticeRecord {
    NoticeRecord {
        number: content.number.clone(),
        kind: content.kind,
        subject: content.subject.clone(),
        district: content.district.clone(),
        issued_at: content.issued_at.clone(),
        content: serde_json::to_value(content).expect("notices serialise"),
        items,
    }
}

/// The items grouped by advisory (highest score first), each service with its deadline.
fn entries<'a>(items: impl Iterator<Item = (&'a ItemRecord, String)>) -> Vec<AdvisoryEntry> {
    let mut by_advisory: BTreeMap<String, AdvisoryEntry> = BTreeMap::new();
    for (item, deadline) in items {
        let d = &item.detail;
        let entry = by_advisory.entry(d.advisory.clone()).or_insert_with(|| AdvisoryEntry {
            advisory: d.advisory.clone(),
            title: d.title.clone(),
            tlp: d.tlp,
            cves: Vec::new(),
            cvss: None,
            severity: Band::Unscored,
            vendor_fix: Vec::new(),
            mitigations: Vec::new(),
            services: Vec::new(),
        });
        for cve in &d.cves {
            if !entry.cves.contains(cve) {
                entry.cves.push(cve.clone());
            }
        }
        if d.cvss > entry.cvss {
            entry.cvss = d.cvss;
            entry.severity = Band::of(d.severity.as_deref(), d.cvss);
        }
        for text in d.vendor_fix() {
            if !entry.vendor_fix.iter().any(|t| t == text) {
                entry.vendor_fix.push(text.to_string());
            }
        }
        for text in d.mitigations() {
            if !entry.mitigations.iter().any(|t| t == text) {
                entry.mitigations.push(text.to_string());
            }
        }
        let device =
            [d.device_vendor.as_deref(), d.device_product.as_deref()].into_iter().flatten().collect::<Vec<_>>();
        entry.services.push(ServiceLine {
            item: item.id.expect("stored"),
            enterprise_id: d.enterprise_id.clone(),
            enterprise: d.enterprise.clone(),
            service: d.service(),
            protocol: d.protocol.clone(),
            product: d.product.clone(),
            device: device.join(" "),
            firmware: d.version.clone(),
            status: d.status,
            evidence: format!("{}: {}", evidence_kind(d), d.evidence.detail),
            reason: d.reason.clone(),
            deadline,
            again: item.state == ItemState::Reopened,
        });
    }
    let mut out: Vec<AdvisoryEntry> = by_advisory.into_values().collect();
    out.sort_by(|a, b| b.cvss.partial_cmp(&a.cvss).unwrap_or(std::cmp::Ordering::Equal));
    out
}

fn evidence_kind(d: &MatchRecord) -> &'static str {
    use crate::advisories::EvidenceKind::*;
    match d.evidence.kind {
        OrderNumber => "order number",
        ModelNumber => "model number",
        Sku => "SKU",
        Cpe => "CPE",
        NameTokens => "product name",
    }
}

/// Exceptions whose last day has passed go back to the notices (reopened).
fn end_exceptions<S: AdvisoryStore + ?Sized>(store: &mut S, at: &str) -> Result<usize, StoreError> {
    let today = day(at);
    let writes: Vec<ItemWrite> = store
        .items()?
        .into_iter()
        .filter(|i| i.state == ItemState::Excepted && i.except_until.as_deref().is_some_and(|u| u < today))
        .map(|i| {
            let reason = format!("the exception ended on {}", i.except_until.as_deref().unwrap_or("?"));
            ItemWrite {
                item: ItemRecord { state: ItemState::Reopened, except_until: None, ..i },
                transition: Some(Change { actor: SYSTEM_ACTOR.into(), reason }),
            }
        })
        .collect();
    store.save_items(&writes, at)?;
    Ok(writes.len())
}

/// The open notices that concern these enterprises, each with only their items still to fix (not
/// excepted): what a report on those objects lists.
pub fn open_notices_of(notices: &[OpenNotice], enterprises: &BTreeSet<&str>) -> Vec<OpenNotice> {
    notices
        .iter()
        .filter_map(|n| {
            // An excepted item has left the notices until its exception ends.
            let items: Vec<_> = n
                .items
                .iter()
                .filter(|i| i.state != ItemState::Excepted && enterprises.contains(i.enterprise_id.as_str()))
                .cloned()
                .collect();
            (!items.is_empty()).then(|| OpenNotice { items, ..n.clone() })
        })
        .collect()
}

/// Whether an open notice's item is past its deadline at `at` (claimed and excepted items are not).
pub fn item_overdue(item: &crate::store::OpenItem, at: &str) -> bool {
    matches!(item.state, ItemState::Notified | ItemState::Reopened) && item.deadline.as_deref().is_some_and(|d| d < at)
}

// ---------------------------------------------------------------------------------------------
// Claims, exceptions, status.

/// The items an id names: an item id, or a notice number (its items).
fn named_items<S: AdvisoryStore + ?Sized>(store: &S, id: &str) -> Result<Vec<ItemRecord>, LoopError> {
    let items = store.items()?;
    if let Ok(n) = id.parse::<ItemId>() {
        return match items.into_iter().find(|i| i.id == Some(n)) {
            Some(i) => Ok(vec![i]),
            None => Err(LoopError::Refused(format!("no item {n} (see `otscope notices status`)"))),
        };
    }
    let Some(notice) = store.notices()?.into_iter().find(|n| n.number == id) else {
        return Err(LoopError::Refused(format!(
            "{id:?} is neither an item id nor a notice number (see `otscope notices status`)"
        )));
    };
    if notice.kind == NoticeKind::District {
        return Err(LoopError::Refused(format!(
            "{id} is a district notice: name the enterprise's notice or its items (see `otscope notices status`)"
        )));
    }
    Ok(items.into_iter().filter(|i| i.id.is_some_and(|x| notice.items.contains(&x))).collect())
}

/// Records an enterprise's word that an item is fixed (or every item of a notice that can be
/// claimed): `notified`, `reopened` or `open` -> `claimed`. A re-check then decides.
pub fn claim<S: AdvisoryStore + ?Sized>(
    store: &mut S,
    id: &str,
    by: &str,
    note: &str,
    at: &str,
) -> Result<Vec<ItemRecord>, LoopError> {
    if by.trim().is_empty() {
        return Err(LoopError::Refused("--by: say who claims the fix".into()));
    }
    let named = named_items(store, id)?;
    let claimable = |s: ItemState| matches!(s, ItemState::Open | ItemState::Notified | ItemState::Reopened);
    let writes: Vec<ItemWrite> = named
        .iter()
        .filter(|i| claimable(i.state))
        .map(|i| ItemWrite {
            item: ItemRecord { state: ItemState::Claimed, claim_scan: Some(i.detail.scan), ..i.clone() },
            transition: Some(Change { actor: by.to_string(), reason: note.to_string() }),
        })
        .collect();
    if writes.is_empty() {
        let states: Vec<String> =
            named.iter().map(|i| format!("item {} is {}", i.id.unwrap_or_default(), i.state.as_str())).collect();
        return Err(LoopError::Refused(format!(
            "{id}: nothing to claim ({}); only open, notified or reopened items can be claimed",
            if states.is_empty() { "no items".to_string() } else { states.join(", ") }
        )));
    }
    store.save_items(&writes, at)?;
    Ok(writes.into_iter().map(|w| w.item).collect())
}

/// The last day of an exception as stored (YYYY-MM-DD), when `until` is a date not before the day of
/// `at`; else why not, for the caller to put beside its own name for the value.
pub fn exception_until(until: &str, at: &str) -> Result<String, String> {
    let date: jiff::civil::Date = until.parse().map_err(|e| format!("not a date YYYY-MM-DD ({e})"))?;
    let until = date.to_string();
    if until.as_str() < day(at) {
        return Err("the date has passed".into());
    }
    Ok(until)
}

/// Records an accepted risk or a false positive: the item leaves the notices until `until`
/// (YYYY-MM-DD, its last day), then is reopened.
pub fn except<S: AdvisoryStore + ?Sized>(
    store: &mut S,
    id: &str,
    by: &str,
    reason: &str,
    until: &str,
    at: &str,
) -> Result<Vec<ItemRecord>, LoopError> {
    let until = exception_until(until, at).map_err(|why| LoopError::Refused(format!("--until {until:?}: {why}")))?;
    if reason.trim().is_empty() {
        return Err(LoopError::Refused("--reason: say why the risk is accepted or the finding is false".into()));
    }
    let writes: Vec<ItemWrite> = named_items(store, id)?
        .into_iter()
        .filter(|i| i.state.is_active())
        .map(|i| ItemWrite {
            item: ItemRecord { state: ItemState::Excepted, except_until: Some(until.clone()), ..i },
            transition: Some(Change { actor: by.to_string(), reason: format!("{reason} (until {until})") }),
        })
        .collect();
    if writes.is_empty() {
        return Err(LoopError::Refused(format!("{id}: no item still to be fixed")));
    }
    store.save_items(&writes, at)?;
    Ok(writes.into_iter().map(|w| w.item).collect())
}

/// One item as `notices status` shows it.
#[derive(Clone, Debug)]
pub struct ItemStatus {
    pub item: ItemRecord,
    /// Whole days since the item was opened.
    pub age_days: i64,
    /// Notified (or reopened) and past its deadline.
    pub overdue: bool,
    pub transitions: Vec<crate::store::Transition>,
}

/// Every item with its age, deadline and whether it is overdue, and its transitions.
pub fn status<S: AdvisoryStore + ?Sized>(store: &S, at: &str) -> Result<Vec<ItemStatus>, StoreError> {
    use time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::parse(at, &Rfc3339).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let mut out = Vec::new();
    for item in store.items()? {
        let created = time::OffsetDateTime::parse(&item.created_at, &Rfc3339).unwrap_or(now);
        let overdue = matches!(item.state, ItemState::Notified | ItemState::Reopened)
            && item.deadline.as_deref().is_some_and(|d| d < at);
        let transitions = store.transitions(item.id.expect("stored"))?;
        out.push(ItemStatus { age_days: (now - created).whole_days(), overdue, transitions, item });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Re-checks.

/// Which claimed items `notices verify` re-checks (those of the selection's enterprises and
/// districts, or all), and how it scans.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The ledger and library, as for `check`: nothing outside the ledger's scope is probed.
    pub scope: ScopeOptions,
    pub scan: ScanOptions,
    pub run: RunOptions,
    pub actor: String,
}

/// What a re-check decided, item by item.
#[derive(Debug, Default)]
pub struct Verified {
    pub scans: Vec<ScanId>,
    pub verified: Vec<(ItemId, String)>,
    pub reopened: Vec<(ItemId, String)>,
    /// Items the re-check did not cover (outside the scope, interrupted, not reached): unchanged.
    pub unchanged: Vec<(ItemId, String)>,
    /// Whether every re-check scan completed.
    pub complete: bool,
}

/// Re-checks exactly the services of the claimed items (of one enterprise or district) through
/// the pipeline, recorded in the history as scans of kind "verify", and decides each item it
/// covered: `verified` when the service is gone or its version is now outside the range (or it
/// is no longer the product), `reopened` when it is still affected or still undetermined.
pub async fn verify(db: &Path, vendors: &Vendors, options: &VerifyOptions) -> anyhow::Result<Verified> {
    let selection = &options.scope.selection;
    let store = SqliteStore::open(db)?;
    let claimed: Vec<ItemRecord> = store
        .items()?
        .into_iter()
        .filter(|i| i.state == ItemState::Claimed)
        .filter(|i| selection.enterprises.is_empty() || selection.enterprises.contains(&i.detail.enterprise_id))
        .filter(|i| selection.districts.is_empty() || selection.districts.contains(&i.detail.district))
        .collect();
    let matcher = Matcher::load(&store, vendors)?;
    drop(store);
    let mut outcome = Verified { complete: true, ..Default::default() };
    if claimed.is_empty() {
        return Ok(outcome);
    }
    let services: BTreeSet<(IpAddr, crate::scope::PortSpec)> = claimed
        .iter()
        .map(|i| (i.detail.ip, crate::scope::PortSpec { port: i.detail.port, transport: i.detail.transport }))
        .collect();
    let (plans, outside) = pipeline::plan_services(&options.scope, &options.scan, services).await?;
    let mut decided: std::collections::HashSet<ItemId> = Default::default();
    for (ip, port) in outside {
        for i in claimed.iter().filter(|i| i.detail.ip == ip && i.detail.port == port.port) {
            decided.insert(i.id.expect("stored"));
            outcome.unchanged.push((i.id.expect("stored"), "outside the ledger's scope: not re-checked".into()));
        }
    }
    for plan in &plans {
        let store = SqliteStore::open(db)?;
        let history = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("verify"))));
        let run = RunOptions { keep_findings: true, ..options.run.clone() };
        let report = pipeline::run(plan, history, Vec::new(), run).await?;
        if let Some(e) = report.history_error {
            anyhow::bail!("the history was not updated: {e}");
        }
        let scan = report.scan_id.expect("a re-check is recorded");
        outcome.scans.push(scan);
        outcome.complete &= report.complete();
        let coverage = plan.stream().coverage(plan.seed, plan.shard);
        let coverage = coverage.index();
        let found: HashMap<(IpAddr, u16, Transport), &Finding> =
            report.findings.iter().map(|f| ((f.ip, f.port, f.transport), f)).collect();
        let mut store = SqliteStore::open(db)?;
        let mut writes = Vec::new();
        for item in claimed.iter().filter(|i| coverage.contains(i.detail.ip, i.detail.port, i.detail.transport)) {
            let id = item.id.expect("stored");
            decided.insert(id);
            let d = &item.detail;
            let mut next = item.clone();
            let reason = match found.get(&(d.ip, d.port, d.transport)) {
                Some(f) => {
                    let results: Vec<MatchRecord> =
                        matcher.results(f, scan).into_iter().filter(|m| m.advisory == d.advisory).collect();
                    if let Some(m) = strongest(results.iter()) {
                        next.state = ItemState::Reopened;
                        next.detail = m.clone();
                        format!("re-check scan {scan}: still {}: {}", m.status.as_str(), m.reason)
                    } else if let Some(m) = results.first() {
                        next.state = ItemState::Verified;
                        format!("re-check scan {scan}: {}", m.reason)
                    } else {
                        next.state = ItemState::Verified;
                        let now: Vec<&str> = [f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref()]
                            .into_iter()
                            .flatten()
                            .collect();
                        format!(
                            "re-check scan {scan}: the service is no longer one of the advisory's products ({})",
                            now.join(" ")
                        )
                    }
                }
                None => {
                    let gone = store
                        .services_of(d.ip)?
                        .iter()
                        .any(|s| s.port == d.port && s.transport == d.transport.as_str() && s.gone_scan == Some(scan));
                    if !gone {
                        outcome.unchanged.push((id, format!("re-check scan {scan} did not reach it")));
                        continue;
                    }
                    next.state = ItemState::Verified;
                    format!("re-check scan {scan}: the service no longer answers (gone)")
                }
            };
            match next.state {
                ItemState::Verified => outcome.verified.push((id, reason.clone())),
                _ => outcome.reopened.push((id, reason.clone())),
            }
            writes.push(ItemWrite { item: next, transition: Some(Change { actor: options.actor.clone(), reason }) });
        }
        store.save_items(&writes, &pipeline::now_rfc3339())?;
        if !report.complete() {
            break;
        }
    }
    for i in &claimed {
        let id = i.id.expect("stored");
        if !decided.contains(&id) {
            outcome.unchanged.push((id, "not re-checked: the re-check stopped before it".into()));
        }
    }
    Ok(outcome)
}
