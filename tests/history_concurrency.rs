//! Scans that run at the same time on one history (separate `otscope` processes, as daemon profiles
//! may): over and over, several scans with overlapping scopes of a live lab are started together on a
//! new database, and their history must be the one the same scans give run one after another (in the
//! order of their scan ids): the same first and last scan of every service, nothing gone that the same
//! or a later scan saw, and `show` never saying "gone since" a scan older than an observation.
//! Processes creating one new database at the same moment all succeed.

mod common;

use common::{banner_device, firmware_library, ledger};
use otscope::findings::Change;
use otscope::store::{ScanId, SqliteStore, Store};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Three districts of 16 addresses, four live devices in each.
const LEDGER: &str = "E1,一号水厂,浦东新区,water,important,127.157.0.0/28,c\n\
                      E2,二号电厂,闵行区,energy,general,127.157.1.0/28,c\n\
                      E3,三号燃气,嘉定区,gas,important,127.157.2.0/28,c\n";

/// The scans started together: every object, two pairs of districts that overlap, and a level.
const SCOPES: [&[&str]; 4] = [
    &[],
    &["--district", "浦东新区", "--district", "闵行区"],
    &["--district", "闵行区", "--district", "嘉定区"],
    &["--level", "important"],
];

/// Paced so that the scans overlap for about a second; timeouts generous enough that a loaded machine
/// never makes a live device look silent.
const PACE: [&str; 12] = [
    "--ports",
    "2222",
    "--rate",
    "40",
    "--host-interval",
    "0ms",
    "--banner-wait",
    "2s",
    "--connect-timeout",
    "2s",
    "--read-timeout",
    "2s",
];

fn scan_command(ledger: &Path, lib: &Path, db: &Path, scope: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_otscope"));
    c.arg("scan").arg("--targets").arg(ledger).arg("--fingerprints").arg(lib).arg("--db").arg(db);
    c.args(PACE).args(scope).args(["--quiet", "--out", "/dev/null"]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// The scan id a finished `otscope scan` printed in its summary.
fn recorded_id(out: &Output) -> ScanId {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rest = err.split("recorded as scan ").nth(1).unwrap_or_else(|| panic!("no scan id in: {err}"));
    rest.split(':').next().unwrap().parse().unwrap()
}

/// A service's place in the history: first scan, last scan, gone scan.
type Place = (ScanId, ScanId, Option<ScanId>);

/// Every service of the history with its place, after checking that its first and last seen are the
/// times its first and last scans observed it.
fn places(db: &Path) -> BTreeMap<(IpAddr, u16, String), Place> {
    let store = SqliteStore::open(db).unwrap();
    let mut out = BTreeMap::new();
    for sighting in store.sightings().unwrap() {
        let observations = store.observations_of(sighting.ip).unwrap();
        for s in store.services_of(sighting.ip).unwrap().into_iter().filter(|s| s.port == sighting.port) {
            let at = |scan: ScanId| {
                observations
                    .iter()
                    .find(|(id, f)| *id == scan && f.port == s.port && f.transport.as_str() == s.transport)
                    .map(|(_, f)| f.observed_at.clone())
                    .unwrap_or_else(|| panic!("{}:{}: scan {scan} has no observation of it", s.ip, s.port))
            };
            assert_eq!(
                s.first_seen,
                at(s.first_scan),
                "{}:{}: first seen is its first scan's observation",
                s.ip,
                s.port
            );
            assert_eq!(s.last_seen, at(s.last_scan), "{}:{}: last seen is its last scan's observation", s.ip, s.port);
            out.insert((s.ip, s.port, s.transport.clone()), (s.first_scan, s.last_scan, s.gone_scan));
        }
    }
    out
}

/// Every gone mark is right: the scan that made it did not see the service, which an earlier scan saw
/// with no other mark since; and `show` never prints "gone since scan G" beside an observation of scan G
/// or later.
fn assert_no_false_gone(db: &Path) {
    let store = SqliteStore::open(db).unwrap();
    let marks: Vec<(ScanId, String, u16)> = store
        .connection()
        .prepare("SELECT scan_id, ip, port FROM gone ORDER BY ip, port, scan_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (i, (gone, ip, port)) in marks.iter().enumerate() {
        let seen: Vec<ScanId> = store
            .observations_of(ip.parse().unwrap())
            .unwrap()
            .into_iter()
            .filter(|(_, f)| f.port == *port)
            .map(|(scan, _)| scan)
            .collect();
        assert!(!seen.contains(gone), "{ip}:{port}: gone in scan {gone}, which saw it");
        let before = seen.iter().filter(|s| *s < gone).max();
        let before = before.unwrap_or_else(|| panic!("{ip}:{port}: gone in scan {gone}, never seen before it"));
        let previous_mark = i.checked_sub(1).map(|j| &marks[j]).filter(|(_, a, p)| a == ip && p == port);
        assert!(
            previous_mark.is_none_or(|(g, _, _)| g < before),
            "{ip}:{port}: two gone marks ({previous_mark:?} and {gone}) with no observation between"
        );
    }
    for sighting in store.sightings().unwrap() {
        let out = Command::new(env!("CARGO_BIN_EXE_otscope"))
            .args(["show", &sighting.ip.to_string(), "--db"])
            .arg(db)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        // "  2222/tcp  ...  [gone since scan G]" and the observations "  scan N  TIME  2222/tcp  ...".
        for line in text.lines().filter(|l| l.contains("[gone since scan ")) {
            let service = line.split_whitespace().next().unwrap();
            let g: ScanId = line.rsplit("gone since scan ").next().unwrap().trim_end_matches(']').parse().unwrap();
            let later = text.lines().filter_map(|l| l.trim().strip_prefix("scan ")).any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.contains(&service) && words[0].parse::<ScanId>().is_ok_and(|s| s >= g)
            });
            assert!(!later, "gone since scan {g} beside a later observation:\n{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scans_give_the_history_of_the_same_scans_run_one_after_another() {
    let dir = tempfile::tempdir().unwrap();
    let lib = firmware_library(dir.path());
    let (_l, ledger) = ledger(LEDGER);
    let mut devices = Vec::new();
    for district in 0..3 {
        for host in 1..=4 {
            let banner: &'static [u8] = Box::leak(format!("FW {district}.{host}\r\n").into_bytes().into_boxed_slice());
            devices.push(banner_device(&format!("127.157.{district}.{host}:2222"), Some(banner)).await);
        }
    }
    const TRIALS: usize = 6;
    let budget = Duration::from_secs(150);
    let started = Instant::now();
    let mut trials = 0;
    while trials < TRIALS && started.elapsed() < budget {
        trials += 1;
        // Started together on a database that does not exist yet.
        let db = dir.path().join(format!("together-{trials}.db"));
        let children: Vec<Child> =
            SCOPES.iter().map(|scope| scan_command(&ledger, &lib, &db, scope).spawn().unwrap()).collect();
        let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let mut order: Vec<(ScanId, &[&str])> = outputs.iter().map(recorded_id).zip(SCOPES).collect();
        order.sort();
        assert_eq!(order.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![1, 2, 3, 4]);

        // The same scans one after another, in the order of their ids.
        let sequential = dir.path().join(format!("one-by-one-{trials}.db"));
        for (id, scope) in &order {
            assert_eq!(recorded_id(&scan_command(&ledger, &lib, &sequential, scope).output().unwrap()), *id);
        }
        let (together, one_by_one) = (places(&db), places(&sequential));
        assert_eq!(together.len(), 12, "every live device is known");
        assert_eq!(together, one_by_one, "trial {trials}: scan order {order:?}");
        assert!(together.values().all(|(_, _, gone)| gone.is_none()), "no live device is gone: {together:?}");
        let marks: i64 = SqliteStore::open(&db)
            .unwrap()
            .connection()
            .query_row("SELECT COUNT(*) FROM gone", [], |r| r.get(0))
            .unwrap();
        assert_eq!(marks, 0, "no gone mark for a live device");
        let store = SqliteStore::open(&db).unwrap();
        for scan in store.scans().unwrap() {
            assert!(scan.completed(), "scan {} completed", scan.id);
            let open = scan.end.as_ref().unwrap().open;
            assert_eq!(open, store.findings(scan.id).unwrap().len() as u64, "scan {} counts what it recorded", scan.id);
        }
        assert_no_false_gone(&db);
    }
    eprintln!(
        "{trials} trials of {} concurrent scans each agreed with the same scans run one after another ({:.1}s)",
        SCOPES.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(trials >= 3, "at least three trials within {budget:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_scans_keep_first_seen_and_never_call_a_later_observation_gone() {
    // The interleavings the processes above may or may not hit, driven through two connections to the
    // store one step at a time.
    let (_l, ledger) = ledger("E1,a,d,s,general,127.157.3.1,c\n");
    let _device = banner_device("127.157.3.1:2222", Some(b"FW 1.0\r\n")).await;
    let scope = common::scope(&ledger, "2222", &Default::default());
    let found = common::scan_scope(&scope, common::options()).await;
    assert_eq!(found.len(), 1);
    let plan = otscope::pipeline::plan(&scope, &common::options()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let (mut a, mut b) = (SqliteStore::open(&db).unwrap(), SqliteStore::open(&db).unwrap());
    let begin = |store: &mut SqliteStore| store.begin_scan(&plan.scan_start("scan")).unwrap();
    let see = |store: &mut SqliteStore, scan| {
        let mut f = found[0].clone();
        store.record(scan, &mut f).unwrap();
        store.flush().unwrap();
        f.change.unwrap()
    };
    let finish = |store: &mut SqliteStore, scan| store.finish_scan(scan, end(), &now()).unwrap();
    let place = |store: &SqliteStore| {
        let s = &store.services_of(found[0].ip).unwrap()[0];
        (s.first_scan, s.last_scan, s.gone_scan)
    };

    let first = begin(&mut a);
    assert_eq!(see(&mut a, first), Change::New);
    finish(&mut a, first);
    // Scans 2 and 3 both see it; 3 records it first and finishes first, then 2 records and finishes.
    let (two, three) = (begin(&mut a), begin(&mut b));
    assert_eq!(see(&mut b, three), Change::Persisting);
    finish(&mut b, three);
    assert_eq!(see(&mut a, two), Change::Persisting);
    finish(&mut a, two);
    assert_eq!(place(&a), (first, three, None), "seen by 1, 2 and 3: open since 1");
    // Scan 4 sees it and is still running when scan 5 finishes: scan 5 started later and saw it too.
    let (four, five) = (begin(&mut a), begin(&mut b));
    assert_eq!(see(&mut a, four), Change::Persisting);
    assert_eq!(see(&mut b, five), Change::Persisting);
    finish(&mut a, four);
    finish(&mut b, five);
    assert_eq!(place(&a), (first, five, None));

    // Scan 7 misses it (completed, covering it) while scan 6, started before, records it late: gone since
    // scan 7, whose miss came after every observation.
    let (six, seven) = (begin(&mut a), begin(&mut b));
    finish(&mut b, seven);
    assert_eq!(place(&a), (first, five, Some(seven)));
    assert_eq!(see(&mut a, six), Change::Persisting);
    finish(&mut a, six);
    assert_eq!(place(&a), (first, six, Some(seven)), "an observation before the miss does not revive it");
    // Seen again by a later scan: new, first seen anew.
    let eight = begin(&mut b);
    assert_eq!(see(&mut b, eight), Change::New);
    finish(&mut b, eight);
    assert_eq!(place(&a), (eight, eight, None));
    // Two scans miss it, the later one finishing first: the earlier miss is the gone mark.
    let (nine, ten) = (begin(&mut a), begin(&mut b));
    finish(&mut b, ten);
    finish(&mut a, nine);
    assert_eq!(place(&a), (eight, eight, Some(nine)));
    drop((a, b));
    assert_no_false_gone(&db);
}

fn now() -> String {
    otscope::pipeline::now_rfc3339()
}

fn end() -> otscope::store::ScanClose {
    otscope::store::ScanClose { probed: 1, completed: true, reason: None }
}

#[test]
fn processes_creating_one_new_database_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    // An address with nothing listening: each scan is one refused connection, so they all reach the
    // database at about the same moment.
    let (_l, ledger) = ledger("E1,a,d,s,general,127.157.4.1,c\n");
    let lib = firmware_library(dir.path());
    const TRIALS: usize = 25;
    const PROCESSES: usize = 6;
    let started = Instant::now();
    let mut trials = 0;
    while trials < TRIALS && started.elapsed() < Duration::from_secs(120) {
        trials += 1;
        let db = dir.path().join(format!("new-{trials}.db"));
        let children: Vec<Child> = (0..PROCESSES)
            .map(|_| {
                let mut c = Command::new(env!("CARGO_BIN_EXE_otscope"));
                c.arg("scan").arg("--targets").arg(&ledger).arg("--fingerprints").arg(&lib).arg("--db").arg(&db);
                c.args(common::FAST).args(["--ports", "2222", "--out", "/dev/null"]);
                c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "trial {trials}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(store.scans().unwrap().len(), PROCESSES, "trial {trials}");
    }
    eprintln!("{trials} trials of {PROCESSES} processes creating one database at once: all succeeded");
    assert!(trials >= 5);
}
