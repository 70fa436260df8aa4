//! Discovery through the whole pipeline: SYN and connect discovery agree on a mixed range of open,
//! closed and filtered ports; filtered space costs SYN discovery one packet and a retry, not a
//! connect timeout; a target the scanner itself fails to probe is "not covered", never gone; a scan
//! without the privilege that asks for SYN is refused before anything is sent.
//!
//! A filtered port on loopback is a listener whose accept queue is full: Linux drops every further SYN
//! to it without an answer, as a firewall's DROP does. The SYN tests need root or CAP_NET_RAW: without
//! it they print why they skipped, and fail when `CI` is set.

mod common;

use async_trait::async_trait;
use common::{banner_device, ledger, privileged, Responder};
use otscope::engine::{Observation, Outcome, Prober, Visit};
use otscope::findings::Change;
use otscope::pipeline::{self, DiscoveryMode, Recording, RunOptions, ScanOptions};
use otscope::scope::{Selection, Target};
use otscope::store::{SqliteStore, Store};
use socket2::{Domain, Socket, Type};
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// A listener whose accept queue is full: SYNs to it are dropped.
struct Filtered {
    _listener: Socket,
    _queued: TcpStream,
}

fn filtered(addr: &str) -> Filtered {
    let at: SocketAddr = addr.parse().unwrap();
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener.bind(&at.into()).unwrap_or_else(|e| panic!("bind {at}: {e}"));
    listener.listen(0).unwrap();
    let queued = TcpStream::connect_timeout(&at, Duration::from_secs(2)).expect("the queue's one connection");
    Filtered { _listener: listener, _queued: queued }
}

fn options(discovery: DiscoveryMode) -> ScanOptions {
    let mut o = common::options();
    o.discovery = discovery;
    o.syn.wait = Duration::from_millis(300);
    o.syn.host_pps = None;
    o.probe.limits.connect_timeout = Duration::from_millis(700);
    o
}

/// 4 addresses, 6 ports each: 2222 and 2223 answer with a banner, 2224 and 2225 are closed, 2226 and
/// 2227 are filtered.
struct MixedRange {
    _open: Vec<Responder>,
    _filtered: Vec<Filtered>,
}

async fn mixed_range() -> MixedRange {
    let (mut open, mut filtered_ports) = (Vec::new(), Vec::new());
    for host in 1..=4 {
        for port in [2222, 2223] {
            open.push(banner_device(&format!("127.119.7.{host}:{port}"), Some(b"SSH-2.0-OpenSSH_9.2p1\r\n")).await);
        }
        for port in [2226, 2227] {
            filtered_ports.push(filtered(&format!("127.119.7.{host}:{port}")));
        }
    }
    MixedRange { _open: open, _filtered: filtered_ports }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syn_and_connect_discovery_find_the_same_services() {
    if !privileged("syn_and_connect_discovery_find_the_same_services") {
        return;
    }
    let _range = mixed_range().await;
    let (_dir, path) = ledger("E1,a,d,s,general,127.119.7.1-127.119.7.4,c\n");
    let scope = common::scope(&path, "2222-2227", &Selection::default());
    let key = |f: &otscope::findings::Finding| (f.ip, f.port, f.protocol.clone(), f.product.clone());
    let mut found = Vec::new();
    for mode in [DiscoveryMode::Syn, DiscoveryMode::Connect] {
        let plan = pipeline::plan(&scope, &options(mode)).await.unwrap();
        let run = RunOptions { keep_findings: true, ..RunOptions::default() };
        let report = pipeline::run(&plan, None, Vec::new(), run).await.unwrap();
        assert!(report.complete(), "{mode:?}: {:?}", report.stats.failure);
        assert_eq!(report.stats.probed, 24, "{mode:?}: every target decided");
        assert_eq!(report.stats.not_covered, 0);
        found.push(report.findings.iter().map(key).collect::<BTreeSet<_>>());
        if mode == DiscoveryMode::Syn {
            let syn = report.stats.syn.expect("the SYN stage ran");
            assert_eq!((syn.open, syn.closed, syn.filtered), (8, 8, 8), "{syn:?}");
            assert_eq!(report.stats.discovery, "syn");
        } else {
            assert_eq!(report.stats.discovery, "connect");
        }
    }
    assert_eq!(found[0].len(), 8, "{:?}", found[0]);
    assert_eq!(found[0], found[1], "SYN and connect discovery agree");
}

/// Fails locally (as when the process has no file descriptor left) for the targets of one address,
/// and finds every other target open.
struct FailsLocallyFor(std::net::IpAddr);

#[async_trait]
impl Prober for FailsLocallyFor {
    async fn probe(&self, target: &Target, _visit: &Visit) -> Outcome {
        if target.addr() == self.0 {
            return Outcome::LocalFailure("Too many open files (os error 24)".into());
        }
        let mut identity = otscope::probes::Identity::new("unknown", false);
        identity.field("banner", "SSH-2.0-OpenSSH_9.2p1");
        Outcome::Found(Observation::new(target.clone(), identity, b"SSH".to_vec(), time::OffsetDateTime::now_utc()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_failure_is_not_covered_never_gone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let (_l, path) = ledger("E1,a,d,s,general,127.119.8.1-127.119.8.4,c\n");
    let scope = common::scope(&path, "2222", &Selection::default());
    let plan = pipeline::plan(&scope, &common::options()).await.unwrap();
    let record = |prober: Arc<dyn Prober>| {
        let plan = &plan;
        let db = db.clone();
        async move {
            let store = SqliteStore::open(&db).unwrap();
            let history = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("scan"))));
            pipeline::run_with(plan, prober, history, Vec::new(), RunOptions::default()).await.unwrap()
        }
    };
    // First every service answers; then the scanner runs out of file descriptors for one address.
    let first = record(Arc::new(FailsLocallyFor("127.119.9.9".parse().unwrap()))).await;
    assert_eq!(first.counts.open, 4);
    let second = record(Arc::new(FailsLocallyFor("127.119.8.3".parse().unwrap()))).await;
    assert!(second.complete());
    assert_eq!((second.counts.open, second.stats.not_covered), (3, 1));

    let store = SqliteStore::open(&db).unwrap();
    let id = second.scan_id.unwrap();
    let uncovered = store.not_covered(id).unwrap();
    assert_eq!(uncovered.len(), 1);
    assert_eq!(uncovered[0].ip.to_string(), "127.119.8.3");
    assert!(uncovered[0].reason.contains("Too many open files"), "{uncovered:?}");
    let diff = otscope::history::diff(&store, first.scan_id.unwrap(), id).unwrap();
    assert_eq!(diff.count(Change::Gone), 0, "a local failure is never gone: {:#?}", diff.entries);
    assert_eq!(diff.not_covered, 1);
    let services = store.services_of("127.119.8.3".parse().unwrap()).unwrap();
    assert_eq!(services[0].gone_scan, None, "the history keeps it open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_space_costs_syn_discovery_a_packet_and_a_retry() {
    if !privileged("filtered_space_costs_syn_discovery_a_packet_and_a_retry") {
        return;
    }
    // 256 addresses on one filtered port: connect discovery would hold each slot for its timeout.
    let _filtered = filtered("0.0.0.0:47991");
    let (_dir, path) = ledger("E1,a,d,s,general,127.119.10.0/24,c\n");
    let scope = common::scope(&path, "47991", &Selection::default());
    let mut o = options(DiscoveryMode::Syn);
    o.engine.rate = std::num::NonZeroU32::new(1000);
    let plan = pipeline::plan(&scope, &o).await.unwrap();
    let started = std::time::Instant::now();
    let report = pipeline::run(&plan, None, Vec::new(), RunOptions::default()).await.unwrap();
    let elapsed = started.elapsed();
    let syn = report.stats.syn.expect("SYN discovery");
    assert_eq!((syn.filtered, syn.packets), (256, 512), "one SYN and one retry each: {syn:?}");
    assert_eq!(report.counts.open, 0);
    // 512 packets at 1000/s and two waits of 300 ms: a generous bound, far below 256 connect timeouts.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

/// The case: `ulimit -n 96` and `--concurrency 2000` on a /24 with 40 answering services and
/// 256 filtered ports. The scan is capped to the descriptors it has, and nothing still answering is
/// called gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn few_file_descriptors_never_make_a_service_gone() {
    let mut devices = Vec::new();
    for host in 1..=40 {
        devices.push(banner_device(&format!("127.119.11.{host}:2222"), Some(b"SSH-2.0-OpenSSH_9.2p1\r\n")).await);
    }
    let _filtered = filtered("0.0.0.0:47992");
    let dir = tempfile::tempdir().unwrap();
    let (_l, ledger) = ledger("E1,a,d,s,general,127.119.11.0/24,c\n");
    let db = dir.path().join("h.db");
    let scan = |limit: &str| {
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg(format!("{limit} exec \"$@\""))
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_otscope"))
            .args(["scan", "--discovery", "connect", "--ports", "2222,47992", "--connect-timeout", "500ms"])
            .args(["--rate", "0", "--host-interval", "0ms", "--banner-wait", "300ms", "--quiet", "--out", "/dev/null"])
            .arg("--targets")
            .arg(&ledger)
            .arg("--db")
            .arg(&db);
        command
    };
    let first = scan("").output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let mut limited = scan("ulimit -n 96 &&");
    limited.args(["--concurrency", "2000"]);
    let second = limited.output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{err}");
    assert!(err.contains("concurrency capped"), "{err}");
    let diff = std::process::Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(["diff", "--format", "jsonl", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&diff.stdout);
    assert!(!lines.contains("\"gone\""), "nothing still answering is gone: {lines}");
    let store = SqliteStore::open(&db).unwrap();
    let scans = store.scans().unwrap();
    let findings = store.findings(scans[1].id).unwrap();
    let not_covered = store.not_covered(scans[1].id).unwrap();
    assert_eq!(findings.len() + not_covered.len(), 40, "every service found or not covered, none lost");
    for d in devices {
        d.stop().await;
    }
}
