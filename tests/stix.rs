//! The STIX 2.1 export: two scans of a loopback lab that changes in between, exported as one bundle
//! and per district. Every bundle passes the OASIS stix2-validator (PyPI, pinned in
//! tests/servers/requirements.txt) with references enforced and no warning but UUIDv5 ids; ids are stable; an
//! unchanged object keeps its `modified`, a changed one gets a later one; exporting a scan again
//! writes the same bytes.

mod common;

use common::{banner_device, ledger, otscope_in_blocking, output_text, FAST};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

async fn otscope(dir: &Path, args: &[&str]) -> String {
    let o = otscope_in_blocking(dir, args).await;
    assert!(o.status.success(), "{args:?}: {}", output_text(&o));
    String::from_utf8(o.stdout).unwrap()
}

async fn scan(dir: &Path) {
    let mut args = vec!["scan", "--targets", "ledger.csv", "--fingerprints", "fp", "--db", "h.db", "--out", "f.jsonl"];
    args.extend(FAST);
    otscope(dir, &args).await;
}

/// Exports a scan as STIX into `out` and returns the files written.
async fn export(dir: &Path, scan: &str, by_district: bool, out: &str) -> Vec<PathBuf> {
    let mut args = vec!["export", "--format", "stix", "--scan", scan, "--db", "h.db", "--out", out];
    if by_district {
        args.extend(["--by", "district"]);
    }
    otscope(dir, &args).await.lines().map(|l| dir.join(l)).collect()
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The objects of a bundle by id.
fn objects(bundle: &Value) -> BTreeMap<String, Value> {
    bundle["objects"].as_array().unwrap().iter().map(|o| (o["id"].as_str().unwrap().to_string(), o.clone())).collect()
}

/// One of otscope's properties, from its property extension.
fn otscope_property<'a>(object: &'a Value, key: &str) -> &'a Value {
    let extensions = object["extensions"].as_object().unwrap();
    let (id, ours) = extensions.iter().find(|(_, e)| e["extension_type"] == "property-extension").unwrap();
    assert!(id.starts_with("extension-definition--"));
    &ours[key]
}

fn of_type<'a>(objects: &'a BTreeMap<String, Value>, kind: &str) -> Vec<&'a Value> {
    objects.values().filter(|o| o["type"] == kind).collect()
}

/// Runs the OASIS validator on every file: (file, valid, errors, warnings).
const VALIDATE: &str = r#"
import json, sys
from stix2validator import validate_file, ValidationOptions
options = ValidationOptions(version="2.1", enforce_refs=True)
out = []
for path in sys.argv[1:]:
    r = validate_file(path, options)
    objects = r.object_results or []
    out.append({
        "file": path,
        "valid": r.is_valid,
        "errors": [str(e) for o in objects for e in (o.errors or [])] + ([str(r.fatal)] if r.fatal else []),
        "warnings": [str(w) for o in objects for w in (o.warnings or [])],
    })
print(json.dumps(out))
"#;

fn validate(python: &Path, files: &[PathBuf]) {
    let out = std::process::Command::new(python).arg("-c").arg(VALIDATE).args(files).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), files.len());
    for r in results {
        assert_eq!(r["valid"], true, "{r:#}");
        // The one warning allowed: ids are UUIDv5 of stable keys (so re-exports update objects), where
        // the spec recommends (SHOULD) UUIDv4 for domain and relationship objects.
        let warnings = r["warnings"].as_array().unwrap();
        assert!(warnings.iter().all(|w| w.as_str().unwrap().contains("{103} Given ID value")), "{r:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stix_bundles_validate_and_version_objects_by_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::firmware_library(d);
    let (_l, ledger_file) = ledger(
        "P1,浦东一厂,浦东新区,水务,important,127.141.0.1-127.141.0.2,c\nM1,闵行化工,闵行区,精细化工,general,127.141.1.1,c\n",
    );
    std::fs::copy(&ledger_file, d.join("ledger.csv")).unwrap();
    let _a = banner_device("127.141.0.1:2222", Some(b"FW 1.0\r\n")).await;
    let b = banner_device("127.141.0.2:2222", Some(b"FW 2.0\r\n")).await;
    let _m = banner_device("127.141.1.1:2222", Some(b"FW 3.0\r\n")).await;
    scan(d).await;
    let first = export(d, "1", false, "one").await;
    let first_by_district = export(d, "1", true, "one-by-district").await;

    // Between the scans b's firmware changes, and the ledger gives M1 another sector.
    let text = std::fs::read_to_string(d.join("ledger.csv")).unwrap();
    std::fs::write(d.join("ledger.csv"), text.replace(",精细化工,", ",化工,")).unwrap();
    b.stop().await;
    let _b = banner_device("127.141.0.2:2222", Some(b"FW 2.1\r\n")).await;
    scan(d).await;
    let second = export(d, "2", false, "two").await;
    let second_by_district = export(d, "2", true, "two-by-district").await;
    let again = export(d, "1", false, "one-again").await;

    assert_eq!(first, [d.join("one/bundle.json")]);
    let names = |files: &[PathBuf]| -> Vec<String> {
        files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(names(&first_by_district), ["浦东新区.json", "闵行区.json"]);
    assert_eq!(names(&second_by_district), ["浦东新区.json", "闵行区.json"]);
    assert_eq!(std::fs::read(&first[0]).unwrap(), std::fs::read(&again[0]).unwrap(), "a re-export is byte for byte");

    let one = objects(&read(&first[0]));
    let two = objects(&read(&second[0]));
    // What the bundle holds: the center and two enterprises, three services each with its addresses,
    // software, observation and relationships, and the report of the scan.
    let identities: Vec<&str> = of_type(&two, "identity").iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(identities.len(), 3, "{identities:?}");
    assert!(identities.contains(&"浦东一厂") && identities.contains(&"闵行化工"), "{identities:?}");
    let pudong = of_type(&two, "identity").into_iter().find(|o| o["name"] == "浦东一厂").unwrap();
    assert_eq!(otscope_property(pudong, "district"), "浦东新区");
    assert_eq!(otscope_property(pudong, "level"), "important");
    // Sectors: the ledger's word, and STIX's industry-sector-ov entry where the word names one.
    assert_eq!(pudong["sectors"], serde_json::json!(["water"]));
    assert_eq!(otscope_property(pudong, "sector"), "水务");
    let minhang = |objects: &BTreeMap<String, Value>| -> Value {
        of_type(objects, "identity").into_iter().find(|o| o["name"] == "闵行化工").unwrap().clone()
    };
    let (before, after) = (minhang(&one), minhang(&two));
    assert!(before.get("sectors").is_none(), "精细化工 names no entry of the vocabulary without doubt: {before:#}");
    assert_eq!(otscope_property(&before, "sector"), "精细化工");
    assert_eq!(after["sectors"], serde_json::json!(["chemical"]));
    assert_eq!(otscope_property(&after, "sector"), "化工");
    assert_eq!((&after["id"], &after["created"]), (&before["id"], &before["created"]));
    assert!(after["modified"].as_str() > before["modified"].as_str(), "a new sector is a new version: {after:#}");
    // The history keeps a ledger row again only when it changed: P1 once, M1 twice.
    let store = otscope::store::SqliteStore::open(&d.join("h.db")).unwrap();
    let rows: Vec<(i64, String, String)> = otscope::store::Store::owners(&store)
        .unwrap()
        .into_iter()
        .map(|(scan, o)| (scan, o.enterprise_id, o.sector))
        .collect();
    assert_eq!(
        rows,
        [(1, "M1".into(), "精细化工".into()), (1, "P1".into(), "水务".into()), (2, "M1".into(), "化工".into())]
    );
    drop(store);
    assert_eq!(of_type(&two, "infrastructure").len(), 3);
    let addresses: Vec<&str> = of_type(&two, "ipv4-addr").iter().map(|o| o["value"].as_str().unwrap()).collect();
    let mut addresses = addresses;
    addresses.sort();
    assert_eq!(addresses, ["127.141.0.1", "127.141.0.2", "127.141.1.1"]);
    let versions: Vec<&str> = of_type(&two, "software").iter().map(|o| o["version"].as_str().unwrap()).collect();
    let mut sorted = versions.clone();
    sorted.sort();
    assert_eq!(sorted, ["1.0", "2.1", "3.0"]);
    assert!(of_type(&two, "software").iter().all(|o| o["vendor"] == "Lab" && o["name"] == "Gadget"));
    assert_eq!(of_type(&two, "observed-data").len(), 3);
    assert!(of_type(&two, "vulnerability").is_empty(), "no advisory matched, so no vulnerability");
    let reports = of_type(&two, "report");
    assert_eq!(reports.len(), 1);
    let refs = reports[0]["object_refs"].as_array().unwrap();
    assert_eq!(refs.len(), two.len() - 2, "the report wraps everything but itself and the extension definition");

    // Versioning: unchanged objects keep id, created and modified; the changed service's software is a
    // new observable; its observation, like every observation, is a newer version of the same object.
    for (id, o) in &one {
        match (o["type"].as_str().unwrap(), two.get(id)) {
            ("report", None) => {}
            ("observed-data", Some(later)) => {
                assert_eq!(later["created"], o["created"]);
                assert!(later["modified"].as_str() > o["modified"].as_str(), "{later:#}");
                assert_eq!(later["number_observed"], 2);
                assert_eq!(later["first_observed"], o["first_observed"]);
            }
            ("software", None) => assert_eq!(o["version"], "2.0", "only b's software changed"),
            ("relationship", None) => assert_eq!(o["relationship_type"], "consists-of", "{o:#}"),
            ("identity", Some(later)) if o["name"] == "闵行化工" => assert_ne!(later, o, "its sector changed"),
            (_, Some(later)) => assert_eq!(later, o, "an unchanged object is the same version"),
            (kind, None) => panic!("{kind} {id} of scan 1 is missing from scan 2"),
        }
    }
    let infrastructure = of_type(&one, "infrastructure");
    assert!(infrastructure.iter().all(|o| o["created"] == o["modified"]));

    // Per district: each file holds its own enterprises and services only; together they hold every
    // service of the single bundle, with the same versions.
    for file in &second_by_district {
        let part = objects(&read(file));
        let district = file.file_stem().unwrap().to_string_lossy().into_owned();
        for identity in of_type(&part, "identity") {
            let role = otscope_property(identity, "role");
            assert!(role == "center" || otscope_property(identity, "district") == district.as_str(), "{identity:#}");
        }
        for (id, o) in &part {
            if o["type"] != "report" {
                assert_eq!(Some(o), two.get(id), "{district}: {id} is the version of the single bundle");
            }
        }
    }
    let services: usize = second_by_district.iter().map(|f| of_type(&objects(&read(f)), "infrastructure").len()).sum();
    assert_eq!(services, 3);

    // With advisory matches (as `advisories match` gives them): a vulnerability per CVE, linked by `has`
    // from the affected service's infrastructure and marked with the advisory's TLP; TLP:RED never leaves.
    let with_matches = matched_bundles(d);

    let Some(python) = common::servers_python("stix2validator") else { return };
    let every: Vec<PathBuf> = [first, first_by_district, second, second_by_district, with_matches].concat();
    validate(&python, &every);
}

fn matched_bundles(d: &Path) -> Vec<PathBuf> {
    use otscope::advisories::Tlp;
    use otscope::export::stix::{AdvisoryMatch, FromStore};
    let store = otscope::store::SqliteStore::open(&d.join("h.db")).unwrap();
    let from_store = FromStore::read(&store, 2).unwrap();
    let affected = |advisory: &str, ip: &str, cves: &[&str], tlp: Tlp| AdvisoryMatch {
        ip: ip.parse().unwrap(),
        port: 2222,
        transport: "tcp".into(),
        advisory: advisory.into(),
        cves: cves.iter().map(|c| c.to_string()).collect(),
        tlp,
        released: "2026-10-01T00:00:00Z".into(),
        since: "2026-11-01T08:00:00Z".into(),
    };
    let matches = [
        affected("ICSA-26-001-01", "127.141.0.1", &["CVE-2026-0001", "CVE-2026-0002"], Tlp::White),
        affected("ICSA-26-002-01", "127.141.0.2", &["CVE-2026-0001"], Tlp::Amber),
        affected("PRIVATE-1", "127.141.1.1", &["CVE-2026-0099"], Tlp::Red),
        // A service the scan did not see is left out.
        affected("ICSA-26-003-01", "127.141.9.9", &["CVE-2026-0003"], Tlp::White),
    ];
    let out = d.join("matched");
    let written = otscope::export::stix::write(&from_store.input(&matches), &out, false).unwrap();
    let all = objects(&read(&written.files[0]));
    let names: Vec<&str> = of_type(&all, "vulnerability").iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"CVE-2026-0001") && names.contains(&"CVE-2026-0002"), "{names:?}");
    let has: Vec<&Value> =
        of_type(&all, "relationship").into_iter().filter(|r| r["relationship_type"] == "has").collect();
    assert_eq!(has.len(), 3);
    for r in &has {
        assert_eq!(all[r["source_ref"].as_str().unwrap()]["type"], "infrastructure");
        assert_eq!(all[r["target_ref"].as_str().unwrap()]["type"], "vulnerability");
    }
    let amber = has.iter().find(|r| r["description"].as_str().unwrap().contains("ICSA-26-002-01")).unwrap();
    let marking = &all[amber["object_marking_refs"][0].as_str().unwrap()];
    assert_eq!(marking["definition"]["tlp"], "amber");
    let text = std::fs::read_to_string(&written.files[0]).unwrap();
    assert!(!text.contains("PRIVATE-1") && !text.contains("CVE-2026-0099") && !text.contains("CVE-2026-0003"));
    written.files
}

const WRITABLE: &str = "365fed99-08fa-fdcd-a1b3-fb247eb41d01";
const READ_ONLY: &str = "472c94ae-3113-4e3e-a4dd-a9f4ac7471d4";
/// A collection that already holds a version of one object without listing it in its manifest (as
/// after a concurrent push): the server refuses that object when it is sent again.
const HOLDING: &str = "52892447-4d7e-4f70-b94d-d7f22742ff63";

/// The OASIS TAXII 2.1 server medallion on loopback, with its memory backend.
struct Medallion {
    child: std::process::Child,
    root: String,
}

impl Drop for Medallion {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn medallion(python: &Path, dir: &Path, held: &Value) -> Medallion {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let root = format!("http://127.0.0.1:{port}/api1/");
    let collection = |id: &str, title: &str, can_write: bool, objects: Value| {
        serde_json::json!({"id": id, "title": title, "can_read": true, "can_write": can_write,
            "media_types": ["application/stix+json;version=2.1"], "objects": objects, "manifest": []})
    };
    let data = serde_json::json!({
        "/discovery": {"title": "otscope test", "default": root, "api_roots": [root]},
        "api1": {
            "information": {"title": "api1", "versions": ["application/taxii+json;version=2.1"], "max_content_length": 10485760},
            "status": [],
            "collections": [
                collection(WRITABLE, "exposures", true, serde_json::json!([])),
                collection(READ_ONLY, "read only", false, serde_json::json!([])),
                collection(HOLDING, "holding", true, serde_json::json!([held])),
            ],
        },
    });
    std::fs::write(dir.join("data.json"), data.to_string()).unwrap();
    let config = serde_json::json!({
        "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend", "filename": dir.join("data.json")},
        "users": {"otscope": "s3cret"},
        // A small page size, so the manifest is read over several pages.
        "taxii": {"max_page_size": 7},
    });
    std::fs::write(dir.join("medallion.json"), config.to_string()).unwrap();
    let child = std::process::Command::new(python)
        .args(["-m", "medallion.scripts.run", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg(dir.join("medallion.json"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("medallion.log")).unwrap())
        .spawn()
        .unwrap();
    let server = Medallion { child, root };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("medallion did not listen: {}", std::fs::read_to_string(dir.join("medallion.log")).unwrap_or_default());
}

/// Every (id, version) the collection's manifest lists, page by page.
fn manifest(root: &str, collection: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..100 {
        let mut url = format!("{root}collections/{collection}/manifest/?match[version]=all&limit=1000");
        if let Some(n) = &next {
            url.push_str(&format!("&next={n}"));
        }
        let body = ureq::get(&url)
            .header("Accept", "application/taxii+json;version=2.1")
            .header("Authorization", "Basic b3RzY29wZTpzM2NyZXQ=")
            .call()
            .unwrap()
            .body_mut()
            .read_to_vec()
            .unwrap();
        let page: Value = serde_json::from_slice(&body).unwrap();
        for r in page["objects"].as_array().into_iter().flatten() {
            out.push((r["id"].as_str().unwrap().to_string(), r["version"].as_str().unwrap().to_string()));
        }
        match page["next"].as_str() {
            Some(n) if page["more"] == true => next = Some(n.to_string()),
            _ => return out,
        }
    }
    panic!("more than 100 manifest pages");
}

async fn push(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_otscope"));
    command.args(["exchange", "push"]).args(args).current_dir(dir).env_remove("OTSCOPE_TAXII_USER");
    command.env_remove("OTSCOPE_TAXII_PASSWORD").env_remove("OTSCOPE_TAXII_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    tokio::task::spawn_blocking(move || common::output_within(command, std::time::Duration::from_secs(60)))
        .await
        .unwrap()
}

/// (id, version) of a bundle's objects; an observable's version is None.
fn versions(bundle: &Value) -> std::collections::BTreeSet<(String, Option<String>)> {
    let instant = |t: &str| t.parse::<jiff::Timestamp>().unwrap().to_string();
    objects(bundle)
        .into_values()
        .map(|o| {
            let v = o.get("modified").or(o.get("created")).map(|t| instant(t.as_str().unwrap()));
            (o["id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taxii_push_sends_only_what_the_collection_lacks_and_names_refused_objects() {
    let Some(python) = common::servers_python("medallion") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::firmware_library(d);
    let (_l, ledger_file) =
        ledger("P1,浦东一厂,浦东新区,water,important,127.141.2.1-127.141.2.2,c\nM1,闵行化工,闵行区,chemical,general,127.141.3.1,c\n");
    std::fs::copy(&ledger_file, d.join("ledger.csv")).unwrap();
    let _a = banner_device("127.141.2.1:2222", Some(b"FW 1.0\r\n")).await;
    let b = banner_device("127.141.2.2:2222", Some(b"FW 2.0\r\n")).await;
    let _m = banner_device("127.141.3.1:2222", Some(b"FW 3.0\r\n")).await;
    scan(d).await;
    let first = export(d, "1", true, "one").await;
    let first_objects: std::collections::BTreeSet<_> = first.iter().flat_map(|f| versions(&read(f))).collect();
    let center = objects(&read(&first[0]))
        .into_values()
        .find(|o| o["type"] == "identity" && o["name"].as_str().unwrap().contains("center"))
        .unwrap();
    let server = medallion(&python, d, &center);
    std::fs::write(d.join("taxii.cred"), "otscope:s3cret\n").unwrap();
    let writable = ["--taxii", &server.root, "--collection", WRITABLE, "--credentials", "taxii.cred"];

    // The first push sends everything, over several manifest pages; the same export again sends nothing.
    let o = push(d, &[&writable[..], &["one"]].concat(), &[]).await;
    assert!(o.status.success(), "{}", output_text(&o));
    let n = first_objects.len();
    assert!(
        output_text(&o).contains(&format!("{n} object(s): {n} added, 0 already in the collection, 0 rejected")),
        "{}",
        output_text(&o)
    );
    let env = [("OTSCOPE_TAXII_USER", "otscope"), ("OTSCOPE_TAXII_PASSWORD", "s3cret")];
    let o = push(d, &["--taxii", &server.root, "--collection", WRITABLE, "one"], &env).await;
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains(&format!("{n} object(s): 0 added, {n} already in the collection")),
        "{}",
        output_text(&o)
    );
    let held = manifest(&server.root, WRITABLE);
    assert_eq!(held.len(), n, "one version of each object, no duplicate");

    // After a change, a push adds exactly the new versions and the new objects.
    b.stop().await;
    let _b = banner_device("127.141.2.2:2222", Some(b"FW 2.1\r\n")).await;
    scan(d).await;
    let second = export(d, "2", true, "two").await;
    let second_objects: std::collections::BTreeSet<_> = second.iter().flat_map(|f| versions(&read(f))).collect();
    let new = second_objects.difference(&first_objects).count();
    assert!(new > 0 && new < second_objects.len(), "{new}");
    let o = push(d, &[&writable[..], &["two"]].concat(), &[]).await;
    assert!(o.status.success(), "{}", output_text(&o));
    let expected = format!(
        "{} object(s): {new} added, {} already in the collection",
        second_objects.len(),
        second_objects.len() - new
    );
    assert!(output_text(&o).contains(&expected), "{expected}\n{}", output_text(&o));
    assert_eq!(manifest(&server.root, WRITABLE).len(), n + new);

    // A refused object is named by id, and the push fails; the others are added.
    let o =
        push(d, &["--taxii", &server.root, "--collection", HOLDING, "--credentials", "taxii.cred", "one"], &[]).await;
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let center_id = center["id"].as_str().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().collect::<Vec<_>>(),
        [format!("rejected {center_id} {}: Unable to process object", center["modified"].as_str().unwrap())]
    );
    assert!(
        output_text(&o).contains(&format!("{n} object(s): {} added, 0 already in the collection, 1 rejected", n - 1)),
        "{}",
        output_text(&o)
    );

    // Refusals that name their cause: a read-only collection, a wrong password, no server (bounded retries).
    let o =
        push(d, &["--taxii", &server.root, "--collection", READ_ONLY, "--credentials", "taxii.cred", "one"], &[]).await;
    assert!(output_text(&o).contains("does not accept writes"), "{}", output_text(&o));
    let wrong = [("OTSCOPE_TAXII_USER", "otscope"), ("OTSCOPE_TAXII_PASSWORD", "wrong")];
    let o = push(d, &["--taxii", &server.root, "--collection", WRITABLE, "one"], &wrong).await;
    assert!(!o.status.success() && output_text(&o).contains("HTTP 401"), "{}", output_text(&o));
    drop(server);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let url = format!("http://127.0.0.1:{closed}/api1/");
    let o = push(d, &["--taxii", &url, "--collection", WRITABLE, "--attempts", "2", "one"], &[]).await;
    assert!(!o.status.success() && output_text(&o).contains(&url), "{}", output_text(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let o = push(d, &["--taxii", "http://taxii.invalid/api1/", "--collection", WRITABLE, "one"], &[]).await;
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(output_text(&o).contains("plain HTTP is refused except to loopback"), "{}", output_text(&o));
}
