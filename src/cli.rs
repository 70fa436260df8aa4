//! Every command and flag, defined once; the doc comments are the `--help`.

use crate::discovery::syn::SynConfig;
use crate::engine::{EngineConfig, ProgressStyle};
use crate::error::BadInput;
use crate::ledger::Level;
use crate::net::Limits;
use crate::pipeline::{DiscoveryMode, RunOptions, ScanOptions, ScopeOptions, AUTO_CONCURRENCY};
use crate::probes::ProbeSettings;
use crate::targets::Shard;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// otscope: find the industrial control services that registered enterprises expose to the
/// internet, and say what each device is, without ever leaving the registered scope.
///
/// Typical use:
///   otscope ledger check ledger.csv            # validate the ledger (台账) first
///   otscope scan --targets ledger.csv --dry-run # what would be probed, and how long it takes
///   otscope scan --targets ledger.csv --out findings.jsonl --csv findings.csv
#[derive(Debug, Parser)]
#[command(name = "otscope", version, about, verbatim_doc_comment, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan the ledger's registered addresses for exposed services and identify them.
    Scan(Box<ScanArgs>),
    /// Check a selection now and print what answers, grouped by enterprise, with its change since the last scan.
    ///
    /// Examples:
    ///   otscope check --targets ledger.csv --enterprise E-17
    ///   otscope check --targets ledger.csv --ip 127.100.0.0/29 --protocol modbus,s7comm
    ///   otscope check --targets ledger.csv --vendor siemens   # every service last identified as Siemens
    ///
    /// Recorded in the history as a scan of kind "check". Exit status: 0 nothing new, changed or gone;
    /// 3 something new, changed or gone; 2 bad input (nothing was probed).
    #[command(verbatim_doc_comment)]
    Check(Box<CheckArgs>),
    /// Work with the asset ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Work with the fingerprint rule library.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// List the scans recorded in the history.
    History {
        /// First bring the history's schema up to this otscope's (after an upgrade of otscope; the
        /// only change this command may make). Read-only commands never change a history.
        #[arg(long)]
        upgrade: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Show what is known of one address over time: its services, first and last seen, changes.
    Show {
        /// The address.
        ip: std::net::IpAddr,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Major-event mode: baseline the important objects, check them against it, report every 24 hours.
    #[command(subcommand)]
    Event(Box<EventCommand>),
    /// Write the monitoring team's report: one self-contained HTML file (charts, trend, changes, every finding).
    Report {
        /// The scan to report on (default: the latest completed scan).
        #[arg(long, value_name = "SCAN")]
        scan: Option<i64>,
        /// The HTML file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Labels in English or Chinese.
        #[arg(long, value_enum, default_value = "en")]
        lang: crate::export::Lang,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Export a scan's findings: per district for the districts, or JSONL for the monitoring platform.
    Export(ExportArgs),
    /// Exchange data with the reporting center: push STIX 2.1 bundles into a TAXII 2.1 collection.
    #[command(subcommand)]
    Exchange(ExchangeCommand),
    /// Run the scheduled profiles of a configuration file, unattended (SIGHUP reloads, SIGTERM stops).
    Daemon {
        /// The configuration file (TOML, see otscope.example.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show each profile of a configuration file with its last run and its next one.
    Status {
        /// The configuration file (TOML, see otscope.example.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The scan history database (default: the configuration's `db`).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// ICS advisories (CSAF 2.0): import them, list and show them, match them against the services.
    #[command(subcommand)]
    Advisories(AdvisoriesCommand),
    /// Warning notices and the remediation loop: issue, claim, except, verify, status.
    #[command(subcommand)]
    Notices(Box<NoticesCommand>),
    /// What changed between two scans: each service new, changed, persisting or gone.
    ///
    /// Default: the last two completed scans of the same objects. Gone is claimed only for services the
    /// later scan covered and only when it completed. Exit status: 0 nothing new, changed or gone; 3 otherwise.
    Diff {
        /// The earlier scan.
        #[arg(long, value_name = "SCAN")]
        from: Option<i64>,
        /// The later scan.
        #[arg(long, value_name = "SCAN")]
        to: Option<i64>,
        /// Also list persisting services.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Serve the JSON API (/api/v1) and the web console (/console/) over the history, to tokens.
    ///
    /// Example: otscope serve --db otscope.db --listen 127.0.0.1:8080
    ///
    /// SIGTERM or SIGINT stops it cleanly: requests in flight finish, the audit log is written.
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Make, list and revoke the API and console tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show the audit log of the server: every authenticated request (who, what, when, result).
    Audit {
        /// Only entries at or after this time (RFC 3339, or a date: 2026-05-01).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only the requests of the token with this name.
        #[arg(long, value_name = "NAME")]
        token: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The fingerprint library folder: center tokens may then issue notices (POST /api/v1/notices), as
    /// `notices issue --fingerprints` does. Without it, the server issues none.
    #[arg(long, value_name = "DIR")]
    pub fingerprints: Option<PathBuf>,
    /// The configuration file whose [notices] table sets the notices' deadlines and numbers (default:
    /// otscope.toml if present), as for `notices issue`.
    #[arg(long, value_name = "FILE", requires = "fingerprints")]
    pub config: Option<PathBuf>,
    /// The folder the issued notices are written to (created if missing), as `notices issue --out`.
    #[arg(long, value_name = "DIR", default_value = "notices")]
    pub notices_out: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it once (only its hash is stored).
    ///
    /// Examples:
    ///   otscope token create --role center --name ops
    ///   otscope token create --role district --district 浦东新区 --name pudong
    ///   otscope token create --role enterprise --enterprise E-17 --name e17 --expires 2027-01-01
    #[command(verbatim_doc_comment)]
    Create {
        /// center sees everything; district its district's enterprises; enterprise its own services.
        #[arg(long, value_parser = ["center", "district", "enterprise"])]
        role: String,
        /// The district of a district token (as the ledger names it).
        #[arg(long, value_name = "D")]
        district: Option<String>,
        /// The enterprise id of an enterprise token (as the ledger gives it).
        #[arg(long, value_name = "ID")]
        enterprise: Option<String>,
        /// A name for the token, unique; the audit log shows it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The token stops working at the start of this day (UTC), or at this RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the tokens: name, role, reach, created, expires, revoked.
    List(DbArgs),
    /// Revoke a token: it and its console sessions stop working at once.
    Revoke {
        /// The token's name.
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdvisoriesCommand {
    /// Read CSAF 2.0 documents (files, or folders of *.json), check each, record it, and match the
    /// history's services against every advisory again.
    ///
    /// A broken document is named with each problem as `file: /json/pointer: what is wrong` and skipped;
    /// the others are imported. Importing the same document again changes nothing; a changed one (by
    /// content, whatever its revision history says) replaces the one recorded, and the items it no longer
    /// covers are closed ("advisory revised").
    ///
    /// Exit status: 0 every document imported; 2 some were refused (the others are imported).
    #[command(verbatim_doc_comment)]
    Import {
        /// Files or folders of CSAF 2.0 JSON documents.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        matching: MatchingArgs,
    },
    /// Fetch a CSAF 2.0 provider's advisories over HTTPS and import them, as `import` does.
    ///
    /// URL is the provider's provider-metadata.json. Its directory listings (changes.csv, index.txt)
    /// and ROLIE feeds are read; each document's .sha256/.sha512 file and OpenPGP signature (against
    /// the provider's public_openpgp_keys) are checked where the provider publishes them, and a
    /// document that fails a check is refused by name. Only documents whose date changed since the
    /// last sync of this provider (kept in the history) are fetched.
    ///
    /// Exit status: 0 every document fetched and imported; 2 some were refused (the others are imported).
    #[command(verbatim_doc_comment)]
    Sync {
        /// The provider's provider-metadata.json, https://...
        #[arg(value_name = "URL")]
        url: String,
        /// A PEM file of the CA certificate(s) to trust instead of the Mozilla roots (an internal CA).
        #[arg(long, value_name = "PEM")]
        ca: Option<PathBuf>,
        #[command(flatten)]
        matching: MatchingArgs,
    },
    /// List the recorded advisories: id, version, TLP, release date, title.
    List(DbArgs),
    /// Show one recorded advisory: what it says, and its match results.
    Show {
        /// The advisory's tracking id, e.g. ICSA-23-222-07.
        id: String,
        /// Print the document as it was imported (JSON).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Match services against the recorded advisories: one line per (service, advisory, product).
    ///
    /// Exit status: 0 nothing affected; 3 something is affected.
    Match {
        /// The scan whose findings are matched (default: the last finding of every service still open).
        #[arg(long, value_name = "SCAN")]
        scan: Option<i64>,
        /// table, or jsonl (ip, port, transport, enterprise_id, enterprise, district, advisory, cves, cvss,
        /// product, version, status, reason, remediation).
        #[arg(long, value_enum, default_value = "table")]
        format: MatchFormat,
        #[command(flatten)]
        matching: MatchingArgs,
    },
}

/// The history and the vendor table matching reads.
#[derive(Debug, Args, Clone)]
pub struct MatchingArgs {
    /// The fingerprint library folder (its vendor_aliases.toml canonicalises vendor names).
    #[arg(long, value_name = "DIR", default_value = "fingerprints")]
    pub fingerprints: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MatchFormat {
    Table,
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum NoticesCommand {
    /// Issue numbered warning notices for every affected (or undetermined) item not yet notified: one per
    /// enterprise, one per district listing its enterprises; record them and write them.
    ///
    /// Writes NUMBER.md and NUMBER.html for each notice and notices-DISTRICT.csv per district into --out.
    /// Deadlines come from the [notices] table of the configuration (days by level and severity).
    /// Issuing again adds nothing until new items appear. An advisory's TLP bounds who sees it: TLP:AMBER
    /// (and unlabelled) only in the enterprise's own notice, TLP:RED in none (it stays in the center).
    #[command(verbatim_doc_comment)]
    Issue {
        /// The folder the notices are written to (created if missing).
        #[arg(long, value_name = "DIR", default_value = "notices")]
        out: PathBuf,
        /// Labels and CSV headers in English or Chinese.
        #[arg(long, value_enum, default_value = "en")]
        lang: crate::export::Lang,
        /// The configuration file whose [notices] table sets deadlines (default: otscope.toml if present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Who issues (recorded with each item's move to notified).
        #[arg(long, value_name = "NAME", default_value = "otscope")]
        by: String,
        #[command(flatten)]
        matching: MatchingArgs,
    },
    /// Record that an enterprise says an item (or every item of a notice) is fixed: it becomes claimed
    /// until a re-check (`notices verify`) decides.
    Claim {
        /// An item id, or a notice number (its items).
        id: String,
        /// Who says it is fixed.
        #[arg(long, value_name = "NAME")]
        by: String,
        /// What they said was done.
        #[arg(long, value_name = "TEXT", default_value = "")]
        note: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Record an accepted risk or a false positive: the item leaves the notices until the date passes.
    Except {
        /// An item id, or a notice number (its items).
        id: String,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// The last day of the exception (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        until: String,
        /// Who decided.
        #[arg(long, value_name = "NAME", default_value = "center")]
        by: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Re-check exactly the services of the claimed items, with the scope and politeness of `check`, and
    /// verify or reopen each one the re-check covered (a service it did not reach keeps its state).
    ///
    /// --enterprise and --district choose the claimed items (and narrow the scope).
    /// Exit status: 0 done; 3 some item was reopened; 130 interrupted.
    #[command(verbatim_doc_comment)]
    Verify {
        #[command(flatten)]
        scope: Box<ScopeArgs>,
        #[command(flatten)]
        engine: Box<EngineArgs>,
        /// Who re-checks (recorded with each decision).
        #[arg(long, value_name = "NAME", default_value = "otscope")]
        by: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Every item with its state, age, deadline and notice; overdue ones flagged.
    Status {
        /// table, or jsonl (with every transition).
        #[arg(long, value_enum, default_value = "table")]
        format: MatchFormat,
        /// Also list verified and closed items.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Take a baseline scan of the selected objects and open the event.
    ///
    /// Example: otscope event start expo-2026 --targets ledger.csv --level important
    Start {
        /// The event's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Scan the event's selection again and report every drift from the baseline.
    ///
    /// Exit status: 0 no drift, 3 drift found (new, changed or gone services).
    Check {
        name: String,
        /// Also write the drift findings (with their status against the baseline) as JSON lines.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Write the report for the last 24 hours (coverage, drift, or the zero report).
    ///
    /// Exit status: 0 zero report, 3 drift reported, 1 no complete check ran in the window.
    Report {
        name: String,
        /// The report file (Markdown text).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "en")]
        lang: crate::export::Lang,
        /// The window the report covers, ending now.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
        window: Duration,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Close the event: no more checks.
    Close {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the events.
    List(DbArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The scan to export (default: the latest completed scan).
    #[arg(long, value_name = "SCAN")]
    pub scan: Option<i64>,
    /// One file per district (with a summary file); without it, one file with every finding.
    #[arg(long, value_enum, value_name = "GROUPING")]
    pub by: Option<Grouping>,
    /// csv (UTF-8 with BOM, opens in Excel), xlsx (Excel workbooks: a sheet per district and a summary),
    /// jsonl (the scan output's schema, for the monitoring platform) or stix (STIX 2.1 bundles: `bundle.json`,
    /// or one per district; --lang does not apply).
    #[arg(long, value_enum, default_value = "csv")]
    pub format: crate::export::Format,
    /// Column headers and values in English or Chinese (区县, 企业名称, 重要程度, ...).
    #[arg(long, value_enum, default_value = "en")]
    pub lang: crate::export::Lang,
    /// The folder to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum ExchangeCommand {
    /// Push bundles (files, or folders written by `export --format stix`) into a TAXII 2.1 collection.
    /// Only what the collection lacks is sent (by id and version); refused objects are named.
    /// Credentials come from --credentials or from OTSCOPE_TAXII_USER and OTSCOPE_TAXII_PASSWORD (HTTP
    /// Basic) or OTSCOPE_TAXII_TOKEN (bearer), never from the command line.
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The TAXII 2.1 API root, e.g. https://127.0.0.1:8443/api1/ (plain http:// only to loopback).
    #[arg(long, value_name = "URL")]
    pub taxii: String,
    /// The collection's id.
    #[arg(long, value_name = "ID")]
    pub collection: String,
    /// A file whose first line is `user:password` (HTTP Basic) or a bearer token.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Trust the CA certificate(s) of this PEM file instead of the public roots.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// How many times a request is sent when the connection fails or the server answers 429 or 5xx.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10), value_name = "N")]
    pub attempts: u32,
    /// The longest one request may take.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: std::time::Duration,
    /// The bundles: JSON files, or folders of them.
    #[arg(required = true, value_name = "BUNDLE")]
    pub bundles: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Grouping {
    District,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DiffFormat {
    Text,
    Jsonl,
}

#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// The scan history database.
    #[arg(long, value_name = "PATH", default_value = "otscope.db")]
    pub db: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate every rule file: report each problem as file:line: rule id: message, then a summary.
    ///
    /// Exit status: 0 valid, 2 invalid.
    Check {
        /// The fingerprint library folder.
        #[arg(long, value_name = "DIR", default_value = "fingerprints")]
        fingerprints: PathBuf,
    },
    /// Run every rule's examples against the whole library and report each failure.
    ///
    /// Exit status: 0 all pass, 1 some fail, 2 the library does not load.
    Test {
        /// The fingerprint library folder.
        #[arg(long, value_name = "DIR", default_value = "fingerprints")]
        fingerprints: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Validate a ledger: report every problem as file:line: field: message (file:sheet!F12: in a workbook), then a summary.
    ///
    /// Exit status: 0 valid, 2 invalid.
    Check {
        /// The ledger: a CSV file or a workbook (.xlsx, .xls) whose columns are enterprise_id, enterprise,
        /// district, sector, level, targets, contact (or 企业编号, 企业名称, 所属区县, 行业, 重要程度, IP地址/域名, 联系人).
        file: PathBuf,
        /// A file of addresses that must never be probed (same target syntax, one or more per line).
        #[arg(long)]
        exclude: Option<PathBuf>,
        #[command(flatten)]
        format: LedgerFormatArgs,
    },
    /// Write an empty ledger workbook to fill in: the headers, a list to pick 重要程度 from, an example row.
    ///
    /// Example: otscope ledger template --lang zh --out 台账模板.xlsx
    Template {
        /// Headers and levels in English or Chinese.
        #[arg(long, value_enum, default_value = "zh")]
        lang: crate::export::Lang,
        /// The workbook to write (.xlsx); an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// How to read the ledger file: which sheet of a workbook, which encoding of a CSV file.
#[derive(Debug, Args, Clone, Default)]
pub struct LedgerFormatArgs {
    /// The sheet of a workbook ledger (.xlsx, .xls) to read (default: the first).
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
    /// The encoding of a CSV ledger (default: UTF-8 when the file is valid UTF-8, else GB18030).
    #[arg(long, value_enum, value_name = "ENCODING")]
    pub encoding: Option<crate::ledger::Encoding>,
}

impl LedgerFormatArgs {
    pub fn options(&self, path: &std::path::Path) -> crate::ledger::LedgerOptions {
        crate::ledger::LedgerOptions { path: path.to_path_buf(), sheet: self.sheet.clone(), encoding: self.encoding }
    }
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Write findings as JSON lines to FILE (default: standard output).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write findings as CSV (UTF-8 with BOM, opens in Excel).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Print what the scan would cover and how long it would take; probe nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The scan history database (SQLite, created if missing); `--no-db` records nothing.
    #[arg(long, value_name = "PATH", default_value = "otscope.db")]
    pub db: Option<PathBuf>,
    /// Do not record this scan in the history (findings then carry no change status).
    #[arg(long)]
    pub no_db: bool,
    /// Continue an interrupted scan (default: the latest unfinished one) from its checkpoint, with the
    /// options it was started with; it ends with exactly the findings an uninterrupted scan would have.
    #[arg(long, value_name = "SCAN", num_args = 0..=1)]
    pub resume: Option<Option<i64>>,
    /// Take this scan's options from a profile of a configuration file (the command line wins).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The profile of `--config` to use (needed when the file has more than one).
    #[arg(long, value_name = "NAME", requires = "config")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Only this address or CIDR block (repeatable); it must lie inside the ledger's scope, exclusions applied.
    #[arg(long, value_name = "ADDR|CIDR", value_parser = parse_network)]
    pub ip: Vec<ipnetwork::IpNetwork>,
    /// Only these protocols, e.g. modbus,s7comm: probe the ports where they are expected, report their findings.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub protocol: Vec<String>,
    /// Re-check every service the history last identified as this vendor (case-insensitive substring).
    #[arg(long, value_name = "TEXT")]
    pub vendor: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

fn parse_network(s: &str) -> Result<ipnetwork::IpNetwork, String> {
    match crate::ledger::TargetSpec::parse(s)? {
        crate::ledger::TargetSpec::Address(a) => Ok(a.into()),
        crate::ledger::TargetSpec::Block(n) => Ok(n),
        _ => Err(format!("{s:?} is not an IP address or CIDR block")),
    }
}

/// What to scan: the ledger, exclusions, ports, the library and the selection of objects.
#[derive(Debug, Args, Clone)]
pub struct ScopeArgs {
    /// The ledger (CSV or workbook) whose registered addresses are scanned; nothing outside it is ever probed.
    #[arg(long, short = 't', value_name = "FILE")]
    pub targets: Option<PathBuf>,
    #[command(flatten)]
    pub ledger_format: LedgerFormatArgs,
    /// A file of addresses that must never be probed, whatever the ledger says.
    #[arg(long, value_name = "FILE")]
    pub exclude: Option<PathBuf>,
    /// Ports to scan, e.g. 502,102,44818/udp,47808/udp,1000-1100 (default: every probe's ports and the library's ports.toml).
    #[arg(long, short = 'p', value_name = "LIST")]
    pub ports: Option<PortList>,
    /// The fingerprint library folder.
    #[arg(long, value_name = "DIR", default_value = "fingerprints")]
    pub fingerprints: PathBuf,
    /// Only objects of this level (repeatable).
    #[arg(long, value_name = "LEVEL")]
    pub level: Vec<Level>,
    /// Only objects of this district (repeatable).
    #[arg(long, value_name = "NAME")]
    pub district: Vec<String>,
    /// Only this enterprise_id (repeatable).
    #[arg(long, value_name = "ID")]
    pub enterprise: Vec<String>,
}

impl ScopeArgs {
    /// The ledger, which every scanning command needs, and how to read it.
    pub fn ledger(&self) -> Result<crate::ledger::LedgerOptions, BadInput> {
        let path = self
            .targets
            .as_deref()
            .ok_or_else(|| BadInput("--targets FILE is required: the ledger whose addresses are scanned".into()))?;
        Ok(self.ledger_format.options(path))
    }

    pub fn selection(&self) -> crate::scope::Selection {
        crate::scope::Selection {
            levels: self.level.clone(),
            districts: self.district.clone(),
            enterprises: self.enterprise.clone(),
            ..Default::default()
        }
    }

    /// The pipeline's scope options (hostnames resolved through `resolver`).
    pub fn options(&self, resolver: Option<SocketAddr>) -> Result<ScopeOptions, BadInput> {
        Ok(ScopeOptions {
            ledger: self.ledger()?,
            exclude: self.exclude.clone(),
            fingerprints: self.fingerprints.clone(),
            ports: self.ports.clone().map(|p| p.0),
            selection: self.selection(),
            resolver,
        })
    }
}

#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// How open ports are found before they are identified: `syn` sends one stateless SYN per target
    /// through a raw socket (needs root or CAP_NET_RAW; IPv6 and UDP targets skip it), `connect` opens a
    /// connection to each. Default: syn where the process may open raw sockets, else connect.
    #[arg(long, value_enum, value_name = "MODE")]
    pub discovery: Option<DiscoveryArg>,
    /// Per second: SYN packets in syn discovery (retries included), connection attempts in connect
    /// discovery (0 = unlimited).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub rate: u32,
    /// Identifications in flight at once, or `auto`: in connect discovery enough connections for the
    /// rate over the connect timeout, in syn discovery 1024; never more than the file descriptors allow.
    #[arg(long, short = 'c', default_value = "auto", value_parser = parse_concurrency, value_name = "N|auto")]
    pub concurrency: usize,
    /// SYN discovery: SYNs sent again to a target that did not answer.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub syn_retries: u8,
    /// SYN discovery: how long each SYN is given to be answered.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub syn_wait: Duration,
    /// SYN discovery: packets per second to any one address, at most.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub host_pps: u32,
    /// Connections open at once to one address (and targets of it identified at once).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub per_host: usize,
    /// Minimum pause before each connection to one address (a probe's reconnects included), from the
    /// previous connection's close and from its open.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub host_interval: Duration,
    /// TCP connect timeout.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub connect_timeout: Duration,
    /// Time allowed for one whole reply.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub read_timeout: Duration,
    /// How long to wait for a banner from a service that speaks first.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub banner_wait: Duration,
    /// Extra sends of a UDP request that got no reply.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub udp_retries: u32,
    /// Hard limit on all the probing of one (address, port), whatever the peer does.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub target_deadline: Duration,
    /// Seed of the target permutation (default: derived from the scope and the shard count, so the
    /// shards of one scan, run anywhere, share one permutation; the summary prints it).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Scan only shard i of n (1 <= i <= n); the n shards are disjoint and together complete.
    #[arg(long, value_name = "i/n", default_value = "1/1")]
    pub shard: Shard,
    /// Try every probe on every open port, text probes on ICS ports included (devices on non-standard ports).
    #[arg(long)]
    pub deep: bool,
    /// Enable an opt-in probe by protocol id (repeatable). `hartip` is opt-in: its session initiate can
    /// lock a factory-fresh HART-IP v2 device into v1 mode.
    #[arg(long, value_name = "PROTOCOL")]
    pub enable_probe: Vec<String>,
    /// DNS server for the ledger's hostnames, as IP or IP:PORT (default: the system's).
    #[arg(long, value_name = "ADDR", value_parser = parse_resolver)]
    pub resolver: Option<SocketAddr>,
    /// No progress bar or progress log lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl EngineArgs {
    /// The pipeline's scan options.
    pub fn options(&self) -> ScanOptions {
        ScanOptions {
            discovery: match self.discovery {
                None => DiscoveryMode::Auto,
                Some(DiscoveryArg::Syn) => DiscoveryMode::Syn,
                Some(DiscoveryArg::Connect) => DiscoveryMode::Connect,
            },
            syn: SynConfig {
                retries: self.syn_retries,
                wait: self.syn_wait,
                host_pps: NonZeroU32::new(self.host_pps),
                ..SynConfig::default()
            },
            engine: EngineConfig {
                concurrency: self.concurrency,
                rate: NonZeroU32::new(self.rate),
                per_host: self.per_host,
                host_interval: self.host_interval,
                target_deadline: self.target_deadline,
                ..EngineConfig::default()
            },
            probe: ProbeSettings {
                limits: Limits {
                    connect_timeout: self.connect_timeout,
                    read_timeout: self.read_timeout,
                    udp_retries: self.udp_retries,
                    ..Limits::default()
                },
                banner_wait: self.banner_wait,
                deep: self.deep,
                enabled: self.enable_probe.clone(),
            },
            seed: self.seed,
            shard: self.shard,
        }
    }

    /// How the run shows progress, stopped by `stop`.
    pub fn run_options(&self, stop: CancellationToken) -> RunOptions {
        let progress = if self.quiet { ProgressStyle::Quiet } else { ProgressStyle::Auto };
        RunOptions { progress, stop, keep_findings: false }
    }
}

/// `--discovery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiscoveryArg {
    Syn,
    Connect,
}

/// `--concurrency N` or `auto` (0).
fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s {
        "auto" | "0" => Ok(AUTO_CONCURRENCY),
        n => n.parse::<usize>().map_err(|e| format!("{s:?}: {e} (a number, or auto)")),
    }
}

fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("{s:?} is not an IP address or IP:PORT"))
}

/// A parsed `--ports` list (a newtype, so clap takes the whole list as one value).
#[derive(Debug, Clone)]
pub struct PortList(pub Vec<crate::scope::PortSpec>);

impl std::str::FromStr for PortList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::scope::parse_ports(s).map(PortList)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options a command line without engine flags gives are the pipeline's defaults: the defaults
    /// are written once on each side, and this keeps them equal.
    #[test]
    fn the_command_line_defaults_are_the_pipelines() {
        let Command::Scan(args) = Cli::parse_from(["otscope", "scan"]).command else { unreachable!() };
        let given = args.engine.options();
        let defaults = ScanOptions::default();
        assert_eq!(format!("{:?}", given.engine), format!("{:?}", defaults.engine));
        assert_eq!(format!("{:?}", given.probe), format!("{:?}", defaults.probe));
        assert_eq!((given.seed, given.shard), (defaults.seed, defaults.shard));
    }
}
