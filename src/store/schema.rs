//! The history's schema, as the migrations that build it, in order: a database's `user_version` is
//! the number applied. A migration is never changed once released; a change of schema is a new one.

/// Schema migrations; the database's `user_version` is the number applied.
pub const MIGRATIONS: &[&str] = &[
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
    r#"
CREATE TABLE advisory_documents (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    tlp TEXT,
    title TEXT NOT NULL,
    publisher TEXT NOT NULL,
    current_release_date TEXT NOT NULL,
    source TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    revised_at TEXT,
    document BLOB NOT NULL
);
CREATE TABLE advisory_matches (
    ip TEXT NOT NULL,
    port INTEGER NOT NULL,
    transport TEXT NOT NULL,
    advisory TEXT NOT NULL,
    product_id TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (ip, port, transport, advisory, product_id)
);
CREATE INDEX advisory_matches_by_advisory ON advisory_matches(advisory);
CREATE TABLE remediation_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ip TEXT NOT NULL,
    port INTEGER NOT NULL,
    transport TEXT NOT NULL,
    advisory TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deadline TEXT,
    notice TEXT,
    claim_scan INTEGER,
    except_until TEXT,
    UNIQUE (ip, port, transport, advisory)
);
CREATE TABLE remediation_transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES remediation_items(id),
    at TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX remediation_transitions_by_item ON remediation_transitions(item_id, seq);
CREATE TABLE notices (
    number TEXT PRIMARY KEY,
    year INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    district TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    content TEXT NOT NULL,
    UNIQUE (year, sequence)
);
CREATE TABLE notice_items (
    number TEXT NOT NULL REFERENCES notices(number),
    item_id INTEGER NOT NULL REFERENCES remediation_items(id),
    PRIMARY KEY (number, item_id)
);
CREATE TABLE advisory_sync (
    provider TEXT NOT NULL,
    url TEXT NOT NULL,
    updated TEXT NOT NULL,
    sha256 TEXT,
    refused TEXT,
    PRIMARY KEY (provider, url)
);
"#,
    // API tokens, console sessions, the audit log; the finding fields the API filters on, indexed.
    r#"
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    secret_sha256 TEXT NOT NULL,
    role TEXT NOT NULL,
    district TEXT,
    enterprise_id TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
CREATE TABLE sessions (
    id_sha256 TEXT PRIMARY KEY,
    token_id TEXT NOT NULL REFERENCES tokens(id),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    token_name TEXT,
    source TEXT NOT NULL,
    method TEXT NOT NULL,
    target TEXT NOT NULL,
    status INTEGER NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log(at);
ALTER TABLE observations ADD COLUMN district TEXT GENERATED ALWAYS AS (json_extract(finding, '$.district')) VIRTUAL;
ALTER TABLE observations ADD COLUMN enterprise_id TEXT GENERATED ALWAYS AS (json_extract(finding, '$.enterprise_id')) VIRTUAL;
ALTER TABLE observations ADD COLUMN protocol TEXT GENERATED ALWAYS AS (json_extract(finding, '$.protocol')) VIRTUAL;
ALTER TABLE observations ADD COLUMN severity TEXT GENERATED ALWAYS AS (json_extract(finding, '$.severity')) VIRTUAL;
ALTER TABLE observations ADD COLUMN change TEXT GENERATED ALWAYS AS (json_extract(finding, '$.change')) VIRTUAL;
ALTER TABLE observations ADD COLUMN observed_at TEXT GENERATED ALWAYS AS (json_extract(finding, '$.observed_at')) VIRTUAL;
CREATE INDEX observations_by_scan_district ON observations(scan_id, district, ip, port, transport);
CREATE INDEX observations_by_scan_enterprise ON observations(scan_id, enterprise_id, ip, port, transport);
CREATE INDEX observations_by_district ON observations(district, ip, port, transport);
CREATE INDEX observations_by_enterprise ON observations(enterprise_id, ip, port, transport);
"#,
    // The ledger rows of the enterprises scans covered (findings carry no sector): a row from the scan
    // that first recorded it so, and again only when it changed.
    r#"
CREATE TABLE owners (
    enterprise_id TEXT NOT NULL,
    since_scan INTEGER NOT NULL REFERENCES scans(id),
    enterprise TEXT NOT NULL,
    district TEXT NOT NULL,
    sector TEXT NOT NULL,
    level TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, since_scan)
);
"#,
];
