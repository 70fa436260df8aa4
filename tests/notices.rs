//! The remediation loop end to end, against simulated devices on loopback whose identities match
//! CSAF documents written here: import, match, notices, claim, re-check, status, revision.
//!
//! Four vendors' version styles (Siemens `V2.9.4`, Rockwell `20.011`, Mitsubishi `1.05F`, Schneider
//! `SV3.2`), each with a device affected, one not affected and one undetermined.

mod common;

use common::csaf::csaf;
use common::*;
use otscope::pipeline::{self, Recording, RunOptions};
use otscope::scope::Selection;
use otscope::store::SqliteStore;
use otscope_lab::{enip, modbus, s7};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

const PORTS: &str = "102,502,44818";

const LEDGER: &str = "\
E1,East Works,East,power,important,127.140.1.1-127.140.1.6,c
E2,East Plastics,East,manufacturing,general,127.140.2.1-127.140.2.3,c
E3,West Water,West,water,important,127.140.3.1-127.140.3.3,c
";

fn siemens(with_1511: bool) -> Value {
    let mut products: Vec<(&str, &str, &str, &[&str])> =
        vec![("SIMATIC S7-1500 CPU 1516-3 PN/DP (6ES7516-3AN01-0AB0)", "vers:all/<V2.9.7", "S-1", &[])];
    if with_1511 {
        products.push(("SIMATIC S7-1500 CPU 1511-1 PN (6ES7511-1AK02-0AB0)", "< V3.X.17", "S-2", &[]));
    }
    csaf("TEST-SIEMENS-0001", "WHITE", "Siemens", &products, (9.8, "CRITICAL"), "Update to V2.9.7 or later version")
}

fn write_documents(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let rockwell = csaf(
        "TEST-ROCKWELL-0002",
        "GREEN",
        "Rockwell Automation ",
        &[
            ("ControlLogix 1756-L61", "<= 20.011", "R-1", &[]),
            ("ControlLogix 1756-L71", "<v36.011_v35.013_v34.014", "R-2", &[]),
        ],
        (7.5, "HIGH"),
        "Update the firmware to 20.013 or later.",
    );
    let mitsubishi = csaf(
        "TEST-MITSUBISHI-0003",
        "AMBER",
        "Mitsubishi Electric Corporation",
        &[("MELSEC iQ-F FX5U-32MR/ES", ">=1.00A|<1.05F", "M-1", &["FX5U-32MR/ES"])],
        (9.1, "CRITICAL"),
        "Update the firmware to 1.05F or later.",
    );
    let schneider = csaf(
        "TEST-SCHNEIDER-0004",
        "RED",
        "Schneider Electric",
        &[("Modicon M340 CPU (part numbers BMXP34*)", "< SV3.51", "SE-1", &[])],
        (7.5, "HIGH"),
        "Update to SV3.51.",
    );
    for (name, doc) in
        [("siemens", siemens(true)), ("rockwell", rockwell), ("mitsubishi", mitsubishi), ("schneider", schneider)]
    {
        std::fs::write(dir.join(format!("{name}.json")), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    }
}

fn s7_cpu(order: &str, firmware: [u8; 3], n: u32) -> s7::Cpu {
    s7::Cpu { order_number: order.into(), firmware, ..s7::Cpu::s7_1200(n) }
}

fn logix(name: &str, revision: [u8; 2], serial: u32) -> enip::Identity {
    enip::Identity { product_name: name.into(), revision, ..enip::Identity::controllogix(serial) }
}

fn modbus_device(vendor: &'static str, code: &'static str, revision: &'static str) -> modbus::Device {
    let objects = vec![(0, vendor), (1, code), (2, revision)];
    modbus::Device {
        identification: modbus::Identification::Serve { conformity: 0x81, objects, per_reply: 3 },
        server_id: None,
        ..modbus::Device::m340()
    }
}

async fn s7_at(ip: &str, cpu: s7::Cpu) -> Responder {
    tcp_device(&format!("{ip}:102"), move || cpu.handler()).await
}

async fn enip_at(ip: &str, identity: enip::Identity) -> Responder {
    tcp_device(&format!("{ip}:44818"), move || identity.handler()).await
}

async fn modbus_at(ip: &str, device: modbus::Device) -> Responder {
    tcp_device(&format!("{ip}:502"), move || device.handler()).await
}

/// Scans the ledger's objects and records the scan in the history at `db`.
async fn scan_into(ledger: &Path, db: &Path) {
    let scope = scope(ledger, PORTS, &Selection::default());
    let plan = pipeline::plan(&scope, &options()).await.unwrap();
    let store = SqliteStore::open(db).unwrap();
    let history = Some(Recording::New(Box::new(store), Box::new(plan.scan_start("scan"))));
    let report = pipeline::run(&plan, history, Vec::new(), RunOptions::default()).await.unwrap();
    assert!(report.complete() && report.history_error.is_none());
    assert_eq!(report.counts.open, 12, "every device is found");
}

async fn otscope(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let o = otscope_in_blocking(cwd, args).await;
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

/// Items by (ip, advisory): (id, state).
async fn items(cwd: &Path) -> BTreeMap<(String, String), (i64, String, Value)> {
    let (code, out, err) = otscope(cwd, &["notices", "status", "--all", "--format", "jsonl"]).await;
    assert_eq!(code, 0, "{err}");
    jsonl(&out)
        .into_iter()
        .map(|v| {
            let key = (v["ip"].as_str().unwrap().to_string(), v["advisory"].as_str().unwrap().to_string());
            (key, (v["item"].as_i64().unwrap(), v["state"].as_str().unwrap().to_string(), v))
        })
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn advisories_notices_claims_and_rechecks_on_simulated_devices() {
    let order_1516 = "6ES7 516-3AN01-0AB0";
    let siemens_affected = s7_at("127.140.1.1", s7_cpu(order_1516, [2, 9, 4], 1)).await;
    let _siemens_fixed = s7_at("127.140.1.2", s7_cpu(order_1516, [2, 9, 7], 2)).await;
    let _siemens_unknown = s7_at("127.140.1.3", s7_cpu("6ES7 511-1AK02-0AB0", [2, 9, 4], 3)).await;
    let _rockwell_affected = enip_at("127.140.1.4", logix("1756-L61/B LOGIX5561", [20, 11], 4)).await;
    let _rockwell_fixed = enip_at("127.140.1.5", logix("1756-L61/B LOGIX5561", [20, 13], 5)).await;
    let _rockwell_unknown = enip_at("127.140.1.6", logix("1756-L71/B LOGIX5571", [35, 11], 6)).await;
    let _mitsubishi_affected =
        modbus_at("127.140.2.1", modbus_device("Mitsubishi Electric", "FX5U-32MR/ES", "1.05E")).await;
    let _mitsubishi_fixed =
        modbus_at("127.140.2.2", modbus_device("Mitsubishi Electric", "FX5U-32MR/ES", "1.05F")).await;
    let mitsubishi_unknown =
        modbus_at("127.140.2.3", modbus_device("Mitsubishi Electric", "FX5U-32MR/ES", "1.05.1")).await;
    let _schneider_affected =
        modbus_at("127.140.3.1", modbus_device("Schneider Electric", "BMX P34 2020", "SV3.2")).await;
    let _schneider_fixed =
        modbus_at("127.140.3.2", modbus_device("Schneider Electric", "BMX P34 2020", "SV3.60")).await;
    let _schneider_unknown =
        modbus_at("127.140.3.3", modbus_device("Schneider Electric", "BMX P34 2020", "SV3.X")).await;

    let (dir, ledger) = common::ledger(LEDGER);
    let cwd = dir.path();
    let fingerprints = fingerprints_dir();
    let fingerprints = fingerprints.to_str().unwrap();
    let db = cwd.join("otscope.db");
    scan_into(&ledger, &db).await;

    // Import: four documents and one broken file, named with its JSON pointer; the others go in.
    let docs = cwd.join("advisories");
    write_documents(&docs);
    std::fs::write(docs.join("broken.json"), r#"{"document": {"category": 7}}"#).unwrap();
    let (code, out, err) = otscope(cwd, &["advisories", "import", "advisories", "--fingerprints", fingerprints]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("advisories/broken.json: /document/category: "), "{err}");
    assert!(out.contains("refused: advisories/broken.json"), "{out}");
    std::fs::remove_file(docs.join("broken.json")).unwrap();
    let (code, _, err) = otscope(cwd, &["advisories", "import", "advisories", "--fingerprints", fingerprints]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 new, 0 revised, 4 unchanged, 0 refused"), "importing again changes nothing: {err}");
    let (code, out, _) = otscope(cwd, &["advisories", "list"]).await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 5, "{out}");

    // Match: affected, not affected and undetermined for each vendor's version style.
    let (code, out, err) =
        otscope(cwd, &["advisories", "match", "--format", "jsonl", "--fingerprints", fingerprints]).await;
    assert_eq!(code, 3, "something is affected: {err}");
    let results = jsonl(&out);
    let keys: Vec<&str> = results[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "ip",
            "port",
            "transport",
            "enterprise_id",
            "enterprise",
            "district",
            "advisory",
            "cves",
            "cvss",
            "product",
            "version",
            "status",
            "reason",
            "remediation"
        ]
    );
    let status: BTreeMap<&str, (&str, &str)> = results
        .iter()
        .map(|r| (r["ip"].as_str().unwrap(), (r["status"].as_str().unwrap(), r["version"].as_str().unwrap())))
        .collect();
    let expected = [
        ("127.140.1.1", ("affected", "V2.9.4")),
        ("127.140.1.2", ("not_affected", "V2.9.7")),
        ("127.140.1.3", ("undetermined", "V2.9.4")),
        ("127.140.1.4", ("affected", "20.11")),
        ("127.140.1.5", ("not_affected", "20.13")),
        ("127.140.1.6", ("undetermined", "35.11")),
        ("127.140.2.1", ("affected", "1.05E")),
        ("127.140.2.2", ("not_affected", "1.05F")),
        ("127.140.2.3", ("undetermined", "1.05.1")),
        ("127.140.3.1", ("affected", "SV3.2")),
        ("127.140.3.2", ("not_affected", "SV3.60")),
        ("127.140.3.3", ("undetermined", "SV3.X")),
    ];
    assert_eq!(status, expected.into_iter().collect(), "{out}");
    assert_eq!(results.len(), 12, "one result per device: {out}");
    let siemens_hit = results.iter().find(|r| r["ip"] == "127.140.1.1").unwrap();
    assert_eq!(siemens_hit["advisory"], "TEST-SIEMENS-0001");
    assert_eq!(siemens_hit["cves"], json!(["CVE-2098-0001"]));
    assert_eq!(siemens_hit["cvss"], 9.8);
    assert_eq!(siemens_hit["remediation"], "Update to V2.9.7 or later version");
    assert_eq!(siemens_hit["enterprise_id"], "E1");

    // Notices: one per enterprise, one per district; TLP bounds who sees what; deadlines from [notices].
    std::fs::write(cwd.join("center.toml"), "[notices]\nprefix = \"SH-ICS\"\n[notices.important]\ncritical = 3\n")
        .unwrap();
    let (code, out, err) =
        otscope(cwd, &["notices", "issue", "--out", "out1", "--config", "center.toml", "--fingerprints", fingerprints])
            .await;
    assert_eq!(code, 0, "{err}");
    // The STIX export links the affected services to their vulnerabilities.
    let (stix_code, _, stix_err) = otscope(cwd, &["export", "--format", "stix", "--out", "stix"]).await;
    assert_eq!(stix_code, 0, "{stix_err}");
    let bundle: Value = serde_json::from_str(&read(&cwd.join("stix/bundle.json"))).unwrap();
    let objects = bundle["objects"].as_array().unwrap();
    let cves: Vec<&str> =
        objects.iter().filter(|o| o["type"] == "vulnerability").filter_map(|o| o["name"].as_str()).collect();
    assert!(cves.contains(&"CVE-2098-0001"), "{cves:?}");
    assert!(objects.iter().any(|o| o["type"] == "relationship" && o["relationship_type"] == "has"), "{cves:?}");
    let numbers: Vec<&str> = out.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(numbers.len(), 3, "E1, E2 and the East district; E3's only advisory is TLP:RED: {out}{err}");
    assert!(numbers.iter().all(|n| n.starts_with("SH-ICS-")), "{out}");
    assert!(err.contains("TEST-SCHNEIDER-0004, TLP:RED) stays in the center"), "{err}");
    let (e1, e2, east) = (numbers[0], numbers[1], numbers[2]);
    assert!(out.lines().next().unwrap().contains("enterprise  E1 East Works  4 item(s)"), "{out}");
    assert!(out.lines().nth(2).unwrap().contains("district  East East  4 item(s)"), "AMBER stays out: {out}");
    let out1 = cwd.join("out1");
    let e1_md = read(&out1.join(format!("{e1}.md")));
    for text in [
        "TEST-SIEMENS-0001",
        "TEST-ROCKWELL-0002",
        "CVE-2098-0001",
        "9.8",
        "127.140.1.1:102/tcp",
        "V2.9.4",
        "Update to V2.9.7",
    ] {
        assert!(e1_md.contains(text), "{text} missing from {e1_md}");
    }
    assert!(e1_md.contains("Restrict access"), "mitigations are carried: {e1_md}");
    assert!(e1_md.contains("order number: 6es7516-3an01-0ab0"), "the evidence: {e1_md}");
    let e2_md = read(&out1.join(format!("{e2}.md")));
    assert!(e2_md.contains("TEST-MITSUBISHI-0003") && e2_md.contains("TLP:AMBER"), "{e2_md}");
    let east_html = read(&out1.join(format!("{east}.html")));
    assert!(east_html.contains(e1) && east_html.contains(e2), "the district notice lists its enterprises' notices");
    assert!(!east_html.contains("MITSUBISHI"), "TLP:AMBER never goes to the district");
    assert!(!east_html.contains("<script") && !east_html.contains("<link") && !east_html.contains(" src="));
    let csv = std::fs::read(out1.join("notices-East.csv")).unwrap();
    assert!(csv.starts_with("\u{feff}".as_bytes()));
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.contains("TEST-ROCKWELL-0002") && !csv.contains("MITSUBISHI"), "{csv}");
    let everything: String = std::fs::read_dir(&out1).unwrap().map(|f| read(&f.unwrap().path())).collect();
    assert!(!everything.contains("SCHNEIDER"), "TLP:RED never leaves the center");

    // The scan report and an event's report list the open notices of their objects.
    let (code, _, err) = otscope(cwd, &["report", "--out", "report.html"]).await;
    assert_eq!(code, 0, "{err}");
    let report = read(&cwd.join("report.html"));
    assert!(report.contains("Open warning notices") && report.contains(e1) && report.contains(east), "{err}");
    let mut start = vec!["event", "start", "expo", "--targets", ledger.to_str().unwrap(), "--enterprise", "E2"];
    start.extend(["--fingerprints", fingerprints, "--ports", PORTS]);
    start.extend(FAST);
    let (code, out, err) = otscope(cwd, &start).await;
    assert_eq!(code, 0, "{out}{err}");
    let (_, _, err) = otscope(cwd, &["event", "report", "expo", "--out", "event.md"]).await;
    let event = read(&cwd.join("event.md"));
    assert!(event.contains("Open warning notices") && event.contains(e2) && !event.contains(e1), "{err}{event}");

    let items1 = items(cwd).await;
    let item = |ip: &str, adv: &str| items1[&(ip.to_string(), adv.to_string())].clone();
    let (siemens_item, state, detail) = item("127.140.1.1", "TEST-SIEMENS-0001");
    assert_eq!(state, "notified");
    assert_eq!(detail["notice"], e1);
    let deadline_days = {
        let d = |s: &str| jiff::civil::Date::strptime("%Y-%m-%d", &s[..10]).unwrap();
        let first = detail["transitions"][0]["at"].as_str().unwrap();
        (d(detail["deadline"].as_str().unwrap()) - d(first)).get_days()
    };
    assert_eq!(deadline_days, 3, "important x critical from center.toml: {detail}");
    let (rockwell_item, _, _) = item("127.140.1.4", "TEST-ROCKWELL-0002");
    let (mitsubishi_item, _, _) = item("127.140.2.1", "TEST-MITSUBISHI-0003");
    let (mitsubishi_unknown_item, state, _) = item("127.140.2.3", "TEST-MITSUBISHI-0003");
    assert_eq!(state, "notified", "undetermined with the product found is notified");
    assert_eq!(item("127.140.3.1", "TEST-SCHNEIDER-0004").1, "open", "TLP:RED: never notified");
    assert!(!items1.contains_key(&("127.140.1.2".into(), "TEST-SIEMENS-0001".into())), "not affected: no item");

    // Issuing again duplicates nothing.
    let (code, out, err) = otscope(cwd, &["notices", "issue", "--out", "out2", "--fingerprints", fingerprints]).await;
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("nothing to notify"), "{err}");

    // Claims: Siemens updates its firmware, Rockwell does not; the Mitsubishi service is excluded from
    // the re-check, so its claim stays as it is.
    for (id, by) in [(siemens_item, "Zhang"), (rockwell_item, "Li"), (mitsubishi_item, "Wang")] {
        let (code, out, err) =
            otscope(cwd, &["notices", "claim", &id.to_string(), "--by", by, "--note", "firmware updated"]).await;
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, _, err) = otscope(cwd, &["notices", "claim", &siemens_item.to_string(), "--by", "Zhang"]).await;
    assert_eq!(code, 2, "a claimed item cannot be claimed again: {err}");
    siemens_affected.stop().await;
    let _siemens_updated = s7_at("127.140.1.1", s7_cpu(order_1516, [2, 9, 8], 1)).await;
    std::fs::write(cwd.join("exclude.txt"), "127.140.2.1\n").unwrap();
    let ledger_arg = ledger.to_str().unwrap();
    let mut verify =
        vec!["notices", "verify", "--targets", ledger_arg, "--fingerprints", fingerprints, "--exclude", "exclude.txt"];
    verify.extend(FAST);
    let (code, out, err) = otscope(cwd, &verify).await;
    assert_eq!(code, 3, "an item was reopened: {out}{err}");
    assert!(out.contains(&format!("item {siemens_item} verified: re-check scan")), "{out}");
    assert!(out.contains("\"V2.9.8\" is outside the range"), "{out}");
    assert!(out.contains(&format!("item {rockwell_item} reopened: re-check scan")), "{out}");
    assert!(out.contains(&format!("item {mitsubishi_item} unchanged: outside the ledger's scope")), "{out}");

    let items2 = items(cwd).await;
    let get = |ip: &str, adv: &str| items2[&(ip.to_string(), adv.to_string())].clone();
    let (_, state, detail) = get("127.140.1.1", "TEST-SIEMENS-0001");
    assert_eq!(state, "verified");
    let moves: Vec<(&str, &str)> = detail["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["to"].as_str().unwrap(), t["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(moves, [("open", "otscope"), ("notified", "otscope"), ("claimed", "Zhang"), ("verified", "otscope")]);
    assert_eq!(get("127.140.1.4", "TEST-ROCKWELL-0002").1, "reopened");
    assert_eq!(get("127.140.2.1", "TEST-MITSUBISHI-0003").1, "claimed", "not covered changes nothing");

    // A claimed service that no longer answers is verified (gone); the one still affected is reopened.
    let (code, _, err) = otscope(cwd, &["notices", "claim", east, "--by", "Wang"]).await;
    assert_eq!(code, 2, "a district notice is not claimed: {err}");
    assert!(err.contains("is a district notice"), "{err}");
    // By the enterprise's notice: of its items, those still to claim.
    let (code, out, err) = otscope(cwd, &["notices", "claim", e2, "--by", "Wang"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "the other item of the notice is already claimed: {out}");
    assert!(out.starts_with(&format!("item {mitsubishi_unknown_item} claimed by Wang")), "{out}");
    mitsubishi_unknown.stop().await;
    let mut verify =
        vec!["notices", "verify", "--targets", ledger_arg, "--fingerprints", fingerprints, "--enterprise", "E2"];
    verify.extend(FAST);
    let (code, out, err) = otscope(cwd, &verify).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains(&format!("item {mitsubishi_unknown_item} verified: re-check scan")), "{out}");
    assert!(out.contains("no longer answers (gone)"), "{out}");
    assert!(out.contains(&format!("item {mitsubishi_item} reopened")), "{out}");

    // The reopened items are notified again with a new deadline, in Chinese this time.
    let (code, out, err) =
        otscope(cwd, &["notices", "issue", "--out", "out3", "--lang", "zh", "--fingerprints", fingerprints]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3, "E1 (Rockwell), E2 (Mitsubishi) and East: {out}");
    let csv = read(&cwd.join("out3/notices-East.csv"));
    assert!(csv.starts_with("\u{feff}通知编号,企业编号,企业名称"), "{csv}");
    assert!(csv.contains("TEST-ROCKWELL-0002") && !csv.contains("SIEMENS"), "{csv}");
    let number = out.lines().next().unwrap().split_whitespace().next().unwrap();
    assert!(read(&cwd.join(format!("out3/{number}.md"))).contains("再次通知"), "marked as notified again");

    // An exception takes an item out of the notices.
    let (code, _, err) = otscope(
        cwd,
        &["notices", "except", &rockwell_item.to_string(), "--reason", "isolated network", "--until", "2099-01-01"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = otscope(cwd, &["notices", "status"]).await;
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.contains("excepted") && l.contains("until 2099-01-01")), "{out}");

    // A revised advisory that no longer lists the CPU 1511 closes its item.
    std::fs::write(docs.join("siemens.json"), serde_json::to_vec(&siemens(false)).unwrap()).unwrap();
    let (code, _, err) =
        otscope(cwd, &["advisories", "import", "advisories/siemens.json", "--fingerprints", fingerprints]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("TEST-SIEMENS-0001: revised"), "{err}");
    let items3 = items(cwd).await;
    let (_, state, detail) = items3[&("127.140.1.3".to_string(), "TEST-SIEMENS-0001".to_string())].clone();
    assert_eq!(state, "closed");
    assert_eq!(detail["transitions"].as_array().unwrap().last().unwrap()["reason"], "advisory revised");
}

/// A daemon profile with `notices` keys runs the loop after each complete scan: it issues the
/// notices of what its scan found affected, and re-checks a claimed item within its own scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daemon_profile_issues_notices_and_verifies_claims_after_its_scan() {
    use otscope::daemon::{run_profile, Job};
    use otscope::store::{AdvisoryStore, ItemState};
    use tokio_util::sync::CancellationToken;

    let order = "6ES7 516-3AN01-0AB0";
    let cpu = s7_at("127.140.4.1", s7_cpu(order, [2, 9, 4], 9)).await;
    let (dir, _ledger) = common::ledger("E9,North Grid,North,power,important,127.140.4.1,c\n");
    let cwd = dir.path();
    let path = cwd.join("otscope.toml");
    let config = format!(
        "[profile.p]\ntargets = \"ledger.csv\"\nfingerprints = {:?}\nports = \"102\"\ndiscovery = \"connect\"\nrate = 0\n\
         host-interval = \"0ms\"\nconnect-timeout = \"500ms\"\nread-timeout = \"500ms\"\nbanner-wait = \"300ms\"\nquiet = true\n\
         [profile.p.notices]\nverify = true\nissue = true\nout = \"notices-out\"\nlang = \"zh\"\n",
        fingerprints_dir().display().to_string()
    );
    std::fs::write(&path, config).unwrap();
    let config = otscope::config::load(&path).unwrap();
    let job = Job {
        config: path.clone(),
        db: config.db.clone(),
        profile: config.profiles["p"].clone(),
        notices: config.notices.clone(),
    };
    let outcome = run_profile(&job, CancellationToken::new()).await.unwrap();
    assert!(outcome.completed && outcome.found == 1, "{outcome:?}");
    assert!(!cwd.join("notices-out").exists(), "no advisory yet: nothing to notify");

    let docs = cwd.join("advisories");
    write_documents(&docs);
    let vendors = otscope::advisories::Vendors::load(&fingerprints_dir()).unwrap();
    let mut store = SqliteStore::open(&job.db).unwrap();
    let now = pipeline::now_rfc3339();
    let imported = otscope::notices::import(&mut store, &[docs.join("siemens.json")], &vendors, &now).unwrap();
    assert_eq!((imported.new.len(), imported.refresh.opened), (1, 1));
    drop(store);

    run_profile(&job, CancellationToken::new()).await.unwrap();
    let files: Vec<String> = std::fs::read_dir(cwd.join("notices-out"))
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 5, "two notices (Markdown and HTML) and the district's CSV: {files:?}");
    let mut store = SqliteStore::open(&job.db).unwrap();
    let item = store.items().unwrap().remove(0);
    assert_eq!(item.state, ItemState::Notified);
    let id = item.id.unwrap().to_string();
    otscope::notices::claim(&mut store, &id, "Zhao", "updated to V2.9.8", &pipeline::now_rfc3339()).unwrap();
    drop(store);

    cpu.stop().await;
    let _updated = s7_at("127.140.4.1", s7_cpu(order, [2, 9, 8], 9)).await;
    run_profile(&job, CancellationToken::new()).await.unwrap();
    let store = SqliteStore::open(&job.db).unwrap();
    let status = otscope::notices::status(&store, &pipeline::now_rfc3339()).unwrap();
    assert_eq!(status[0].item.state, ItemState::Verified, "{:?}", status[0].transitions);
    let last = status[0].transitions.last().unwrap();
    assert_eq!(last.actor, "otscope daemon (p)");
    assert!(last.reason.contains("\"V2.9.8\" is outside the range"), "{}", last.reason);
}
