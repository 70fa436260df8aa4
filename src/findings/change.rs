//! Change status of a service between scans, and the identity that is compared: the protocol and
//! identity, plus the security-relevant attributes (anonymous access, security policy, firmware).

use super::Finding;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    New,
    Changed,
    Persisting,
    Gone,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Changed => "changed",
            Change::Persisting => "persisting",
            Change::Gone => "gone",
        }
    }
}

/// Attributes whose change matters to the monitoring team even when vendor, product and version stay.
const WATCHED_ATTRIBUTES: [&str; 12] = [
    "anonymous",
    "security_none",
    "security_policies",
    "security_modes",
    "community_public",
    "firmware_version",
    "firmware_revision",
    "hardware_version",
    "serial_number",
    "order_number",
    "model_name",
    "product_name",
];

/// What is compared between two observations of one service.
pub fn identity_key(f: &Finding) -> BTreeMap<String, Value> {
    let mut key = BTreeMap::new();
    key.insert("protocol".to_string(), Value::String(f.protocol.clone()));
    key.insert("ics".to_string(), Value::Bool(f.ics));
    for (name, v) in [("vendor", &f.vendor), ("product", &f.product), ("version", &f.version)] {
        key.insert(name.to_string(), v.clone().map(Value::String).unwrap_or(Value::Null));
    }
    for name in WATCHED_ATTRIBUTES {
        if let Some(v) = f.attributes.get(name) {
            key.insert(name.to_string(), v.clone());
        }
    }
    if let Some(Value::Object(tls)) = f.attributes.get("tls") {
        for name in ["subject", "expired", "self_signed"] {
            if let Some(v) = tls.get(name) {
                key.insert(format!("tls.{name}"), v.clone());
            }
        }
    }
    key
}

/// The keys whose values differ between two identity keys (present in one only counts).
pub fn compare(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>) -> Vec<String> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names.into_iter().filter(|k| before.get(*k) != after.get(*k)).cloned().collect()
}
