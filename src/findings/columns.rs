//! The finding's columns, defined once. The JSONL keys, the scan's CSV header and rows, and the
//! district exports all come from this list, so a header and its rows cannot disagree; a unit test
//! holds the list equal to the keys the `Finding` type serialises.

use super::Finding;
use serde_json::Value;

/// One top-level key of a finding: its JSON key (also the English CSV header) and its Chinese header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub key: &'static str,
    pub zh: &'static str,
}

const fn column(key: &'static str, zh: &'static str) -> Column {
    Column { key, zh }
}

/// Every top-level key of a finding, in the order JSONL writes them.
pub const COLUMNS: [Column; 23] = [
    column("ip", "IP"),
    column("port", "端口"),
    column("transport", "传输协议"),
    column("protocol", "协议"),
    column("ics", "工控协议"),
    column("vendor", "厂商"),
    column("product", "型号"),
    column("version", "版本"),
    column("device_type", "设备类型"),
    column("cpe", "CPE"),
    column("tags", "标签"),
    column("attributes", "属性"),
    column("hostname", "主机名"),
    column("enterprise_id", "企业编号"),
    column("enterprise", "企业名称"),
    column("district", "区县"),
    column("level", "重要程度"),
    column("severity", "严重程度"),
    column("rule", "规则"),
    column("evidence", "证据"),
    column("observed_at", "观测时间"),
    column("change", "变化"),
    column("changed", "变化项"),
];

/// A finding's values in column order, as its JSON line holds them (null where unknown).
pub fn values(finding: &Finding) -> Vec<Value> {
    let Ok(Value::Object(mut map)) = serde_json::to_value(finding) else {
        unreachable!("a finding serialises to a JSON object");
    };
    let row = COLUMNS.iter().map(|c| map.remove(c.key).unwrap_or(Value::Null)).collect();
    debug_assert!(map.is_empty(), "finding keys missing from COLUMNS: {:?}", map.keys().collect::<Vec<_>>());
    row
}

/// A value as the text of a CSV cell: strings as they are, null as an empty cell, lists joined with
/// `;`, objects (the attributes) as compact JSON.
pub fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(cell_text).collect::<Vec<_>>().join(";"),
        Value::Object(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Change, Severity};
    use crate::ledger::Level;
    use crate::scope::Transport;

    fn bare() -> Finding {
        Finding {
            ip: "127.0.0.1".parse().unwrap(),
            port: 502,
            transport: Transport::Tcp,
            protocol: "unknown".into(),
            ics: false,
            vendor: None,
            product: None,
            version: None,
            device_type: None,
            cpe: None,
            tags: Vec::new(),
            attributes: Default::default(),
            hostname: None,
            enterprise_id: "E1".into(),
            enterprise: "e".into(),
            district: "d".into(),
            level: Level::General,
            severity: Severity::Info,
            rule: None,
            evidence: String::new(),
            observed_at: "2026-01-01T00:00:00Z".into(),
            change: None,
            changed: Vec::new(),
        }
    }

    fn full() -> Finding {
        let mut f = bare();
        f.vendor = Some("v".into());
        f.product = Some("p".into());
        f.version = Some("1".into());
        f.device_type = Some("PLC".into());
        f.cpe = Some("cpe:2.3:h:v:p:-:*:*:*:*:*:*:*".into());
        f.tags = vec!["plc".into(), "ics".into()];
        f.attributes.insert("a".into(), Value::from(1));
        f.hostname = Some("h".into());
        f.rule = Some("r".into());
        f.change = Some(Change::Changed);
        f.changed = vec!["version".into()];
        f
    }

    #[test]
    fn the_columns_are_exactly_the_keys_a_finding_serialises_in_order() {
        for f in [bare(), full()] {
            let Value::Object(map) = serde_json::to_value(&f).unwrap() else { panic!() };
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            let columns: Vec<&str> = COLUMNS.iter().map(|c| c.key).collect();
            assert_eq!(keys, columns);
            assert_eq!(values(&f).len(), COLUMNS.len());
        }
    }

    #[test]
    fn cells_render_every_json_shape() {
        let row: Vec<String> = values(&full()).iter().map(cell_text).collect();
        let at = |k: &str| row[COLUMNS.iter().position(|c| c.key == k).unwrap()].clone();
        assert_eq!(at("tags"), "plc;ics");
        assert_eq!(at("attributes"), r#"{"a":1}"#);
        assert_eq!(at("ics"), "false");
        assert_eq!(at("port"), "502");
        assert_eq!(at("change"), "changed");
        let bare: Vec<String> = values(&bare()).iter().map(cell_text).collect();
        assert_eq!(bare[COLUMNS.iter().position(|c| c.key == "vendor").unwrap()], "");
    }
}
