//! The advisory side of the store: advisory documents as imported, the match results of the known
//! services, the remediation items with every transition, the warning notices, and what a feed
//! sync last saw. Behind the narrow [`AdvisoryStore`] trait, implemented by the SQLite store.
//!
//! Every write that belongs together (the items a notice moves, the notice itself) is one
//! transaction: a crash leaves either all of it or none.

use super::sqlite::db_error;
use super::{ScanId, SqliteStore, StoreError};
use crate::advisories::sync::{Known, SyncState};
use crate::advisories::{Evidence, RemediationText, Status, Tlp};
use crate::findings::Finding;
use crate::ledger::Level;
use crate::scope::Transport;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub type ItemId = i64;

/// Where a remediation item (one service and one advisory) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Found affected (or undetermined with the product found); not yet in a notice.
    Open,
    /// In a notice, with a deadline.
    Notified,
    /// The enterprise says it is fixed; a re-check decides.
    Claimed,
    /// A re-check found it still affected (or an exception ended): it goes into the next notice.
    Reopened,
    /// An accepted risk or a false positive, until a date.
    Excepted,
    /// The service is gone, or its version is now outside the range.
    Verified,
    /// The advisory no longer covers it (revised), or the service is not a real device.
    Closed,
}

impl ItemState {
    pub const ALL: [ItemState; 7] = [
        ItemState::Open,
        ItemState::Notified,
        ItemState::Claimed,
        ItemState::Reopened,
        ItemState::Excepted,
        ItemState::Verified,
        ItemState::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Open => "open",
            ItemState::Notified => "notified",
            ItemState::Claimed => "claimed",
            ItemState::Reopened => "reopened",
            ItemState::Excepted => "excepted",
            ItemState::Verified => "verified",
            ItemState::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<ItemState> {
        ItemState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Still to be fixed (or decided): not verified, not closed.
    pub fn is_active(self) -> bool {
        !matches!(self, ItemState::Verified | ItemState::Closed)
    }
}

/// An advisory document as stored: what lists and notices show, and the bytes as read.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAdvisory {
    /// `document.tracking.id`.
    pub id: String,
    pub version: String,
    pub content_hash: String,
    pub tlp: Option<Tlp>,
    pub title: String,
    pub publisher: String,
    pub current_release_date: String,
    /// Where it was read from (a path or an URL).
    pub source: String,
    pub imported_at: String,
    /// When a changed document last replaced the one before.
    pub revised_at: Option<String>,
    pub document: Vec<u8>,
}

/// What storing a document did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    New,
    /// The same content was stored already: nothing changed.
    Unchanged,
    /// A changed document replaced the one stored, which had this version and content hash.
    Revised {
        previous_version: String,
        previous_hash: String,
    },
}

/// One (service, advisory, product) result as the store keeps it: the service as its last
/// finding stated it, what the advisory says of the product, and the verdict with its reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchRecord {
    pub ip: IpAddr,
    pub port: u16,
    pub transport: Transport,
    pub protocol: String,
    pub enterprise_id: String,
    pub enterprise: String,
    pub district: String,
    pub level: Level,
    /// The device's vendor and product as its finding names them.
    pub device_vendor: Option<String>,
    pub device_product: Option<String>,
    /// The version as the device stated it.
    pub version: Option<String>,
    pub order_numbers: Vec<String>,
    pub honeypot: bool,
    /// The advisory's tracking id.
    pub advisory: String,
    pub title: String,
    pub tlp: Option<Tlp>,
    /// The content hash of the document matched.
    pub advisory_hash: String,
    pub cves: Vec<String>,
    pub cvss: Option<f64>,
    pub severity: Option<String>,
    pub product_id: String,
    /// The advisory's product name.
    pub product: String,
    /// The version or range the advisory gives, as written.
    pub versions: Option<String>,
    pub status: Status,
    pub reason: String,
    pub evidence: Evidence,
    pub remediations: Vec<RemediationText>,
    /// The scan whose observation was matched, and when it was made.
    pub scan: ScanId,
    pub observed_at: String,
}

impl MatchRecord {
    pub fn key(&self) -> (IpAddr, u16, Transport) {
        (self.ip, self.port, self.transport)
    }

    /// The vendor's fix, as the advisory words it.
    pub fn vendor_fix(&self) -> Vec<&str> {
        self.remediations.iter().filter(|r| r.category == "vendor_fix").map(|r| r.details.as_str()).collect()
    }

    /// Mitigations and workarounds, as the advisory words them.
    pub fn mitigations(&self) -> Vec<&str> {
        self.remediations
            .iter()
            .filter(|r| matches!(r.category.as_str(), "mitigation" | "workaround"))
            .map(|r| r.details.as_str())
            .collect()
    }

    /// `address:port/transport`, IPv6 addresses in brackets.
    pub fn service(&self) -> String {
        let ip = match self.ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        format!("{ip}:{}/{}", self.port, self.transport.as_str())
    }
}

/// One remediation item: a (service, advisory) pair and where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemRecord {
    /// None for an item not stored yet.
    pub id: Option<ItemId>,
    pub state: ItemState,
    /// The latest result that made it an item (affected, or undetermined with the product found).
    pub detail: MatchRecord,
    pub created_at: String,
    pub updated_at: String,
    /// When it is due, from the notice that last carried it.
    pub deadline: Option<String>,
    /// The number of the notice that last carried it.
    pub notice: Option<String>,
    /// For a claimed item: the scan of the service's last observation when it was claimed (a
    /// re-check is a later one).
    pub claim_scan: Option<ScanId>,
    /// For an excepted item: the last day (YYYY-MM-DD) of the exception.
    pub except_until: Option<String>,
}

/// A recorded change of state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub item: ItemId,
    pub at: String,
    /// None when the item was created.
    pub from: Option<ItemState>,
    pub to: ItemState,
    pub actor: String,
    pub reason: String,
}

/// An item to store, and the transition to record with it (None: its detail changed, its state did not).
#[derive(Clone, Debug)]
pub struct ItemWrite {
    pub item: ItemRecord,
    pub transition: Option<Change>,
}

/// Who moved an item, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub actor: String,
    pub reason: String,
}

/// Who a notice is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Enterprise,
    District,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Enterprise => "enterprise",
            NoticeKind::District => "district",
        }
    }
}

/// A numbered warning notice as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct NoticeRecord {
    pub number: String,
    pub kind: NoticeKind,
    /// The enterprise id, or the district.
    pub subject: String,
    pub district: String,
    pub issued_at: String,
    /// What the notice holds, as it was issued (the notices module writes and reads it).
    pub content: serde_json::Value,
    /// The items it carries (for a district notice, those of its enterprises it shows).
    pub items: Vec<ItemId>,
}

/// A notice with items still to be fixed (a notice stays open until every item it carried is
/// verified or closed), as reports list it.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenNotice {
    pub number: String,
    pub kind: NoticeKind,
    pub subject: String,
    pub district: String,
    pub issued_at: String,
    /// The active items it carries.
    pub items: Vec<OpenItem>,
}

/// An active item of an open notice.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenItem {
    pub id: ItemId,
    pub state: ItemState,
    pub enterprise_id: String,
    pub enterprise: String,
    pub level: Level,
    pub advisory: String,
    pub tlp: Option<Tlp>,
    pub deadline: Option<String>,
}

/// A known service: its last finding, the scan that made it, and the completed scan that first
/// missed it if it is gone.
#[derive(Clone, Debug)]
pub struct KnownService {
    pub finding: Finding,
    pub last_scan: ScanId,
    pub gone_scan: Option<ScanId>,
}

/// The advisory and remediation bookkeeping, beside the scan history.
pub trait AdvisoryStore {
    /// Stores a document read from `source`, replacing a stored one of the same id whose content
    /// differs.
    fn store_advisory(&mut self, advisory: &StoredAdvisory) -> Result<Stored, StoreError>;
    /// The stored documents, without their bytes, by id.
    fn advisories(&self) -> Result<Vec<StoredAdvisory>, StoreError>;
    /// One stored document with its bytes.
    fn advisory(&self, id: &str) -> Result<Option<StoredAdvisory>, StoreError>;
    /// Every stored document's bytes, by id.
    fn advisory_documents(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Every service the history knows, gone or not, with its last finding.
    fn known_services(&self) -> Result<Vec<KnownService>, StoreError>;
    /// Replaces the recorded match results with these.
    fn replace_matches(&mut self, results: &[MatchRecord]) -> Result<(), StoreError>;
    /// The recorded match results (of one advisory, or all).
    fn matches(&self, advisory: Option<&str>) -> Result<Vec<MatchRecord>, StoreError>;
    fn items(&self) -> Result<Vec<ItemRecord>, StoreError>;
    fn transitions(&self, item: ItemId) -> Result<Vec<Transition>, StoreError>;
    /// Stores items and their transitions, at `at`, in one transaction; returns their ids.
    fn save_items(&mut self, writes: &[ItemWrite], at: &str) -> Result<Vec<ItemId>, StoreError>;
    /// The highest notice sequence number of a year (0 when none).
    fn last_notice_sequence(&self, year: i32) -> Result<u32, StoreError>;
    /// Records notices and the item writes that go with them, in one transaction.
    fn record_notices(
        &mut self,
        notices: &[(NoticeRecord, u32)],
        writes: &[ItemWrite],
        at: &str,
    ) -> Result<(), StoreError>;
    fn notices(&self) -> Result<Vec<NoticeRecord>, StoreError>;
    /// The notices that carry active items, with those items.
    fn open_notices(&self) -> Result<Vec<OpenNotice>, StoreError>;
    /// What the last `advisories sync` of the provider at `provider` (its metadata URL) saw, so that
    /// the next fetches only what changed.
    fn sync_state(&self, provider: &str) -> Result<SyncState, StoreError>;
    fn set_sync_state(&mut self, provider: &str, state: &SyncState) -> Result<(), StoreError>;
}

fn invalid(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("a stored {what} does not parse: {e}"))
}

fn tlp_text(tlp: Option<Tlp>) -> Option<&'static str> {
    tlp.map(Tlp::as_str)
}

const ADVISORY_COLUMNS: &str =
    "id, version, content_hash, tlp, title, publisher, current_release_date, source, imported_at, revised_at";

fn advisory_from_row(row: &rusqlite::Row<'_>, document: Vec<u8>) -> rusqlite::Result<StoredAdvisory> {
    Ok(StoredAdvisory {
        id: row.get(0)?,
        version: row.get(1)?,
        content_hash: row.get(2)?,
        tlp: row.get::<_, Option<String>>(3)?.as_deref().and_then(Tlp::parse),
        title: row.get(4)?,
        publisher: row.get(5)?,
        current_release_date: row.get(6)?,
        source: row.get(7)?,
        imported_at: row.get(8)?,
        revised_at: row.get(9)?,
        document,
    })
}

const ITEM_COLUMNS: &str = "id, state, detail, created_at, updated_at, deadline, notice, claim_scan, except_until";

type ItemRow = (i64, String, String, String, String, Option<String>, Option<String>, Option<i64>, Option<String>);

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ItemRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
}

fn item_from(row: ItemRow) -> Result<ItemRecord, StoreError> {
    let (id, state, detail, created_at, updated_at, deadline, notice, claim_scan, except_until) = row;
    Ok(ItemRecord {
        id: Some(id),
        state: ItemState::parse(&state).ok_or_else(|| invalid("item state", &state))?,
        detail: serde_json::from_str(&detail).map_err(|e| invalid("item", e))?,
        created_at,
        updated_at,
        deadline,
        notice,
        claim_scan,
        except_until,
    })
}

impl SqliteStore {
    fn advisory_error(&self, e: rusqlite::Error) -> StoreError {
        db_error(self.path(), e)
    }

    /// Writes items and their transitions inside an open transaction.
    fn write_items(&self, writes: &[ItemWrite], at: &str) -> Result<Vec<ItemId>, StoreError> {
        let conn = self.connection();
        let fail = |e| self.advisory_error(e);
        let mut ids = Vec::with_capacity(writes.len());
        for w in writes {
            let item = &w.item;
            let d = &item.detail;
            let detail = serde_json::to_string(d).expect("match records serialise");
            let (id, from) = match item.id {
                None => {
                    conn.execute(
                        "INSERT INTO remediation_items (ip, port, transport, advisory, state, detail, created_at, \
                         updated_at, deadline, notice, claim_scan, except_until) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                        params![
                            d.ip.to_string(),
                            d.port,
                            d.transport.as_str(),
                            d.advisory,
                            item.state.as_str(),
                            detail,
                            item.created_at,
                            at,
                            item.deadline,
                            item.notice,
                            item.claim_scan,
                            item.except_until
                        ],
                    )
                    .map_err(fail)?;
                    (conn.last_insert_rowid(), None)
                }
                Some(id) => {
                    let before: String = conn
                        .query_row("SELECT state FROM remediation_items WHERE id = ?1", [id], |r| r.get(0))
                        .map_err(fail)?;
                    conn.execute(
                        "UPDATE remediation_items SET state = ?1, detail = ?2, updated_at = ?3, deadline = ?4, \
                         notice = ?5, claim_scan = ?6, except_until = ?7 WHERE id = ?8",
                        params![
                            item.state.as_str(),
                            detail,
                            at,
                            item.deadline,
                            item.notice,
                            item.claim_scan,
                            item.except_until,
                            id
                        ],
                    )
                    .map_err(fail)?;
                    (id, ItemState::parse(&before))
                }
            };
            if let Some(change) = &w.transition {
                conn.execute(
                    "INSERT INTO remediation_transitions (item_id, at, from_state, to_state, actor, reason) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, at, from.map(ItemState::as_str), item.state.as_str(), change.actor, change.reason],
                )
                .map_err(fail)?;
            }
            ids.push(id);
        }
        Ok(ids)
    }
}

impl AdvisoryStore for SqliteStore {
    fn store_advisory(&mut self, a: &StoredAdvisory) -> Result<Stored, StoreError> {
        self.flush()?;
        let conn = self.connection();
        let fail = |e| self.advisory_error(e);
        let previous: Option<(String, String)> = conn
            .query_row("SELECT version, content_hash FROM advisory_documents WHERE id = ?1", [&a.id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(fail)?;
        let outcome = match previous {
            Some((_, hash)) if hash == a.content_hash => return Ok(Stored::Unchanged),
            Some((previous_version, previous_hash)) => Stored::Revised { previous_version, previous_hash },
            None => Stored::New,
        };
        let revised_at = match outcome {
            Stored::Revised { .. } => Some(a.imported_at.clone()),
            _ => None,
        };
        conn.execute(
            "INSERT INTO advisory_documents (id, version, content_hash, tlp, title, publisher, current_release_date, \
             source, imported_at, revised_at, document) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, content_hash = excluded.content_hash, \
             tlp = excluded.tlp, title = excluded.title, publisher = excluded.publisher, \
             current_release_date = excluded.current_release_date, source = excluded.source, \
             revised_at = excluded.revised_at, document = excluded.document",
            params![
                a.id,
                a.version,
                a.content_hash,
                tlp_text(a.tlp),
                a.title,
                a.publisher,
                a.current_release_date,
                a.source,
                a.imported_at,
                revised_at,
                a.document
            ],
        )
        .map_err(fail)?;
        Ok(outcome)
    }

    fn advisories(&self) -> Result<Vec<StoredAdvisory>, StoreError> {
        let mut st = self
            .connection()
            .prepare(&format!("SELECT {ADVISORY_COLUMNS} FROM advisory_documents ORDER BY id"))
            .map_err(|e| self.advisory_error(e))?;
        let rows = st.query_map([], |r| advisory_from_row(r, Vec::new())).map_err(|e| self.advisory_error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.advisory_error(e))
    }

    fn advisory(&self, id: &str) -> Result<Option<StoredAdvisory>, StoreError> {
        self.connection()
            .query_row(
                &format!("SELECT {ADVISORY_COLUMNS}, document FROM advisory_documents WHERE id = ?1"),
                [id],
                |r| advisory_from_row(r, r.get(10)?),
            )
            .optional()
            .map_err(|e| self.advisory_error(e))
    }

    fn advisory_documents(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut st = self
            .connection()
            .prepare("SELECT id, document FROM advisory_documents ORDER BY id")
            .map_err(|e| self.advisory_error(e))?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.advisory_error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.advisory_error(e))
    }

    fn known_services(&self) -> Result<Vec<KnownService>, StoreError> {
        let mut st = self
            .connection()
            .prepare(
                "SELECT s.last_scan, s.gone_scan, o.finding FROM services s JOIN observations o \
                 ON o.scan_id = s.last_scan AND o.ip = s.ip AND o.port = s.port AND o.transport = s.transport \
                 ORDER BY s.ip, s.port, s.transport",
            )
            .map_err(|e| self.advisory_error(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, String>(2)?)))
            .map_err(|e| self.advisory_error(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (last_scan, gone_scan, text) = row.map_err(|e| self.advisory_error(e))?;
            let finding = serde_json::from_str(&text).map_err(|e| invalid("finding", e))?;
            out.push(KnownService { finding, last_scan, gone_scan });
        }
        Ok(out)
    }

    fn replace_matches(&mut self, results: &[MatchRecord]) -> Result<(), StoreError> {
        self.flush()?;
        let conn = self.connection();
        let fail = |e| self.advisory_error(e);
        let tx = conn.unchecked_transaction().map_err(fail)?;
        tx.execute("DELETE FROM advisory_matches", []).map_err(fail)?;
        {
            let mut st = tx
                .prepare(
                    "INSERT OR REPLACE INTO advisory_matches (ip, port, transport, advisory, product_id, status, record) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(fail)?;
            for m in results {
                let record = serde_json::to_string(m).expect("match records serialise");
                st.execute(params![
                    m.ip.to_string(),
                    m.port,
                    m.transport.as_str(),
                    m.advisory,
                    m.product_id,
                    m.status.as_str(),
                    record
                ])
                .map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }

    fn matches(&self, advisory: Option<&str>) -> Result<Vec<MatchRecord>, StoreError> {
        let fail = |e| self.advisory_error(e);
        let mut st = self
            .connection()
            .prepare(
                "SELECT record FROM advisory_matches WHERE ?1 IS NULL OR advisory = ?1 \
                 ORDER BY ip, port, transport, advisory, product_id",
            )
            .map_err(fail)?;
        let rows = st.query_map([advisory], |r| r.get::<_, String>(0)).map_err(fail)?;
        let mut out = Vec::new();
        for text in rows {
            out.push(serde_json::from_str(&text.map_err(fail)?).map_err(|e| invalid("match result", e))?);
        }
        Ok(out)
    }

    fn items(&self) -> Result<Vec<ItemRecord>, StoreError> {
        let fail = |e| self.advisory_error(e);
        let mut st = self
            .connection()
            .prepare(&format!("SELECT {ITEM_COLUMNS} FROM remediation_items ORDER BY id"))
            .map_err(fail)?;
        let rows = st.query_map([], item_row).map_err(fail)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(item_from(row.map_err(fail)?)?);
        }
        Ok(out)
    }

    fn transitions(&self, item: ItemId) -> Result<Vec<Transition>, StoreError> {
        let fail = |e| self.advisory_error(e);
        let mut st = self
            .connection()
            .prepare(
                "SELECT at, from_state, to_state, actor, reason FROM remediation_transitions WHERE item_id = ?1 \
                 ORDER BY seq",
            )
            .map_err(fail)?;
        let rows = st
            .query_map([item], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(fail)?;
        let mut out = Vec::new();
        for row in rows {
            let (at, from, to, actor, reason) = row.map_err(fail)?;
            out.push(Transition {
                item,
                at,
                from: from.as_deref().and_then(ItemState::parse),
                to: ItemState::parse(&to).ok_or_else(|| invalid("transition", &to))?,
                actor,
                reason,
            });
        }
        Ok(out)
    }

    fn save_items(&mut self, writes: &[ItemWrite], at: &str) -> Result<Vec<ItemId>, StoreError> {
        self.flush()?;
        let tx = self.connection().unchecked_transaction().map_err(|e| self.advisory_error(e))?;
        let ids = self.write_items(writes, at)?;
        tx.commit().map_err(|e| self.advisory_error(e))?;
        Ok(ids)
    }

    fn last_notice_sequence(&self, year: i32) -> Result<u32, StoreError> {
        self.connection()
            .query_row("SELECT COALESCE(MAX(sequence), 0) FROM notices WHERE year = ?1", [year], |r| r.get(0))
            .map_err(|e| self.advisory_error(e))
    }

    fn record_notices(
        &mut self,
        notices: &[(NoticeRecord, u32)],
        writes: &[ItemWrite],
        at: &str,
    ) -> Result<(), StoreError> {
        self.flush()?;
        let conn = self.connection();
        let fail = |e| self.advisory_error(e);
        let tx = conn.unchecked_transaction().map_err(fail)?;
        for (n, sequence) in notices {
            let year: i32 = n.issued_at.get(..4).and_then(|y| y.parse().ok()).unwrap_or_default();
            conn.execute(
                "INSERT INTO notices (number, year, sequence, kind, subject, district, issued_at, content) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    n.number,
                    year,
                    sequence,
                    n.kind.as_str(),
                    n.subject,
                    n.district,
                    n.issued_at,
                    n.content.to_string()
                ],
            )
            .map_err(fail)?;
            for item in &n.items {
                conn.execute("INSERT INTO notice_items (number, item_id) VALUES (?1, ?2)", params![n.number, item])
                    .map_err(fail)?;
            }
        }
        self.write_items(writes, at)?;
        tx.commit().map_err(fail)
    }

    fn notices(&self) -> Result<Vec<NoticeRecord>, StoreError> {
        let fail = |e| self.advisory_error(e);
        let conn = self.connection();
        let mut st = conn
            .prepare("SELECT number, kind, subject, district, issued_at, content FROM notices ORDER BY year, sequence")
            .map_err(fail)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(fail)?;
        let mut items =
            conn.prepare("SELECT item_id FROM notice_items WHERE number = ?1 ORDER BY item_id").map_err(fail)?;
        let mut out = Vec::new();
        for row in rows {
            let (number, kind, subject, district, issued_at, content) = row.map_err(fail)?;
            let kind = match kind.as_str() {
                "enterprise" => NoticeKind::Enterprise,
                "district" => NoticeKind::District,
                other => return Err(invalid("notice kind", other)),
            };
            let ids = items
                .query_map([&number], |r| r.get::<_, i64>(0))
                .map_err(fail)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let content = serde_json::from_str(&content).map_err(|e| invalid("notice", e))?;
            out.push(NoticeRecord { number, kind, subject, district, issued_at, content, items: ids });
        }
        Ok(out)
    }

    fn open_notices(&self) -> Result<Vec<OpenNotice>, StoreError> {
        let items: std::collections::HashMap<ItemId, ItemRecord> =
            self.items()?.into_iter().filter_map(|i| i.id.map(|id| (id, i))).collect();
        let mut out = Vec::new();
        for n in self.notices()? {
            let open: Vec<OpenItem> = n
                .items
                .iter()
                .filter_map(|id| items.get(id))
                .filter(|i| i.state.is_active())
                .map(|i| OpenItem {
                    id: i.id.expect("stored"),
                    state: i.state,
                    enterprise_id: i.detail.enterprise_id.clone(),
                    enterprise: i.detail.enterprise.clone(),
                    level: i.detail.level,
                    advisory: i.detail.advisory.clone(),
                    tlp: i.detail.tlp,
                    deadline: i.deadline.clone(),
                })
                .collect();
            if !open.is_empty() {
                out.push(OpenNotice {
                    number: n.number,
                    kind: n.kind,
                    subject: n.subject,
                    district: n.district,
                    issued_at: n.issued_at,
                    items: open,
                });
            }
        }
        Ok(out)
    }

    fn sync_state(&self, provider: &str) -> Result<SyncState, StoreError> {
        let mut documents = BTreeMap::new();
        self.connection()
            .prepare("SELECT url, updated, sha256, refused FROM advisory_sync WHERE provider = ?1")
            .and_then(|mut st| {
                let rows = st.query_map([provider], |r| {
                    Ok((r.get::<_, String>(0)?, Known { updated: r.get(1)?, sha256: r.get(2)?, refused: r.get(3)? }))
                })?;
                for row in rows {
                    let (url, known) = row?;
                    documents.insert(url, known);
                }
                Ok(())
            })
            .map_err(|e| self.advisory_error(e))?;
        Ok(SyncState { documents })
    }

    fn set_sync_state(&mut self, provider: &str, state: &SyncState) -> Result<(), StoreError> {
        self.flush()?;
        let write = |conn: &rusqlite::Connection| -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            tx.execute("DELETE FROM advisory_sync WHERE provider = ?1", [provider])?;
            let mut st = tx.prepare(
                "INSERT INTO advisory_sync (provider, url, updated, sha256, refused) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (url, k) in &state.documents {
                st.execute(params![provider, url, k.updated, k.sha256, k.refused])?;
            }
            drop(st);
            tx.commit()
        };
        write(self.connection()).map_err(|e| self.advisory_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advisory(hash: &str) -> StoredAdvisory {
        StoredAdvisory {
            id: "ICSA-00-000-01".into(),
            version: "1".into(),
            content_hash: hash.into(),
            tlp: Some(Tlp::Green),
            title: "t".into(),
            publisher: "p".into(),
            current_release_date: "2024-01-01T00:00:00Z".into(),
            source: "a.json".into(),
            imported_at: "2026-01-01T00:00:00Z".into(),
            revised_at: None,
            document: b"{}".to_vec(),
        }
    }

    fn record() -> MatchRecord {
        MatchRecord {
            ip: "127.0.0.1".parse().unwrap(),
            port: 502,
            transport: Transport::Tcp,
            protocol: "modbus".into(),
            enterprise_id: "E1".into(),
            enterprise: "e".into(),
            district: "d".into(),
            level: Level::Important,
            device_vendor: None,
            device_product: None,
            version: Some("1.0".into()),
            order_numbers: Vec::new(),
            honeypot: false,
            advisory: "ICSA-00-000-01".into(),
            title: "t".into(),
            tlp: Some(Tlp::Green),
            advisory_hash: "h1".into(),
            cves: vec!["CVE-2099-1".into()],
            cvss: Some(9.8),
            severity: Some("CRITICAL".into()),
            product_id: "P1".into(),
            product: "p".into(),
            versions: Some("<2.0".into()),
            status: Status::Affected,
            reason: "r".into(),
            evidence: Evidence { kind: crate::advisories::EvidenceKind::NameTokens, detail: "p".into() },
            remediations: Vec::new(),
            scan: 1,
            observed_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn documents_items_transitions_and_notices_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        assert_eq!(store.store_advisory(&advisory("h1")).unwrap(), Stored::New);
        assert_eq!(store.store_advisory(&advisory("h1")).unwrap(), Stored::Unchanged);
        assert_eq!(
            store.store_advisory(&advisory("h2")).unwrap(),
            Stored::Revised { previous_version: "1".into(), previous_hash: "h1".into() }
        );
        let stored = store.advisory("ICSA-00-000-01").unwrap().unwrap();
        assert_eq!(
            (stored.content_hash.as_str(), stored.tlp, stored.document.as_slice()),
            ("h2", Some(Tlp::Green), &b"{}"[..])
        );
        assert!(stored.revised_at.is_some());

        store.replace_matches(&[record()]).unwrap();
        assert_eq!(store.matches(Some("ICSA-00-000-01")).unwrap(), [record()]);
        assert!(store.matches(Some("other")).unwrap().is_empty());

        let item = ItemRecord {
            id: None,
            state: ItemState::Open,
            detail: record(),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            deadline: None,
            notice: None,
            claim_scan: None,
            except_until: None,
        };
        let change = |reason: &str| Some(Change { actor: "otscope".into(), reason: reason.into() });
        let ids = store
            .save_items(&[ItemWrite { item: item.clone(), transition: change("found") }], "2026-01-01T00:00:00Z")
            .unwrap();
        let notified = ItemRecord {
            id: Some(ids[0]),
            state: ItemState::Notified,
            notice: Some("OTS-2026-0001".into()),
            deadline: Some("2026-01-08T00:00:00Z".into()),
            ..item
        };
        let notice = NoticeRecord {
            number: "OTS-2026-0001".into(),
            kind: NoticeKind::Enterprise,
            subject: "E1".into(),
            district: "d".into(),
            issued_at: "2026-01-01T00:00:00Z".into(),
            content: serde_json::json!({ "any": "content" }),
            items: ids.clone(),
        };
        store
            .record_notices(
                &[(notice.clone(), 1)],
                &[ItemWrite { item: notified, transition: change("issued") }],
                "2026-01-01T01:00:00Z",
            )
            .unwrap();
        assert_eq!(store.last_notice_sequence(2026).unwrap(), 1);
        assert_eq!(store.last_notice_sequence(2027).unwrap(), 0);
        assert_eq!(store.notices().unwrap(), [notice]);
        let items = store.items().unwrap();
        assert_eq!((items.len(), items[0].state), (1, ItemState::Notified));
        let moves: Vec<(Option<ItemState>, ItemState)> =
            store.transitions(ids[0]).unwrap().into_iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(moves, [(None, ItemState::Open), (Some(ItemState::Open), ItemState::Notified)]);
        let open = store.open_notices().unwrap();
        assert_eq!((open.len(), open[0].items[0].deadline.as_deref()), (1, Some("2026-01-08T00:00:00Z")));

        // A notice number used twice fails the whole transaction: no item moves.
        let again = NoticeRecord { items: Vec::new(), ..store.notices().unwrap().remove(0) };
        let closed = ItemRecord { state: ItemState::Closed, ..store.items().unwrap().remove(0) };
        assert!(store
            .record_notices(&[(again, 2)], &[ItemWrite { item: closed, transition: change("x") }], "t")
            .is_err());
        assert_eq!(store.items().unwrap()[0].state, ItemState::Notified);
        assert_eq!(store.transitions(ids[0]).unwrap().len(), 2);
    }
}
