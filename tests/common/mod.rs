//! Shared helpers of the integration tests: ledgers in temporary folders, loopback responders that
//! count their connections, and scans run through the library.
#![allow(dead_code)]

pub mod dns;
pub mod iso;

use otscope::cli::{Cli, Command, EngineArgs};
use otscope::commands::{plan_scan, run_scan};
use otscope::engine::ProgressStyle;
use otscope::findings::Finding;
use otscope::scope::Selection;
use otscope::scope::PortSpec;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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

/// Engine flags as the command line would give them, with short timeouts for tests.
pub fn engine_args(extra: &[&str]) -> EngineArgs {
    let mut argv = vec![
        "otscope",
        "scan",
        "--targets",
        "x",
        "--rate",
        "0",
        "--seed",
        "7",
        "--host-interval",
        "0ms",
        "--connect-timeout",
        "500ms",
        "--read-timeout",
        "500ms",
        "--banner-wait",
        "300ms",
        "--quiet",
    ];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from_args(&argv).command {
        Command::Scan(a) => a.engine,
        _ => unreachable!(),
    }
}

trait ParseArgs {
    fn try_parse_from_args(argv: &[&str]) -> Cli;
}

impl ParseArgs for Cli {
    fn try_parse_from_args(argv: &[&str]) -> Cli {
        <Cli as clap::Parser>::try_parse_from(argv).unwrap()
    }
}

/// Scans `ledger` on `ports` through the whole pipeline and returns the findings sorted by address and port.
pub async fn scan(ledger: &Path, ports: &str, selection: &Selection, extra: &[&str]) -> Vec<Finding> {
    let ports: Vec<PortSpec> = otscope::scope::parse_ports(ports).unwrap();
    let plan = plan_scan(ledger, None, &fingerprints_dir(), Some(ports), selection, &engine_args(extra)).await.unwrap();
    let report = run_scan(&plan, None, Vec::new(), ProgressStyle::Quiet, CancellationToken::new()).await.unwrap();
    let mut findings = report.findings;
    findings.sort_by_key(|f| (f.ip, f.port));
    findings
}

/// A TCP responder on its own loopback address that counts the connections it accepts.
pub struct Responder {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Responder {
    /// Accepts connections; on each, sends `banner` (if any) and keeps the connection open for a while.
    pub async fn start(addr: &str, banner: Option<&'static [u8]>) -> Responder {
        let addr: SocketAddr = addr.parse().unwrap();
        let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Some(b) = banner {
                        let _ = sock.write_all(b).await;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                });
            }
        });
        Responder { addr, connections, task }
    }

    pub fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops accepting and waits until the address is free again.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A simulated device's conversation: given one request, the reply to send (or `None` to stay silent).
/// A new handler is made for each connection (TCP) or each datagram exchange (UDP), so it may keep state.
pub type Handler = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + Send>;

/// A simulated TCP device on its own loopback address: each request read is answered by the handler.
pub async fn tcp_device(addr: &str, make: impl Fn() -> Handler + Send + Sync + 'static) -> Responder {
    use tokio::io::AsyncReadExt;
    let addr: SocketAddr = addr.parse().unwrap();
    let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let make = Arc::new(make);
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut handler = make();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                // Bounded: a test device answers at most 64 requests per connection.
                for _ in 0..64 {
                    let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => return,
                    };
                    if let Some(reply) = handler(&buf[..n]) {
                        if sock.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Responder { addr, connections, task }
}

/// A simulated UDP device on its own loopback address; `connections` counts datagrams received.
pub async fn udp_device(addr: &str, make: impl Fn() -> Handler + Send + Sync + 'static) -> Responder {
    let addr: SocketAddr = addr.parse().unwrap();
    let sock = tokio::net::UdpSocket::bind(addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        let mut handler = make();
        let mut buf = vec![0u8; 65536];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            counter.fetch_add(1, Ordering::SeqCst);
            if let Some(reply) = handler(&buf[..n]) {
                let _ = sock.send_to(&reply, peer).await;
            }
        }
    });
    Responder { addr, connections, task }
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

/// A library whose one rule reads a firmware version from a banner like "FW 1.2".
pub fn firmware_library(dir: &Path) -> std::path::PathBuf {
    let lib = dir.join("fp");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("ports.toml"), "ports = [\"2222\"]\n").unwrap();
    std::fs::write(
        lib.join("lab.toml"),
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
    .unwrap();
    lib
}
