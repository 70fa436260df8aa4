//! The embedded store: SQLite (bundled) in WAL mode, with versioned migrations. Findings are written
//! in transactions of a bounded size, so a crash loses at most the open batch and never corrupts the file.

use super::{
    EventRecord, EventStore, NotCoveredTarget, Runner, ScanEnd, ScanId, ScanRecord, ScanStart, ServiceRecord, Sighting,
    Store, StoreError,
};
use crate::findings::{classify, identity_key, Change, Finding, IdentityKey};
use rusqlite::{params, Connection, OptionalExtension};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Schema migrations; the database's `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    ledger_path TEXT NOT NULL,
    ledger_sha256 TEXT NOT NULL,
    library_version TEXT NOT NULL,
    selection TEXT NOT NULL,
    parameters TEXT NOT NULL,
    coverage TEXT NOT NULL,
    targets_total INTEGER NOT NULL,
    kind TEXT NOT NULL,
    probed INTEGER,
    open INTEGER,
    completed INTEGER NOT NULL DEFAULT 0,
    checkpoint INTEGER
);
CREATE TABLE services (
    ip TEXT NOT NULL,
    port INTEGER NOT NULL,
    transport TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    first_scan INTEGER NOT NULL REFERENCES scans(id),
    last_scan INTEGER NOT NULL REFERENCES scans(id),
    gone_scan INTEGER REFERENCES scans(id),
    identity TEXT NOT NULL,
    PRIMARY KEY (ip, port, transport)
);
CREATE TABLE observations (
    scan_id INTEGER NOT NULL REFERENCES scans(id),
    ip TEXT NOT NULL,
    port INTEGER NOT NULL,
    transport TEXT NOT NULL,
    finding TEXT NOT NULL,
    PRIMARY KEY (scan_id, ip, port, transport)
);
CREATE INDEX observations_by_ip ON observations(ip, scan_id);
CREATE TABLE gone (
    scan_id INTEGER NOT NULL REFERENCES scans(id),
    ip TEXT NOT NULL,
    port INTEGER NOT NULL,
    transport TEXT NOT NULL,
    PRIMARY KEY (scan_id, ip, port, transport)
);
CREATE TABLE events (
    name TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    started_at TEXT NOT NULL,
    baseline_scan INTEGER REFERENCES scans(id),
    closed_at TEXT
);
"#,
    // Why a scan stopped, and the process that runs it (so a dead scan reads as interrupted).
    r#"
ALTER TABLE scans ADD COLUMN end_reason TEXT;
ALTER TABLE scans ADD COLUMN runner TEXT;
"#,
    // Targets a scan could not probe (local failures): outside its coverage.
    r#"
CREATE TABLE not_covered (
    scan_id INTEGER NOT NULL REFERENCES scans(id),
    ip TEXT NOT NULL,
    port INTEGER NOT NULL,
    transport TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (scan_id, ip, port, transport)
);
"#,
    // Advisories, their match results, the remediation items and their transitions, notices.
    super::advisories::MIGRATION,
];

/// Findings per write transaction, and the longest a transaction stays open.
const BATCH_RECORDS: usize = 1000;
const BATCH_AGE: Duration = Duration::from_secs(2);

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    batch: Option<(usize, Instant)>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let fail = |e: rusqlite::Error| db_error(path, e);
        let conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(fail)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(fail)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::Invalid(format!(
                "{}: the database has schema version {version}, newer than this otscope knows ({known}): use a newer otscope",
                path.display()
            )));
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(fail)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(fail)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let step = format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1);
            conn.execute_batch(&step).map_err(fail)?;
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
        Some(rusqlite::ErrorCode::DiskFull) => {
            " (the disk is full: free space and run again; committed scans are intact)"
        }
        Some(rusqlite::ErrorCode::ReadOnly) => " (the database or its folder is read-only)",
        Some(rusqlite::ErrorCode::CannotOpen) => " (cannot open: check the path and its folder's permissions)",
        Some(rusqlite::ErrorCode::NotADatabase) => " (this file is not an otscope database)",
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
            " (another otscope is writing this database)"
        }
        _ => "",
    };
    StoreError::Database { path: path.display().to_string(), message: format!("{e}{hint}") }
}

fn finding_from(text: &str) -> Result<Finding, StoreError> {
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

    fn record(&mut self, scan: ScanId, finding: &mut Finding) -> Result<(), StoreError> {
        self.in_batch()?;
        let ip = finding.ip.to_string();
        let transport = finding.transport.as_str();
        let key = identity_key(finding);
        let previous: Option<(String, Option<i64>, i64)> = self
            .conn
            .prepare_cached(
                "SELECT identity, gone_scan, last_scan FROM services WHERE ip = ?1 AND port = ?2 AND transport = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![ip, finding.port, transport], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()
            })
            .map_err(|e| self.fail(e))?;
        // A resumed scan may probe a target again that it had already recorded: the status stays the one
        // it got against the scans before, so a resume never turns "new" into "persisting".
        let earlier: Option<Finding> = match &previous {
            Some((_, _, last)) if *last == scan => self
                .conn
                .prepare_cached(
                    "SELECT finding FROM observations WHERE scan_id = ?1 AND ip = ?2 AND port = ?3 AND transport = ?4",
                )
                .and_then(|mut st| st.query_row(params![scan, ip, finding.port, transport], |r| r.get::<_, String>(0)))
                .optional()
                .map_err(|e| self.fail(e))?
                .and_then(|t| serde_json::from_str(&t).ok()),
            _ => None,
        };
        let (change, changed) = match (previous, earlier) {
            (_, Some(f)) => (f.change.unwrap_or(Change::New), f.changed),
            (previous, None) => {
                // A service marked gone is known again only as new.
                let before = previous
                    .filter(|(_, gone, _)| gone.is_none())
                    .map(|(identity, _, _)| serde_json::from_str::<IdentityKey>(&identity).unwrap_or_default());
                classify(before.as_ref(), Some(&key), true).expect("the service is seen now")
            }
        };
        finding.change = Some(change);
        finding.changed = changed;
        let text = serde_json::to_string(finding).expect("findings serialise");
        let identity = serde_json::to_string(&key).expect("identity serialises");
        let conn = &self.conn;
        let result = conn
            .prepare_cached(
                "INSERT OR REPLACE INTO observations (scan_id, ip, port, transport, finding) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![scan, ip, finding.port, transport, text]))
            .and_then(|_| {
                conn.prepare_cached(
                    "INSERT INTO services (ip, port, transport, first_seen, last_seen, first_scan, last_scan, gone_scan, \
                     identity) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?5, NULL, ?6) \
                     ON CONFLICT (ip, port, transport) DO UPDATE SET last_seen = excluded.last_seen, \
                     last_scan = excluded.last_scan, gone_scan = NULL, identity = excluded.identity, \
                     first_seen = CASE WHEN services.gone_scan IS NULL THEN services.first_seen ELSE excluded.first_seen END, \
                     first_scan = CASE WHEN services.gone_scan IS NULL THEN services.first_scan ELSE excluded.first_scan END",
                )
                .and_then(|mut st| st.execute(params![ip, finding.port, transport, finding.observed_at, scan, identity]))
            });
        result.map_err(|e| self.fail(e))?;
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

    fn finish_scan(&mut self, scan: ScanId, end: ScanEnd, ended_at: &str) -> Result<(), StoreError> {
        self.in_batch()?;
        let record = self.scan(scan)?;
        if end.completed {
            let index = record.start.coverage.index();
            // What the scan could not probe is not covered, whatever its coverage says.
            let uncovered: std::collections::HashSet<_> =
                self.not_covered(scan)?.into_iter().map(|t| (t.ip, t.port, t.transport)).collect();
            let mut missing = Vec::new();
            {
                let mut st = self
                    .conn
                    .prepare("SELECT ip, port, transport FROM services WHERE gone_scan IS NULL AND last_scan <> ?1")
                    .map_err(|e| db_error(&self.path, e))?;
                let rows = st
                    .query_map([scan], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u16>(1)?, r.get::<_, String>(2)?)))
                    .map_err(|e| db_error(&self.path, e))?;
                for row in rows {
                    let (ip, port, transport) = row.map_err(|e| db_error(&self.path, e))?;
                    let (Ok(addr), Ok(t)) =
                        (ip.parse::<IpAddr>(), serde_json::from_value(serde_json::Value::String(transport.clone())))
                    else {
                        continue;
                    };
                    if index.contains(addr, port, t) && !uncovered.contains(&(addr, port, t)) {
                        missing.push((ip, port, transport));
                    }
                }
            }
            for (ip, port, transport) in missing {
                self.conn
                    .execute(
                        "UPDATE services SET gone_scan = ?1 WHERE ip = ?2 AND port = ?3 AND transport = ?4",
                        params![scan, ip, port, transport],
                    )
                    .and_then(|_| {
                        self.conn.execute(
                            "INSERT OR IGNORE INTO gone (scan_id, ip, port, transport) VALUES (?1, ?2, ?3, ?4)",
                            params![scan, ip, port, transport],
                        )
                    })
                    .map_err(|e| db_error(&self.path, e))?;
            }
        }
        self.conn
            .execute(
                "UPDATE scans SET ended_at = ?1, probed = ?2, open = ?3, completed = ?4, end_reason = ?5 WHERE id = ?6",
                params![ended_at, end.probed as i64, end.open as i64, end.completed, end.reason, scan],
            )
            .map_err(|e| db_error(&self.path, e))?;
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
            Err(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
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
