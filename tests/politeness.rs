//! Per-host politeness under a full scan: responders on several hosts and several ports each record
//! every connection's open and close times; a scan with `--per-host N --host-interval 200ms` must never
//! hold more than N connections to one host, must space the starts to one host by the interval, and with one
//! slot per host must pause the interval after each probe to that host ends. Against a host that hangs up
//! after every request, the probes' own reconnects are held to the same spacing, close to open.

mod common;

use common::{ledger, scan};
use otscope::scope::Selection;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const HOSTS: u8 = 4;
const PORTS: u16 = 6;
const INTERVAL: Duration = Duration::from_millis(200);
/// How long each responder holds a conversation before its banner: longer than the interval, so
/// probes to one host would overlap unless the gate holds them back.
const HOLD: Duration = Duration::from_millis(450);
/// Scheduling slack allowed on the loopback timings.
const TOLERANCE: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, Copy)]
struct Visit {
    opened: Instant,
    closed: Instant,
}

/// Listeners on `HOSTS` addresses from `first_host` (127.131.1.x), `PORTS` ports each, recording visits.
async fn responders(
    first_host: u8,
    first_port: u16,
) -> (Arc<Mutex<HashMap<IpAddr, Vec<Visit>>>>, Vec<tokio::task::JoinHandle<()>>) {
    let visits: Arc<Mutex<HashMap<IpAddr, Vec<Visit>>>> = Arc::default();
    let mut tasks = Vec::new();
    for h in 0..HOSTS {
        for p in 0..PORTS {
            let at = SocketAddr::from(([127, 131, 1, first_host + h], first_port + p));
            let listener = TcpListener::bind(at).await.unwrap_or_else(|e| panic!("bind {at}: {e}"));
            let visits = visits.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((mut sock, _)) = listener.accept().await {
                    let opened = Instant::now();
                    let visits = visits.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(HOLD).await;
                        let _ = sock.write_all(b"SSH-2.0-PoliteBench\r\n").await;
                        // Until the scanner hangs up (bounded).
                        let mut buf = [0u8; 256];
                        let _ = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
                        let closed = Instant::now();
                        visits.lock().unwrap().entry(at.ip()).or_default().push(Visit { opened, closed });
                    });
                }
            }));
        }
    }
    (visits, tasks)
}

/// The most connections open at once to one host.
fn max_concurrent(visits: &[Visit]) -> usize {
    visits
        .iter()
        .map(|v| visits.iter().filter(|w| w.opened <= v.opened && w.closed > v.opened).count())
        .max()
        .unwrap_or(0)
}

async fn check(per_host: usize, first_host: u8, first_port: u16) {
    let (visits, tasks) = responders(first_host, first_port).await;
    let (_dir, path) = ledger(&format!(
        "P1,Polite,Loopback,testing,general,127.131.1.{}-127.131.1.{},nobody\n",
        first_host,
        first_host + HOSTS - 1
    ));
    let ports = format!("{first_port}-{}/tcp", first_port + PORTS - 1);
    let mut options = common::options();
    options.engine.per_host = per_host;
    options.engine.host_interval = Duration::from_millis(200);
    options.engine.concurrency = 64;
    options.probe.banner_wait = Duration::from_secs(2);
    let findings = scan(&path, &ports, &Selection::default(), options).await;
    assert_eq!(findings.len(), usize::from(HOSTS) * usize::from(PORTS), "every responder is found");
    // The last closes are recorded just after the scan ends.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for t in tasks {
        t.abort();
    }
    let visits = visits.lock().unwrap().clone();
    assert_eq!(visits.len(), usize::from(HOSTS));
    for (host, mut v) in visits {
        assert_eq!(v.len(), usize::from(PORTS), "{host}: one connection per port");
        v.sort_by_key(|x| x.opened);
        let peak = max_concurrent(&v);
        assert!(peak <= per_host, "{host}: {peak} connections at once with --per-host {per_host}");
        // Each probe outlasts the interval, so the limit is reached: a gate that allowed fewer would be wrong too.
        assert_eq!(peak, per_host, "{host}: the limit of {per_host} was never reached");
        for pair in v.windows(2) {
            let gap = pair[1].opened - pair[0].opened;
            assert!(gap + TOLERANCE >= INTERVAL, "{host}: starts {gap:?} apart, interval {INTERVAL:?}");
        }
        // With one slot, the pause also runs from the end of each probe to the host (with more slots, a
        // probe already booked may start just after another ends).
        for a in v.iter().filter(|_| per_host == 1) {
            for b in v.iter().filter(|b| b.closed <= a.opened) {
                let pause = a.opened - b.closed;
                assert!(pause + TOLERANCE >= INTERVAL, "{host}: a probe started {pause:?} after another ended");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_probe_per_host_spaced_by_the_interval() {
    check(1, 1, 46200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_probes_per_host_spaced_by_the_interval() {
    check(2, 11, 46210).await;
}

/// Listens on `ports` of one address; each connection reads one request, then the responder closes it
/// (as an S7 CPU drops a connection request for a TSAP it does not serve), recording the accept and
/// the close. Probes that reconnect after a hang-up (S7 TSAP pairs, Modbus, DNP3) open several
/// connections per target.
async fn hanging_up(ip: [u8; 4], ports: &[u16]) -> (Arc<Mutex<Vec<Visit>>>, Vec<tokio::task::JoinHandle<()>>) {
    let visits: Arc<Mutex<Vec<Visit>>> = Arc::default();
    let mut tasks = Vec::new();
    for &port in ports {
        let at = SocketAddr::from((ip, port));
        let listener = TcpListener::bind(at).await.unwrap_or_else(|e| panic!("bind {at}: {e}"));
        let visits = visits.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..64 {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let opened = Instant::now();
                let visits = visits.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 512];
                    let _ = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await;
                    drop(sock);
                    visits.lock().unwrap().push(Visit { opened, closed: Instant::now() });
                });
            }
        }));
    }
    (visits, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_to_a_host_is_spaced_reconnects_included() {
    let ports = [102u16, 502, 20000];
    let (visits, tasks) = hanging_up([127, 131, 2, 1], &ports).await;
    let (_dir, path) = ledger("P1,Polite,Loopback,testing,general,127.131.2.1,nobody\n");
    let mut options = common::options();
    options.engine.per_host = 1;
    options.engine.host_interval = INTERVAL;
    scan(&path, "102,502,20000", &Selection::default(), options).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for t in tasks {
        t.abort();
    }
    let mut v = visits.lock().unwrap().clone();
    v.sort_by_key(|x| x.opened);
    // The probes reconnected after each hang-up: more connections than targets.
    assert!(v.len() > 2 * ports.len(), "only {} connections", v.len());
    assert_eq!(max_concurrent(&v), 1, "connections overlapped with --per-host 1");
    let gaps: Vec<Duration> = v.windows(2).map(|pair| pair[1].opened - pair[0].closed).collect();
    let shortest = gaps.iter().min().unwrap();
    eprintln!("{} connections, shortest close-to-open gap {shortest:?}", v.len());
    assert!(*shortest + TOLERANCE >= INTERVAL, "a connection opened {shortest:?} after the previous one closed");
}
