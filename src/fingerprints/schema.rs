//! The rule files' schema, as serde types that refuse unknown keys, and the checks serde cannot do.

use super::template::Template;
use super::unescape;
use crate::findings::Severity;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileDef {
    /// Whether the default scan ports include every port where a probe expects its service.
    #[serde(default)]
    pub probe_ports: bool,
    /// Default scan ports besides the probes' (services that speak first, ...).
    #[serde(default)]
    pub ports: Vec<toml::Spanned<String>>,
    #[serde(default)]
    pub table: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub probe: Vec<toml::Spanned<BannerProbeDef>>,
    #[serde(default)]
    pub rule: Vec<toml::Spanned<RuleDef>>,
    #[serde(default)]
    pub honeypot: Vec<toml::Spanned<HoneypotDef>>,
}

/// A honeypot persona's evidence on one protocol: the values a known honeypot serves by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoneypotDef {
    pub id: String,
    /// The honeypot (`conpot`, `GasPot`, ...).
    pub honeypot: String,
    /// Which of its personas (a template's name): the findings of one persona on one address
    /// corroborate each other.
    pub persona: String,
    /// The protocol of the findings it reads (after the rules named it).
    pub protocol: String,
    /// Why these values name the honeypot, as the finding will say it.
    pub reason: String,
    /// Where the values are published (the honeypot's template or configuration file).
    pub source: String,
    /// Whether this evidence names the honeypot by itself. `false` when plain simulators or real
    /// devices may serve the same values: the finding is then marked only when another protocol of the
    /// same address shows the same persona.
    pub alone: bool,
    #[serde(default)]
    pub when: Vec<ConditionDef>,
    /// Fields this evidence must match.
    #[serde(default)]
    pub example: Vec<FieldsDef>,
    /// Fields of real stacks or devices that no persona of the protocol may match.
    #[serde(default)]
    pub counterexample: Vec<FieldsDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsDef {
    pub fields: toml::Table,
    /// Where the fields come from (a real server's reply, a template).
    #[serde(default)]
    #[allow(dead_code)]
    pub source: Option<String>,
}

impl FieldsDef {
    pub fn fields(&self) -> Map<String, Value> {
        match serde_json::to_value(&self.fields) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

/// Problems of a `when` list that serde cannot see: each condition's test and regex.
pub fn condition_problems(when: &[ConditionDef]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, c) in when.iter().enumerate() {
        match c.test() {
            Ok(Test::Regex(r)) => {
                if let Err(e) = regex::Regex::new(&r) {
                    let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                    out.push(format!("condition {} on {}: bad regex {r:?}: {first}", i + 1, c.field));
                }
            }
            Ok(_) => {}
            Err(e) => out.push(format!("condition {} on {}: {e}", i + 1, c.field)),
        }
    }
    out
}

impl HoneypotDef {
    /// What serde could not check: conditions, and that there are some, and examples.
    pub fn problems(&self) -> Vec<String> {
        let mut out = condition_problems(&self.when);
        if self.when.is_empty() {
            out.push("when is empty: a persona is named by the values it serves".into());
        }
        if self.example.is_empty() {
            out.push("no example: every honeypot persona needs at least one [[honeypot.example]]".into());
        }
        for (what, text) in [("honeypot", &self.honeypot), ("persona", &self.persona), ("reason", &self.reason)] {
            if text.trim().is_empty() {
                out.push(format!("{what} is empty"));
            }
        }
        if self.source.trim().is_empty() {
            out.push("source is empty: say where the persona's values are published".into());
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub id: String,
    pub protocol: String,
    /// For the people who read and edit the library; otscope itself does not output it.
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    #[serde(default)]
    pub when: Vec<ConditionDef>,
    #[serde(default)]
    pub set: SetDef,
    #[serde(default)]
    pub example: Vec<ExampleDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDef {
    pub field: String,
    pub equals: Option<String>,
    pub contains: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
    pub present: Option<bool>,
}

/// The one test a condition makes.
#[derive(Debug, Clone)]
pub enum Test {
    Equals(String),
    Contains(String),
    Prefix(String),
    Regex(String),
    Present(bool),
}

impl ConditionDef {
    pub fn test(&self) -> Result<Test, String> {
        let tests: Vec<Test> = [
            self.equals.clone().map(Test::Equals),
            self.contains.clone().map(Test::Contains),
            self.prefix.clone().map(Test::Prefix),
            self.regex.clone().map(Test::Regex),
            self.present.map(Test::Present),
        ]
        .into_iter()
        .flatten()
        .collect();
        match <[Test; 1]>::try_from(tests) {
            Ok([t]) => Ok(t),
            Err(_) => Err("give exactly one of equals, contains, prefix, regex, present".into()),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetDef {
    pub protocol: Option<String>,
    pub ics: Option<bool>,
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    pub device_type: Option<String>,
    pub cpe: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub severity: Option<String>,
}

impl SetDef {
    /// The text outputs that are templates, by name.
    pub fn templates(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("vendor", &self.vendor),
            ("product", &self.product),
            ("version", &self.version),
            ("device_type", &self.device_type),
            ("cpe", &self.cpe),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleDef {
    #[serde(default)]
    pub fields: Option<toml::Table>,
    #[serde(default)]
    pub banner: Option<String>,
    #[serde(default)]
    pub expect: BTreeMap<String, Value>,
}

pub const EXPECTABLE: [&str; 9] =
    ["protocol", "ics", "vendor", "product", "version", "device_type", "severity", "cpe", "tags"];

impl ExampleDef {
    /// The observation's fields: the example's `fields`, with `banner` as the probes would record it.
    pub fn observation_fields(&self) -> Map<String, Value> {
        let mut fields = match &self.fields {
            Some(t) => match serde_json::to_value(t) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            },
            None => Map::new(),
        };
        if let Some(b) = &self.banner {
            let bytes = unescape(b).unwrap_or_else(|_| b.as_bytes().to_vec());
            fields.insert("banner".into(), Value::String(crate::probes::printable(&bytes)));
        }
        fields
    }
}

impl RuleDef {
    /// What serde could not check: conditions, regexes, templates, severities, examples.
    pub fn problems(&self, tables: &HashMap<String, HashMap<String, String>>) -> Vec<String> {
        let mut out = condition_problems(&self.when);
        for (name, text) in self.set.templates() {
            match Template::parse(text) {
                Ok(t) => {
                    for table in t.tables() {
                        if !tables.contains_key(table) {
                            out.push(format!("set.{name}: unknown table {table:?}"));
                        }
                    }
                }
                Err(e) => out.push(format!("set.{name}: {e}")),
            }
        }
        if let Some(s) = &self.set.severity {
            if let Err(e) = s.parse::<Severity>() {
                out.push(format!("set.severity: {e}"));
            }
        }
        for (i, ex) in self.example.iter().enumerate() {
            if ex.fields.is_none() && ex.banner.is_none() {
                out.push(format!("example {}: give fields, banner, or both", i + 1));
            }
            if ex.expect.is_empty() {
                out.push(format!("example {}: expect is empty: say what the rule must produce", i + 1));
            }
            if let Some(b) = &ex.banner {
                if let Err(e) = unescape(b) {
                    out.push(format!("example {}: banner: {e}", i + 1));
                }
            }
            for key in ex.expect.keys() {
                if !EXPECTABLE.contains(&key.as_str()) {
                    out.push(format!(
                        "example {}: expect.{key}: not an output (one of {})",
                        i + 1,
                        EXPECTABLE.join(", ")
                    ));
                }
            }
        }
        out
    }
}

/// A text probe from the library, for services that do not speak first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BannerProbeDef {
    pub name: String,
    pub transport: crate::scope::Transport,
    pub ports: Vec<u16>,
    pub payload: String,
    #[serde(default = "default_read_limit")]
    pub read_limit: usize,
}

fn default_read_limit() -> usize {
    4096
}

impl BannerProbeDef {
    pub fn check(&self) -> Result<(), String> {
        if self.ports.is_empty() || self.ports.contains(&0) {
            return Err("ports: list one or more ports from 1 to 65535".into());
        }
        if self.read_limit == 0 || self.read_limit > 65536 {
            return Err(format!("read_limit {}: must be 1 to 65536", self.read_limit));
        }
        let payload = unescape(&self.payload).map_err(|e| format!("payload: {e}"))?;
        if payload.is_empty() {
            return Err("payload: empty (a service that speaks first needs no probe)".into());
        }
        Ok(())
    }

    pub fn payload_bytes(&self) -> Vec<u8> {
        unescape(&self.payload).expect("checked at load")
    }
}
