//! CSAF 2.0 advisories for the tests, built from the standard's fields: one vendor, its products as
//! version ranges, one CVE with its CVSS score, a vendor fix and a mitigation.
#![allow(dead_code)]

use serde_json::{json, Value};

/// A CSAF 2.0 advisory: one vendor, products as (name, version range, product id, SKUs), one CVE.
pub fn csaf(
    id: &str,
    tlp: &str,
    vendor: &str,
    products: &[(&str, &str, &str, &[&str])],
    score: (f64, &str),
    fix: &str,
) -> Value {
    let branches: Vec<Value> = products
        .iter()
        .map(|(name, range, pid, skus)| {
            let mut product = json!({ "name": format!("{vendor} {name}: {range}"), "product_id": pid });
            if !skus.is_empty() {
                product["product_identification_helper"] = json!({ "skus": skus });
            }
            json!({
                "category": "product_name",
                "name": name,
                "branches": [{ "category": "product_version_range", "name": range, "product": product }]
            })
        })
        .collect();
    let ids: Vec<&str> = products.iter().map(|p| p.2).collect();
    json!({
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "2.0",
            "distribution": { "tlp": { "label": tlp } },
            "lang": "en",
            "publisher": { "category": "coordinator", "name": "otscope tests", "namespace": "https://otscope.invalid" },
            "title": format!("{vendor}: test advisory {id}"),
            "tracking": {
                "current_release_date": "2025-01-10T00:00:00.000Z",
                "id": id,
                "initial_release_date": "2025-01-10T00:00:00.000Z",
                "revision_history": [{ "date": "2025-01-10T00:00:00.000Z", "number": "1", "summary": "Initial" }],
                "status": "final",
                "version": "1"
            }
        },
        "product_tree": { "branches": [{ "category": "vendor", "name": vendor, "branches": branches }] },
        "vulnerabilities": [{
            "cve": format!("CVE-2098-{}", &id[id.len() - 4..]),
            "product_status": { "known_affected": ids },
            "scores": [{ "cvss_v3": { "baseScore": score.0, "baseSeverity": score.1, "version": "3.1",
                "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" }, "products": ids }],
            "remediations": [
                { "category": "vendor_fix", "details": fix, "product_ids": ids },
                { "category": "mitigation", "details": "Restrict access to the controller's ports to the plant network.", "product_ids": ids }
            ]
        }]
    })
}
