//! What a target costs when its peer says nothing, and what happens when probing runs out of time:
//! - six ICS ports of one host that accept and stay silent finish within a bound with a generous
//!   margin, with default options (one connection at a time to the host, a 3 s read timeout): a
//!   silent port costs about one read timeout, not one per request variant;
//! - a Modbus device that answers only one unit id is still identified under those options;
//! - an open port whose probing reaches `--target-deadline` is recorded as open and `unknown`, also
//!   under `--deep` (a tarpit), never dropped;
//! - a prober that panics costs its target its coverage, never the scan or its checkpoint.
//!
//! Measured on the development machine (debug build): the six silent ports take about 19 s against
//! the 24 s bound (the figure).
//!
//! Every peer sits on its own address in 127.121.0.0/16; every connection they serve ends when the
//! scanner hangs up or after [`CAP`].

mod common;

use async_trait::async_trait;
use common::{ledger, scan};
use otscope::engine::{Observation, Outcome, Prober, Visit};
use otscope::pipeline::{self, RunOptions, ScanOptions};
use otscope::scope::{Selection, Target};
use otscope_lab::modbus::{Device, Identification};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// No silent connection lives longer than this.
const CAP: Duration = Duration::from_secs(30);
/// The bound for six silent ICS ports on one host with default options.
const SIX_SILENT_PORTS: Duration = Duration::from_secs(24);

/// Accepts connections on `addr` (at most 64) and reads whatever comes, never answering, until the
/// scanner hangs up.
async fn silent(addr: &str) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let drain = async { while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {} };
                let _ = tokio::time::timeout(CAP, drain).await;
            });
        }
    })
}

/// The default options of `otscope scan` (connect discovery, so that the bound does not depend on
/// the privilege to send raw packets), with a fixed permutation.
fn defaults() -> ScanOptions {
    ScanOptions { discovery: pipeline::DiscoveryMode::Connect, seed: Some(7), ..ScanOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_silent_ics_ports_of_one_host_cost_about_one_read_timeout_each() {
    let ports = [502u16, 102, 20000, 44818, 2404, 9600];
    let mut peers = Vec::new();
    for port in ports {
        peers.push(silent(&format!("127.121.1.1:{port}")).await);
    }
    let (report, elapsed) = run("127.121.1.1", "502,102,20000,44818,2404,9600", defaults()).await;
    let findings = report.findings;
    eprintln!("six silent ICS ports: {elapsed:?}");
    for p in peers {
        p.abort();
    }
    assert!(elapsed < SIX_SILENT_PORTS, "six silent ports took {elapsed:?}, beyond {SIX_SILENT_PORTS:?}");
    // Each is open, and nothing identifies it.
    let found: Vec<(u16, &str)> = findings.iter().map(|f| (f.port, f.protocol.as_str())).collect();
    assert_eq!(found.len(), 6, "{found:?}");
    assert!(found.iter().all(|(_, protocol)| *protocol == "unknown"), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modbus_device_answering_only_unit_255_is_found_with_default_options() {
    let device =
        Device { units: vec![255], identification: Identification::Silent, holding_register: true, ..Device::m340() };
    let d = device.clone();
    let _r = common::tcp_device("127.121.1.2:502", move || d.handler()).await;
    let (report, elapsed) = run("127.121.1.2", "502", defaults()).await;
    let findings = report.findings;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("modbus", true), "{f:#?}");
    assert_eq!(f.attributes["unit_id"], 255, "{f:#?}");
    // Identification silent for every unit, then the register reads: one read timeout and a follow-up.
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
}

/// A cut-off port: open, `unknown`, marked as cut off, and counted.
fn assert_cut_off(report: &pipeline::ScanReport, port: u16) {
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let f = &report.findings[0];
    assert_eq!((f.port, f.protocol.as_str(), f.ics), (port, "unknown", false), "{f:#?}");
    assert!(f.attributes.contains_key("cut_off"), "{f:#?}");
    assert_eq!(report.stats.deadline_hits, 1);
    assert_eq!(report.counts.open, 1);
}

/// Scans `range` on `ports`, returning the report and how long the scan took after its plan (which
/// loads the fingerprint library).
async fn run(range: &str, ports: &str, options: ScanOptions) -> (pipeline::ScanReport, Duration) {
    let (_dir, path) = ledger(&format!("E1,ent,district,s,general,{range},c\n"));
    let scope = common::scope(&path, ports, &Selection::default());
    let plan = pipeline::plan(&scope, &options).await.unwrap();
    let started = Instant::now();
    let run = RunOptions { keep_findings: true, ..RunOptions::default() };
    let report = pipeline::run(&plan, None, Vec::new(), run).await.unwrap();
    (report, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_port_cut_off_at_the_deadline_is_recorded_unknown() {
    // A port no probe names: the passive read, the banner probes, TLS and the text probes each wait
    // 500 ms for a peer that never answers, far beyond the 1 s deadline.
    let peer = silent("127.121.2.1:7777").await;
    let mut options = common::options();
    options.engine.target_deadline = Duration::from_secs(1);
    let (report, _) = run("127.121.2.1", "7777", options).await;
    peer.abort();
    assert_cut_off(&report, 7777);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tarpit_under_deep_reaching_the_deadline_is_recorded_unknown() {
    let peer = silent("127.121.2.2:502").await;
    let mut options = common::deep();
    options.engine.target_deadline = Duration::from_secs(2);
    let (report, _) = run("127.121.2.2", "502", options).await;
    peer.abort();
    assert_cut_off(&report, 502);
}

/// Panics on the targets of one address, finds the others open.
struct PanicsFor(std::net::IpAddr);

#[async_trait]
impl Prober for PanicsFor {
    async fn probe(&self, target: &Target, _visit: &Visit) -> Outcome {
        assert!(target.addr() != self.0, "a bug in a prober");
        let identity = otscope::probes::Identity::new("unknown", false);
        Outcome::Found(Observation::new(target.clone(), identity, Vec::new(), time::OffsetDateTime::now_utc()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_prober_costs_its_target_not_the_scan() {
    let (_l, path) = ledger("E1,a,d,s,general,127.121.3.1-127.121.3.4,c\n");
    let scope = common::scope(&path, "2222", &Selection::default());
    let plan = pipeline::plan(&scope, &common::options()).await.unwrap();
    let prober = Arc::new(PanicsFor("127.121.3.2".parse().unwrap()));
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        pipeline::run_with(&plan, prober, None, Vec::new(), RunOptions::default()),
    )
    .await
    .expect("the scan ends")
    .unwrap();
    assert!(report.complete(), "{:?}", report.stats.failure);
    assert_eq!((report.counts.open, report.stats.not_covered, report.stats.probed), (3, 1, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_ports_with_default_options_skip_nothing_a_banner_would_tell() {
    // The control: a service that speaks first on an ICS port is still named from its greeting, though
    // the passive read now overlaps the first request's wait.
    let _ssh = common::banner_device("127.121.4.1:102", Some(b"SSH-2.0-OpenSSH_9.2p1\r\n")).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.121.4.1,c\n");
    let findings = scan(&path, "102", &Selection::default(), defaults()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].protocol, "ssh", "{:#?}", findings[0]);
}
