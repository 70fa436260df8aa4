//! The Finding: the output contract (JSONL for the monitoring platform, CSV for people), and the
//! severity policy. Every output is written from this one type.

mod change;
mod columns;
mod severity;
mod writers;

pub use change::{classify, compare, identity_key, Change, IdentityKey};

pub use columns::{cell_text, values, Column, COLUMNS};
pub use severity::{default_severity, Severity};
pub use writers::{neutralise, CsvTable, CsvWriter, FindingSink, JsonlWriter, Sink};

use crate::engine::Observation;
use crate::ledger::Level;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;
use time::format_description::well_known::Rfc3339;

/// What the fingerprint rules concluded about an observation; every field is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Classification {
    /// Overrides the probe's protocol id (banner rules name `ssh`, `ftp`, ... from an `unknown` reply).
    pub protocol: Option<String>,
    pub ics: Option<bool>,
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    pub severity: Option<Severity>,
    pub device_type: Option<String>,
    pub cpe: Option<String>,
    pub tags: Vec<String>,
    pub rule: Option<String>,
}

/// One open service, as written to JSONL and CSV. Unknown values are null, never invented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub ip: IpAddr,
    pub port: u16,
    pub transport: crate::scope::Transport,
    pub protocol: String,
    pub ics: bool,
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    /// What the rules call the device (PLC, RTU, HMI, gateway, ...).
    #[serde(default)]
    pub device_type: Option<String>,
    #[serde(default)]
    pub cpe: Option<String>,
    /// Rule tags (`ics-hmi`, `plc`, ...).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The fields the protocol parser extracted, as the device reported them.
    pub attributes: Map<String, Value>,
    pub hostname: Option<String>,
    pub enterprise_id: String,
    pub enterprise: String,
    pub district: String,
    pub level: Level,
    pub severity: Severity,
    pub rule: Option<String>,
    pub evidence: String,
    pub observed_at: String,
    /// Against the previous scan that covered this service: new, changed or persisting (null without history).
    #[serde(default)]
    pub change: Option<Change>,
    /// For a changed service, which identity keys changed.
    #[serde(default)]
    pub changed: Vec<String>,
}

impl Finding {
    pub fn new(observation: &Observation, classification: Classification) -> Finding {
        let target = &observation.target;
        let owner = target.owner();
        let attributes = observation.identity.fields.clone();
        let protocol = classification.protocol.unwrap_or_else(|| observation.identity.protocol.to_string());
        let ics = classification.ics.unwrap_or(observation.identity.ics);
        let severity = classification
            .severity
            .unwrap_or_else(|| default_severity(&protocol, ics, owner.level, &attributes, &classification.tags));
        Finding {
            ip: target.addr(),
            port: target.port(),
            transport: target.transport(),
            protocol,
            ics,
            vendor: classification.vendor,
            product: classification.product,
            version: classification.version,
            device_type: classification.device_type,
            cpe: classification.cpe,
            tags: classification.tags,
            attributes,
            hostname: target.hostname().map(str::to_string),
            enterprise_id: owner.enterprise_id.clone(),
            enterprise: owner.enterprise.clone(),
            district: owner.district.clone(),
            level: owner.level,
            severity,
            rule: classification.rule,
            evidence: hex::encode(&observation.evidence),
            observed_at: observation.observed_at.format(&Rfc3339).expect("UTC timestamps format"),
            change: None,
            changed: Vec::new(),
        }
    }
}
