//! Change status of a service between scans, and the identity that is compared: the protocol and
//! identity, plus the security-relevant attributes (anonymous access, security policy, firmware).

use super::Finding;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    New,
    Changed,
    Persisting,
    Gone,
    /// Known before, and the later look did not cover it (outside its coverage, or it did not complete):
    /// neither gone nor persisting.
    NotCovered,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Changed => "changed",
            Change::Persisting => "persisting",
            Change::Gone => "gone",
            Change::NotCovered => "not_covered",
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
pub fn identity_key(f: &Finding) -> IdentityKey {
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

/// What is compared between two observations of one service (see [`identity_key`]).
pub type IdentityKey = BTreeMap<String, Value>;

/// The one classification of a service between an earlier look and a later one: `before` is its
/// identity when it was last known open (`None`: never seen, or seen gone), `after` its identity now
/// (`None`: not found now), `covered` whether the later look covered it and completed. Changed services
/// come with the keys that changed. `None` when the service is in neither.
pub fn classify(
    before: Option<&IdentityKey>,
    after: Option<&IdentityKey>,
    covered: bool,
) -> Option<(Change, Vec<String>)> {
    match (before, after) {
        (None, None) => None,
        (None, Some(_)) => Some((Change::New, Vec::new())),
        (Some(b), Some(a)) => {
            let changed = compare(b, a);
            Some((if changed.is_empty() { Change::Persisting } else { Change::Changed }, changed))
        }
        (Some(_), None) if covered => Some((Change::Gone, Vec::new())),
        (Some(_), None) => Some((Change::NotCovered, Vec::new())),
    }
}

/// The keys whose values differ between two identity keys (present in one only counts).
pub fn compare(before: &IdentityKey, after: &IdentityKey) -> Vec<String> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names.into_iter().filter(|k| before.get(*k) != after.get(*k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(version: &str) -> IdentityKey {
        [("protocol".to_string(), Value::from("modbus")), ("version".to_string(), Value::from(version))].into()
    }

    #[test]
    fn every_case_of_the_classification() {
        let (a, b) = (key("1.0"), key("1.1"));
        assert_eq!(classify(None, None, true), None);
        assert_eq!(classify(None, Some(&a), false), Some((Change::New, vec![])));
        assert_eq!(classify(Some(&a), Some(&a), false), Some((Change::Persisting, vec![])));
        assert_eq!(classify(Some(&a), Some(&b), true), Some((Change::Changed, vec!["version".to_string()])));
        assert_eq!(classify(Some(&a), None, true), Some((Change::Gone, vec![])));
        assert_eq!(classify(Some(&a), None, false), Some((Change::NotCovered, vec![])));
    }
}
