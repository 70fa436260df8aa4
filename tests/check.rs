//! `otscope check` end to end with the binary: each selection (enterprise, district, level, --ip,
//! --protocol, --vendor) probes exactly the expected loopback devices and prints the grouped table;
//! an --ip outside the scope is refused with nothing probed; the exit status says whether something
//! is new, changed or gone since the last scan.

mod common;

use common::{banner_device, ledger, tcp_device, Responder};
use otscope_lab::modbus;
use std::path::Path;
use std::process::{Command, Output};

use common::FAST;

fn otscope(args: &[&str], db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otscope")).args(args).args(FAST).arg("--db").arg(db).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

/// A library for the lab: banners `<Vendor> <Product> FW <version>` are protocol `labfw`, and a
/// Modbus device is named by its identification objects.
fn lab_library(dir: &Path, ports: &str) -> String {
    let lib = dir.join("fp");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("ports.toml"), format!("ports = [{ports}]\n")).unwrap();
    std::fs::write(
        lib.join("lab.toml"),
        r#"[[rule]]
id = "lab.fw"
protocol = "unknown"
when = [{ field = "banner", regex = '^(?P<vendor>[A-Za-z]+) (?P<product>\S+) FW (?P<v>\S+)' }]
set = { protocol = "labfw", ics = true, vendor = "{vendor}", product = "{product}", version = "{v}" }
[[rule.example]]
banner = 'Lab PLC FW 1\r\n'
expect = { protocol = "labfw", vendor = "Lab", product = "PLC", version = "1" }

[[rule]]
id = "lab.modbus"
protocol = "modbus"
when = [{ field = "vendor_name", present = true }]
set = { vendor = "{vendor_name}", product = "{product_code}", version = "{revision}" }
[[rule.example]]
fields = { vendor_name = "Acme", product_code = "X1", revision = "2" }
expect = { vendor = "Acme", product = "X1", version = "2" }
"#,
    )
    .unwrap();
    lib.display().to_string()
}

/// A Modbus/TCP device that serves the basic identification objects (function 43/14) on every unit.
async fn modbus_device(addr: &str, vendor: &'static str, product: &'static str, revision: &'static str) -> Responder {
    let device = modbus::Device {
        units: (0..=255).collect(),
        absent_units: vec![],
        identification: modbus::Identification::Serve {
            conformity: 0x01,
            objects: vec![(0, vendor), (1, product), (2, revision)],
            per_reply: 3,
        },
        holding_register: false,
        server_id: None,
        seen: None,
    };
    tcp_device(addr, move || device.handler()).await
}

/// Which of the devices were connected to since `before` was taken.
fn probed(devices: &[(&str, &Responder)], before: &[u64]) -> Vec<String> {
    devices
        .iter()
        .zip(before)
        .filter(|((_, r), b)| r.connections() > **b)
        .map(|((name, _), _)| name.to_string())
        .collect()
}

fn counts(devices: &[(&str, &Responder)]) -> Vec<u64> {
    devices.iter().map(|(_, r)| r.connections()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_selection_probes_exactly_its_devices_and_prints_them_by_enterprise() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let lib = lab_library(dir.path(), "\"2222\"");
    let (_l, ledger) = ledger(
        "E1,甲水厂,浦东新区,water,important,127.128.1.0/29,c\nE2,乙电厂,闵行区,energy,general,127.128.1.17,c\nE3,丙工厂,闵行区,manufacturing,important,127.128.1.33,c\nX,,,,exclude,127.128.1.6,\n",
    );
    let ledger = ledger.display().to_string();
    let r1 = banner_device("127.128.1.1:2222", Some(b"Lab PLC FW 1.0\r\n")).await;
    let r2 = banner_device("127.128.1.2:2222", Some(b"Lab RTU FW 2.0\r\n")).await;
    let r5 = banner_device("127.128.1.5:2222", Some(b"Acme HMI FW 3.0\r\n")).await;
    let r6 = banner_device("127.128.1.6:2222", Some(b"Lab PLC FW 9.9\r\n")).await;
    let r17 = banner_device("127.128.1.17:2222", Some(b"Lab PLC FW 4.0\r\n")).await;
    let r33 = banner_device("127.128.1.33:2222", Some(b"Lab GW FW 5.0\r\n")).await;
    let r100 = banner_device("127.128.1.100:2222", Some(b"Lab PLC FW 6.0\r\n")).await;
    let devices = [(".1", &r1), (".2", &r2), (".5", &r5), (".6", &r6), (".17", &r17), (".33", &r33), (".100", &r100)];
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--targets", &ledger, "--fingerprints", &lib];
        args.extend_from_slice(extra);
        let before = counts(&devices);
        let o = otscope(&args, &db);
        (o, probed(&devices, &before))
    };

    let (o, hit) = check(&["--enterprise", "E2"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(hit, [".17"]);
    assert_eq!(
        stdout(&o),
        "E2 乙电厂 (闵行区, general)
  ADDRESS                PROTOCOL  VENDOR  PRODUCT  VERSION  SEVERITY  CHANGE
  127.128.1.17:2222/tcp  labfw     Lab     PLC      4.0      high      new

summary: 1 open, 1 new, 0 changed, 0 gone, 0 persisting; recorded as scan 1
"
    );

    let (o, hit) = check(&["--district", "闵行区"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(hit, [".17", ".33"]);
    assert_eq!(
        stdout(&o),
        "E2 乙电厂 (闵行区, general)
  ADDRESS                PROTOCOL  VENDOR  PRODUCT  VERSION  SEVERITY  CHANGE
  127.128.1.17:2222/tcp  labfw     Lab     PLC      4.0      high      persisting

E3 丙工厂 (闵行区, important)
  ADDRESS                PROTOCOL  VENDOR  PRODUCT  VERSION  SEVERITY  CHANGE
  127.128.1.33:2222/tcp  labfw     Lab     GW       5.0      critical  new

summary: 2 open, 1 new, 0 changed, 0 gone, 1 persisting; recorded as scan 2
"
    );

    let (o, hit) = check(&["--level", "important"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(hit, [".1", ".2", ".5", ".33"]);
    assert_eq!(
        stdout(&o),
        "E1 甲水厂 (浦东新区, important)
  ADDRESS                PROTOCOL  VENDOR  PRODUCT  VERSION  SEVERITY  CHANGE
  127.128.1.1:2222/tcp   labfw     Lab     PLC      1.0      critical  new
  127.128.1.2:2222/tcp   labfw     Lab     RTU      2.0      critical  new
  127.128.1.5:2222/tcp   labfw     Acme    HMI      3.0      critical  new

E3 丙工厂 (闵行区, important)
  ADDRESS                PROTOCOL  VENDOR  PRODUCT  VERSION  SEVERITY  CHANGE
  127.128.1.33:2222/tcp  labfw     Lab     GW       5.0      critical  persisting

summary: 4 open, 3 new, 0 changed, 0 gone, 1 persisting; recorded as scan 3
"
    );

    // A block inside the scope and a single address, both given: only their devices, nothing new.
    let (o, hit) = check(&["--ip", "127.128.1.0/30", "--ip", "127.128.1.17"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(hit, [".1", ".2", ".17"]);
    assert_eq!(
        stdout(&o),
        "E1 甲水厂 (浦东新区, important)
  ADDRESS                PROTOCOL  VENDOR  PRODUCT  VERSION  SEVERITY  CHANGE
  127.128.1.1:2222/tcp   labfw     Lab     PLC      1.0      critical  persisting
  127.128.1.2:2222/tcp   labfw     Lab     RTU      2.0      critical  persisting

E2 乙电厂 (闵行区, general)
  ADDRESS                PROTOCOL  VENDOR  PRODUCT  VERSION  SEVERITY  CHANGE
  127.128.1.17:2222/tcp  labfw     Lab     PLC      4.0      high      persisting

summary: 3 open, 0 new, 0 changed, 0 gone, 3 persisting; recorded as scan 4
"
    );

    // Refusals name the address and probe nothing: excluded, unregistered, left out by the selection.
    let refusals: [(&[&str], &str); 3] = [
        (
            &["--ip", "127.128.1.0/29"],
            "ledger.csv:5: --ip 127.128.1.0/29: 127.128.1.6 is excluded by this line: it is never probed",
        ),
        (&["--ip", "127.128.1.100"], "--ip 127.128.1.100: 127.128.1.100 is not registered in the ledger"),
        (
            &["--ip", "127.128.1.17", "--level", "important"],
            "ledger.csv:3: --ip 127.128.1.17: 127.128.1.17 belongs to enterprise \"E2\" (闵行区, general), which the selection (--level) leaves out",
        ),
    ];
    for (args, message) in refusals {
        let (o, hit) = check(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(message), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("nothing was probed"), "{}", text(&o));
        assert_eq!(hit, Vec::<String>::new(), "{args:?}");
    }
    assert_eq!((r6.connections(), r100.connections()), (0, 0), "excluded and unregistered addresses are never probed");

    let o = Command::new(env!("CARGO_BIN_EXE_otscope")).args(["history", "--db"]).arg(&db).output().unwrap();
    let kinds: Vec<&str> = std::str::from_utf8(&o.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| if l.contains("  check  ") { "check" } else { l })
        .collect();
    assert_eq!(kinds, ["check"; 4], "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_says_whether_a_device_changed_since_the_last_scan() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let lib = lab_library(dir.path(), "\"2222\"");
    let (_l, ledger) = ledger("P1,丁水务,浦东新区,water,important,127.128.2.1-127.128.2.2,c\n");
    let ledger = ledger.display().to_string();
    let plc = banner_device("127.128.2.1:2222", Some(b"Lab PLC FW 1.0\r\n")).await;
    let rtu = banner_device("127.128.2.2:2222", Some(b"Lab RTU FW 2.0\r\n")).await;
    let out = dir.path().join("f.jsonl").display().to_string();
    let o = otscope(&["scan", "--targets", &ledger, "--fingerprints", &lib, "--out", &out], &db);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let check = ["check", "--targets", &ledger, "--fingerprints", &lib, "--enterprise", "P1"];
    let o = otscope(&check, &db);
    assert_eq!(o.status.code(), Some(0), "nothing changed since the scan: {}", text(&o));
    assert!(stdout(&o).ends_with("summary: 2 open, 0 new, 0 changed, 0 gone, 2 persisting; recorded as scan 2\n"));

    // The PLC's firmware changes and the RTU disappears.
    plc.stop().await;
    rtu.stop().await;
    let _plc = banner_device("127.128.2.1:2222", Some(b"Lab PLC FW 1.1\r\n")).await;
    let o = otscope(&check, &db);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "P1 丁水务 (浦东新区, important)
  ADDRESS               PROTOCOL  VENDOR  PRODUCT  VERSION  SEVERITY  CHANGE
  127.128.2.1:2222/tcp  labfw     Lab     PLC      1.1      critical  changed: version 1.0 -> 1.1
  127.128.2.2:2222/tcp  labfw     Lab     RTU      2.0      critical  gone

summary: 1 open, 0 new, 1 changed, 1 gone, 0 persisting; recorded as scan 3
"
    );
    let o = otscope(&check, &db);
    assert_eq!(o.status.code(), Some(0), "the change is now the last state: {}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_and_protocol_checks_probe_only_those_services() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let lib = lab_library(dir.path(), "\"2222\", \"502\"");
    let (_l, ledger) = ledger("V1,戊制造,闵行区,manufacturing,general,127.128.3.1-127.128.3.3,c\n");
    let ledger = ledger.display().to_string();
    let b1 = banner_device("127.128.3.1:2222", Some(b"Acme RTU FW 1.0\r\n")).await;
    let m1 = modbus_device("127.128.3.1:502", "Lab Systems", "LS-10", "3.2").await;
    let b2 = banner_device("127.128.3.2:2222", Some(b"Lab PLC FW 3.0\r\n")).await;
    let m2 = modbus_device("127.128.3.2:502", "ACME Industrial", "AC-500", "1.4").await;
    let b3 = banner_device("127.128.3.3:2222", Some(b"Other GW FW 1.0\r\n")).await;
    let m3 = modbus_device("127.128.3.3:502", "Other", "O-1", "9").await;
    let devices =
        [(".1:2222", &b1), (".1:502", &m1), (".2:2222", &b2), (".2:502", &m2), (".3:2222", &b3), (".3:502", &m3)];
    let out = dir.path().join("f.jsonl").display().to_string();
    let o = otscope(&["scan", "--targets", &ledger, "--fingerprints", &lib, "--out", &out], &db);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 6);
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--targets", &ledger, "--fingerprints", &lib];
        args.extend_from_slice(extra);
        let before = counts(&devices);
        let o = otscope(&args, &db);
        (o, probed(&devices, &before))
    };

    // Every service last identified as Acme (any case), on its own port only: one scan per port set.
    let (o, hit) = check(&["--vendor", "acme"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(hit, [".1:2222", ".2:502"]);
    assert_eq!(
        stdout(&o),
        "V1 戊制造 (闵行区, general)
  ADDRESS               PROTOCOL  VENDOR           PRODUCT  VERSION  SEVERITY  CHANGE
  127.128.3.1:2222/tcp  labfw     Acme             RTU      1.0      high      persisting
  127.128.3.2:502/tcp   modbus    ACME Industrial  AC-500   1.4      high      persisting

summary: 2 open, 0 new, 0 changed, 0 gone, 2 persisting; recorded as scan 2, 3
"
    );

    // The vendor within a narrower selection.
    let (o, hit) = check(&["--vendor", "ACME", "--ip", "127.128.3.2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(hit, [".2:502"]);
    assert!(
        text(&o).contains("not re-checked (outside the ledger's scope or the selection): 127.128.3.1:2222/tcp"),
        "{}",
        text(&o)
    );

    let (o, hit) = check(&["--protocol", "modbus"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(hit, [".1:502", ".2:502", ".3:502"]);
    assert_eq!(
        stdout(&o),
        "V1 戊制造 (闵行区, general)
  ADDRESS              PROTOCOL  VENDOR           PRODUCT  VERSION  SEVERITY  CHANGE
  127.128.3.1:502/tcp  modbus    Lab Systems      LS-10    3.2      high      persisting
  127.128.3.2:502/tcp  modbus    ACME Industrial  AC-500   1.4      high      persisting
  127.128.3.3:502/tcp  modbus    Other            O-1      9        high      persisting

summary: 3 open, 0 new, 0 changed, 0 gone, 3 persisting; recorded as scan 5
"
    );

    for (args, message) in [
        (["--vendor", "nosuch"], "--vendor \"nosuch\": no service in the history"),
        (["--protocol", "nosuch"], "--protocol \"nosuch\": no probe for this protocol"),
    ] {
        let (o, hit) = check(&args);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(message), "{}", text(&o));
        assert_eq!(hit, Vec::<String>::new());
    }
}
