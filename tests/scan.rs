//! End-to-end scans of loopback labs: exact findings, the scope guarantee, shards, dry runs, signals.

mod common;

use common::{banner_device, ledger, scan, Responder};
use otscope::ledger::Level;
use otscope::scope::parse_ports;
use otscope::scope::{Resolved, Scope, Selection, TargetSpace};
use otscope::targets::{Shard, TargetStream};
use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_otscope"))
}

#[tokio::test]
async fn scan_reports_each_open_service_with_its_enterprise() {
    let ssh = banner_device("127.110.0.1:2222", Some(b"SSH-2.0-OpenSSH_9.2p1\r\n")).await;
    let silent = banner_device("127.110.0.2:2222", None).await;
    let (_dir, path) = ledger(
        "A-1,甲水厂,浦东新区,water,important,127.110.0.1,c\nB-2,乙制造,闵行区,manufacturing,general,127.110.0.2-127.110.0.4,c\n",
    );
    let findings = scan(&path, "2222,2223", &Selection::default(), common::options()).await;
    assert_eq!(findings.len(), 2, "{findings:#?}");

    let f = &findings[0];
    assert_eq!((f.ip.to_string().as_str(), f.port, f.transport.as_str()), ("127.110.0.1", 2222, "tcp"));
    assert_eq!((f.enterprise_id.as_str(), f.enterprise.as_str(), f.district.as_str()), ("A-1", "甲水厂", "浦东新区"));
    assert_eq!(f.level, Level::Important);
    assert_eq!(f.evidence, hex::encode(b"SSH-2.0-OpenSSH_9.2p1\r\n"));
    assert!(!f.ics);
    assert_eq!(f.vendor, None);

    let g = &findings[1];
    assert_eq!((g.ip.to_string().as_str(), g.port), ("127.110.0.2", 2222));
    assert_eq!((g.protocol.as_str(), g.evidence.as_str()), ("unknown", ""));
    assert_eq!(g.enterprise, "乙制造");
    assert!(ssh.connections() >= 1 && silent.connections() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_addresses_are_never_connected_to() {
    let responders = futures_join((0..8).map(|i| format!("127.111.0.{i}:2222"))).await;
    let (dir, path) = ledger("A-1,a,d,s,important,127.111.0.0/29,c\nX,,,,exclude,127.111.0.3,\n");
    let exclude = dir.path().join("exclude.txt");
    std::fs::write(&exclude, "# third party\n127.111.0.5 ; 127.111.0.6\n").unwrap();
    let status = bin()
        .args(["scan", "--targets"])
        .arg(&path)
        .arg("--exclude")
        .arg(&exclude)
        .arg("--db")
        .arg(dir.path().join("history.db"))
        .args(["--ports", "2222", "--rate", "0", "--banner-wait", "100ms", "--quiet", "--out"])
        .arg(dir.path().join("f.jsonl"))
        .status()
        .unwrap();
    assert!(status.success());
    for (i, r) in responders.iter().enumerate() {
        if [3, 5, 6].contains(&i) {
            assert_eq!(r.connections(), 0, "excluded 127.111.0.{i} was connected to");
        } else {
            assert!(r.connections() >= 1, "127.111.0.{i} should be probed");
        }
    }
    let lines = std::fs::read_to_string(dir.path().join("f.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 5);
}

async fn futures_join(addrs: impl Iterator<Item = String>) -> Vec<Responder> {
    let mut v = Vec::new();
    for a in addrs {
        v.push(banner_device(&a, None).await);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_ledger_stops_the_scan_before_anything_is_sent() {
    let r = banner_device("127.111.1.1:2222", None).await;
    let (_dir, path) = ledger("A-1,a,d,s,important,127.111.1.1,c\nB-2,b,d,s,urgent,127.111.1.2,c\n");
    let out = bin().args(["scan", "--ports", "2222", "--targets"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3: level: unknown level \"urgent\""), "{err}");
    assert!(err.contains("nothing was probed"), "{err}");
    assert_eq!(r.connections(), 0);
}

#[tokio::test]
async fn selection_limits_what_is_probed() {
    let a = banner_device("127.111.2.1:2222", None).await;
    let b = banner_device("127.111.2.2:2222", None).await;
    let (_dir, path) = ledger("A-1,a,东区,s,important,127.111.2.1,c\nB-2,b,西区,s,general,127.111.2.2,c\n");
    let sel = Selection { levels: vec![Level::Important], ..Default::default() };
    let findings = scan(&path, "2222", &sel, common::options()).await;
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].district, "东区");
    assert!(a.connections() >= 1);
    assert_eq!(b.connections(), 0);
}

#[test]
fn shards_are_disjoint_and_together_complete() {
    let (_dir, path) = ledger("A-1,a,d,s,important,127.0.0.0/26;127.0.1.5-127.0.1.9,c\nX,,,,exclude,127.0.0.7,\n");
    let l = otscope::ledger::Ledger::load(&path.as_path().into()).unwrap();
    let scope = Scope::build(&l, &Resolved::new(), &Selection::default()).unwrap();
    let space = Arc::new(TargetSpace::new(scope, parse_ports("502,102,47808/udp").unwrap()));
    let key = |t: otscope::scope::Target| (t.addr(), t.port(), t.transport());
    let all: Vec<_> = TargetStream::new(space.clone(), 9, Shard::default()).map(key).collect();
    assert_eq!(all.len() as u64, space.len());
    assert_eq!(all.len(), (64 - 1 + 5) * 3);
    let all_set: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all_set.len(), all.len(), "the permutation repeats a target");
    assert!(!all_set.iter().any(|t| t.0.to_string() == "127.0.0.7"));
    for n in [2u64, 3, 7] {
        let mut union = HashSet::new();
        let mut count = 0;
        for i in 1..=n {
            let stream = TargetStream::new(space.clone(), 9, Shard { index: i, count: n });
            let expected = stream.total();
            let coverage = stream.coverage(9, Shard { index: i, count: n });
            let shard: Vec<_> = stream.map(key).collect();
            // The stored coverage of a shard answers "was this probed?" exactly.
            let index = coverage.index();
            let mine: HashSet<_> = shard.iter().cloned().collect();
            for t in &all {
                assert_eq!(index.contains(t.0, t.1, t.2), mine.contains(t), "shard {i}/{n}, {t:?}");
            }
            assert!(!index.contains("127.0.0.7".parse().unwrap(), 502, otscope::scope::Transport::Tcp));
            assert_eq!(shard.len() as u64, expected);
            count += shard.len();
            union.extend(shard);
        }
        assert_eq!(count, all.len(), "shards of {n} overlap or miss targets");
        assert_eq!(union, all_set);
    }
}

#[test]
fn dry_run_describes_the_scan_and_probes_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(banner_device("127.111.3.1:2222", None));
    let (_dir, path) = ledger(
        "A-1,a,d1,s,important,127.111.3.0/30,c\nB-2,b,d2,s,general,127.111.4.0/31,c\nX,,,,exclude,127.111.3.3,\n",
    );
    let out = bin()
        .args(["scan", "--dry-run", "--rate", "100", "--ports", "2222,502", "--targets"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "enterprises: 2",
        "districts: 2 (d1: 1, d2: 1)",
        "addresses: 5 (general: 2, important: 3)",
        "exclusions applied: 1 entries, 1 registered addresses removed",
        "ports: 2 (502/tcp,2222/tcp)",
        "(address, port) pairs: 10",
        "expected duration: at least 1s",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(r.connections(), 0);
    drop(r);
}

#[test]
fn ledger_check_reports_every_problem_and_a_summary() {
    let out =
        bin().args(["ledger", "check", concat!(env!("CARGO_MANIFEST_DIR"), "/targets.example")]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("enterprises: 6"), "{text}");
    assert!(text.contains("浦东新区"), "{text}");

    let (_dir, path) = ledger(
        "A-1,a,d,s,important,127.0.0.0/33,c\nA-1,b,d,s,general,127.0.1.1,c\nC-3,c,d,s,general,,c\nF-6,f,d,s,general,127.0.3.0/30,c\nD-4,d,d,s,general,127.0.3.2,c\nE-5,e,,s,general,127.0.2.1,c\n",
    );
    let out = bin().args(["ledger", "check"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    for expected in [
        format!("{p}:2: targets: \"127.0.0.0/33\" is not a valid CIDR block: prefix /33 is longer than /32"),
        format!("{p}:3: enterprise_id: duplicate \"A-1\": already used on line 2"),
        format!("{p}:4: targets: empty"),
        format!("{p}:6: targets: 127.0.3.2 overlaps 127.0.3.0/30, registered by enterprise \"F-6\" on line 5"),
        format!("{p}:7: district: empty"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
}

/// Three processes, each scanning one shard of the same scope without `--seed`: they share one
/// permutation (the seed comes from what the scope covers), so together they find every service once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_in_separate_processes_without_a_seed_are_disjoint_and_complete() {
    let mut devices = Vec::new();
    for i in 1..=12 {
        devices.push(banner_device(&format!("127.110.5.{i}:2222"), Some(b"SSH-2.0-OpenSSH_9.2p1\r\n")).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.csv");
    std::fs::write(&path, format!("{}A-1,a,d,s,general,127.110.5.0/27,c\n", common::HEADER)).unwrap();
    let mut children = Vec::new();
    for i in 1..=3 {
        let child = bin()
            .args(["scan", "--ports", "2222", "--no-db", "--shard", &format!("{i}/3"), "--targets"])
            .arg(&path)
            .args(common::FAST)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        children.push(child);
    }
    let mut seen = Vec::new();
    let mut seeds = HashSet::new();
    for child in children {
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        seeds.insert(
            err.lines().find(|l| l.starts_with("scan complete: seed")).unwrap().split(',').next().unwrap().to_string(),
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: serde_json::Value = serde_json::from_str(line).unwrap();
            seen.push(f["ip"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seeds.len(), 1, "one seed for every shard: {seeds:?}");
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (12, 12), "{seen:?}");
    for d in devices {
        assert_eq!(d.connections(), 1, "each device probed by exactly one shard");
    }
}

#[test]
fn sigterm_stops_cleanly_and_keeps_what_was_found() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(banner_device("127.112.0.1:2222", Some(b"hello\r\n")));
    let path = dir.path().join("l.csv");
    std::fs::write(&path, format!("{}A-1,a,d,s,general,127.112.0.0/24,c\n", common::HEADER)).unwrap();
    let out_file = dir.path().join("f.jsonl");
    // The responder's address comes first in this permutation order? Not guaranteed: scan it alone first.
    let child = bin()
        .args([
            "scan",
            "--ports",
            "2222",
            "--rate",
            "20",
            "--seed",
            "1",
            "--banner-wait",
            "200ms",
            "--quiet",
            "--targets",
        ])
        .arg(&path)
        .arg("--out")
        .arg(&out_file)
        .arg("--db")
        .arg(dir.path().join("history.db"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Signal once the scan is recorded (planning may take a while on a loaded machine), then let it run.
    let db = dir.path().join("history.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let started = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT count(*) FROM scans", [], |r| r.get::<_, i64>(0)))
            .is_ok_and(|n| n > 0);
        if started {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(2000));
    unsafe_kill(child.id(), 15);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scan interrupted"), "{err}");
    let probed: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("targets probed: "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(probed > 10 && probed < 256, "probed {probed}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(text.lines().count() as u64, r.connections().min(1), "every finding made so far is written");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

fn unsafe_kill(pid: u32, signal: i32) {
    Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
}

/// Durations that would make a "complete" scan call every live service gone are refused, nothing probed.
#[test]
fn nonsense_durations_are_refused_before_anything_is_probed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.csv");
    std::fs::write(&path, format!("{}A-1,a,d,s,general,127.110.6.1,c\n", common::HEADER)).unwrap();
    for (flags, says) in [
        (&["--target-deadline", "0s"][..], "--target-deadline 0s"),
        (&["--connect-timeout", "0s"][..], "--connect-timeout 0s"),
        (&["--read-timeout", "0ms"][..], "--read-timeout 0s"),
        (&["--target-deadline", "2s", "--connect-timeout", "3s"][..], "is not longer than --connect-timeout"),
    ] {
        let out =
            bin().args(["scan", "--no-db", "--ports", "2222", "--targets"]).arg(&path).args(flags).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(says) && err.contains("nothing was probed"), "{flags:?}: {err}");
    }
}
