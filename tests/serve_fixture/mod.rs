//! A history for the server's tests, recorded straight through the store: two districts with two
//! enterprises each and a third district, two complete scans of everything (a firmware change, a
//! service gone, one new), a check of one enterprise, an event; and a server on loopback over it.

#![allow(dead_code)]

#[path = "../common/csaf.rs"]
mod csaf_builder;

use otscope::findings::{Finding, Severity};
use otscope::ledger::Level;
use otscope::notices::{self, IssueOptions};
use otscope::scope::{PortSpec, Selection, Transport};
use otscope::serve::auth::{create_token, NewToken};
use otscope::serve::view::Issuer;
use otscope::serve::{run, ServeOptions};
use otscope::store::{EventPlan, EventRecord, EventStore, ScanClose, ScanStart, SqliteStore, Store};
use otscope::targets::{Coverage, Shard};
use serde_json::{json, Map, Value};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

pub const PUDONG: &str = "浦东新区";
pub const MINHANG: &str = "闵行区";
pub const JIADING: &str = "嘉定区";

/// (id, name, district)
pub const ENTERPRISES: [(&str, &str, &str); 5] = [
    ("E1", "一号水厂", PUDONG),
    ("E4", "三号燃气", PUDONG),
    ("E2", "二号电厂", MINHANG),
    ("E5", "五号化工", MINHANG),
    ("E3", "<b>\"A&B's\"</b> 精密", JIADING),
];

/// (last octet, port, protocol, enterprise, severity, version)
type Svc = (u8, u16, &'static str, &'static str, Severity, &'static str);

const FIRST: [Svc; 8] = [
    (1, 502, "modbus", "E1", Severity::Critical, "2.0"),
    (2, 102, "s7comm", "E1", Severity::Critical, "4.2"),
    (3, 22, "ssh", "E4", Severity::Low, "8.4"),
    (4, 4840, "opcua", "E2", Severity::High, "1.6"),
    (5, 502, "modbus", "E2", Severity::Critical, "1.0"),
    (6, 44818, "enip", "E5", Severity::Critical, "20.11"),
    (7, 47808, "bacnet", "E3", Severity::High, "9.0"),
    (8, 1883, "mqtt", "E5", Severity::High, "2.0"),
];

pub fn ip(octet: u8) -> IpAddr {
    format!("127.119.0.{octet}").parse().unwrap()
}

pub fn finding(s: Svc, at: &str) -> Finding {
    let (octet, port, protocol, enterprise, severity, version) = s;
    let (enterprise_id, name, district) = *ENTERPRISES.iter().find(|e| e.0 == enterprise).unwrap();
    Finding {
        ip: ip(octet),
        port,
        transport: Transport::Tcp,
        protocol: protocol.into(),
        ics: true,
        vendor: Some("Vendor".into()),
        product: Some(format!("P-{octet}")),
        version: Some(version.into()),
        device_type: None,
        cpe: None,
        tags: Vec::new(),
        attributes: Map::new(),
        hostname: None,
        enterprise_id: enterprise_id.into(),
        enterprise: name.into(),
        district: district.into(),
        level: Level::Important,
        severity,
        rule: None,
        evidence: String::new(),
        observed_at: at.into(),
        change: None,
        changed: Vec::new(),
    }
}

fn ports() -> Vec<PortSpec> {
    [502, 102, 22, 4840, 44818, 47808, 1883]
        .into_iter()
        .map(|port| PortSpec { port, transport: Transport::Tcp })
        .collect()
}

fn start(at: &str, selection: Value, kind: &str) -> ScanStart {
    start_over(at, selection, kind, vec![(ip(1), ip(20))])
}

fn start_over(at: &str, selection: Value, kind: &str, spans: Vec<(IpAddr, IpAddr)>) -> ScanStart {
    ScanStart {
        started_at: at.into(),
        ledger_path: "ledger/secret-ledger.csv".into(),
        ledger_sha256: "00".repeat(32),
        library_version: "test".into(),
        selection,
        parameters: json!({}),
        coverage: Coverage { spans, ports: ports(), shard: Shard { index: 1, count: 1 }, seed: 7 },
        targets_total: 140,
        kind: kind.into(),
        runner: None,
    }
}

fn record(store: &mut SqliteStore, s: ScanStart, services: &[Svc], ended: &str) -> i64 {
    let id = store.begin_scan(&s).unwrap();
    for svc in services {
        store.record(id, &mut finding(*svc, &s.started_at.replace(":00:00Z", ":05:00Z"))).unwrap();
    }
    let end = ScanClose { probed: s.targets_total, completed: true, reason: None };
    store.finish_scan(id, end, ended).unwrap();
    id
}

pub fn everything() -> Value {
    json!({"levels": [], "districts": [], "enterprises": []})
}

/// Scan 1 and 2 of everything (between them: E1's s7 firmware changes, E4's ssh goes, E2 gets a
/// new service), scan 3 a check of E5 alone (of 闵行区), and event "expo" with scan 2 as its baseline.
pub fn history(db: &Path) {
    let mut store = SqliteStore::open(db).unwrap();
    let a = record(&mut store, start("2026-05-01T08:00:00Z", everything(), "scan"), &FIRST, "2026-05-01T09:00:00Z");
    let mut second: Vec<Svc> = FIRST.iter().copied().filter(|s| s.0 != 3).collect();
    second[1].5 = "4.4";
    second.push((9, 102, "s7comm", "E2", Severity::Critical, "3.1"));
    let b = record(&mut store, start("2026-05-08T08:00:00Z", everything(), "scan"), &second, "2026-05-08T09:00:00Z");
    let only_e5 = json!({"levels": [], "districts": [], "enterprises": ["E5"]});
    let e5: Vec<Svc> = second.iter().copied().filter(|s| s.3 == "E5").collect();
    // A check covers only the addresses of its selection.
    let e5_addresses = vec![(ip(6), ip(6)), (ip(8), ip(8))];
    let check = start_over("2026-05-09T08:00:00Z", only_e5, "check", e5_addresses);
    let c = record(&mut store, check, &e5, "2026-05-09T08:01:00Z");
    assert_eq!((a, b, c), (1, 2, 3));
    let plan = EventPlan {
        ledger: "ledger/secret-ledger.csv".into(),
        sheet: None,
        encoding: None,
        exclude: None,
        fingerprints: "fingerprints".into(),
        ports: ports(),
        selection: Selection::default(),
    };
    store
        .create_event(&EventRecord {
            name: "expo".into(),
            plan,
            started_at: "2026-05-08T08:00:00Z".into(),
            baseline_scan: b,
            closed_at: None,
        })
        .unwrap();
    drop(store);
    advisories_and_notices(db);
}

/// A CSAF 2.0 advisory `id` of TLP `tlp` on products of "Vendor" as (name, version range), one CVE
/// scored 9.8.
pub fn csaf(id: &str, tlp: &str, products: &[(&str, &str)]) -> Value {
    let ids: Vec<String> = (1..=products.len()).map(|n| format!("{id}-P{n}")).collect();
    let products: Vec<(&str, &str, &str, &[&str])> =
        products.iter().zip(&ids).map(|((name, range), pid)| (*name, *range, pid.as_str(), &[][..])).collect();
    csaf_builder::csaf(id, tlp, "Vendor", &products, (9.8, "CRITICAL"), "Update the firmware.")
}

/// The advisories of the history: GREEN on E1's and E2's Modbus devices (P-1 of 浦东新区, P-5 of
/// 闵行区), AMBER on E2's OPC UA server (P-4), RED on E1's S7 (P-2).
pub const GREEN_ADVISORY: &str = "SERVE-GREEN-0001";
pub const AMBER_ADVISORY: &str = "SERVE-AMBER-0002";
pub const RED_ADVISORY: &str = "SERVE-RED-0003";
/// The notices issued: E1's and E2's, then their districts'.
pub const E1_NOTICE: &str = "OTS-2026-0001";
pub const E2_NOTICE: &str = "OTS-2026-0002";
pub const PUDONG_NOTICE: &str = "OTS-2026-0003";
pub const MINHANG_NOTICE: &str = "OTS-2026-0004";

/// Imports the advisories (written as CSAF files beside the history) and issues the notices, as
/// `advisories import` and `notices issue` do: one notice for E1 and one for E2, one for each of
/// their districts; the RED item stays with the center.
pub fn advisories_and_notices(db: &Path) {
    let folder = db.parent().unwrap().join("advisories");
    std::fs::create_dir_all(&folder).unwrap();
    let documents = [
        (GREEN_ADVISORY, "GREEN", vec![("P-1", "vers:all/<3.0"), ("P-5", "vers:all/<3.0")]),
        (AMBER_ADVISORY, "AMBER", vec![("P-4", "vers:all/<2.0")]),
        (RED_ADVISORY, "RED", vec![("P-2", "vers:all/<5.0")]),
    ];
    for (id, tlp, products) in documents {
        std::fs::write(folder.join(format!("{id}.json")), csaf(id, tlp, &products).to_string()).unwrap();
    }
    let vendors = otscope::advisories::Vendors::load(&library()).unwrap();
    let mut store = SqliteStore::open(db).unwrap();
    let imported = notices::import(&mut store, &[folder], &vendors, "2026-05-09T10:00:00Z").unwrap();
    assert!(imported.refused.is_empty(), "{:?}", imported.refused);
    assert_eq!(imported.new.len(), 3);
    let issued = notices::issue(&mut store, &vendors, &IssueOptions::default(), "2026-05-09T11:00:00Z").unwrap();
    let mut numbered: Vec<(&str, &str)> =
        issued.notices.iter().map(|n| (n.number.as_str(), n.subject.as_str())).collect();
    numbered.sort();
    assert_eq!(numbered, [(E1_NOTICE, "E1"), (E2_NOTICE, "E2"), (PUDONG_NOTICE, PUDONG), (MINHANG_NOTICE, MINHANG)]);
    assert_eq!(issued.withheld.len(), 1);
}

/// Makes a token in the history and returns its text.
pub fn token(db: &Path, name: &str, role: &str, district: Option<&str>, enterprise: Option<&str>) -> String {
    let mut store = SqliteStore::open(db).unwrap();
    let new = NewToken {
        name: name.into(),
        role: role.into(),
        district: district.map(String::from),
        enterprise_id: enterprise.map(String::from),
        expires_at: None,
    };
    create_token(&mut store, &new, "2026-05-01T00:00:00Z").unwrap()
}

/// A server on `host` (port chosen by the system) over `db`, stopped when the guard drops.
pub struct Server {
    pub address: SocketAddr,
    pub stop: CancellationToken,
    pub db: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(options: ServeOptions) -> Server {
        let stop = CancellationToken::new();
        let (send, ready) = tokio::sync::oneshot::channel();
        let db = options.db.clone();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                run(options, stop, move |address, _| {
                    let _ = send.send(address);
                })
                .await
                .unwrap();
            }
        });
        let address = tokio::time::timeout(std::time::Duration::from_secs(10), ready).await.unwrap().unwrap();
        Server { address, stop, db, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops the server and waits until it has written its audit log.
    pub async fn shut(self) {
        self.stop.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(20), self.task).await.unwrap().unwrap();
    }
}

/// The fingerprint library of the repository.
pub fn library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprints")
}

/// A server on `host` over `db` that issues notices into `notices/` beside the history.
pub fn options(db: &Path, host: &str) -> ServeOptions {
    let mut options = ServeOptions::new(db.to_path_buf(), format!("{host}:0").parse().unwrap());
    options.issuer = Some(Issuer {
        vendors: notices::load_vendors(&library()).unwrap(),
        settings: Default::default(),
        out: db.parent().unwrap().join("notices"),
    });
    options
}
