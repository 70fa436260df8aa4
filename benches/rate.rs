//! Rate accuracy: scans with `--rate` set to several values, measured where it matters, at the
//! responders: the accepted-connection rate over the steady part of the scan against the target.
//!
//! Responders: TCP listeners on 256 loopback addresses (127.131.0.1-127.131.1.0) and up to 40 ports
//! each (46100 and up, ports no probe expects), on their own runtime and thread. Each records the time of
//! every accept, sends an SSH-like banner and hangs up, so every target costs
//! exactly one connection (the passive read identifies it). The scan covers as many ports as needed for
//! about `RATE_SECS` seconds at the target rate; the achieved rate is taken between the 10th and the
//! 90th percentile of the accept times (the ramp-up and the tail are left out).
//!
//! Run: `cargo bench --bench rate`
//!
//! Knobs (environment):
//! - `RATE_RATES` (default `200,1000,5000`): the `--rate` values.
//! - `RATE_SECS` (default 4): the scan length aimed for at each rate.
//! - `RATE_ROUNDS` (default 2): scans per rate; each is reported, with the mean error.

mod common;

use common::env_or;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const FIRST_ADDR: Ipv4Addr = Ipv4Addr::new(127, 131, 0, 1);
const ADDRS: u32 = 256;
const FIRST_PORT: u16 = 46100;
const MAX_PORTS: u16 = 40;
const BANNER: &[u8] = b"SSH-2.0-RateBench\r\n";

fn addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(FIRST_ADDR) + i)
}

/// The listeners, on a runtime of their own so the scanner's load disturbs their clocks less.
struct Responders {
    accepts: Arc<Mutex<Vec<Instant>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Responders {
    fn start() -> Responders {
        let runtime = common::device_runtime();
        let accepts = Arc::new(Mutex::new(Vec::new()));
        runtime.block_on(async {
            for i in 0..ADDRS {
                for p in 0..MAX_PORTS {
                    let at = SocketAddr::from((addr(i), FIRST_PORT + p));
                    let listener = TcpListener::bind(at).await.unwrap_or_else(|e| panic!("bind {at}: {e}"));
                    let accepts = accepts.clone();
                    tokio::spawn(async move {
                        while let Ok((mut sock, _)) = listener.accept().await {
                            accepts.lock().expect("not poisoned").push(Instant::now());
                            tokio::spawn(async move {
                                // Banner, then hang up: the scanner's passive read ends at once, so each
                                // probe is short and the concurrency never caps the rate.
                                let _ = sock.write_all(BANNER).await;
                                let _ = sock.shutdown().await;
                            });
                        }
                    });
                }
            }
        });
        Responders { accepts, _runtime: runtime }
    }

    fn take(&self) -> Vec<Instant> {
        std::mem::take(&mut *self.accepts.lock().expect("not poisoned"))
    }
}

struct Measure {
    targets: u64,
    /// Accepts per second between the 10th and 90th percentile of the accept times.
    steady: f64,
    /// Probes per second as the engine saw them, over the whole scan.
    engine: f64,
}

fn measure(rt: &tokio::runtime::Runtime, responders: &Responders, ledger: &Path, rate: u32, ports: u16) -> Measure {
    let list = format!("{FIRST_PORT}-{}/tcp", FIRST_PORT + ports - 1);
    let mut options = common::options(256, 11);
    options.engine.rate = std::num::NonZeroU32::new(rate);
    options.engine.per_host = 64;
    options.probe.limits.connect_timeout = Duration::from_secs(2);
    options.probe.banner_wait = Duration::from_secs(2);
    responders.take();
    let (found, stats) = rt.block_on(async {
        let plan = common::plan(ledger, &list, &options).await;
        let report = common::run(&plan, None, false).await;
        (report.counts.open, report.stats)
    });
    let targets = u64::from(ADDRS) * u64::from(ports);
    assert_eq!(stats.probed, targets);
    assert_eq!(found, targets, "every responder answers its banner");
    // The last connections may still be in the responders' accept queue.
    std::thread::sleep(Duration::from_millis(200));
    let mut times = responders.take();
    assert_eq!(times.len() as u64, targets, "one connection per target");
    times.sort();
    let (lo, hi) = (times.len() / 10, times.len() - 1 - times.len() / 10);
    let steady = (hi - lo) as f64 / (times[hi] - times[lo]).as_secs_f64();
    Measure { targets, steady, engine: stats.rate() }
}

fn main() {
    let rates: Vec<u32> = std::env::var("RATE_RATES")
        .unwrap_or_else(|_| "200,1000,5000".into())
        .split(',')
        .map(|r| r.trim().parse().unwrap_or_else(|_| panic!("RATE_RATES: {r:?} is not a rate")))
        .collect();
    assert!(rates.iter().all(|r| *r > 0), "RATE_RATES: rates must be positive");
    let secs: f64 = env_or("RATE_SECS", 4.0);
    let rounds: usize = env_or::<usize>("RATE_ROUNDS", 2).clamp(1, 10);
    let dir = tempfile::tempdir().expect("temporary dir");
    let ledger = dir.path().join("rate.csv");
    std::fs::write(
        &ledger,
        format!(
            "enterprise_id,enterprise,district,sector,level,targets,contact\nR1,Rate Bench,Loopback,testing,general,{}-{},nobody\n",
            addr(0),
            addr(ADDRS - 1)
        ),
    )
    .expect("write the ledger");
    let responders = Responders::start();
    let rt = common::runtime();
    println!(
        "rate: {ADDRS} responders x up to {MAX_PORTS} ports ({}-{}), ~{secs}s per scan, {rounds} rounds",
        addr(0),
        addr(ADDRS - 1)
    );
    let mut summary = Vec::new();
    for &rate in &rates {
        let ports = ((f64::from(rate) * secs / f64::from(ADDRS)).ceil() as u16).clamp(2, MAX_PORTS);
        let mut errors = Vec::new();
        for round in 1..=rounds {
            let m = measure(&rt, &responders, &ledger, rate, ports);
            let error = (m.steady / f64::from(rate) - 1.0) * 100.0;
            println!(
                "  --rate {rate} round {round}: {} targets, achieved {:.1}/s at the responders ({error:+.2}%), engine {:.1} probes/s",
                m.targets, m.steady, m.engine
            );
            errors.push(error);
        }
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        let worst = errors.iter().cloned().fold(0.0f64, |a, e| if e.abs() > a.abs() { e } else { a });
        summary.push((rate, mean, worst));
    }
    for (rate, mean, worst) in summary {
        println!("rate {rate}/s: mean error {mean:+.2}%, worst {worst:+.2}% (goal: within 5%)");
    }
}
