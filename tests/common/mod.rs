//! Shared helpers of the integration tests: ledgers in temporary folders, simulated devices on
//! loopback (from the `otscope-lab` crate), and scans run through the library.
#![allow(dead_code)]

pub mod csaf;
pub mod dns;

use otscope::findings::Finding;
use otscope::pipeline::{self, DiscoveryMode, RunOptions, ScanOptions, ScopeOptions};
use otscope::scope::Selection;
pub use otscope_lab::serve::{Handler, Responder, Session};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const HEADER: &str = "enterprise_id,enterprise,district,sector,level,targets,contact\n";

pub fn fingerprints_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprints")
}

/// Writes `rows` under the ledger header into a new temporary folder.
pub fn ledger(rows: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.csv");
    std::fs::write(&path, format!("{HEADER}{rows}")).unwrap();
    (dir, path)
}

/// The timeouts and pace of [`options`] as command-line flags, for tests that run the binary.
pub const FAST: [&str; 13] = [
    "--discovery",
    "connect",
    "--rate",
    "0",
    "--host-interval",
    "0ms",
    "--banner-wait",
    "300ms",
    "--connect-timeout",
    "500ms",
    "--read-timeout",
    "500ms",
    "--quiet",
];

/// The scan options of the tests: connect discovery, no rate limit, no pause between probes to a host, short timeouts,
/// the permutation of seed 7.
pub fn options() -> ScanOptions {
    let mut o = ScanOptions { discovery: DiscoveryMode::Connect, seed: Some(7), ..ScanOptions::default() };
    o.engine.concurrency = 256;
    o.engine.rate = None;
    o.engine.host_interval = Duration::ZERO;
    o.probe.limits.connect_timeout = Duration::from_millis(500);
    o.probe.limits.read_timeout = Duration::from_millis(500);
    o.probe.banner_wait = Duration::from_millis(300);
    o
}

/// [`options`] with `--deep`.
pub fn deep() -> ScanOptions {
    let mut o = options();
    o.probe.deep = true;
    o
}

/// The scope of `ledger` on `ports` with the repository's library.
pub fn scope(ledger: &Path, ports: &str, selection: &Selection) -> ScopeOptions {
    ScopeOptions {
        ports: Some(otscope::scope::parse_ports(ports).unwrap()),
        selection: selection.clone(),
        ..ScopeOptions::new(ledger, fingerprints_dir())
    }
}

/// Scans `ledger` on `ports` through the whole pipeline and returns the findings sorted by address and port.
pub async fn scan(ledger: &Path, ports: &str, selection: &Selection, options: ScanOptions) -> Vec<Finding> {
    scan_scope(&scope(ledger, ports, selection), options).await
}

/// Scans `scope` through the whole pipeline and returns the findings sorted by address and port.
pub async fn scan_scope(scope: &ScopeOptions, options: ScanOptions) -> Vec<Finding> {
    let plan = pipeline::plan(scope, &options).await.unwrap();
    let run = RunOptions { keep_findings: true, ..RunOptions::default() };
    let report = pipeline::run(&plan, None, Vec::new(), run).await.unwrap();
    let mut findings = report.findings;
    findings.sort_by_key(|f| (f.ip, f.port));
    findings
}

/// Scans `range` (one enterprise's addresses) on `ports` and returns the findings sorted by address and port.
pub async fn scan_range(range: &str, ports: &str, options: ScanOptions) -> Vec<Finding> {
    let (_dir, path) = ledger(&format!("E1,ent,district,s,general,{range},c\n"));
    scan(&path, ports, &Selection::default(), options).await
}

/// Scans one TCP peer at `ip:port` that answers with handlers from `make`, and asserts that it is
/// found open but not identified (`unknown`, not ICS), without `attribute`.
pub async fn assert_unidentified(
    ip: &str,
    port: u16,
    make: impl Fn() -> Handler + Send + Sync + 'static,
    attribute: &str,
) {
    let _peer = tcp_device(&format!("{ip}:{port}"), make).await;
    let findings = scan_range(ip, &port.to_string(), options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("unknown", false), "{f:#?}");
    assert!(!f.attributes.contains_key(attribute), "{f:#?}");
}

/// A simulated TCP device on its own loopback address: each request read is answered by a handler
/// made for its connection.
pub async fn tcp_device(addr: &str, make: impl Fn() -> Handler + Send + Sync + 'static) -> Responder {
    device(addr, Session::default(), make).await
}

/// A simulated TCP device whose connections follow `session` (a greeting, TLS, closing after a reply).
pub async fn device(addr: &str, session: Session, make: impl Fn() -> Handler + Send + Sync + 'static) -> Responder {
    let at: SocketAddr = addr.parse().unwrap();
    Responder::tcp(at, session, make).await.unwrap_or_else(|e| panic!("{addr}: {e:#}"))
}

/// A TCP service that sends `banner` (if any) on each connection and then only listens.
pub async fn banner_device(addr: &str, banner: Option<&[u8]>) -> Responder {
    let session = banner.map(Session::greeting).unwrap_or_default();
    device(addr, session, silent).await
}

/// A simulated UDP device on its own loopback address; its `requests` count the datagrams received.
pub async fn udp_device(addr: &str, make: impl Fn() -> Handler) -> Responder {
    let at: SocketAddr = addr.parse().unwrap();
    Responder::udp(at, make()).await.unwrap_or_else(|e| panic!("{addr}: {e:#}"))
}

/// A peer that never answers.
pub fn silent() -> Handler {
    Box::new(|_: &[u8]| None)
}

/// A peer that sends back every request as it came: the first look-alike every probe must refuse.
pub fn echo() -> Handler {
    Box::new(|req: &[u8]| Some(req.to_vec()))
}

/// A peer that answers every request with the same `bytes`, whatever was asked.
pub fn always(bytes: &'static [u8]) -> Handler {
    Box::new(move |_: &[u8]| Some(bytes.to_vec()))
}

/// A finding's parser attributes with its rule outputs (`device_type`, `cpe`, `tags`) added, so a test
/// can compare everything the finding says about the device in one exact assertion.
pub fn attributes_with_rules(f: &otscope::findings::Finding) -> serde_json::Map<String, serde_json::Value> {
    let mut m = f.attributes.clone();
    if let Some(d) = &f.device_type {
        m.insert("device_type".into(), d.clone().into());
    }
    if let Some(c) = &f.cpe {
        m.insert("cpe".into(), c.clone().into());
    }
    if !f.tags.is_empty() {
        m.insert("tags".into(), f.tags.clone().into());
    }
    m
}

/// A fingerprint library in `dir/fp` whose rules are `rules` (one file), scanning port 2222.
pub fn lab_library(dir: &Path, rules: &str) -> std::path::PathBuf {
    let lib = dir.join("fp");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("ports.toml"), "ports = [\"2222\"]\n").unwrap();
    std::fs::write(lib.join("lab.toml"), rules).unwrap();
    lib
}

/// One rule: a banner `FW x` is an ICS device (`labfw`, vendor Lab) at firmware x.
pub const ICS_FIRMWARE_RULE: &str = "[[rule]]\nid = \"lab.fw\"\nprotocol = \"unknown\"\nwhen = [{ field = \"banner\", regex = '^FW (?P<v>\\S+)' }]\nset = { protocol = \"labfw\", ics = true, vendor = \"Lab\", version = \"{v}\" }\n[[rule.example]]\nbanner = 'FW 1\\r\\n'\nexpect = { version = \"1\" }\n";

/// A library whose one rule reads a firmware version from a banner like "FW 1.2".
pub fn firmware_library(dir: &Path) -> std::path::PathBuf {
    lab_library(
        dir,
        r#"
[[rule]]
id = "lab.fw"
protocol = "unknown"
when = [{ field = "banner", regex = '^FW (?P<v>\S+)' }]
set = { protocol = "labfw", vendor = "Lab", product = "Gadget", version = "{v}" }
[[rule.example]]
banner = 'FW 1.0\r\n'
expect = { protocol = "labfw", version = "1.0" }
"#,
    )
}

/// Runs the otscope binary to its end with `args`, in `cwd`; a command that has not ended within a
/// minute is killed and fails the test (a daemon that should have refused would run forever).
pub fn otscope_in(cwd: &Path, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_otscope"));
    command.args(args).current_dir(cwd).env_remove("RUST_LOG");
    output_within(command, Duration::from_secs(60))
}

/// [`otscope_in`] off the runtime's threads, so the devices of the test keep answering meanwhile.
pub async fn otscope_in_blocking(cwd: &Path, args: &[&str]) -> std::process::Output {
    let (cwd, args): (_, Vec<String>) = (cwd.to_path_buf(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || otscope_in(&cwd, &args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

/// A finished command's standard output and standard error, together.
pub fn output_text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs `command` to its end, killing it (and failing) if it runs longer than `limit`: a daemon that
/// does not refuse would run forever.
pub fn output_within(mut command: std::process::Command, limit: Duration) -> std::process::Output {
    let mut child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}: {}", output_text(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The interpreter of tests/servers/install's environment (`$OTSCOPE_SERVERS_PYTHON` overrides it) if
/// it can import `module`. Without it the caller skips, except under CI or `OTSCOPE_REQUIRE_REAL_SERVERS=1`,
/// where the test fails.
pub fn servers_python(module: &str) -> Option<std::path::PathBuf> {
    let python = std::env::var_os("OTSCOPE_SERVERS_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/.venv/bin/python"));
    let import = format!("import {module}");
    let found = std::process::Command::new(&python).args(["-c", &import]).output().is_ok_and(|o| o.status.success());
    let required = std::env::var_os("CI").is_some_and(|v| !v.is_empty())
        || std::env::var("OTSCOPE_REQUIRE_REAL_SERVERS").is_ok_and(|v| v == "1");
    match (found, required) {
        (true, _) => Some(python),
        (false, true) => panic!("{module} is not installed in {}: run tests/servers/install", python.display()),
        (false, false) => {
            eprintln!("skipped: {module} is not installed in {} (run tests/servers/install)", python.display());
            None
        }
    }
}

/// Whether raw sockets can be opened here; if not, says why the test is skipped (or fails under CI).
pub fn privileged(test: &str) -> bool {
    match otscope::net::raw::raw_sockets_available() {
        Ok(()) => true,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "{test}: CI must run with raw sockets: {e}");
            eprintln!("{test}: skipped: {e}");
            false
        }
    }
}
