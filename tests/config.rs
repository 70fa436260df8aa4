//! The configuration file: a profile's values reach the scan plan, the command line wins over them, a
//! profile scan is recorded as the profile's and exported, and a broken file is reported as
//! `file:line: key: message` with nothing probed.

mod common;

use common::{banner_device, fingerprints_dir, lab_library, ICS_FIRMWARE_RULE};
use otscope::cli::{Cli, Command};
use otscope::ledger::Level;
use otscope::pipeline;
use otscope::store::{SqliteStore, Store};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;

const LEDGER: &str = "enterprise_id,enterprise,district,sector,level,targets,contact\n\
                      PD-1,浦东水厂,浦东新区,water,important,127.127.1.1-127.127.1.2,c\n\
                      MH-1,闵行工厂,闵行区,manufacturing,general,127.127.1.10,c\n";

/// A folder with the ledger, a one-rule library (banner `FW x` is firmware x) and a configuration file.
fn setup(config: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ledger.csv"), LEDGER).unwrap();
    lab_library(dir.path(), ICS_FIRMWARE_RULE);
    let path = dir.path().join("otscope.toml");
    std::fs::write(&path, config).unwrap();
    (dir, path)
}

fn otscope(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_otscope")).args(args).env_remove("RUST_LOG").output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const PROFILE: &str = r#"timezone = "UTC"

[profile.lab]
targets = "ledger.csv"
fingerprints = "fp"
ports = "2222,2223"
rate = 500
concurrency = 8
per-host = 2
seed = 42
host-interval = "0ms"
connect-timeout = "500ms"
read-timeout = "500ms"
banner-wait = "300ms"
level = ["important"]
quiet = true
"#;

#[tokio::test]
async fn a_profile_reaches_the_plan_and_the_command_line_wins() {
    let (_dir, config) = setup(PROFILE);
    let plan_of = |extra: &[&str]| {
        let mut argv: Vec<OsString> =
            ["otscope", "scan", "--config", config.to_str().unwrap()].iter().map(OsString::from).collect();
        argv.extend(extra.iter().map(OsString::from));
        let argv = otscope::config::expand_command_line(argv).unwrap();
        let Command::Scan(args) = <Cli as clap::Parser>::try_parse_from(argv).unwrap().command else { panic!() };
        args
    };
    let args = plan_of(&[]);
    let s = &args.scope;
    let plan = pipeline::plan(&s.options(args.engine.resolver).unwrap(), &args.engine.options()).await.unwrap();
    assert_eq!(plan.engine.rate.map(|r| r.get()), Some(500));
    assert_eq!(plan.engine.concurrency, 8);
    assert_eq!(plan.engine.per_host, 2);
    assert_eq!(plan.engine.host_interval, std::time::Duration::ZERO);
    assert_eq!(plan.probe.banner_wait, std::time::Duration::from_millis(300));
    assert_eq!(plan.seed, 42);
    assert_eq!(plan.selection.levels, vec![Level::Important]);
    let ports: Vec<String> = plan.space.ports().iter().map(|p| p.to_string()).collect();
    assert_eq!(ports, ["2222/tcp", "2223/tcp"]);
    assert_eq!(plan.space.scope().address_count(), 2, "only the important object's two addresses");
    assert_eq!(plan.ledger.path, config.parent().unwrap().join("ledger.csv"), "paths are relative to the file");
    assert_eq!(args.db, Some(config.parent().unwrap().join("otscope.db")));
    assert_eq!(args.profile.as_deref(), Some("lab"));

    // The command line wins, option by option; a list given on the command line replaces the profile's.
    let args = plan_of(&["--rate", "0", "--ports", "2224", "--level", "general", "--concurrency=3"]);
    let s = &args.scope;
    let plan = pipeline::plan(&s.options(args.engine.resolver).unwrap(), &args.engine.options()).await.unwrap();
    assert_eq!(plan.engine.rate, None);
    assert_eq!(plan.engine.concurrency, 3);
    assert_eq!(plan.engine.per_host, 2, "what the command line does not give stays the profile's");
    assert_eq!(plan.seed, 42);
    assert_eq!(plan.selection.levels, vec![Level::General]);
    let ports: Vec<String> = plan.space.ports().iter().map(|p| p.to_string()).collect();
    assert_eq!(ports, ["2224/tcp"]);

    // The same through the binary: the dry run shows the profile's plan, then the command line's.
    let c = config.to_str().unwrap();
    let o = otscope(&["scan", "--config", c, "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    for want in ["enterprises: 1", "ports: 2 (2222-2223/tcp)", "seed: 42", "rate 500/s", "8 in flight"] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    let o = otscope(&[
        "scan",
        "--config",
        c,
        "--profile",
        "lab",
        "--dry-run",
        "--rate",
        "0",
        "--district",
        "闵行区",
        "--level",
        "general",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    for want in ["districts: 1 (闵行区: 1)", "rate unlimited", "seed: 42"] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_scan_is_recorded_as_the_profile_and_exported() {
    let config = format!(
        "{}level = [\"important\", \"general\"]\nports = \"2222\"\nout = \"out/findings.jsonl\"\n[profile.lab.exports]\nby-district = \"exports\"\nlang = \"zh\"\nreport = \"reports/lab.html\"\n",
        PROFILE.replace("level = [\"important\"]\n", "").replace("ports = \"2222,2223\"\n", "")
    );
    let (dir, path) = setup(&config);
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let _a = banner_device("127.127.1.1:2222", Some(b"FW 1.0\r\n")).await;
    let _b = banner_device("127.127.1.10:2222", Some(b"FW 2.0\r\n")).await;
    let c = path.to_str().unwrap().to_string();
    let o = tokio::task::spawn_blocking(move || otscope(&["scan", "--config", &c])).await.unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let lines = std::fs::read_to_string(dir.path().join("out/findings.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    let store = SqliteStore::open(&dir.path().join("otscope.db")).unwrap();
    let scans = store.scans().unwrap();
    assert_eq!(scans.len(), 1);
    assert_eq!(scans[0].start.kind, "profile:lab");
    assert!(scans[0].completed());
    let pudong = std::fs::read_to_string(dir.path().join("exports/浦东新区.csv")).unwrap();
    assert!(pudong.starts_with("\u{feff}区县,"), "{pudong}");
    assert!(pudong.contains("127.127.1.1,2222") && !pudong.contains("127.127.1.10"), "{pudong}");
    assert!(dir.path().join("exports/闵行区.csv").exists());
    assert!(dir.path().join("exports/summary.csv").exists());
    let report = std::fs::read_to_string(dir.path().join("reports/lab.html")).unwrap();
    assert!(report.contains("127.127.1.10"), "the report lists every finding");

    let o = otscope(&["status", "--config", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("profile lab\n  last run: scan 1, "), "{out}");
    assert!(out.contains(", complete, 3 of 3 targets probed, 2 open\n  next run: not scheduled"), "{out}");
}

const LAB: &str = "[profile.lab]\ntargets = \"ledger.csv\"\nfingerprints = \"fp\"\nports = \"2222\"\nenterprise = [\"PD-2\"]\nrate = 0\nhost-interval = \"0ms\"\nbanner-wait = \"300ms\"\nquiet = true\nschedule = \"0 0 * * * *\"\n";

fn lab_ledger_with_device(dir: &Path, ip: &str) {
    std::fs::write(
        dir.join("ledger.csv"),
        format!("enterprise_id,enterprise,district,sector,level,targets,contact\nPD-2,浦东电厂,浦东新区,energy,important,{ip},c\n"),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_and_bad_values_are_reported_and_nothing_is_probed() {
    // The valid profile does probe the device: the counts below mean something.
    let (dir, path) = setup(LAB);
    lab_ledger_with_device(dir.path(), "127.127.2.1");
    let device = banner_device("127.127.2.1:2222", Some(b"FW 1.0\r\n")).await;
    let c = path.display().to_string();
    let o = tokio::task::spawn_blocking(move || otscope(&["scan", "--config", &c])).await.unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(device.connections() > 0);
    device.stop().await;

    for (broken, line, message) in [
        (
            LAB.replace("rate = 0\n", "rate = 0\nconcurency = 4\n"),
            "otscope.toml:7: profile.lab.concurency: unknown key (did you mean \"concurrency\"?)",
            "unknown key",
        ),
        (
            LAB.replace("rate = 0\n", "rate = \"fast\"\n"),
            "otscope.toml:6: profile.lab.rate: invalid value 'fast' for '--rate <N>': invalid digit found in string",
            "bad value",
        ),
        (
            LAB.replace("banner-wait = \"300ms\"\n", "banner-wait = 300\n"),
            "otscope.toml:8: profile.lab.banner-wait: invalid value '300' for '--banner-wait <DURATION>'",
            "bad duration",
        ),
        (
            LAB.replace("schedule = \"0 0 * * * *\"\n", "schedule = \"every hour\"\n"),
            "otscope.toml:10: profile.lab.schedule: not a cron schedule",
            "bad schedule",
        ),
        (
            LAB.replace("schedule = \"0 0 * * * *\"\n", "schedule = \"0 0 2 * * * 2030\"\n"),
            "otscope.toml:10: profile.lab.schedule: not a cron schedule: 7 field(s); a schedule has 5 (minute hour day month weekday) or 6 (seconds first)",
            "seven fields",
        ),
        (
            LAB.replace("schedule = \"0 0 * * * *\"\n", "schedule = \"0 0 30 2 *\"\n"),
            "otscope.toml:10: profile.lab.schedule: never fires: no date matches every field",
            "February 30",
        ),
        (
            format!("timezone = \"Mars/Olympus\"\n{LAB}"),
            "otscope.toml:1: timezone: unknown time zone \"Mars/Olympus\"",
            "bad zone",
        ),
    ] {
        for command in [&["scan"][..], &["daemon"][..]] {
            let (out, count) = refused_in_lab(&broken, command, "127.127.2.1").await;
            assert!(out.contains(line), "{message}, {command:?}: {line:?} in\n{out}");
            assert!(out.contains("nothing was probed"), "{out}");
            assert_eq!(count, 0, "{message}, {command:?}: nothing is probed");
        }
    }

    // A value clap accepts but the ledger refutes is still told at its line, for the profile's key.
    let (out, count) =
        refused_in_lab(&LAB.replace("enterprise = [\"PD-2\"]", "enterprise = [\"XX-9\"]"), &["scan"], "127.127.2.1")
            .await;
    assert!(
        out.contains("otscope.toml:5: profile.lab.enterprise: \"XX-9\": no such enterprise_id in the ledger"),
        "{out}"
    );
    assert_eq!(count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_file_that_cannot_be_used_is_told_at_its_line() {
    for (from, to, key, why) in [
        (
            "targets = \"ledger.csv\"",
            "targets = \"nope/missing.csv\"",
            "2: profile.lab.targets",
            "/nope/missing.csv: No such file or directory",
        ),
        (
            "fingerprints = \"fp\"",
            "fingerprints = \"nope\"",
            "3: profile.lab.fingerprints",
            "/nope: cannot read the fingerprint library: No such file or directory",
        ),
        (
            "quiet = true\n",
            "quiet = true\nexclude = \"/dev/zero\"\n",
            "10: profile.lab.exclude",
            "/dev/zero: not a regular file: a character device",
        ),
        (
            "quiet = true\n",
            "quiet = true\ncsv = \"ledger.csv/x.csv\"\n",
            "10: profile.lab.csv",
            "/ledger.csv/x.csv: cannot create: ",
        ),
    ] {
        for command in [&["scan"][..], &["scan", "--dry-run"][..], &["daemon"][..]] {
            let (out, count) = refused_in_lab(&LAB.replace(from, to), command, "127.127.2.2").await;
            for told in [format!("otscope.toml:{key}: "), why.to_string(), "nothing was probed".to_string()] {
                assert!(out.contains(&told), "{to}, {command:?}: {told:?} in {out}");
            }
            assert_eq!(count, 0);
        }
    }
    // The command line's own file wins over the profile's, and is checked where it is used.
    let (dir, path) = setup(&LAB.replace("targets = \"ledger.csv\"", "targets = \"nope/missing.csv\""));
    lab_ledger_with_device(dir.path(), "127.127.2.2");
    let ledger = dir.path().join("ledger.csv");
    let o = otscope(&["scan", "--config", path.to_str().unwrap(), "--targets", ledger.to_str().unwrap(), "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// Runs `args --config FILE` against a lab whose one device, at `ip`, counts connections.
async fn refused_in_lab(config: &str, args: &[&str], ip: &str) -> (String, u64) {
    let (dir, path) = setup(config);
    lab_ledger_with_device(dir.path(), ip);
    let device = banner_device(&format!("{ip}:2222"), Some(b"FW 1.0\r\n")).await;
    let mut argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    argv.extend(["--config".to_string(), path.display().to_string()]);
    let o = tokio::task::spawn_blocking(move || otscope(&argv.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let count = device.connections();
    device.stop().await;
    (text(&o).replace(&path.display().to_string(), "otscope.toml"), count)
}

#[test]
fn the_shipped_example_is_valid_and_safe() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("otscope.example.toml");
    let config = otscope::config::load(&example).unwrap();
    config.check_for_daemon().unwrap();
    assert!(config.profiles.values().any(|p| !p.exports.is_empty() && p.schedule.is_some()));
    for p in config.profiles.values() {
        let args = p.scan_args(&config.path, &config.db, &[]).unwrap();
        assert_eq!(args.scope.targets, Some(example.parent().unwrap().join("targets.example")), "{}", p.name);
        assert_eq!(args.scope.fingerprints, fingerprints_dir(), "{}", p.name);
    }
    let ledger = otscope::ledger::Ledger::load(&example.parent().unwrap().join("targets.example").into()).unwrap();
    for e in &ledger.enterprises {
        for t in &e.targets {
            let s = format!("{t:?}");
            assert!(s.contains("127.") || s.contains("localhost"), "{s} is not loopback");
        }
    }
}

#[test]
fn the_readme_example_is_valid() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split("### The configuration file").nth(1).unwrap();
    let block = section.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
    let config = otscope::config::parse(Path::new("/etc/otscope/otscope.toml"), block).unwrap();
    config.check_for_daemon().unwrap();
    let daily = &config.profiles["daily"];
    assert_eq!(daily.exports.lang, otscope::export::Lang::Zh);
    let args = daily.scan_args(&config.path, &config.db, &[]).unwrap();
    assert_eq!(args.db, Some(PathBuf::from("/var/lib/otscope/otscope.db")));
    assert_eq!(args.engine.concurrency, 128);
}
