//! The embedded store: SQLite (bundled) in WAL mode, with versioned migrations. Findings are written
//! in transactions of a bounded size, so a crash loses at most the open batch and never corrupts the file.

use super::schema::MIGRATIONS;
use super::{
    EventRecord, EventStore, NotCoveredTarget, Runner, ScanClose, ScanEnd, ScanId, ScanRecord, ScanStart,
    ServiceRecord, Sighting, Store, StoreError, APPLICATION_ID,
};
use crate::findings::{classify, identity_key, Change, Finding, IdentityKey};
use crate::scope::{Owner, Transport};
use crate::targets::CoverageIndex;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Findings per write transaction, and the longest a transaction stays open.
const BATCH_RECORDS: usize = 1000;
const BATCH_AGE: Duration = Duration::from_secs(2);
/// How long a writer waits for another one (another scan of the same history) to commit.
const BUSY_WAIT: Duration = Duration::from_secs(60);

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    batch: Option<(usize, Instant)>,
}

/// A service as the store keys it.
struct ServiceKey {
    ip: String,
    port: u16,
    transport: String,
}

/// The targets of a scan that it could not probe (local failures), as the store keys services.
type Uncovered = HashSet<(String, u16, String)>;

impl ServiceKey {
    /// Whether a scan with this coverage, which could not probe `uncovered`, probed the service.
    fn probed_by(&self, index: &CoverageIndex<'_>, uncovered: &Uncovered) -> bool {
        let transport = serde_json::from_value::<Transport>(serde_json::Value::String(self.transport.clone()));
        let covered = match (self.ip.parse::<IpAddr>(), transport) {
            (Ok(ip), Ok(transport)) => index.contains(ip, self.port, transport),
            _ => false,
        };
        covered && !uncovered.contains(&(self.ip.clone(), self.port, self.transport.clone()))
    }
}

/// A service's place in the history: the first and last scans that saw it (since its last gone mark, if
/// seen again after it), the completed scan that missed it after its last observation, and its identity
/// as the last scan saw it.
struct ServiceRow {
    first_scan: ScanId,
    last_scan: ScanId,
    gone_scan: Option<ScanId>,
    identity: String,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the history at `path`, for recording. A file that is not
    /// an otscope history (another program's database) is refused and left untouched; an empty file is
    /// a new history. Migrations run under the write lock, so processes that create one new database
    /// at the same moment all succeed.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let fail = |e: rusqlite::Error| db_error(path, e);
        // Recognised before anything is written: switching to WAL alone would rewrite a foreign file's header.
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            recognise(&open_reader(path)?, path)?;
        }
        let conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(BUSY_WAIT).map_err(fail)?;
        switch_to_wal(&conn, path)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(fail)?;
        migrate(&conn, path)?;
        Ok(SqliteStore { conn, path: path.to_path_buf(), batch: None })
    }

    /// Opens an existing history for reading only: no migration, no change of journal mode, nothing
    /// written, so it works in a read-only place (a read-only folder or mount, a copy on a CD).
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = open_reader(path)?;
        let version = recognise(&conn, path)?;
        if version < MIGRATIONS.len() as i64 {
            return Err(StoreError::Invalid(format!(
                "{}: the history has schema version {version}, older than this otscope's ({}): \
                 `otscope history --upgrade --db {}` (or any command that records: scan, check, event) \
                 updates it; read-only commands never write",
                path.display(),
                MIGRATIONS.len(),
                path.display()
            )));
        }
        Ok(SqliteStore { conn, path: path.to_path_buf(), batch: None })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw connection, for the modules that keep their own tables (events).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn fail(&self, e: rusqlite::Error) -> StoreError {
        db_error(&self.path, e)
    }

    fn in_batch(&mut self) -> Result<(), StoreError> {
        if self.batch.is_none() {
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| db_error(&self.path, e))?;
            self.batch = Some((0, Instant::now()));
        }
        Ok(())
    }

    /// Commits the open batch when it is big or old enough.
    fn flush_if_due(&mut self) -> Result<(), StoreError> {
        match self.batch {
            Some((count, since)) if count >= BATCH_RECORDS || since.elapsed() >= BATCH_AGE => self.flush(),
            _ => Ok(()),
        }
    }

    /// Commits the open batch, if any.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.batch.take().is_some() {
            self.conn.execute_batch("COMMIT").map_err(|e| db_error(&self.path, e))?;
        }
        Ok(())
    }

    /// What the history holds of a service, if it knows it.
    fn service_row(&self, service: &ServiceKey) -> Result<Option<ServiceRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT first_scan, last_scan, gone_scan, identity FROM services \
                 WHERE ip = ?1 AND port = ?2 AND transport = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![service.ip, service.port, service.transport], |r| {
                    Ok(ServiceRow {
                        first_scan: r.get(0)?,
                        last_scan: r.get(1)?,
                        gone_scan: r.get(2)?,
                        identity: r.get(3)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.fail(e))
    }

    /// The change status of `scan`'s observation of a service: against the service's latest observation
    /// by an earlier scan, and new when there is none or a completed scan missed it since.
    fn classify_against_history(
        &self,
        scan: ScanId,
        service: &ServiceKey,
        key: &IdentityKey,
        previous: Option<&ServiceRow>,
    ) -> Result<(Change, Vec<String>), StoreError> {
        let before: Option<IdentityKey> = match previous {
            None => None,
            // A resumed scan may probe a target again that it had already recorded: the status stays the one
            // it got against the scans before, so a resume never turns "new" into "persisting".
            Some(p) if p.last_scan == scan => {
                if let Some(f) = self.observation(scan, service)? {
                    return Ok((f.change.unwrap_or(Change::New), f.changed));
                }
                None
            }
            Some(p) if p.last_scan < scan => {
                p.gone_scan.is_none_or(|g| g > scan).then(|| serde_json::from_str(&p.identity).unwrap_or_default())
            }
            // A later scan recorded it first: the observation to compare with is the latest before this scan.
            Some(_) => match self.latest_before(scan, service)? {
                Some((earlier, f)) if !self.gone_between(service, earlier, scan)? => Some(identity_key(&f)),
                _ => None,
            },
        };
        Ok(classify(before.as_ref(), Some(key), true).expect("the service is seen now"))
    }

    fn observation(&self, scan: ScanId, service: &ServiceKey) -> Result<Option<Finding>, StoreError> {
        let text: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT finding FROM observations WHERE scan_id = ?1 AND ip = ?2 AND port = ?3 AND transport = ?4",
            )
            .and_then(|mut st| st.query_row(params![scan, service.ip, service.port, service.transport], |r| r.get(0)))
            .optional()
            .map_err(|e| self.fail(e))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// The latest observation of a service by a scan before `scan`, with that scan.
    fn latest_before(&self, scan: ScanId, service: &ServiceKey) -> Result<Option<(ScanId, Finding)>, StoreError> {
        let row: Option<(ScanId, String)> = self
            .conn
            .prepare_cached(
                "SELECT scan_id, finding FROM observations WHERE ip = ?1 AND port = ?2 AND transport = ?3 \
                 AND scan_id < ?4 ORDER BY scan_id DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![service.ip, service.port, service.transport, scan], |r| Ok((r.get(0)?, r.get(1)?)))
            })
            .optional()
            .map_err(|e| self.fail(e))?;
        row.map(|(id, text)| Ok((id, finding_from(&text)?))).transpose()
    }

    /// Whether a completed scan strictly between `after` and `before` marked the service gone.
    fn gone_between(&self, service: &ServiceKey, after: ScanId, before: ScanId) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM gone WHERE ip = ?1 AND port = ?2 AND transport = ?3 \
                 AND scan_id > ?4 AND scan_id < ?5)",
            )
            .and_then(|mut st| {
                st.query_row(params![service.ip, service.port, service.transport, after, before], |r| r.get(0))
            })
            .map_err(|e| self.fail(e))
    }

    /// The services matching `condition` (on `services`, with the scan as `?1`), with their gone mark.
    fn services_where(&self, condition: &str, scan: ScanId) -> Result<Vec<(ServiceKey, Option<ScanId>)>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT ip, port, transport, gone_scan FROM services WHERE {condition}"))
            .map_err(|e| self.fail(e))?;
        let rows = st
            .query_map([scan], |r| Ok((ServiceKey { ip: r.get(0)?, port: r.get(1)?, transport: r.get(2)? }, r.get(3)?)))
            .map_err(|e| self.fail(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(e))
    }

    /// What `scan` could not probe: outside its coverage, whatever the coverage says.
    fn uncovered(&self, scan: ScanId) -> Result<Uncovered, StoreError> {
        Ok(self
            .not_covered(scan)?
            .into_iter()
            .map(|t| (t.ip.to_string(), t.port, t.transport.as_str().to_string()))
            .collect())
    }

    /// Marks a service gone since `scan`, in place of a later mark of the same miss.
    fn mark_gone(&self, service: &ServiceKey, replaced: Option<ScanId>, scan: ScanId) -> Result<(), StoreError> {
        let ServiceKey { ip, port, transport } = service;
        let conn = &self.conn;
        conn.execute(
            "UPDATE services SET gone_scan = ?1 WHERE ip = ?2 AND port = ?3 AND transport = ?4",
            params![scan, ip, port, transport],
        )
        .and_then(|_| match replaced {
            Some(later) => conn.execute(
                "DELETE FROM gone WHERE scan_id = ?1 AND ip = ?2 AND port = ?3 AND transport = ?4",
                params![later, ip, port, transport],
            ),
            None => Ok(0),
        })
        .and_then(|_| {
            conn.execute(
                "INSERT OR IGNORE INTO gone (scan_id, ip, port, transport) VALUES (?1, ?2, ?3, ?4)",
                params![scan, ip, port, transport],
            )
        })
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn scan_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ScanRecord> {
        let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
            let text: String = row.get(i)?;
            serde_json::from_str(&text)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
        };
        let coverage = serde_json::from_value(json(8)?)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, Box::new(e)))?;
        let probed: Option<i64> = row.get(11)?;
        let open: Option<i64> = row.get(12)?;
        let completed: bool = row.get(13)?;
        let ended_at: Option<String> = row.get(2)?;
        let reason: Option<String> = row.get(14)?;
        // A runner that does not parse is as good as none: the scan's process cannot be asked.
        let runner: Option<Runner> = row.get::<_, Option<String>>(15)?.and_then(|t| serde_json::from_str(&t).ok());
        Ok(ScanRecord {
            id: row.get(0)?,
            start: ScanStart {
                started_at: row.get(1)?,
                ledger_path: row.get(3)?,
                ledger_sha256: row.get(4)?,
                library_version: row.get(5)?,
                selection: json(6)?,
                parameters: json(7)?,
                coverage,
                targets_total: row.get::<_, i64>(9)? as u64,
                kind: row.get(10)?,
                runner,
            },
            end: ended_at.as_ref().map(|_| ScanEnd {
                probed: probed.unwrap_or(0) as u64,
                open: open.unwrap_or(0) as u64,
                completed,
                reason,
            }),
            ended_at,
        })
    }
}

const SCAN_COLUMNS: &str = "id, started_at, ended_at, ledger_path, ledger_sha256, library_version, selection, \
                            parameters, coverage, targets_total, kind, probed, open, completed, end_reason, runner";

pub(super) fn db_error(path: &Path, e: rusqlite::Error) -> StoreError {
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => " (the disk is full: free space and run again; committed scans are intact)",
        Some(ErrorCode::ReadOnly) => " (the database or its folder is read-only)",
        Some(ErrorCode::CannotOpen) => " (cannot open: check the path and its folder's permissions)",
        Some(ErrorCode::NotADatabase) => " (this file is not an otscope database)",
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            " (another otscope is writing this database)"
        }
        _ => "",
    };
    StoreError::Database { path: path.display().to_string(), message: format!("{e}{hint}") }
}

/// A read-only connection. SQLite reads a WAL database through a shared-memory file beside it; where
/// that file cannot be created (a read-only folder or mount), the database is read as immutable, which
/// is what it is there.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let fail = |e: rusqlite::Error| db_error(path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let first_read =
        |conn: &Connection| conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0));
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(BUSY_WAIT).map_err(fail)?;
    match first_read(&conn) {
        Ok(_) => Ok(conn),
        Err(e) if matches!(e.sqlite_error_code(), Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)) => {
            let immutable = Connection::open_with_flags(format!("{}?immutable=1", file_uri(path)), flags)
                .and_then(|c| first_read(&c).map(|_| c));
            immutable.map_err(|_| fail(e))
        }
        Err(e) => Err(fail(e)),
    }
}

/// `path` as an SQLite `file:` URI (absolute, every byte outside the unreserved set percent-encoded).
fn file_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file://");
    for &b in absolute.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

/// Whether the database behind `conn` is an otscope history (stamped with [`APPLICATION_ID`], or made
/// before the stamp by its tables), or empty; returns its schema version. Another program's database
/// is refused, as is a history from a newer otscope.
fn recognise(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let fail = |e: rusqlite::Error| db_error(path, e);
    let application: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(fail)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(fail)?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(fail)?;
    let ours = application == APPLICATION_ID
        || (application == 0 && ["observations", "scans", "services"].iter().all(|t| tables.iter().any(|n| n == t)));
    let empty = application == 0 && version == 0 && tables.is_empty();
    if !ours && !empty {
        let listed = if tables.is_empty() { "none".to_string() } else { tables.join(", ") };
        return Err(StoreError::Invalid(format!(
            "{}: not an otscope history but another program's SQLite database (application id {application:#010x}, \
             tables: {listed}); it was left untouched: give --db a new file or an otscope history",
            path.display()
        )));
    }
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Invalid(format!(
            "{}: the database has schema version {version}, newer than this otscope knows ({known}): use a newer otscope",
            path.display()
        )));
    }
    Ok(version)
}

/// Puts the database in WAL mode (once, when it is new). The switch needs the file alone and SQLite
/// does not wait for that, so another process opening it at the same moment is waited for here.
fn switch_to_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        let mode = conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0)).and_then(|mode| {
            if mode.eq_ignore_ascii_case("wal") {
                Ok(mode)
            } else {
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            }
        });
        match mode {
            Ok(_) => return Ok(()),
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(db_error(path, e)),
        }
    }
}

/// Brings the schema up to date and stamps the file as otscope's, in one transaction that holds the
/// write lock: a second process waits, then finds the work done.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |e: rusqlite::Error| db_error(path, e);
    let current = |conn: &Connection| -> rusqlite::Result<(i64, i32)> {
        Ok((
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))?,
            conn.query_row("PRAGMA application_id", [], |r| r.get(0))?,
        ))
    };
    let known = MIGRATIONS.len() as i64;
    if current(conn).map_err(fail)? == (known, APPLICATION_ID) {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
    let migrated = recognise(conn, path).and_then(|version| {
        for sql in &MIGRATIONS[version as usize..] {
            conn.execute_batch(sql).map_err(fail)?;
        }
        conn.execute_batch(&format!("PRAGMA user_version = {known}; PRAGMA application_id = {APPLICATION_ID}; COMMIT"))
            .map_err(fail)
    });
    if migrated.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    migrated
}

pub(super) fn finding_from(text: &str) -> Result<Finding, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Invalid(format!("a stored finding does not parse: {e}")))
}

impl Store for SqliteStore {
    fn begin_scan(&mut self, s: &ScanStart) -> Result<ScanId, StoreError> {
        self.flush()?;
        let coverage = serde_json::to_string(&s.coverage).expect("coverage serialises");
        self.conn
            .execute(
                "INSERT INTO scans (started_at, ledger_path, ledger_sha256, library_version, selection, parameters, \
                 coverage, targets_total, kind, runner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    s.started_at,
                    s.ledger_path,
                    s.ledger_sha256,
                    s.library_version,
                    s.selection.to_string(),
                    s.parameters.to_string(),
                    coverage,
                    s.targets_total as i64,
                    s.kind,
                    s.runner.as_ref().map(|r| serde_json::to_string(r).expect("runners serialise")),
                ],
            )
            .map_err(|e| self.fail(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    fn record_owners(&mut self, scan: ScanId, owners: &[Owner]) -> Result<(), StoreError> {
        let known: HashMap<String, Owner> =
            self.owners()?.into_iter().map(|(_, o)| (o.enterprise_id.clone(), o)).collect();
        let same = |a: &Owner, b: &Owner| {
            (&a.enterprise, &a.district, &a.sector, a.level) == (&b.enterprise, &b.district, &b.sector, b.level)
        };
        self.in_batch()?;
        for owner in owners.iter().filter(|o| !known.get(&o.enterprise_id).is_some_and(|k| same(k, o))) {
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO owners (enterprise_id, since_scan, enterprise, district, sector, level) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        owner.enterprise_id,
                        scan,
                        owner.enterprise,
                        owner.district,
                        owner.sector,
                        owner.level.as_str()
                    ])
                })
                .map_err(|e| self.fail(e))?;
        }
        self.flush()
    }

    fn owners(&self) -> Result<Vec<(ScanId, Owner)>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT since_scan, enterprise_id, enterprise, district, sector, level FROM owners \
                 ORDER BY since_scan, enterprise_id",
            )
            .map_err(|e| self.fail(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (scan, enterprise_id, enterprise, district, sector, level) = row.map_err(|e| self.fail(e))?;
            let level = level.parse().map_err(|e| StoreError::Invalid(format!("a stored enterprise's level: {e}")))?;
            out.push((scan, Owner { enterprise_id, enterprise, district, sector, level }));
        }
        Ok(out)
    }

    fn record(&mut self, scan: ScanId, finding: &mut Finding) -> Result<(), StoreError> {
        self.in_batch()?;
        let service = ServiceKey {
            ip: finding.ip.to_string(),
            port: finding.port,
            transport: finding.transport.as_str().to_string(),
        };
        let key = identity_key(finding);
        let previous = self.service_row(&service)?;
        let (change, changed) = self.classify_against_history(scan, &service, &key, previous.as_ref())?;
        finding.change = Some(change);
        finding.changed = changed;
        let text = serde_json::to_string(finding).expect("findings serialise");
        let identity = serde_json::to_string(&key).expect("identity serialises");
        let seen = finding.observed_at.as_str();
        let now = ServiceRow { first_scan: scan, last_scan: scan, gone_scan: None, identity: identity.clone() };
        // Scans may record in any order: the service's first and last scans are the earliest and latest that
        // saw it (in scan order), and a gone mark holds against every observation older than it.
        let (row, first_seen, last_seen) = match &previous {
            None => (now, Some(seen), Some(seen)),
            // Seen again after a completed scan missed it: a new stretch of exposure begins.
            Some(p) if p.gone_scan.is_some_and(|g| g < scan) => (now, Some(seen), Some(seen)),
            Some(p) => {
                let earlier_first = scan < p.first_scan && !self.gone_between(&service, scan, p.first_scan)?;
                let latest = scan >= p.last_scan;
                let row = ServiceRow {
                    first_scan: if earlier_first { scan } else { p.first_scan },
                    last_scan: p.last_scan.max(scan),
                    gone_scan: p.gone_scan,
                    identity: if latest { identity } else { p.identity.clone() },
                };
                (row, earlier_first.then_some(seen), latest.then_some(seen))
            }
        };
        let conn = &self.conn;
        let ServiceKey { ip, port, transport } = &service;
        let (first_scan, last_scan, gone_scan, identity) =
            (row.first_scan, row.last_scan, row.gone_scan, &row.identity);
        conn.prepare_cached(
            "INSERT OR REPLACE INTO observations (scan_id, ip, port, transport, finding) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut st| st.execute(params![scan, ip, port, transport, text]))
        .and_then(|_| match previous {
            None => conn
                .prepare_cached(
                    "INSERT INTO services (ip, port, transport, first_seen, last_seen, first_scan, last_scan, \
                     gone_scan, identity) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?5, NULL, ?6)",
                )
                .and_then(|mut st| st.execute(params![ip, port, transport, seen, scan, identity])),
            // A NULL time keeps the stored one (a first or last seen that this observation does not move).
            Some(_) => conn
                .prepare_cached(
                    "UPDATE services SET first_seen = COALESCE(?4, first_seen), last_seen = COALESCE(?5, last_seen), \
                     first_scan = ?6, last_scan = ?7, gone_scan = ?8, identity = ?9 \
                     WHERE ip = ?1 AND port = ?2 AND transport = ?3",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        ip, port, transport, first_seen, last_seen, first_scan, last_scan, gone_scan, identity
                    ])
                }),
        })
        .map_err(|e| self.fail(e))?;
        self.batch.as_mut().expect("in a batch").0 += 1;
        self.flush_if_due()
    }

    fn checkpoint(&mut self, scan: ScanId, position: u64) -> Result<(), StoreError> {
        self.in_batch()?;
        self.conn
            .prepare_cached("UPDATE scans SET checkpoint = ?1 WHERE id = ?2")
            .and_then(|mut st| st.execute(params![position as i64, scan]))
            .map_err(|e| db_error(&self.path, e))?;
        // Committed at once, with the findings before it: the pipeline decides the cadence (about every
        // second, as the README states), not the batching of records.
        self.flush()
    }

    fn resume_point(&self, scan: ScanId) -> Result<u64, StoreError> {
        let record = self.scan(scan)?;
        if record.completed() {
            return Err(StoreError::Invalid(format!("scan {scan} completed: there is nothing to resume")));
        }
        let position: Option<i64> = self
            .conn
            .query_row("SELECT checkpoint FROM scans WHERE id = ?1", [scan], |r| r.get(0))
            .map_err(|e| self.fail(e))?;
        // No checkpoint yet: the scan is redone from its first position (its findings are replaced, not repeated).
        Ok(position.map(|p| p as u64).unwrap_or(record.start.coverage.shard.index - 1))
    }

    fn reopen_scan(&mut self, scan: ScanId, runner: &Runner) -> Result<(), StoreError> {
        self.flush()?;
        let runner = serde_json::to_string(runner).expect("runners serialise");
        self.conn
            .execute(
                "UPDATE scans SET runner = ?1, ended_at = NULL, end_reason = NULL WHERE id = ?2 AND completed = 0",
                params![runner, scan],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn record_not_covered(&mut self, scan: ScanId, t: &NotCoveredTarget) -> Result<(), StoreError> {
        self.in_batch()?;
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO not_covered (scan_id, ip, port, transport, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![scan, t.ip.to_string(), t.port, t.transport.as_str(), t.reason]))
            .map_err(|e| db_error(&self.path, e))?;
        self.flush_if_due()
    }

    fn not_covered(&self, scan: ScanId) -> Result<Vec<NotCoveredTarget>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT ip, port, transport, reason FROM not_covered WHERE scan_id = ?1 ORDER BY ip, port")
            .map_err(|e| self.fail(e))?;
        let rows = st
            .query_map([scan], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, u16>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
            })
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (ip, port, transport, reason) = row.map_err(|e| self.fail(e))?;
            let (Ok(ip), Ok(transport)) = (ip.parse(), serde_json::from_value(serde_json::Value::String(transport)))
            else {
                continue;
            };
            out.push(NotCoveredTarget { ip, port, transport, reason });
        }
        Ok(out)
    }

    fn finish_scan(&mut self, scan: ScanId, close: ScanClose, ended_at: &str) -> Result<(), StoreError> {
        self.in_batch()?;
        let fail = |e| db_error(&self.path, e);
        self.conn
            .execute(
                "UPDATE scans SET ended_at = ?1, probed = ?2, completed = ?3, end_reason = ?4, \
                 open = (SELECT COUNT(*) FROM observations WHERE scan_id = ?5) WHERE id = ?5",
                params![ended_at, close.probed as i64, close.completed, close.reason, scan],
            )
            .map_err(fail)?;
        if close.completed {
            let record = self.scan(scan)?;
            let index = record.start.coverage.index();
            let uncovered = self.uncovered(scan)?;
            let older = self.services_where("last_scan < ?1 AND (gone_scan IS NULL OR gone_scan > ?1)", scan)?;
            for (service, gone) in older {
                if service.probed_by(&index, &uncovered) {
                    self.mark_gone(&service, gone, scan)?;
                }
            }
        }
        // What this scan saw last may have been missed by a completed scan after it, which finished before
        // this scan recorded it: the first such miss is its gone mark.
        let later: Vec<ScanRecord> = self.scans()?.into_iter().filter(|s| s.id > scan && s.completed()).collect();
        if !later.is_empty() {
            let mut probes = Vec::new();
            for s in &later {
                probes.push((s.id, s.start.coverage.index(), self.uncovered(s.id)?));
            }
            for (service, gone) in self.services_where("last_scan = ?1", scan)? {
                if let Some((miss, ..)) =
                    probes.iter().find(|(_, index, uncovered)| service.probed_by(index, uncovered))
                {
                    if gone.is_none_or(|g| g > *miss) {
                        self.mark_gone(&service, gone, *miss)?;
                    }
                }
            }
        }
        self.flush()
    }

    fn scans(&self) -> Result<Vec<ScanRecord>, StoreError> {
        let mut st =
            self.conn.prepare(&format!("SELECT {SCAN_COLUMNS} FROM scans ORDER BY id")).map_err(|e| self.fail(e))?;
        let rows = st.query_map([], Self::scan_from_row).map_err(|e| self.fail(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.fail(e))
    }

    fn scan(&self, id: ScanId) -> Result<ScanRecord, StoreError> {
        self.conn
            .query_row(&format!("SELECT {SCAN_COLUMNS} FROM scans WHERE id = ?1"), [id], Self::scan_from_row)
            .optional()
            .map_err(|e| self.fail(e))?
            .ok_or(StoreError::UnknownScan(id))
    }

    fn findings(&self, scan: ScanId) -> Result<Vec<Finding>, StoreError> {
        self.scan(scan)?;
        let mut st = self
            .conn
            .prepare("SELECT finding FROM observations WHERE scan_id = ?1 ORDER BY ip, port, transport")
            .map_err(|e| self.fail(e))?;
        let rows = st.query_map([scan], |r| r.get::<_, String>(0)).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for text in rows {
            out.push(finding_from(&text.map_err(|e| self.fail(e))?)?);
        }
        Ok(out)
    }

    fn services_of(&self, ip: IpAddr) -> Result<Vec<ServiceRecord>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT s.port, s.transport, s.first_seen, s.last_seen, s.first_scan, s.last_scan, s.gone_scan, o.finding \
                 FROM services s JOIN observations o ON o.scan_id = s.last_scan AND o.ip = s.ip AND o.port = s.port \
                 AND o.transport = s.transport WHERE s.ip = ?1 ORDER BY s.port, s.transport",
            )
            .map_err(|e| self.fail(e))?;
        let rows = st
            .query_map([ip.to_string()], |r| {
                Ok((
                    r.get::<_, u16>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (port, transport, first_seen, last_seen, first_scan, last_scan, gone_scan, last) =
                row.map_err(|e| self.fail(e))?;
            out.push(ServiceRecord {
                ip,
                port,
                transport,
                first_seen,
                last_seen,
                first_scan,
                last_scan,
                gone_scan,
                last: finding_from(&last)?,
            });
        }
        Ok(out)
    }

    fn sightings(&self) -> Result<Vec<Sighting>, StoreError> {
        self.all_sightings()
    }

    fn observations_of(&self, ip: IpAddr) -> Result<Vec<(ScanId, Finding)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT scan_id, finding FROM observations WHERE ip = ?1 ORDER BY scan_id, port, transport")
            .map_err(|e| self.fail(e))?;
        let rows = st
            .query_map([ip.to_string()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (scan, text) = row.map_err(|e| self.fail(e))?;
            out.push((scan, finding_from(&text)?));
        }
        Ok(out)
    }
}

impl EventStore for SqliteStore {
    fn create_event(&mut self, e: &EventRecord) -> Result<(), StoreError> {
        self.flush()?;
        let plan = serde_json::to_string(&e.plan).expect("plans serialise");
        match self.conn.execute(
            "INSERT INTO events (name, plan, started_at, baseline_scan, closed_at) VALUES (?1, ?2, ?3, ?4, NULL)",
            params![e.name, plan, e.started_at, e.baseline_scan],
        ) {
            Ok(_) => Ok(()),
            Err(err) if err.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                Err(StoreError::Invalid(format!("event {:?} already exists (see `otscope event list`)", e.name)))
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    fn event(&self, name: &str) -> Result<EventRecord, StoreError> {
        self.conn
            .query_row(
                "SELECT name, plan, started_at, baseline_scan, closed_at FROM events WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| StoreError::Invalid(format!("no event named {name:?} (see `otscope event list`)")))
            .and_then(|(name, plan, started_at, baseline_scan, closed_at)| {
                let plan = serde_json::from_str(&plan)
                    .map_err(|e| StoreError::Invalid(format!("event {name:?}: stored plan does not parse: {e}")))?;
                Ok(EventRecord { name, plan, started_at, baseline_scan, closed_at })
            })
    }

    fn events(&self) -> Result<Vec<EventRecord>, StoreError> {
        let mut st = self.conn.prepare("SELECT name FROM events ORDER BY started_at").map_err(|e| self.fail(e))?;
        let names: Vec<String> = st
            .query_map([], |r| r.get(0))
            .map_err(|e| self.fail(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.fail(e))?;
        names.iter().map(|n| self.event(n)).collect()
    }

    fn close_event(&mut self, name: &str, at: &str) -> Result<(), StoreError> {
        self.flush()?;
        let event = self.event(name)?;
        if let Some(closed) = event.closed_at {
            return Err(StoreError::Invalid(format!("event {name:?} was already closed at {closed}")));
        }
        self.conn
            .execute("UPDATE events SET closed_at = ?1 WHERE name = ?2", params![at, name])
            .map_err(|e| self.fail(e))?;
        Ok(())
    }
}

impl SqliteStore {
    fn all_sightings(&self) -> Result<Vec<Sighting>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT ip, port, transport, first_seen, last_seen FROM services")
            .map_err(|e| self.fail(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u16>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (ip, port, transport, first_seen, last_seen) = row.map_err(|e| self.fail(e))?;
            if let Ok(ip) = ip.parse() {
                out.push(Sighting { ip, port, transport, first_seen, last_seen });
            }
        }
        Ok(out)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // What was recorded is kept even when the caller forgot to finish.
        let _ = self.flush();
    }
}
