//! The compiled rule matcher: rules grouped by protocol, every regex compiled once, and per protocol
//! one `RegexSet` per field, so a reply is scanned once per field whatever the number of rules.

use super::schema::{ConditionDef, RuleDef, Test};
use super::template::Template;
use crate::findings::{Classification, Severity};
use regex::{Regex, RegexSet};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// How many times a rule may rename the protocol and hand over to that protocol's rules.
const MAX_HANDOVERS: usize = 3;

#[derive(Debug)]
enum Condition {
    Equals(String, String),
    Contains(String, String),
    Prefix(String, String),
    Present(String, bool),
    /// `slot` indexes the protocol's per-field RegexSet: (which field set, which pattern in it);
    /// `None` for a condition evaluated on its own ([`Conditions`]).
    Regex {
        field: String,
        slot: Option<(usize, usize)>,
        regex: Regex,
        captures: bool,
    },
}

#[derive(Debug)]
struct CompiledRule {
    id: String,
    conditions: Vec<Condition>,
    protocol: Option<String>,
    ics: Option<bool>,
    templates: Vec<(&'static str, Template)>,
    tags: Vec<String>,
    severity: Option<Severity>,
}

#[derive(Debug, Default)]
struct ProtocolRules {
    rules: Vec<CompiledRule>,
    regex_fields: Vec<(String, RegexSet)>,
}

#[derive(Debug, Default)]
pub struct Matcher {
    by_protocol: HashMap<String, ProtocolRules>,
    tables: HashMap<String, HashMap<String, String>>,
    rule_count: usize,
}

/// A list of conditions compiled on their own, all of which must hold (the honeypot personas' `when`).
#[derive(Debug)]
pub struct Conditions(Vec<Condition>);

impl Conditions {
    /// Compiles checked conditions (the loader has validated every test and regex).
    pub(super) fn compile(defs: &[ConditionDef]) -> Conditions {
        Conditions(defs.iter().map(|c| condition(c, |_| None)).collect())
    }

    pub fn hold(&self, fields: &Map<String, Value>) -> bool {
        self.0.iter().all(|c| holds(c, fields, &[], &mut Vec::new()))
    }
}

/// Compiles one checked condition; `slot` places a regex in its protocol's RegexSet (or `None`).
fn condition(c: &ConditionDef, slot: impl FnOnce(&str) -> Option<(usize, usize)>) -> Condition {
    match c.test().expect("checked at load") {
        Test::Equals(v) => Condition::Equals(c.field.clone(), v),
        Test::Contains(v) => Condition::Contains(c.field.clone(), v),
        Test::Prefix(v) => Condition::Prefix(c.field.clone(), v),
        Test::Present(v) => Condition::Present(c.field.clone(), v),
        Test::Regex(r) => {
            let regex = Regex::new(&r).expect("checked at load");
            let captures = regex.capture_names().flatten().next().is_some();
            Condition::Regex { field: c.field.clone(), slot: slot(&r), regex, captures }
        }
    }
}

fn text_of<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<Cow<'a, str>> {
    match fields.get(name)? {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Null => None,
        other => Some(Cow::Owned(other.to_string())),
    }
}

impl Matcher {
    /// Compiles checked rules (the loader has validated every regex and template).
    pub(super) fn compile(rules: Vec<RuleDef>, tables: HashMap<String, HashMap<String, String>>) -> Matcher {
        let mut by_protocol: HashMap<String, ProtocolRules> = HashMap::new();
        let mut patterns: HashMap<String, Vec<(String, Vec<String>)>> = HashMap::new();
        let rule_count = rules.len();
        for rule in rules {
            let field_patterns = patterns.entry(rule.protocol.clone()).or_default();
            let conditions = rule
                .when
                .iter()
                .map(|c| {
                    condition(c, |r| {
                        let set = match field_patterns.iter().position(|(f, _)| *f == c.field) {
                            Some(i) => i,
                            None => {
                                field_patterns.push((c.field.clone(), Vec::new()));
                                field_patterns.len() - 1
                            }
                        };
                        field_patterns[set].1.push(r.to_string());
                        Some((set, field_patterns[set].1.len() - 1))
                    })
                })
                .collect();
            let templates = rule
                .set
                .templates()
                .map(|(name, text)| (name, Template::parse(text).expect("checked at load")))
                .collect();
            by_protocol.entry(rule.protocol.clone()).or_default().rules.push(CompiledRule {
                id: rule.id,
                conditions,
                protocol: rule.set.protocol,
                ics: rule.set.ics,
                templates,
                tags: rule.set.tags,
                severity: rule.set.severity.map(|s| s.parse().expect("checked at load")),
            });
        }
        for (protocol, fields) in patterns {
            let entry = by_protocol.entry(protocol).or_default();
            entry.regex_fields = fields
                .into_iter()
                .map(|(f, pats)| (f, RegexSet::new(pats).expect("each pattern compiled alone")))
                .collect();
        }
        Matcher { by_protocol, tables, rule_count }
    }

    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Every matching rule of the observation's protocol, in order: the first sets what it names and is
    /// reported; later ones fill only what is still unset. A rule that renames the protocol hands over
    /// to that protocol's rules.
    pub fn classify(&self, protocol: &str, fields: &Map<String, Value>) -> Classification {
        let mut out = Classification::default();
        let mut current = protocol.to_string();
        let mut seen = vec![current.clone()];
        for _ in 0..MAX_HANDOVERS {
            let Some(group) = self.by_protocol.get(&current) else { break };
            let hits: Vec<Option<regex::SetMatches>> =
                group.regex_fields.iter().map(|(f, set)| text_of(fields, f).map(|t| set.matches(&t))).collect();
            for rule in &group.rules {
                let mut captures: Vec<(String, String)> = Vec::new();
                if rule.conditions.iter().all(|c| holds(c, fields, &hits, &mut captures)) {
                    self.apply(rule, fields, &captures, &mut out);
                }
            }
            match &out.protocol {
                Some(p) if !seen.contains(p) => {
                    current = p.clone();
                    seen.push(current.clone());
                }
                _ => break,
            }
        }
        out
    }

    fn apply(
        &self,
        rule: &CompiledRule,
        fields: &Map<String, Value>,
        captures: &[(String, String)],
        out: &mut Classification,
    ) {
        out.rule.get_or_insert_with(|| rule.id.clone());
        if out.protocol.is_none() {
            out.protocol = rule.protocol.clone();
        }
        if out.ics.is_none() {
            out.ics = rule.ics;
        }
        if out.severity.is_none() {
            out.severity = rule.severity;
        }
        let value = |name: &str| {
            captures
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| text_of(fields, name).map(|t| t.into_owned()))
                .filter(|v| !v.trim().is_empty())
        };
        let lookup = |table: &str, key: &str| self.tables.get(table).and_then(|t| t.get(key)).cloned();
        // A version or CPE describes one product: a later rule that names another product (a WAGO page
        // served by lighttpd) must not attach its version to the product an earlier rule chose.
        let same_product = match (&out.product, rule.templates.iter().find(|(n, _)| *n == "product")) {
            (Some(chosen), Some((_, t))) => t.render(value, lookup).as_ref() == Some(chosen),
            _ => true,
        };
        for (name, template) in &rule.templates {
            if matches!(*name, "version" | "cpe") && !same_product {
                continue;
            }
            let slot = match *name {
                "vendor" => &mut out.vendor,
                "product" => &mut out.product,
                "version" => &mut out.version,
                "device_type" => &mut out.device_type,
                "cpe" => &mut out.cpe,
                other => unreachable!("the schema has no template output {other}"),
            };
            if slot.is_none() {
                *slot = template.render(value, lookup);
            }
        }
        for t in &rule.tags {
            if !out.tags.contains(t) {
                out.tags.push(t.clone());
            }
        }
    }
}

fn holds(
    condition: &Condition,
    fields: &Map<String, Value>,
    hits: &[Option<regex::SetMatches>],
    captures: &mut Vec<(String, String)>,
) -> bool {
    match condition {
        Condition::Equals(f, v) => text_of(fields, f).is_some_and(|t| t == v.as_str()),
        Condition::Contains(f, v) => text_of(fields, f).is_some_and(|t| t.contains(v.as_str())),
        Condition::Prefix(f, v) => text_of(fields, f).is_some_and(|t| t.starts_with(v.as_str())),
        Condition::Present(f, want) => fields.get(f).is_some_and(|v| !v.is_null()) == *want,
        Condition::Regex { field, slot, regex, captures: named } => {
            let matched = match slot {
                Some((set, pattern)) => hits.get(*set).and_then(Option::as_ref).is_some_and(|m| m.matched(*pattern)),
                None => text_of(fields, field).is_some_and(|t| regex.is_match(&t)),
            };
            if matched && *named {
                if let Some(text) = text_of(fields, field) {
                    if let Some(caps) = regex.captures(&text) {
                        for name in regex.capture_names().flatten() {
                            if let Some(m) = caps.name(name) {
                                captures.push((name.to_string(), m.as_str().to_string()));
                            }
                        }
                    }
                }
            }
            matched
        }
    }
}
