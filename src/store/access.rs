//! The server's side of the store: API tokens (only a hash of each secret), console sessions, the
//! audit log of every authenticated request, and the finding queries the API pages through (by
//! owner, protocol, severity, change and time, each served by an index over the stored finding).

use super::sqlite::{db_error, finding_from};
use super::{ScanId, SqliteStore, StoreError};
use crate::findings::Finding;
use rusqlite::{params, OptionalExtension, ToSql};
use serde::Serialize;

/// A token as stored: everything but its secret, of which only the SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// The public part of the token, by which it is looked up.
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub secret_sha256: String,
    /// `center`, `district` or `enterprise`.
    pub role: String,
    pub district: Option<String>,
    pub enterprise_id: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// One line of the audit log: who, what, when, and the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub at: String,
    /// The token's name; none when the request could not be authenticated.
    pub token_name: Option<String>,
    pub source: String,
    pub method: String,
    pub target: String,
    pub status: u16,
}

/// Current services of one owner with one severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerCount {
    pub district: String,
    pub enterprise_id: String,
    pub enterprise: String,
    pub severity: String,
    pub count: u64,
}

/// A console session: the token it was opened with and its form token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_id: String,
    pub csrf: String,
    pub expires_at: String,
}

/// Which findings to list, one page at a time, in (ip, port, transport) order.
#[derive(Debug, Clone, Default)]
pub struct FindingQuery {
    /// A scan's observations; none for the current services (each one not gone, with its last finding).
    pub scan: Option<ScanId>,
    pub district: Option<String>,
    pub enterprise_id: Option<String>,
    pub protocol: Option<String>,
    pub severity: Option<String>,
    pub change: Option<String>,
    /// Only findings observed at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Only services after this (ip, port, transport), the last of the previous page.
    pub after: Option<(String, u16, String)>,
    pub limit: usize,
}

fn row_to_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        secret_sha256: r.get(2)?,
        role: r.get(3)?,
        district: r.get(4)?,
        enterprise_id: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        revoked_at: r.get(8)?,
    })
}

const TOKEN_COLUMNS: &str =
    "id, name, secret_sha256, role, district, enterprise_id, created_at, expires_at, revoked_at";

impl SqliteStore {
    fn access_error(&self, e: rusqlite::Error) -> StoreError {
        db_error(self.path(), e)
    }

    /// Stores a new token; its name must be unused.
    pub fn create_token(&mut self, token: &TokenRecord) -> Result<(), StoreError> {
        self.flush()?;
        let result = self.connection().execute(
            &format!("INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)"),
            params![
                token.id,
                token.name,
                token.secret_sha256,
                token.role,
                token.district,
                token.enterprise_id,
                token.created_at,
                token.expires_at
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                Err(StoreError::Invalid(format!(
                    "a token named {:?} already exists (see `otscope token list`)",
                    token.name
                )))
            }
            Err(e) => Err(self.access_error(e)),
        }
    }

    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut st = self
            .connection()
            .prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, name"))
            .map_err(|e| self.access_error(e))?;
        let rows = st.query_map([], row_to_token).map_err(|e| self.access_error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.access_error(e))
    }

    pub fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.connection()
            .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"))
            .and_then(|mut st| st.query_row([id], row_to_token).optional())
            .map_err(|e| self.access_error(e))
    }

    /// Revokes the token named `name`, and ends its console sessions.
    pub fn revoke_token(&mut self, name: &str, at: &str) -> Result<(), StoreError> {
        self.flush()?;
        let conn = self.connection();
        let token: Option<(String, Option<String>)> = conn
            .query_row("SELECT id, revoked_at FROM tokens WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| self.access_error(e))?;
        match token {
            None => Err(StoreError::Invalid(format!("no token named {name:?} (see `otscope token list`)"))),
            Some((_, Some(when))) => Err(StoreError::Invalid(format!("token {name:?} was already revoked at {when}"))),
            Some((id, None)) => conn
                .execute_batch("BEGIN IMMEDIATE")
                .and_then(|_| conn.execute("UPDATE tokens SET revoked_at = ?1 WHERE id = ?2", params![at, id]))
                .and_then(|_| conn.execute("DELETE FROM sessions WHERE token_id = ?1", [&id]))
                .and_then(|_| conn.execute_batch("COMMIT"))
                .map(|_| ())
                .map_err(|e| {
                    let _ = conn.execute_batch("ROLLBACK");
                    self.access_error(e)
                }),
        }
    }

    pub fn create_session(&mut self, id_sha256: &str, session: &SessionRecord, at: &str) -> Result<(), StoreError> {
        self.flush()?;
        self.connection()
            .execute(
                "INSERT INTO sessions (id_sha256, token_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id_sha256, session.token_id, session.csrf, at, session.expires_at],
            )
            .map(|_| ())
            .map_err(|e| self.access_error(e))
    }

    pub fn session(&self, id_sha256: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.connection()
            .prepare_cached("SELECT token_id, csrf, expires_at FROM sessions WHERE id_sha256 = ?1")
            .and_then(|mut st| {
                st.query_row([id_sha256], |r| {
                    Ok(SessionRecord { token_id: r.get(0)?, csrf: r.get(1)?, expires_at: r.get(2)? })
                })
                .optional()
            })
            .map_err(|e| self.access_error(e))
    }

    /// Ends a session, and every session that expired before `now`.
    pub fn end_session(&mut self, id_sha256: &str, now: &str) -> Result<(), StoreError> {
        self.flush()?;
        self.connection()
            .execute("DELETE FROM sessions WHERE id_sha256 = ?1 OR expires_at <= ?2", params![id_sha256, now])
            .map(|_| ())
            .map_err(|e| self.access_error(e))
    }

    /// Appends entries to the audit log, in one transaction.
    pub fn append_audit(&mut self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        self.flush()?;
        let conn = self.connection();
        let write = || -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let mut st = conn.prepare_cached(
                "INSERT INTO audit_log (at, token_name, source, method, target, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for e in entries {
                st.execute(params![e.at, e.token_name, e.source, e.method, e.target, e.status])?;
            }
            conn.execute_batch("COMMIT")
        };
        write().map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            self.access_error(e)
        })
    }

    /// The audit log, oldest first: entries at or after `since`, of the token named `token`.
    pub fn audit(&self, since: Option<&str>, token: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        let mut st = self
            .connection()
            .prepare(
                "SELECT at, token_name, source, method, target, status FROM audit_log \
                 WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR token_name = ?2) ORDER BY id",
            )
            .map_err(|e| self.access_error(e))?;
        let rows = st
            .query_map(params![since, token], |r| {
                Ok(AuditEntry {
                    at: r.get(0)?,
                    token_name: r.get(1)?,
                    source: r.get(2)?,
                    method: r.get(3)?,
                    target: r.get(4)?,
                    status: r.get(5)?,
                })
            })
            .map_err(|e| self.access_error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.access_error(e))
    }

    /// One page of findings matching `query`, in (ip, port, transport) order.
    pub fn finding_page(&self, query: &FindingQuery) -> Result<Vec<Finding>, StoreError> {
        let mut sql = String::from("SELECT o.finding FROM ");
        let mut args: Vec<&dyn ToSql> = Vec::new();
        match &query.scan {
            Some(scan) => {
                sql.push_str("observations o WHERE o.scan_id = ?");
                args.push(scan);
            }
            None => sql.push_str(
                "services s JOIN observations o ON o.scan_id = s.last_scan AND o.ip = s.ip AND o.port = s.port \
                 AND o.transport = s.transport WHERE s.gone_scan IS NULL",
            ),
        }
        let filters: [(&str, &Option<String>); 5] = [
            ("o.district = ?", &query.district),
            ("o.enterprise_id = ?", &query.enterprise_id),
            ("o.protocol = ?", &query.protocol),
            ("o.severity = ?", &query.severity),
            ("o.change = ?", &query.change),
        ];
        for (clause, value) in filters {
            if let Some(value) = value {
                sql.push_str(" AND ");
                sql.push_str(clause);
                args.push(value);
            }
        }
        if let Some(since) = &query.since {
            sql.push_str(" AND o.observed_at >= ?");
            args.push(since);
        }
        // The order of the index that serves the query: a scan's or an owner's observations, else
        // the services themselves (one row each, in key order).
        let by =
            if query.scan.is_some() || query.district.is_some() || query.enterprise_id.is_some() { "o" } else { "s" };
        if let Some((ip, port, transport)) = &query.after {
            sql.push_str(&format!(" AND ({by}.ip, {by}.port, {by}.transport) > (?, ?, ?)"));
            args.extend([ip as &dyn ToSql, port, transport]);
        }
        sql.push_str(&format!(" ORDER BY {by}.ip, {by}.port, {by}.transport LIMIT ?"));
        let limit = query.limit as i64;
        args.push(&limit);
        let mut st = self.connection().prepare_cached(&sql).map_err(|e| self.access_error(e))?;
        let rows = st.query_map(args.as_slice(), |r| r.get::<_, String>(0)).map_err(|e| self.access_error(e))?;
        let mut out = Vec::new();
        for text in rows {
            let text = text.map_err(|e| self.access_error(e))?;
            out.push(finding_from(&text)?);
        }
        Ok(out)
    }

    /// How many services scan `scan` observed of `district` and `enterprise_id` (each when given).
    pub fn observation_count(
        &self,
        scan: ScanId,
        district: Option<&str>,
        enterprise_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.connection()
            .prepare_cached(
                "SELECT count(*) FROM observations WHERE scan_id = ?1 AND (?2 IS NULL OR district = ?2) \
                 AND (?3 IS NULL OR enterprise_id = ?3)",
            )
            .and_then(|mut st| st.query_row(params![scan, district, enterprise_id], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
            .map_err(|e| self.access_error(e))
    }

    /// The current services (not gone) counted by owner and severity, of `district` and
    /// `enterprise_id` when given: (district, enterprise_id, enterprise, severity, count).
    pub fn current_summary(
        &self,
        district: Option<&str>,
        enterprise_id: Option<&str>,
    ) -> Result<Vec<OwnerCount>, StoreError> {
        let mut st = self
            .connection()
            .prepare_cached(
                "SELECT o.district, o.enterprise_id, json_extract(o.finding, '$.enterprise'), o.severity, count(*) \
                 FROM services s JOIN observations o ON o.scan_id = s.last_scan AND o.ip = s.ip AND o.port = s.port \
                 AND o.transport = s.transport WHERE s.gone_scan IS NULL AND (?1 IS NULL OR o.district = ?1) \
                 AND (?2 IS NULL OR o.enterprise_id = ?2) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2",
            )
            .map_err(|e| self.access_error(e))?;
        let rows = st
            .query_map(params![district, enterprise_id], |r| {
                Ok(OwnerCount {
                    district: r.get(0)?,
                    enterprise_id: r.get(1)?,
                    enterprise: r.get(2)?,
                    severity: r.get(3)?,
                    count: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(|e| self.access_error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.access_error(e))
    }

    /// Whether any scan observed a service of `enterprise_id` in `district`.
    pub fn ever_observed(&self, district: &str, enterprise_id: &str) -> Result<bool, StoreError> {
        self.connection()
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM observations WHERE enterprise_id = ?1 AND district = ?2)")
            .and_then(|mut st| st.query_row(params![enterprise_id, district], |r| r.get::<_, bool>(0)))
            .map_err(|e| self.access_error(e))
    }
}
