//! Server load: 50 concurrent clients list findings, page after page (cursor, 100 a page), from a
//! history of 100,000 findings in 16 districts, each client with its district's token (so every
//! request is authenticated, reach-narrowed, read from the store and audited). In the same run,
//! the same clients ask the same server's static health endpoint: the floor of what a request
//! costs (HTTP, routing, JSON) here. Prints p50 and p99 latency and requests per second of both.
//!
//! Run: cargo bench --bench serve   (SERVE_FINDINGS, SERVE_CLIENTS, SERVE_SECONDS to change)

mod common;

use common::env_or;
use otscope::findings::{Finding, Severity};
use otscope::ledger::Level;
use otscope::scope::Transport;
use otscope::serve::auth::{create_token, NewToken};
use otscope::serve::{run, ServeOptions};
use otscope::store::{ScanClose, ScanStart, SqliteStore, Store};
use otscope::targets::{Coverage, Shard};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const DISTRICTS: u32 = 16;
/// Requests each client sends at most in a measurement, whatever the time allows.
const MAX_REQUESTS_PER_CLIENT: usize = 100_000;

fn finding(i: u32) -> Finding {
    let district = i % DISTRICTS;
    Finding {
        ip: IpAddr::V4(Ipv4Addr::from(0x7f50_0000 + i)),
        port: 502,
        transport: Transport::Tcp,
        protocol: "modbus".into(),
        ics: true,
        vendor: Some("Schneider Electric".into()),
        product: Some("BMX P34 2020".into()),
        version: Some("v2.7".into()),
        device_type: Some("PLC".into()),
        cpe: None,
        tags: vec!["plc".into()],
        attributes: serde_json::json!({"unit_id": 1}).as_object().unwrap().clone(),
        hostname: None,
        enterprise_id: format!("E{}", i % 2000),
        enterprise: "上海某某水务有限公司".into(),
        district: format!("district-{district}"),
        level: Level::Important,
        severity: Severity::Critical,
        rule: Some("modbus.schneider.m340".into()),
        evidence: "0001000000150100".repeat(4),
        observed_at: "2026-11-28T06:00:00Z".into(),
        change: None,
        changed: Vec::new(),
    }
}

fn history(db: &std::path::Path, count: u32) {
    let mut store = SqliteStore::open(db).unwrap();
    let start = ScanStart {
        started_at: "2026-11-28T06:00:00Z".into(),
        ledger_path: "bench.csv".into(),
        ledger_sha256: "0".repeat(64),
        library_version: "bench".into(),
        selection: serde_json::json!({"levels": [], "districts": [], "enterprises": []}),
        parameters: serde_json::json!({}),
        coverage: Coverage {
            spans: vec![("127.80.0.0".parse().unwrap(), "127.81.255.255".parse().unwrap())],
            ports: vec!["502".parse().unwrap()],
            shard: Shard::default(),
            seed: 1,
        },
        targets_total: 131_072,
        kind: "scan".into(),
        runner: None,
    };
    let scan = store.begin_scan(&start).unwrap();
    for i in 0..count {
        store.record(scan, &mut finding(i)).unwrap();
    }
    let end = ScanClose { probed: 131_072, completed: true, reason: None };
    store.finish_scan(scan, end, "2026-11-28T07:00:00Z").unwrap();
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
