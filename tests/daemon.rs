//! The daemon as a child process: scheduled scans of a loopback lab recorded and exported, a clean stop
//! on SIGTERM, no run of a profile while its previous run is going, and a broken reload refused.

mod common;

use common::{banner_device, lab_library, otscope_in, output_text, ICS_FIRMWARE_RULE};
use otscope::store::{ScanRecord, SqliteStore, Store};
use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A folder with a ledger, a one-rule library (banner `FW x` is firmware x) and `otscope.toml`.
fn lab(ledger_rows: &str, config: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ledger.csv"),
        format!("enterprise_id,enterprise,district,sector,level,targets,contact\n{ledger_rows}"),
    )
    .unwrap();
    lab_library(dir.path(), ICS_FIRMWARE_RULE);
    let path = dir.path().join("otscope.toml");
    std::fs::write(&path, config).unwrap();
    (dir, path)
}

/// The daemon running as a child, its log collected line by line.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otscope"))
            .args(["daemon", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stderr, lines) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Daemon { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn count(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits (at most `limit`) until `ready` holds of the log lines.
    async fn wait_for(&self, limit: Duration, what: &str, ready: impl Fn(&[String]) -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ready(&self.log.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: not within {limit:?}; the log:\n{}", self.log());
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0);
    }

    /// Sends SIGTERM and waits (at most `limit`) for the exit status.
    async fn terminate(&mut self, limit: Duration) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the daemon did not stop within {limit:?}; the log:\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn profile_scans(db: &Path, profile: &str) -> Vec<ScanRecord> {
    let kind = format!("profile:{profile}");
    SqliteStore::open(db).unwrap().scans().unwrap().into_iter().filter(|s| s.start.kind == kind).collect()
}

const FAST: &str = "rate = 0\nhost-interval = \"0ms\"\nconnect-timeout = \"500ms\"\nread-timeout = \"500ms\"\nbanner-wait = \"300ms\"\nquiet = true\ndiscovery = \"connect\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_scans_are_recorded_and_exported_and_sigterm_stops_cleanly() {
    let config = format!(
        "timezone = \"UTC\"\ndb = \"state/h.db\"\n\n[profile.lab]\ntargets = \"ledger.csv\"\nfingerprints = \"fp\"\nports = \"2222\"\n{FAST}out = \"lab.jsonl\"\nschedule = \"*/2 * * * * *\"\n\n[profile.lab.exports]\nby-district = \"exports\"\nlang = \"zh\"\nreport = \"reports/lab.html\"\n\n[profile.manual]\ntargets = \"ledger.csv\"\n"
    );
    let (dir, path) = lab(
        "PD-1,浦东水厂,浦东新区,water,important,127.127.10.1-127.127.10.2,c\nMH-1,闵行工厂,闵行区,manufacturing,general,127.127.10.9,c\n",
        &config,
    );
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let _a = banner_device("127.127.10.1:2222", Some(b"FW 1.0\r\n")).await;
    let _b = banner_device("127.127.10.2:2222", Some(b"FW 2.0\r\n")).await;
    let _c = banner_device("127.127.10.9:2222", Some(b"FW 9.0\r\n")).await;

    let mut daemon = Daemon::start(&path);
    daemon
        .wait_for(Duration::from_secs(15), "two complete scans", |log| {
            log.iter().filter(|l| l.contains("scan finished") && l.contains("state=complete")).count() >= 2
        })
        .await;
    daemon
        .wait_for(Duration::from_secs(5), "the second export", |log| {
            log.iter().filter(|l| l.contains("exports written")).count() >= 2
        })
        .await;
    let log = daemon.log();
    assert!(log.contains("profile=lab scan=1 state=complete found=3 new=3 changed=0 elapsed="), "{log}");
    assert!(log.contains("profile=lab scan=2 state=complete found=3 new=0 changed=0 elapsed="), "{log}");
    assert!(!log.contains("profile=manual"), "an unscheduled profile is not run: {log}");
    assert_eq!(daemon.terminate(Duration::from_secs(10)).await, Some(0), "{}", daemon.log());
    assert!(daemon.log().contains("SIGTERM: stopping"), "{}", daemon.log());
    assert!(daemon.log().contains("daemon stopped"), "{}", daemon.log());

    let db = dir.path().join("state/h.db");
    let scans = profile_scans(&db, "lab");
    assert!(scans.len() >= 2, "{scans:#?}");
    assert!(scans[0].completed() && scans[1].completed());
    assert!(scans.iter().all(|s| s.ended_at.is_some()), "every scan, even one stopped by SIGTERM, is closed");
    for pair in scans.windows(2) {
        assert!(pair[0].ended_at.as_deref().unwrap() <= pair[1].start.started_at.as_str(), "{scans:#?}");
    }
    let store = SqliteStore::open(&db).unwrap();
    let second = store.findings(scans[1].id).unwrap();
    assert_eq!(second.len(), 3);
    assert!(second.iter().all(|f| f.change == Some(otscope::findings::Change::Persisting)), "{second:#?}");

    let pudong = std::fs::read_to_string(dir.path().join("exports/浦东新区.csv")).unwrap();
    assert!(pudong.starts_with("\u{feff}区县,企业编号"), "{pudong}");
    assert_eq!(pudong.lines().count(), 3, "a header and the two devices of 浦东新区: {pudong}");
    let minhang = std::fs::read_to_string(dir.path().join("exports/闵行区.csv")).unwrap();
    assert!(minhang.contains("127.127.10.9,2222"), "{minhang}");
    assert!(dir.path().join("exports/summary.csv").exists());
    let report = std::fs::read_to_string(dir.path().join("reports/lab.html")).unwrap();
    assert!(report.contains("<html") && report.contains("127.127.10.9"), "the report of a scan");
    assert_eq!(std::fs::read_to_string(dir.path().join("lab.jsonl")).unwrap().lines().count(), 3);

    let o = Command::new(env!("CARGO_BIN_EXE_otscope")).args(["status", "--config"]).arg(&path).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    let last = scans.last().unwrap();
    assert!(out.contains(&format!("profile lab\n  last run: scan {}, ", last.id)), "{out}");
    assert!(out.contains("targets probed, 3 open\n  next run: ") || !last.completed(), "{out}");
    assert!(out.contains("(schedule \"*/2 * * * * *\")"), "{out}");
    assert!(out.contains("profile manual\n  last run: never\n  next run: not scheduled"), "{out}");
    assert!(out.contains("time zone UTC"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_outlasting_its_period_is_skipped_never_doubled() {
    // Each scan waits 2 s for a banner that never comes (the deadline ends it at 2 s); the schedule asks
    // for a run every second.
    let config = "timezone = \"UTC\"\n[profile.slow]\ntargets = \"ledger.csv\"\nfingerprints = \"fp\"\nports = \"2222\"\nrate = 0\nbanner-wait = \"2s\"\nread-timeout = \"1s\"\nconnect-timeout = \"1s\"\ntarget-deadline = \"2s\"\nquiet = true\nschedule = \"* * * * * *\"\n";
    let (dir, path) = lab("S-1,慢设备,浦东新区,water,important,127.127.20.1,c\n", config);
    // A device that accepts and never answers.
    let device = banner_device("127.127.20.1:2222", None).await;

    let mut daemon = Daemon::start(&path);
    daemon
        .wait_for(Duration::from_secs(12), "a scan, runs skipped during it, and the next scan running", |log| {
            let finished = log.iter().filter(|l| l.contains("scan finished")).count();
            let skipped = log.iter().filter(|l| l.contains("skipping the run due at")).count();
            let started = log.iter().filter(|l| l.contains("scan starting")).count();
            finished >= 1 && skipped >= 1 && started >= 2
        })
        .await;
    // SIGTERM while the second scan waits for its banner: it stops cleanly, as a partial scan.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted = device.connections();
    assert_eq!(daemon.terminate(Duration::from_secs(10)).await, Some(0), "{}", daemon.log());
    let log = daemon.log();
    assert!(log.contains("the previous run, started at"), "{log}");
    assert!(log.contains("profile=slow"), "{log}");
    assert!(accepted >= 2, "the second scan was probing when it was stopped: {log}");

    let scans = profile_scans(&dir.path().join("otscope.db"), "slow");
    assert_eq!(scans.len(), daemon.count("scan starting"), "{log}");
    assert!(scans.len() >= 2);
    // Never two scans of the profile at once: each began after the previous one ended.
    for pair in scans.windows(2) {
        assert!(pair[0].ended_at.as_deref().unwrap() <= pair[1].start.started_at.as_str(), "{scans:#?}");
    }
    assert!(scans[0].completed());
    // The scan that SIGTERM stopped is recorded, closed, as partial.
    let last = scans.last().unwrap();
    assert!(last.ended_at.is_some() && !last.completed(), "{last:#?}");
    assert!(log.contains(&format!("scan={} state=partial", last.id)), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reload_is_refused_and_the_schedule_goes_on() {
    let good = format!(
        "timezone = \"UTC\"\n[profile.lab]\ntargets = \"ledger.csv\"\nfingerprints = \"fp\"\nports = \"2222\"\n{FAST}schedule = \"*/2 * * * * *\"\n# padding so the broken file below has the same size\n"
    );
    let (dir, path) = lab("R-1,重载工厂,闵行区,energy,important,127.127.30.1,c\n", &good);
    let _device = banner_device("127.127.30.1:2222", Some(b"FW 3.0\r\n")).await;
    let mut daemon = Daemon::start(&path);
    daemon
        .wait_for(Duration::from_secs(8), "a first scan", |log| log.iter().any(|l| l.contains("scan finished")))
        .await;

    // A broken file of the same size and modification time: only SIGHUP makes the daemon read it.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let broken_head = good.replace("rate = 0\n", "rate = \"fast\"\n");
    let broken_head = broken_head.split("# padding").next().unwrap().to_string();
    let broken = format!("{broken_head}#{}\n", "x".repeat(good.len() - broken_head.len() - 2));
    assert_eq!(broken.len(), good.len());
    std::fs::write(&path, &broken).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
    let finished_before = daemon.count("scan finished");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for(Duration::from_secs(5), "the refusal", |log| log.iter().any(|l| l.contains("refused"))).await;
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "configuration refused (SIGHUP), the previous one stays in force: {}:6: profile.lab.rate: invalid value 'fast' for '--rate <N>'",
            path.display()
        )),
        "{log}"
    );
    daemon
        .wait_for(Duration::from_secs(8), "two more scans under the old configuration", |log| {
            log.iter().filter(|l| l.contains("scan finished")).count() >= finished_before + 2
        })
        .await;
    assert!(!daemon.log().contains("configuration reloaded"), "{}", daemon.log());

    // A valid change is picked up by itself (the file is watched) and takes effect: a second profile.
    let added = format!(
        "{good}[profile.extra]\ntargets = \"ledger.csv\"\nfingerprints = \"fp\"\nports = \"2222\"\n{FAST}schedule = \"*/2 * * * * *\"\n"
    );
    std::fs::write(&path, added).unwrap();
    daemon
        .wait_for(Duration::from_secs(10), "the reload and a scan of the new profile", |log| {
            log.iter().any(|l| l.contains("configuration reloaded (the file changed): 2 profile(s), 2 scheduled"))
                && log.iter().any(|l| l.contains("scan finished") && l.contains("profile=extra"))
        })
        .await;
    assert_eq!(daemon.terminate(Duration::from_secs(10)).await, Some(0), "{}", daemon.log());
    assert!(!profile_scans(&dir.path().join("otscope.db"), "extra").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_history_is_refused() {
    // Scheduled once a year: the daemons only hold their history here.
    let config = format!(
        "timezone = \"UTC\"\n[profile.lab]\ntargets = \"ledger.csv\"\nfingerprints = \"fp\"\nports = \"2222\"\n{FAST}schedule = \"0 0 1 1 *\"\n"
    );
    let (dir, path) = lab("L-1,锁工厂,浦东新区,water,important,127.127.40.1,c\n", &config);
    let mut first = Daemon::start(&path);
    first
        .wait_for(Duration::from_secs(10), "the first daemon", |log| log.iter().any(|l| l.contains("scheduled")))
        .await;

    let second = otscope_in(dir.path(), &["daemon", "--config", path.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(2), "{}", output_text(&second));
    let refusal = format!(
        "another otscope daemon already runs on the history {} (pid {}, configuration {})",
        dir.path().join("otscope.db").display(),
        first.child.id(),
        path.display()
    );
    assert!(output_text(&second).contains(&refusal), "{refusal:?} in {}", output_text(&second));

    // Another configuration naming the same history is refused too.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, format!("db = \"otscope.db\"\n{config}")).unwrap();
    let third = otscope_in(dir.path(), &["daemon", "--config", other.to_str().unwrap()]);
    assert_eq!(third.status.code(), Some(2), "{}", output_text(&third));
    assert!(
        output_text(&third).contains("another otscope daemon already runs on the history"),
        "{}",
        output_text(&third)
    );

    // Once the first has stopped, the history is free again.
    assert_eq!(first.terminate(Duration::from_secs(10)).await, Some(0), "{}", first.log());
    let mut again = Daemon::start(&path);
    again
        .wait_for(Duration::from_secs(10), "a daemon after the first", |log| {
            log.iter().any(|l| l.contains("scheduled"))
        })
        .await;
    assert_eq!(again.terminate(Duration::from_secs(10)).await, Some(0), "{}", again.log());
}

#[test]
fn the_daemon_refuses_a_profile_whose_files_cannot_be_used_and_creates_its_output_folders() {
    let base = "timezone = \"UTC\"\n\n[profile.lab]\ntargets = \"ledger.csv\"\nfingerprints = \"fp\"\nports = \"2222\"\nquiet = true\nout = \"runs/lab/lab.jsonl\"\nschedule = \"0 0 1 1 *\"\n[profile.lab.exports]\nby-district = \"exports/lab\"\nreport = \"reports/lab.html\"\n";
    let cases = [
        ("targets = \"ledger.csv\"", "targets = \"nope/missing.csv\"", "otscope.toml:4: profile.lab.targets: {dir}/nope/missing.csv: No such file or directory"),
        ("fingerprints = \"fp\"", "fingerprints = \"no-library\"", "otscope.toml:5: profile.lab.fingerprints: {dir}/no-library: cannot read the fingerprint library: No such file or directory"),
        ("out = \"runs/lab/lab.jsonl\"", "out = \"ledger.csv/lab.jsonl\"", "otscope.toml:8: profile.lab.out: {dir}/ledger.csv/lab.jsonl: cannot create: {dir}/ledger.csv is not a folder"),
        ("by-district = \"exports/lab\"", "by-district = \"ledger.csv\"", "otscope.toml:11: profile.lab.exports.by-district: {dir}/ledger.csv: is a file, not a folder"),
        ("report = \"reports/lab.html\"", "report = \"fp\"", "otscope.toml:12: profile.lab.exports.report: {dir}/fp: is a folder, not a file"),
    ];
    for (from, to, message) in cases {
        let (dir, path) = lab("L-2,缺文件,浦东新区,water,important,127.127.41.1,c\n", &base.replace(from, to));
        let o = otscope_in(dir.path(), &["daemon", "--config", path.to_str().unwrap()]);
        let out = output_text(&o).replace(&path.display().to_string(), "otscope.toml");
        let message = message.replace("{dir}", &dir.path().display().to_string());
        assert_eq!(o.status.code(), Some(2), "{to}: {out}");
        assert!(out.contains(&message), "{to}: {message:?} in {out}");
        assert!(out.contains("nothing was probed"), "{out}");
        assert!(!dir.path().join("runs").exists() && !dir.path().join("exports").exists(), "nothing is created");
    }

    // With every file usable, the folders of the outputs and exports are created at start.
    let (dir, path) = lab("L-2,缺文件,浦东新区,water,important,127.127.41.1,c\n", base);
    let mut daemon = Daemon::start(&path);
    let start = Instant::now();
    while !dir.path().join("reports").exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dir.path().join("runs/lab").is_dir(), "{}", daemon.log());
    assert!(dir.path().join("exports/lab").is_dir() && dir.path().join("reports").is_dir(), "{}", daemon.log());
    daemon.signal(libc::SIGTERM);
    assert!(daemon.child.wait().unwrap().success(), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_recorded_with_its_reason_and_status_shows_it() {
    // Profile `full` writes its findings where every write fails: its runs stop, recorded as partial.
    let config = format!(
        "timezone = \"UTC\"\n[profile.lab]\ntargets = \"ledger.csv\"\nfingerprints = \"fp\"\nports = \"2222\"\n{FAST}schedule = \"* * * * * *\"\n[profile.full]\ntargets = \"full.csv\"\nfingerprints = \"fp\"\nports = \"2222\"\n{FAST}out = \"/dev/full\"\nschedule = \"* * * * * *\"\n"
    );
    let (dir, path) = lab("F-1,失败工厂,浦东新区,water,important,127.127.42.1,c\n", &config);
    std::fs::copy(dir.path().join("ledger.csv"), dir.path().join("full.csv")).unwrap();
    let _device = banner_device("127.127.42.1:2222", Some(b"FW 1.0\r\n")).await;
    let o = otscope_in(dir.path(), &["status", "--config", path.to_str().unwrap()]);
    assert!(output_text(&o).contains("profile lab\n  last run: never\n"), "{}", output_text(&o));
    // The ledger goes bad after the daemon started: each run fails before it probes.
    let mut daemon = Daemon::start(&path);
    daemon.wait_for(Duration::from_secs(10), "the daemon", |log| log.iter().any(|l| l.contains("scheduled"))).await;
    std::fs::write(
        dir.path().join("ledger.csv"),
        "enterprise_id,enterprise,district,sector,level,targets,contact\nF-1,失败工厂,浦东新区,water,important,999.1.1.1,c\n",
    )
    .unwrap();
    daemon
        .wait_for(Duration::from_secs(10), "a failed run of each profile", |log| {
            ["profile=lab", "profile=full"]
                .iter()
                .all(|p| log.iter().any(|l| l.contains("run failed") && l.contains(p)))
        })
        .await;
    assert_eq!(daemon.terminate(Duration::from_secs(10)).await, Some(0), "{}", daemon.log());
    let log = daemon.log();
    let reason = format!("{}:2: targets: ", dir.path().join("ledger.csv").display());
    assert!(log.contains(&reason) && log.contains("(recorded as failed scan "), "{log}");

    let scans = profile_scans(&dir.path().join("otscope.db"), "lab");
    let failed = scans.iter().find(|s| s.end.as_ref().is_some_and(|e| e.probed == 0)).expect("a failed scan");
    let why = failed.end.as_ref().and_then(|e| e.reason.clone()).unwrap_or_default();
    assert!(why.starts_with("failed: ") && why.contains(&reason), "{why}");
    let last = scans.last().unwrap();
    let o = otscope_in(dir.path(), &["status", "--config", path.to_str().unwrap()]);
    let out = output_text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(&format!("profile lab\n  last run: failed: {reason}")), "{out}");
    assert!(out.contains(&format!("; scan {}, ", last.id)), "{out}");
    let o = otscope_in(dir.path(), &["history"]);
    assert!(output_text(&o).contains(&format!("failed: {reason}")), "{}", output_text(&o));
    let stopped = "profile full\n  last run: failed: stopped: cannot write /dev/full: No space left on device";
    assert!(out.contains(stopped), "{stopped:?} in {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_run_shows_interrupted_and_resumes_with_its_profile() {
    // 64 addresses, one of them answering: each silent address holds its probe for a while, so the run
    // is still going when the daemon is killed.
    let config = "timezone = \"UTC\"\ndb = \"state/h.db\"\n[profile.lab]\ntargets = \"ledger.csv\"\nfingerprints = \"fp\"\nports = \"2222\"\nrate = 0\nhost-interval = \"0ms\"\nconnect-timeout = \"500ms\"\nread-timeout = \"500ms\"\nbanner-wait = \"1s\"\nconcurrency = 4\nquiet = true\nout = \"lab.jsonl\"\nschedule = \"* * * * * *\"\n[profile.lab.exports]\nby-district = \"exports\"\n";
    let (dir, path) = lab("K-1,杀进程,浦东新区,water,important,127.127.43.0/26,c\n", config);
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let _device = banner_device("127.127.43.7:2222", Some(b"FW 4.0\r\n")).await;
    let mut silent = Vec::new();
    for i in [1u8, 2, 3, 9, 10, 11, 20, 21] {
        silent.push(banner_device(&format!("127.127.43.{i}:2222"), None).await);
    }
    let mut daemon = Daemon::start(&path);
    daemon.wait_for(Duration::from_secs(10), "a run", |log| log.iter().any(|l| l.contains("scan starting"))).await;
    std::thread::sleep(Duration::from_millis(300));
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let db = dir.path().join("state/h.db");
    let scans = profile_scans(&db, "lab");
    assert_eq!(scans.len(), 1, "{}", daemon.log());
    assert!(scans[0].end.is_none(), "killed mid-run: {:#?}", scans[0]);

    let p = path.to_str().unwrap();
    let o = otscope_in(dir.path(), &["status", "--config", p]);
    assert!(output_text(&o).contains("profile lab\n  last run: scan 1, started "), "{}", output_text(&o));
    assert!(output_text(&o).contains(", interrupted\n"), "{}", output_text(&o));

    // Resumed from anywhere, with the history named: the profile's options, outputs and exports.
    let o = otscope_in(Path::new("/"), &["scan", "--resume", "--db", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(output_text(&o).contains("resuming scan 1 from position "), "{}", output_text(&o));
    let scans = profile_scans(&db, "lab");
    assert_eq!(scans.len(), 1);
    assert!(scans[0].completed(), "{:#?}", scans[0]);
    let store = SqliteStore::open(&db).unwrap();
    let found = store.findings(1).unwrap();
    assert_eq!(found.len(), 1 + silent.len(), "the device and the silent open ports: {found:#?}");
    assert!(found.iter().any(|f| f.version.as_deref() == Some("4.0")), "{found:#?}");
    let lines = std::fs::read_to_string(dir.path().join("lab.jsonl")).unwrap();
    let services: BTreeSet<&str> = lines.lines().map(|l| &l[..l.find(",\"transport\"").unwrap()]).collect();
    assert_eq!(lines.lines().count(), found.len(), "the profile's out is continued: {lines}");
    assert_eq!(services.len(), found.len(), "each service once: {lines}");
    assert!(std::fs::read_to_string(dir.path().join("exports/浦东新区.csv")).unwrap().contains("127.127.43.7,2222"));
    let o = otscope_in(dir.path(), &["status", "--config", p]);
    assert!(
        output_text(&o).contains("profile lab\n  last run: scan 1, ")
            && output_text(&o).contains(", complete, 64 of 64"),
        "{}",
        output_text(&o)
    );
}
