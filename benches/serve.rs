//! Server load: 50 concurrent clients list findings, page after page (cursor, 100 a page), from a
//! history of 100,000 findings in 16 districts, each client with its district's token (so every
//! request is authenticated, reach-narrowed, read from the store and audited). In the same run,
//! the same clients ask the same server's static health endpoint: the floor of what a request
//! costs (HTTP, routing, JSON) here. Prints p50 and p99 latency and requests per second of both.
//!
//! Run: cargo bench --bench serve   (SERVE_FINDINGS, SERVE_CLIENTS, SERVE_SECONDS to change)

mod common;

use common::env_or;
use common::history::{completed, modbus_finding, scan_start, FINISHED_AT};
use otscope::serve::auth::{create_token, NewToken};
use otscope::serve::{run, ServeOptions};
use otscope::store::{SqliteStore, Store};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const DISTRICTS: u32 = 16;
/// Requests each client sends at most in a measurement, whatever the time allows.
const MAX_REQUESTS_PER_CLIENT: usize = 100_000;

/// The base of the history's addresses: 127.80.0.0/15.
const FIRST: u32 = 0x7f50_0000;

fn history(db: &std::path::Path, count: u32) {
    let mut store = SqliteStore::open(db).unwrap();
    let start = scan_start(Ipv4Addr::from(FIRST), Ipv4Addr::from(FIRST + 131_071));
    let scan = store.begin_scan(&start).unwrap();
    for i in 0..count {
        let ip = Ipv4Addr::from(FIRST + i);
        let mut f = modbus_finding(ip, format!("E{}", i % 2000), format!("district-{}", i % DISTRICTS), "v2.7");
        store.record(scan, &mut f).unwrap();
    }
    store.finish_scan(scan, completed(&start), FINISHED_AT).unwrap();
}

struct Measured {
    latencies: Vec<Duration>,
    secs: f64,
}

impl Measured {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.secs
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<26} {:>8} requests  {:>9.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms",
            self.latencies.len(),
            self.rate(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
        )
    }
}

/// `clients` tasks, each sending requests one after another for `seconds` (and at most
/// MAX_REQUESTS_PER_CLIENT); `findings` pages through its district's findings with the cursor.
async fn load(address: SocketAddr, tokens: &[String], clients: usize, seconds: f64, findings: bool) -> Measured {
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, token) = (http.clone(), tokens[c % tokens.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut cursor: Option<String> = None;
            while Instant::now() < deadline && latencies.len() < MAX_REQUESTS_PER_CLIENT {
                let t0 = Instant::now();
                let response = if findings {
                    let mut url = format!("http://{address}/api/v1/findings?limit=100");
                    if let Some(c) = &cursor {
                        url.push_str("&cursor=");
                        url.push_str(c);
                    }
                    http.get(url).bearer_auth(&token).send().await.unwrap()
                } else {
                    http.get(format!("http://{address}/api/v1/health")).send().await.unwrap()
                };
                assert_eq!(response.status(), 200);
                let body: serde_json::Value = response.json().await.unwrap();
                latencies.push(t0.elapsed());
                if findings {
                    cursor = body["next"].as_str().map(String::from);
                    let listed = body["findings"].as_array().map(Vec::len).unwrap_or(0);
                    assert!(listed == 100 || (cursor.is_none() && listed > 0), "full pages until the last");
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Measured { latencies, secs: started.elapsed().as_secs_f64() }
}

fn main() {
    let count: u32 = env_or("SERVE_FINDINGS", 100_000);
    let clients: usize = env_or("SERVE_CLIENTS", 50);
    let seconds: f64 = env_or("SERVE_SECONDS", 10.0);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let t0 = Instant::now();
    history(&db, count);
    println!("history: {count} findings in {DISTRICTS} districts, recorded in {:.1} s", t0.elapsed().as_secs_f64());
    let tokens: Vec<String> = {
        let mut store = SqliteStore::open(&db).unwrap();
        (0..DISTRICTS)
            .map(|d| {
                let new = NewToken {
                    name: format!("district-{d}"),
                    role: "district".into(),
                    district: Some(format!("district-{d}")),
                    enterprise_id: None,
                    expires_at: None,
                };
                create_token(&mut store, &new, "2026-11-28T00:00:00Z").unwrap()
            })
            .collect()
    };
    common::runtime().block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let (ready_in, ready) = tokio::sync::oneshot::channel();
        let options = ServeOptions::new(db.clone(), "127.119.40.1:0".parse().unwrap());
        let server = tokio::spawn(run(options, stop.clone(), move |address, _| {
            let _ = ready_in.send(address);
        }));
        let address = ready.await.unwrap();
        // Warm the store connections and the page cache, then measure both in the same run.
        load(address, &tokens, clients, 1.0, true).await;
        let health = load(address, &tokens, clients, seconds, false).await;
        let listing = load(address, &tokens, clients, seconds, true).await;
        println!("{clients} concurrent clients, {seconds} s each:");
        println!("{}", health.line("GET /api/v1/health"));
        println!("{}", listing.line("GET /api/v1/findings (100)"));
        println!(
            "findings: {:.2} of the health endpoint's rate; p50 {:.1}x, p99 {:.1}x its latency",
            listing.rate() / health.rate(),
            listing.percentile(0.5).as_secs_f64() / health.percentile(0.5).as_secs_f64(),
            listing.percentile(0.99).as_secs_f64() / health.percentile(0.99).as_secs_f64(),
        );
        stop.cancel();
        server.await.unwrap().unwrap();
        let audited = SqliteStore::open(&db).unwrap().audit(None, None).unwrap().len();
        println!("audit log: {audited} entries (every findings request)");
    });
}
