//! The default severity policy; a fingerprint rule may override it.
//!
//! | exposure                                                                 | important | general |
//! |--------------------------------------------------------------------------|-----------|---------|
//! | ICS control protocol (modbus, s7comm, enip, dnp3, iec104, fins, ...)     | critical  | high    |
//! | OPC UA offering SecurityPolicy None, MQTT accepting anonymous clients,   | high      | high    |
//! | an ICS web HMI (a rule tags it `ics-hmi`)                                |           |         |
//! | SNMP answering community `public`                                        | medium    | medium  |
//! | any other identified service                                             | low       | low     |
//! | an open port that answered nothing recognisable (`unknown`)              | info      | info    |

use crate::ledger::Level;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!("unknown severity {other:?}: expected critical, high, medium, low or info")),
        }
    }
}

fn flag(attributes: &Map<String, Value>, name: &str) -> bool {
    attributes.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// The policy's severity for a service on an object of `level`.
pub fn default_severity(
    protocol: &str,
    ics: bool,
    level: Level,
    attributes: &Map<String, Value>,
    tags: &[String],
) -> Severity {
    let hmi = tags.iter().any(|t| t == "ics-hmi");
    let weak_access = flag(attributes, "security_none") || flag(attributes, "anonymous") || hmi;
    match protocol {
        "unknown" => Severity::Info,
        "opcua" | "mqtt" if weak_access => Severity::High,
        _ if hmi => Severity::High,
        "snmp" if flag(attributes, "community_public") => Severity::Medium,
        _ if ics && level == Level::Important => Severity::Critical,
        _ if ics => Severity::High,
        _ => Severity::Low,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn policy_table() {
        let none = Map::new();
        assert_eq!(default_severity("modbus", true, Level::Important, &none, &[]), Severity::Critical);
        assert_eq!(default_severity("modbus", true, Level::General, &none, &[]), Severity::High);
        assert_eq!(
            default_severity("opcua", true, Level::General, &attrs(json!({"security_none": true})), &[]),
            Severity::High
        );
        assert_eq!(
            default_severity("mqtt", false, Level::General, &attrs(json!({"anonymous": true})), &[]),
            Severity::High
        );
        assert_eq!(default_severity("mqtt", false, Level::General, &none, &[]), Severity::Low);
        assert_eq!(default_severity("http", false, Level::General, &none, &["ics-hmi".to_string()]), Severity::High);
        assert_eq!(
            default_severity("snmp", false, Level::Important, &attrs(json!({"community_public": true})), &[]),
            Severity::Medium
        );
        assert_eq!(default_severity("ssh", false, Level::Important, &none, &[]), Severity::Low);
        assert_eq!(default_severity("unknown", false, Level::Important, &none, &[]), Severity::Info);
    }
}
