//! What a caller may read: the store seen through a reach. Every API endpoint and every console
//! page reads through a [`View`] and nothing else, so reach is enforced here, once: lists are
//! narrowed to the reach (asking for another district or enterprise is forbidden), and a single
//! object outside it is not found, exactly as one that does not exist. The changes a request may
//! make ([`claim`], and the center's [`issue`] and [`except`]) check the reach here too.

use super::auth::{Caller, Reach};
use crate::advisories::Vendors;
use crate::advisories::{Status, Tlp};
use crate::event::{self, Verdict};
use crate::export::Lang;
use crate::findings::Finding;
use crate::history;
use crate::notices::{self, may_carry, IssueOptions, Issued, ItemStatus, LoopError, NoticeSettings};
use crate::scope::{Selection, Transport};
use crate::store::{
    AdvisoryStore, EventRecord, EventStore, FindingQuery, ItemId, ItemRecord, NoticeKind, NoticeRecord, OwnerCount,
    ScanId, ScanRecord, SqliteStore, Store, StoreError, StoredAdvisory,
};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::PathBuf;

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// The request names something outside the reach (the parameter is given).
    #[error("outside this token's reach: {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    /// The change asked for does not fit the object's state: nothing was changed.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LoopError> for Denied {
    fn from(e: LoopError) -> Denied {
        match e {
            LoopError::Store(e) => Denied::Store(e),
            LoopError::Refused(message) => Denied::Refused(message),
        }
    }
}

/// Claims a notice within the caller's reach fixed, recorded exactly as `otscope notices claim`
/// does, with the token's name as the actor.
pub fn claim(
    store: &mut SqliteStore,
    caller: &Caller,
    number: &str,
    note: &str,
    at: &str,
) -> Result<Vec<ItemRecord>, Denied> {
    View::new(store, &caller.reach).notice_record(number)?;
    Ok(notices::claim(store, number, &caller.name, note, at)?)
}

/// What the server issues notices with: what `otscope notices issue` is given on its command line,
/// fixed when the server starts (a request never names a file on the server).
#[derive(Debug, Clone)]
pub struct Issuer {
    pub vendors: Vendors,
    pub settings: NoticeSettings,
    /// The folder the notices' files are written to.
    pub out: PathBuf,
}

/// Issues the notices due, as `otscope notices issue` does, with the token's name as the actor:
/// the center's alone (notices span every owner).
pub fn issue(
    store: &mut SqliteStore,
    caller: &Caller,
    issuer: Option<&Issuer>,
    lang: Lang,
    at: &str,
) -> Result<Issued, Denied> {
    View::new(store, &caller.reach).center_only("notices")?;
    let Some(issuer) = issuer else {
        return Err(Denied::Refused(
            "this server issues no notices: start `otscope serve` with --fingerprints (or run `otscope notices issue`)"
                .into(),
        ));
    };
    let options = IssueOptions {
        settings: issuer.settings.clone(),
        out: Some(issuer.out.clone()),
        lang,
        actor: caller.name.clone(),
    };
    Ok(notices::issue(store, &issuer.vendors, &options, at)?)
}

/// Records an exception for a notice's items, or for one item of it, until `until` (its last day),
/// as `otscope notices except` does, with the token's name as the actor: the center's alone.
pub fn except(
    store: &mut SqliteStore,
    caller: &Caller,
    number: &str,
    item: Option<ItemId>,
    reason: &str,
    until: &str,
    at: &str,
) -> Result<Vec<ItemRecord>, Denied> {
    let view = View::new(store, &caller.reach);
    view.center_only("notices")?;
    let notice = view.notice_record(number)?;
    let named = match item {
        Some(id) if notice.items.contains(&id) => id.to_string(),
        Some(id) => return Err(Denied::NotFound(format!("no item {id} in notice {number}"))),
        None => number.to_string(),
    };
    Ok(notices::except(store, &named, &caller.name, reason, until, at)?)
}

pub struct View<'a> {
    store: &'a SqliteStore,
    reach: &'a Reach,
}

impl<'a> View<'a> {
    pub fn new(store: &'a SqliteStore, reach: &'a Reach) -> View<'a> {
        View { store, reach }
    }

    pub fn reach(&self) -> &Reach {
        self.reach
    }

    fn admits(&self, f: &Finding) -> bool {
        self.reach.admits(&f.district, &f.enterprise_id)
    }

    /// A page of findings: the query narrowed to the reach.
    pub fn findings(&self, mut query: FindingQuery) -> Result<Vec<Finding>, Denied> {
        match self.reach {
            Reach::Center => {}
            Reach::District(d) => {
                if query.district.as_ref().is_some_and(|asked| asked != d) {
                    return Err(Denied::Forbidden("district"));
                }
                // An enterprise never seen in the district is not found, whether it exists elsewhere or
                // not: the answer must not tell which.
                if let Some(e) = &query.enterprise_id {
                    if !self.store.ever_observed(d, e)? {
                        return Err(Denied::NotFound(format!("no enterprise {e:?} in district {d:?}")));
                    }
                }
                query.district = Some(d.clone());
            }
            Reach::Enterprise(e) => {
                if query.enterprise_id.as_ref().is_some_and(|asked| asked != e) {
                    return Err(Denied::Forbidden("enterprise"));
                }
                if let Some(d) = &query.district {
                    if !self.store.ever_observed(d, e)? {
                        return Err(Denied::NotFound(format!("no service of enterprise {e:?} in district {d:?}")));
                    }
                }
                query.enterprise_id = Some(e.clone());
            }
        }
        if let Some(scan) = query.scan {
            self.scan(scan)?;
        }
        let page = self.store.finding_page(&query)?;
        // The query already holds only what is in reach; a finding outside it would be a bug here,
        // and is dropped rather than shown.
        Ok(page.into_iter().filter(|f| self.admits(f)).collect())
    }

    /// How many findings of `scan` are within reach.
    fn count_in_reach(&self, scan: ScanId) -> Result<u64, StoreError> {
        match self.reach {
            Reach::Center => self.store.observation_count(scan, None, None),
            Reach::District(d) => self.store.observation_count(scan, Some(d), None),
            Reach::Enterprise(e) => self.store.observation_count(scan, None, Some(e)),
        }
    }

    /// Whether a scan concerns the reach: it observed something in it, or its selection took it in.
    fn sees_scan(&self, scan: &ScanRecord) -> Result<bool, StoreError> {
        let selection: Selection = serde_json::from_value(scan.start.selection.clone()).unwrap_or_default();
        let everyone = selection.districts.is_empty() && selection.enterprises.is_empty() && selection.ips.is_empty();
        let named = match self.reach {
            Reach::Center => true,
            Reach::District(d) => selection.enterprises.is_empty() && selection.districts.contains(d),
            Reach::Enterprise(e) => selection.enterprises.contains(e),
        };
        Ok(everyone || named || self.count_in_reach(scan.id)? > 0)
    }

    /// A scan as the caller may see it: the center sees the whole record; the others its times,
    /// state and their own count, never the ledger, parameters or totals of everyone.
    fn scan_json(&self, scan: &ScanRecord) -> Result<Value, StoreError> {
        let state = scan.state();
        let reason = match &state {
            crate::store::ScanState::Partial(reason) => reason.clone(),
            _ => None,
        };
        let findings = self.count_in_reach(scan.id)?;
        Ok(match self.reach {
            Reach::Center => json!({
                "id": scan.id,
                "kind": scan.start.kind,
                "started_at": scan.start.started_at,
                "ended_at": scan.ended_at,
                "state": state.label(),
                "reason": reason,
                "findings": findings,
                "targets_total": scan.start.targets_total,
                "probed": scan.end.as_ref().map(|e| e.probed),
                "ledger_path": scan.start.ledger_path,
                "ledger_sha256": scan.start.ledger_sha256,
                "library_version": scan.start.library_version,
                "selection": scan.start.selection,
                "parameters": scan.start.parameters,
            }),
            _ => json!({
                "id": scan.id,
                "kind": scan.start.kind.split(':').next().unwrap_or_default(),
                "started_at": scan.start.started_at,
                "ended_at": scan.ended_at,
                "state": state.label(),
                "findings": findings,
            }),
        })
    }

    pub fn scans(&self) -> Result<Vec<Value>, Denied> {
        let mut out = Vec::new();
        for scan in self.store.scans()? {
            if self.sees_scan(&scan)? {
                out.push(self.scan_json(&scan)?);
            }
        }
        Ok(out)
    }

    fn visible_scan(&self, id: ScanId) -> Result<ScanRecord, Denied> {
        let unknown = || Denied::NotFound(format!("no scan {id}"));
        let scan = match self.store.scan(id) {
            Ok(scan) => scan,
            Err(StoreError::UnknownScan(_)) => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        if self.sees_scan(&scan)? {
            Ok(scan)
        } else {
            Err(unknown())
        }
    }

    pub fn scan(&self, id: ScanId) -> Result<Value, Denied> {
        let scan = self.visible_scan(id)?;
        Ok(self.scan_json(&scan)?)
    }

    /// The diff between two scans (default: the last two completed scans of the same objects), its
    /// entries narrowed to the reach. Only the center gets the count of services not covered, which
    /// spans every owner.
    pub fn diff(&self, from: Option<ScanId>, to: Option<ScanId>) -> Result<Value, Denied> {
        let (from, to) = match (from, to) {
            (Some(from), Some(to)) => (from, to),
            (None, None) => self.default_pair()?,
            _ => return Err(Denied::NotFound("give both from and to, or neither".into())),
        };
        self.visible_scan(from)?;
        self.visible_scan(to)?;
        let diff = history::diff(self.store, from, to)?;
        let entries: Vec<_> = diff.entries.into_iter().filter(|e| self.admits(&e.finding)).collect();
        let mut out = json!({ "from": from, "to": to, "entries": entries });
        if *self.reach == Reach::Center {
            out["not_covered"] = json!(diff.not_covered);
        }
        Ok(out)
    }

    /// The last two completed scans of the same objects among those the caller sees.
    fn default_pair(&self) -> Result<(ScanId, ScanId), Denied> {
        let mut completed = Vec::new();
        for scan in self.store.scans()? {
            if scan.completed() && self.sees_scan(&scan)? {
                completed.push(scan);
            }
        }
        let none =
            || Denied::NotFound("no two completed scans of the same objects to compare: give from and to".into());
        let (latest, earlier) = completed.split_last().ok_or_else(none)?;
        let previous = earlier.iter().rev().find(|s| history::same_objects(s, latest)).ok_or_else(none)?;
        Ok((previous.id, latest.id))
    }

    /// One service over time: its observations within reach; not found unless its last one is.
    pub fn service(&self, ip: IpAddr, port: u16, transport: Transport) -> Result<Value, Denied> {
        let unknown = || Denied::NotFound(format!("no service {ip}:{port}/{}", transport.as_str()));
        let record = self
            .store
            .services_of(ip)?
            .into_iter()
            .find(|s| s.port == port && s.transport == transport.as_str())
            .filter(|s| self.admits(&s.last))
            .ok_or_else(unknown)?;
        let observations: Vec<Value> = self
            .store
            .observations_of(ip)?
            .into_iter()
            .filter(|(_, f)| f.port == port && f.transport == transport && self.admits(f))
            .map(|(scan, finding)| json!({ "scan": scan, "finding": finding }))
            .collect();
        Ok(json!({
            "ip": ip,
            "port": port,
            "transport": transport,
            "first_seen": record.first_seen,
            "last_seen": record.last_seen,
            "gone_scan": record.gone_scan,
            "observations": observations,
        }))
    }

    /// Major events watch objects of many owners: they are the center's.
    fn center_only(&self, what: &'static str) -> Result<(), Denied> {
        match self.reach {
            Reach::Center => Ok(()),
            _ => Err(Denied::Forbidden(what)),
        }
    }

    pub fn events(&self) -> Result<Vec<EventRecord>, Denied> {
        self.center_only("events")?;
        Ok(self.store.events()?)
    }

    fn event_record(&self, name: &str) -> Result<EventRecord, Denied> {
        self.center_only("events")?;
        self.store
            .events()?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| Denied::NotFound(format!("no event {name:?}")))
    }

    pub fn event(&self, name: &str) -> Result<EventRecord, Denied> {
        self.event_record(name)
    }

    /// The 24-hour report of an event ending now, and its verdict (`zero`, `drift`, `no_coverage`).
    pub fn event_report(&self, name: &str, lang: Lang) -> Result<Value, Denied> {
        let record = self.event_record(name)?;
        let now = time::OffsetDateTime::now_utc();
        // Events are the center's (other roles are refused above), so every open notice may be listed.
        let notices = crate::store::AdvisoryStore::open_notices(self.store)?;
        let report = event::report(self.store, &notices, &record, now, time::Duration::hours(24), lang)?;
        let verdict = match report.verdict {
            Verdict::Zero => "zero",
            Verdict::Drift => "drift",
            Verdict::NoCoverage => "no_coverage",
        };
        Ok(json!({ "event": name, "verdict": verdict, "text": report.text }))
    }

    /// The current services counted by owner and severity, within reach, of `district` when given.
    pub fn summary(&self, district: Option<&str>) -> Result<Vec<OwnerCount>, Denied> {
        let rows = match self.reach {
            Reach::Center => self.store.current_summary(district, None)?,
            Reach::District(d) => {
                if district.is_some_and(|asked| asked != d) {
                    return Err(Denied::Forbidden("district"));
                }
                self.store.current_summary(Some(d), None)?
            }
            Reach::Enterprise(e) => self.store.current_summary(district, Some(e))?,
        };
        Ok(rows.into_iter().filter(|r| self.reach.admits(&r.district, &r.enterprise_id)).collect())
    }

    /// Whether an advisory of this TLP may be shown to the caller when it concerns `enterprises`:
    /// the center sees every one; TLP:GREEN and below go to everyone; TLP:AMBER (and an advisory
    /// without a label) only to an enterprise it concerns; TLP:RED never leaves the center.
    fn sees_tlp<'e>(&self, tlp: Option<Tlp>, mut enterprises: impl Iterator<Item = &'e str>) -> bool {
        match self.reach {
            Reach::Center => true,
            Reach::District(_) => may_carry(tlp, NoticeKind::District),
            Reach::Enterprise(e) => {
                may_carry(tlp, NoticeKind::District)
                    || (may_carry(tlp, NoticeKind::Enterprise) && enterprises.any(|concerned| concerned == e))
            }
        }
    }

    fn sees_advisory(&self, advisory: &StoredAdvisory) -> Result<bool, StoreError> {
        if *self.reach == Reach::Center || may_carry(advisory.tlp, NoticeKind::District) {
            return Ok(true);
        }
        // An advisory concerns an enterprise when one of its devices is (or may be) affected.
        let matches = self.store.matches(Some(&advisory.id))?;
        let concerned = matches.iter().filter(|m| m.status != Status::NotAffected).map(|m| m.enterprise_id.as_str());
        Ok(self.sees_tlp(advisory.tlp, concerned))
    }

    fn advisory_json(advisory: &StoredAdvisory) -> Value {
        json!({
            "id": advisory.id,
            "version": advisory.version,
            "tlp": advisory.tlp.map(Tlp::as_str),
            "title": advisory.title,
            "publisher": advisory.publisher,
            "current_release_date": advisory.current_release_date,
            "imported_at": advisory.imported_at,
            "revised_at": advisory.revised_at,
        })
    }

    /// The advisories the caller may see (by TLP), without their matches.
    pub fn advisories(&self) -> Result<Vec<Value>, Denied> {
        let mut out = Vec::new();
        for advisory in self.store.advisories()? {
            if self.sees_advisory(&advisory)? {
                out.push(Self::advisory_json(&advisory));
            }
        }
        Ok(out)
    }

    /// One advisory the caller may see, with its match results within reach; not found otherwise.
    pub fn advisory(&self, id: &str) -> Result<Value, Denied> {
        let unknown = || Denied::NotFound(format!("no advisory {id:?}"));
        let advisory = self.store.advisory(id)?.ok_or_else(unknown)?;
        if !self.sees_advisory(&advisory)? {
            return Err(unknown());
        }
        let matches: Vec<Value> = self
            .store
            .matches(Some(id))?
            .iter()
            .filter(|m| self.reach.admits(&m.district, &m.enterprise_id))
            .map(notices::match_json)
            .collect();
        let mut out = Self::advisory_json(&advisory);
        out["matches"] = json!(matches);
        Ok(out)
    }

    /// Whether a notice is the caller's: a district sees its district's notices (its own and its
    /// enterprises'), an enterprise its own notices only.
    fn sees_notice(&self, notice: &NoticeRecord) -> bool {
        match self.reach {
            Reach::Center => true,
            Reach::District(d) => notice.district == *d,
            Reach::Enterprise(e) => notice.kind == NoticeKind::Enterprise && notice.subject == *e,
        }
    }

    fn notice_record(&self, number: &str) -> Result<NoticeRecord, Denied> {
        self.store
            .notices()?
            .into_iter()
            .find(|n| n.number == number && self.sees_notice(n))
            .ok_or_else(|| Denied::NotFound(format!("no notice {number:?}")))
    }

    /// A notice with its items' states and deadlines, open until every item is verified or closed;
    /// an item's advisory is named only when the caller may see it (TLP). Only the center gets the
    /// content as issued.
    fn notice_json(&self, notice: &NoticeRecord, items: &[ItemStatus]) -> Value {
        let carried: Vec<&ItemStatus> =
            items.iter().filter(|s| s.item.id.is_some_and(|id| notice.items.contains(&id))).collect();
        let active = || carried.iter().map(|s| &s.item).filter(|i| i.state.is_active());
        let open = active().next().is_some();
        let deadline = active().filter_map(|i| i.deadline.as_deref()).min();
        let items: Vec<Value> = carried
            .iter()
            .map(|s| {
                let i = &s.item;
                let d = &i.detail;
                // The last move says who claimed, excepted or verified, and why.
                let last = s.transitions.last().map(|t| json!({ "at": t.at, "actor": t.actor, "reason": t.reason }));
                let shown = self.sees_tlp(d.tlp, std::iter::once(d.enterprise_id.as_str()));
                json!({
                    "id": i.id,
                    "state": i.state,
                    "enterprise_id": d.enterprise_id,
                    "enterprise": d.enterprise,
                    "ip": d.ip,
                    "port": d.port,
                    "transport": d.transport.as_str(),
                    "advisory": shown.then_some(&d.advisory),
                    "title": shown.then_some(&d.title),
                    "cves": if shown { d.cves.clone() } else { Vec::new() },
                    "deadline": i.deadline,
                    "except_until": i.except_until,
                    "overdue": s.overdue,
                    "last_move": last,
                })
            })
            .collect();
        let mut out = json!({
            "number": notice.number,
            "kind": notice.kind.as_str(),
            "subject": notice.subject,
            "district": notice.district,
            "issued_at": notice.issued_at,
            "status": if open { "open" } else { "closed" },
            "deadline": deadline,
            "items": items,
        });
        if *self.reach == Reach::Center {
            out["content"] = notice.content.clone();
        }
        out
    }

    /// The caller's notices, oldest first.
    pub fn notices(&self) -> Result<Vec<Value>, Denied> {
        let notices: Vec<NoticeRecord> = self.store.notices()?.into_iter().filter(|n| self.sees_notice(n)).collect();
        if notices.is_empty() {
            return Ok(Vec::new());
        }
        let items = notices::status(self.store, &crate::pipeline::now_rfc3339())?;
        Ok(notices.iter().map(|n| self.notice_json(n, &items)).collect())
    }

    pub fn notice(&self, number: &str) -> Result<Value, Denied> {
        let notice = self.notice_record(number)?;
        let items = notices::status(self.store, &crate::pipeline::now_rfc3339())?;
        Ok(self.notice_json(&notice, &items))
    }
}
