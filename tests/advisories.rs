//! CSAF documents written for these tests (tests/fixtures/advisories/), read and matched through
//! the public API the import, match and notice commands use.

use otscope::advisories::csaf::ProductVersion;
use otscope::advisories::{
    parse_document, read_documents, Advisory, EvidenceKind, Index, MatchResult, ServiceIdentity, Status, Tlp, Vendors,
};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/advisories")
}

fn vendors() -> Vendors {
    Vendors::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprints")).expect("the vendor table loads")
}

fn fixture(name: &str) -> Advisory {
    let path = fixtures().join(name);
    parse_document(&std::fs::read(&path).unwrap(), name).unwrap_or_else(|p| panic!("{p:#?}"))
}

fn index() -> Index {
    let documents = read_documents(&[fixtures()]);
    assert!(documents.refused.is_empty(), "{:#?}", documents.refused);
    assert_eq!(documents.read.len(), 4);
    Index::build(documents.advisories(), &vendors())
}

/// What a finding of these probes and rules would say.
fn service(vendor: &str, product: &str, version: Option<&str>, attributes: Value) -> ServiceIdentity {
    let attributes: Map<String, Value> = serde_json::from_value(attributes).unwrap();
    ServiceIdentity::from_finding_fields(Some(vendor), Some(product), version, None, &attributes, false)
}

/// The results, checked against the exhaustive reference.
fn matches<'a>(index: &'a Index, service: &ServiceIdentity) -> Vec<MatchResult<'a>> {
    let found = index.matches(service);
    assert_eq!(
        found,
        index.matches_exhaustive(service),
        "the index and the exhaustive search disagree for {service:?}"
    );
    found
}

fn one<'r, 'a>(results: &'r [MatchResult<'a>]) -> &'r MatchResult<'a> {
    assert_eq!(results.len(), 1, "{results:#?}");
    &results[0]
}

#[test]
fn documents_are_read_with_what_matching_and_notices_need() {
    let a = fixture("siemens-s7-1500.json");
    assert_eq!(a.id, "OTSCOPE-TEST-SIEMENS-01");
    assert_eq!(a.version, "1");
    assert_eq!(a.tlp, Some(Tlp::White));
    assert_eq!(a.current_release_date, "2024-03-12T00:00:00.000Z");
    assert_eq!(a.revision_history.len(), 1);
    assert_eq!(a.products.len(), 4);
    let p = &a.products[0];
    assert_eq!(p.id, "SIE-0001");
    assert_eq!(p.vendor.as_deref(), Some("Siemens AG"));
    assert_eq!(p.product_name.as_deref(), Some("SIMATIC S7-1500 CPU 1516-3 PN/DP (6ES7516-3AN01-0AB0)"));
    assert_eq!(p.version, Some(ProductVersion::Range("vers:all/<V2.9.7".into())));
    assert_eq!(p.helper.model_numbers, vec!["6ES7516-3AN01-0AB0"]);
    assert_eq!(a.vulnerabilities.len(), 2);
    assert_eq!(a.vulnerabilities[1].scores[0].cvss_v3.as_ref().unwrap().base_score, 9.8);
    assert_eq!(a.content_hash.len(), 64);

    let m = fixture("mitsubishi-melsec.json");
    assert_eq!(m.tlp, Some(Tlp::Amber));
    assert_eq!(m.products[0].family.as_deref(), Some("MELSEC iQ-F Series"));
    assert_eq!(m.products[0].helper.skus, vec!["FX5U-32MR/ES"]);
    let r = fixture("rockwell-controllogix.json");
    assert_eq!(r.revision_history.len(), 2);
    assert_eq!(r.products[1].version, Some(ProductVersion::Version("V32.011".into())));
    assert_eq!(fixture("schneider-modicon.json").tlp, Some(Tlp::Red));
}

#[test]
fn the_content_hash_follows_the_content_not_the_layout_or_the_revision_history() {
    let text = std::fs::read_to_string(fixtures().join("rockwell-controllogix.json")).unwrap();
    let original = parse_document(text.as_bytes(), "a.json").unwrap();
    // The same content compacted and with its keys in another order.
    let value: Value = serde_json::from_str(&text).unwrap();
    let mut reordered = Map::new();
    for key in ["vulnerabilities", "product_tree", "document"] {
        reordered.insert(key.into(), value[key].clone());
    }
    let compact = serde_json::to_vec(&Value::Object(reordered)).unwrap();
    assert_eq!(parse_document(&compact, "b.json").unwrap().content_hash, original.content_hash);
    // A corrected fix text, with the same revision history and version.
    let corrected = text.replace("to 20.013 or later", "to 20.014 or later");
    let corrected = parse_document(corrected.as_bytes(), "c.json").unwrap();
    assert_eq!(corrected.revision_history, original.revision_history);
    assert_eq!(corrected.version, original.version);
    assert_ne!(corrected.content_hash, original.content_hash);
}

#[test]
fn every_problem_is_named_by_file_and_json_pointer() {
    let broken = json!({
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "1.0",
            "distribution": { "tlp": { "label": "PURPLE" } },
            "publisher": { "category": "vendor", "name": "x", "namespace": "https://x.invalid" },
            "title": "broken",
            "tracking": {
                "current_release_date": "yesterday",
                "initial_release_date": "2024-01-01T00:00:00Z",
                "revision_history": [ { "date": "2024-01-01T00:00:00Z", "number": "1" } ],
                "status": "final",
                "version": "1"
            }
        },
        "product_tree": {
            "branches": [ { "category": "vendor", "name": "Acme", "branches": [
                { "category": "product_name", "name": "Widget" },
                { "category": "flavour", "name": "Gadget", "product": { "name": "Gadget", "product_id": "P-1" } },
                { "category": "product_name", "name": "Gizmo", "product": { "name": "Gizmo", "product_id": "P-1" } }
            ] } ]
        },
        "vulnerabilities": [ {
            "cve": "CVE-99",
            "product_status": { "known_affected": ["P-1", "P-9"] },
            "scores": [ { "cvss_v3": { "baseScore": 11, "baseSeverity": "HIGH" }, "products": ["P-1"] } ],
            "remediations": [ { "category": "fix_it", "details": "x", "product_ids": ["P-1"] } ]
        } ]
    });
    let problems = parse_document(&serde_json::to_vec(&broken).unwrap(), "broken.json").unwrap_err();
    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    for expected in [
        "broken.json: /document/csaf_version: \"1.0\": only CSAF 2.0 is read",
        "broken.json: /document/distribution/tlp/label: \"PURPLE\" is not a CSAF 2.0 TLP label (WHITE, GREEN, AMBER, RED)",
        "broken.json: /document/tracking/id: missing",
        "broken.json: /document/tracking/current_release_date: \"yesterday\" is not an RFC 3339 date and time",
        "broken.json: /document/tracking/revision_history/0/summary: missing",
        "broken.json: /product_tree/branches/0/branches/0: a branch needs branches or a product",
        "broken.json: /product_tree/branches/0/branches/1/category: \"flavour\" is not one of",
        "broken.json: /product_tree/branches/0/branches/2/product/product_id: product id \"P-1\" is defined twice (first at /product_tree/branches/0/branches/1/product)",
        "broken.json: /vulnerabilities/0/cve: \"CVE-99\" is not a CVE id (CVE-YYYY-NNNN)",
        "broken.json: /vulnerabilities/0/product_status/known_affected/1: product id \"P-9\" is not defined in /product_tree",
        "broken.json: /vulnerabilities/0/scores/0/cvss_v3/baseScore: 11 is not a score from 0 to 10",
        "broken.json: /vulnerabilities/0/remediations/0/category: \"fix_it\" is not one of",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(expected)), "missing {expected:?} in {lines:#?}");
    }
    assert_eq!(lines.len(), 12, "{lines:#?}");
}

#[test]
fn what_is_not_a_csaf_document_is_refused_in_one_line() {
    let first = |bytes: &[u8]| parse_document(bytes, "x.json").unwrap_err()[0].to_string();
    assert!(
        first(b"{\"document\": ").starts_with("x.json: /: not JSON: EOF while parsing"),
        "{}",
        first(b"{\"document\": ")
    );
    assert!(first(b"").starts_with("x.json: /: not JSON"));
    assert_eq!(first(b"[1, 2]"), "x.json: /: must be an object, not an array");
    assert_eq!(first(b"{}"), "x.json: /document: missing");
    assert!(first(&vec![b' '; 33 << 20]).starts_with("x.json: /: 34603008 bytes is larger than"));
    // A byte-order mark, as some editors write it, is not a problem.
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend(std::fs::read(fixtures().join("siemens-s7-1500.json")).unwrap());
    assert!(parse_document(&with_bom, "bom.json").is_ok());
}

#[test]
fn a_broken_file_never_stops_the_others() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["siemens-s7-1500.json", "rockwell-controllogix.json"] {
        std::fs::copy(fixtures().join(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("a-broken.json"), b"{\"document\": 1}").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not a document").unwrap();
    std::fs::create_dir(dir.path().join("2024")).unwrap();
    std::fs::copy(fixtures().join("schneider-modicon.json"), dir.path().join("2024/schneider.json")).unwrap();
    let missing = dir.path().join("missing.json");
    let documents = read_documents(&[dir.path().to_path_buf(), missing.clone()]);
    let ids: Vec<&str> = documents.advisories().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, vec!["OTSCOPE-TEST-SCHNEIDER-01", "OTSCOPE-TEST-ROCKWELL-01", "OTSCOPE-TEST-SIEMENS-01"]);
    assert_eq!(
        documents.read[0].bytes,
        std::fs::read(fixtures().join("schneider-modicon.json")).unwrap(),
        "the bytes as read"
    );
    assert_eq!(documents.refused.len(), 2);
    assert_eq!(
        documents.refused[0].1[0].to_string(),
        format!("{}: /document: must be an object, not a number", dir.path().join("a-broken.json").display())
    );
    assert!(documents.refused[1].1[0].to_string().starts_with(&format!("{}: /: cannot read: ", missing.display())));
}

#[test]
fn siemens_products_are_found_by_order_number_with_v2_9_4_style_versions() {
    let index = index();
    let s7 = |order: &str, version: Option<&str>| {
        service(
            "Siemens",
            "SIMATIC S7-1500 CPU 1516-3 PN/DP",
            version,
            json!({ "order_number": order, "module_type": "CPU 1516-3 PN/DP" }),
        )
    };
    // The device writes its order number with a space; the advisory without. Only the product
    // with this order number matches, not the one that differs only by it.
    let results = matches(&index, &s7("6ES7 516-3AN01-0AB0", Some("V2.9.4")));
    let r = one(&results);
    assert_eq!((r.advisory, r.product_id), ("OTSCOPE-TEST-SIEMENS-01", "SIE-0001"));
    assert_eq!(r.status, Status::Affected, "{}", r.reason);
    assert_eq!(r.reason, "\"V2.9.4\" is in the range \"vers:all/<V2.9.7\"");
    assert_eq!(r.evidence.kind, EvidenceKind::OrderNumber);
    assert_eq!(r.evidence.detail, "6es7516-3an01-0ab0");
    assert_eq!(r.cves, ["CVE-2099-0001", "CVE-2099-0002"]);
    assert_eq!((r.cvss, r.severity), (Some(9.8), Some("CRITICAL")));
    assert_eq!(r.vendor_fix(), vec!["Update to V2.9.7 or later version"]);
    assert!(r.remediations.iter().any(|m| m.category == "mitigation" && m.details.contains("443/tcp")));
    assert_eq!(r.tlp, Some(Tlp::White));
    assert_eq!(r.product, "SIMATIC S7-1500 CPU 1516-3 PN/DP (6ES7516-3AN01-0AB0)");
    assert_eq!(r.versions, Some("vers:all/<V2.9.7"));

    let fixed = matches(&index, &s7("6ES7 516-3AN01-0AB0", Some("V2.9.7")));
    assert_eq!(one(&fixed).status, Status::NotAffected);
    assert_eq!(one(&fixed).reason, "\"V2.9.7\" is outside the range \"vers:all/<V2.9.7\"");
    let unknown = matches(&index, &s7("6ES7 516-3AN01-0AB0", None));
    assert_eq!(one(&unknown).status, Status::Undetermined);
    assert!(one(&unknown).reason.contains("no version"), "{}", one(&unknown).reason);

    let other = matches(&index, &s7("6ES7516-3AN02-0AB0", Some("V3.0.1")));
    let r = one(&other);
    assert_eq!((r.product_id, r.status), ("SIE-0002", Status::Affected));
    assert_eq!((r.cves, r.cvss), (&["CVE-2099-0001".to_string()][..], Some(7.5)));

    // A second condition the scan cannot see; a wildcard inside the range.
    let plcsim = matches(&index, &service("Siemens", "SIMATIC S7-1500 Software Controller", Some("V2.1"), json!({})));
    assert_eq!((one(&plcsim).status, one(&plcsim).evidence.kind), (Status::Undetermined, EvidenceKind::NameTokens));
    assert!(one(&plcsim).reason.contains("Function State (FS)"), "{}", one(&plcsim).reason);
    let scalance = matches(&index, &service("Siemens", "SCALANCE XC208", Some("V3.1"), json!({})));
    assert_eq!(one(&scalance).status, Status::Undetermined);
    assert!(one(&scalance).reason.contains("wildcard"), "{}", one(&scalance).reason);
}

#[test]
fn rockwell_products_are_found_by_name_with_20_011_style_versions() {
    let index = index();
    // The vendor as the ODVA table names it; the advisory's has a trailing space.
    let enip = |product: &str, version: &str| {
        service(
            "Rockwell Automation/Allen-Bradley",
            product,
            Some(version),
            json!({ "product_code": 54, "revision": version }),
        )
    };
    let affected = matches(&index, &enip("ControlLogix 1756-L61", "20.11"));
    let r = one(&affected);
    assert_eq!((r.product_id, r.status, r.evidence.kind), ("RA-0001", Status::Affected, EvidenceKind::NameTokens));
    assert_eq!(r.evidence.detail, "1756-l61 controllogix");
    assert_eq!(r.tlp, Some(Tlp::Green));
    assert_eq!(r.vendor_fix(), vec!["Update the firmware to 20.013 or later."]);
    assert_eq!(one(&matches(&index, &enip("ControlLogix 1756-L61", "20.13"))).status, Status::NotAffected);
    // One named version (`product_version`).
    assert_eq!(one(&matches(&index, &enip("ControlLogix 1756-L71", "32.11"))).status, Status::Affected);
    assert_eq!(one(&matches(&index, &enip("ControlLogix 1756-L71", "32.13"))).status, Status::NotAffected);
    // A range that reads as three ranges glued together.
    let l8 = matches(&index, &enip("ControlLogix 5580", "35.011"));
    assert_eq!(one(&l8).status, Status::Undetermined);
    assert!(one(&l8).reason.contains("cannot read the range"), "{}", one(&l8).reason);
    // Another vendor's product of the same name is not Rockwell's.
    assert!(matches(&index, &service("Acme", "ControlLogix 1756-L61", Some("20.11"), json!({}))).is_empty());
}

#[test]
fn mitsubishi_products_are_found_by_sku_or_name_with_1_05f_style_versions() {
    let index = index();
    let melsec = |version: &str| service("Mitsubishi Electric", "MELSEC iQ-F FX5U-32MR/ES", Some(version), json!({}));
    assert_eq!(one(&matches(&index, &melsec("1.05E"))).status, Status::Affected);
    assert_eq!(one(&matches(&index, &melsec("1.00A"))).status, Status::Affected);
    assert_eq!(one(&matches(&index, &melsec("1.05F"))).status, Status::NotAffected);
    assert_eq!(one(&matches(&index, &melsec("1.10A"))).status, Status::NotAffected);
    let odd = matches(&index, &melsec("1.05.1"));
    assert_eq!(one(&odd).status, Status::Undetermined);
    assert!(one(&odd).reason.contains("does not compare"), "{}", one(&odd).reason);
    // The model number the device reports, against the product's SKU.
    let by_sku = ServiceIdentity {
        vendor: Some("Mitsubishi Electric Corporation".into()),
        order_numbers: vec!["FX5U-32MR/ES".into()],
        version: Some("1.04A".into()),
        ..Default::default()
    };
    let r = matches(&index, &by_sku);
    assert_eq!((one(&r).evidence.kind, one(&r).status), (EvidenceKind::Sku, Status::Affected));
    assert_eq!(one(&r).tlp, Some(Tlp::Amber));
}

#[test]
fn schneider_products_are_found_by_part_number_pattern_with_sv3_2_style_versions() {
    let index = index();
    let modbus = |product: &str, code: &str, version: &str| {
        service(
            "Schneider Electric",
            product,
            Some(version),
            json!({ "vendor_name": "Schneider Electric", "product_code": code }),
        )
    };
    let r = matches(&index, &modbus("Modicon M340 BMX P34 2020", "BMX P34 2020", "SV3.20"));
    let r = one(&r);
    assert_eq!((r.product_id, r.status, r.evidence.kind), ("SE-0001", Status::Affected, EvidenceKind::OrderNumber));
    assert_eq!(r.evidence.detail, "bmxp342020");
    assert_eq!(r.tlp, Some(Tlp::Red), "the TLP travels with every result");
    assert_eq!(
        one(&matches(&index, &modbus("Modicon M340 BMX P34 2020", "BMX P34 2020", "3.60"))).status,
        Status::NotAffected
    );
    assert_eq!(
        one(&matches(&index, &modbus("Modicon M340 BMX P34 2020", "BMX P34 2020", "V3.X"))).status,
        Status::Undetermined
    );
    // Listed as not affected, whatever the version.
    let m580 = matches(&index, &modbus("Modicon M580 BME P58 1020", "BME P58 1020", "02.70"));
    assert_eq!((one(&m580).product_id, one(&m580).status), ("SE-0002", Status::NotAffected));
    assert_eq!(one(&m580).cves, ["CVE-2099-0301"]);
}

#[test]
fn a_honeypot_is_never_affected() {
    let index = index();
    let mut s = service(
        "Siemens",
        "SIMATIC S7-1500 CPU 1516-3 PN/DP",
        Some("V2.9.4"),
        json!({ "order_number": "6ES7 516-3AN01-0AB0" }),
    );
    s.honeypot = true;
    let results = matches(&index, &s);
    assert_eq!(one(&results).status, Status::Undetermined);
    assert!(one(&results).reason.starts_with("the service shows honeypot traits"), "{}", one(&results).reason);
    // Not affected stays not affected.
    s.version = Some("V3.0".into());
    assert_eq!(one(&matches(&index, &s)).status, Status::NotAffected);
}

#[test]
fn nothing_is_matched_without_a_product_to_go_by() {
    let index = index();
    for s in [
        ServiceIdentity::default(),
        ServiceIdentity { vendor: Some("Siemens".into()), version: Some("V1.0".into()), ..Default::default() },
        service(
            "Schneider Electric",
            "SIMATIC S7-1500 CPU 1516-3 PN/DP",
            Some("V2.9.4"),
            json!({ "order_number": "6ES7 516-3AN01-0AB0" }),
        ),
        service("Siemens", "SIMATIC S7-1500", Some("V2.9.4"), json!({})),
    ] {
        assert!(matches(&index, &s).is_empty(), "{s:?}");
    }
}

#[test]
fn a_relationship_product_is_the_device_running_the_component() {
    let document = json!({
        "document": {
            "category": "csaf_security_advisory", "csaf_version": "2.0", "title": "camera firmware",
            "publisher": { "category": "vendor", "name": "x", "namespace": "https://x.invalid" },
            "tracking": { "id": "OTSCOPE-TEST-REL-01", "version": "1", "status": "final",
                "initial_release_date": "2024-01-01T00:00:00Z", "current_release_date": "2024-01-01T00:00:00Z",
                "revision_history": [ { "date": "2024-01-01T00:00:00Z", "number": "1", "summary": "first" } ] }
        },
        "product_tree": {
            "branches": [ { "category": "vendor", "name": "Mobotix", "branches": [
                { "category": "product_family", "name": "P3", "branches": [
                    { "category": "product_name", "name": "D24M", "product": { "name": "Mobotix P3 D24M", "product_id": "CAM-1" } } ] },
                { "category": "product_name", "name": "P3 Firmware", "branches": [
                    { "category": "product_version", "name": "MX-V4.0.1.15", "product": { "name": "P3 Firmware MX-V4.0.1.15", "product_id": "FW-1" } } ] }
            ] } ],
            "relationships": [ {
                "category": "installed_on", "product_reference": "FW-1", "relates_to_product_reference": "CAM-1",
                "full_product_name": { "name": "P3 Firmware MX-V4.0.1.15 installed on Mobotix P3 D24M", "product_id": "REL-1" }
            } ]
        },
        "vulnerabilities": [ { "cve": "CVE-2099-0401", "product_status": { "known_affected": ["REL-1"] } } ]
    });
    let advisory = parse_document(&serde_json::to_vec(&document).unwrap(), "rel.json").unwrap();
    let index = Index::build(&[advisory], &vendors());
    let camera = |version: &str| service("Mobotix", "Mobotix D24M", Some(version), json!({}));
    let r = matches(&index, &camera("MX-V4.0.1.15"));
    assert_eq!((one(&r).product_id, one(&r).status), ("REL-1", Status::Affected));
    assert_eq!(one(&r).product, "P3 Firmware MX-V4.0.1.15 installed on Mobotix P3 D24M");
    assert_eq!(one(&matches(&index, &camera("MX-V4.7.3.11"))).status, Status::NotAffected);
    let stats = index.stats();
    assert_eq!(
        (stats.products, stats.with_versions, stats.unreadable_versions),
        (1, 1, 0),
        "only products with a status count"
    );
}

mod never_panics {
    use super::*;
    use otscope::advisories::Range;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn shared_vendors() -> &'static Vendors {
        static VENDORS: OnceLock<Vendors> = OnceLock::new();
        VENDORS.get_or_init(vendors)
    }

    proptest! {
        #[test]
        fn on_any_range_and_version(range in ".{0,40}", version in ".{0,20}") {
            let verdict = Range::parse(&range).evaluate(Some(&version));
            prop_assert!(!verdict.reason.is_empty());
        }

        #[test]
        fn on_range_like_text(range in "[<>=|!Vv0-9. xX*a-z_-]{0,30}", version in "[Vv0-9. xXA-Fa-f_-]{0,12}") {
            let verdict = Range::parse(&range).evaluate(Some(&version));
            prop_assert!(!verdict.reason.is_empty());
        }

        #[test]
        fn on_any_vendor_name(name in ".{0,60}") {
            let _ = shared_vendors().canonical(&name);
        }

        #[test]
        fn on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_document(&bytes, "fuzz.json");
        }

        #[test]
        fn on_a_damaged_document(cut in 0usize..6000, at in 0usize..6000, byte in any::<u8>()) {
            let mut bytes = std::fs::read(fixtures().join("siemens-s7-1500.json")).unwrap();
            let len = bytes.len();
            bytes[at % len] = byte;
            bytes.truncate(len - cut % len);
            if let Ok(advisory) = parse_document(&bytes, "damaged.json") {
                let index = Index::build(&[advisory], shared_vendors());
                let _ = index.matches(&service("Siemens", "SIMATIC S7-1500 CPU 1516-3 PN/DP", Some("V2.9.4"), json!({ "order_number": "6ES7 516-3AN01-0AB0" })));
            }
        }
    }
}
