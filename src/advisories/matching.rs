//! Matching services against advisories, per (service, advisory, product).
//!
//! A product is found, in this order of strength:
//! 1. by an order or model number the device reported that the advisory writes in the product's
//!    name (`SIMATIC S7-1500 CPU 1516-3 PN/DP (6ES7516-3AN01-0AB0)`; spaces and case ignored, so a
//!    device's `6ES7 516-3AN01-0AB0` is the same number; `*` in the advisory's number matches
//!    anything);
//! 2. by the product's identification helper: `model_numbers`, `skus`, or the CPE's vendor and
//!    product;
//! 3. by the words of its name: every word of the advisory's product name (less the vendor's
//!    name and words such as "family" or "series") is a word of the service's product.
//!
//! The vendor must agree (through the vendor table) except for numbers and CPEs, which name a
//! product on their own; a product that has order numbers, for a device that reported order
//! numbers, is never found by its words alone (products may differ only by order number). Of an
//! advisory's products, only those found the strongest way are reported.
//!
//! The status then comes from the product status (known_affected, fixed, ...) and the version
//! comparator, with its reason. A honeypot is never `affected`.

use super::csaf::{Advisory, ProductVersion, Tlp};
use super::vendors::{vendor_key, Vendors};
use super::version::{Range, Status};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// The attributes that carry an order or model number, by the probes that report them (S7's
/// `order_number`, Modbus' `model_name` and `product_code`, MELSEC's `cpu_model`, ...).
pub const CODE_ATTRIBUTES: &[&str] = &[
    "order_number",
    "model_number",
    "model_name",
    "model",
    "product_code",
    "cpu_model",
    "controller_model",
    "model_id",
    "plc_type",
];

/// The attributes that carry the firmware version, used when the finding has no `version`.
pub const VERSION_ATTRIBUTES: &[&str] = &["firmware_version", "firmware", "revision"];

/// What a finding says about one service, as matching needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceIdentity {
    pub vendor: Option<String>,
    pub product: Option<String>,
    /// As the device stated it.
    pub version: Option<String>,
    /// Order and model numbers the device reported, as it wrote them.
    pub order_numbers: Vec<String>,
    pub cpe: Option<String>,
    /// The finding shows honeypot traits: its identity is not evidence of a real device.
    pub honeypot: bool,
}

impl ServiceIdentity {
    /// From a finding's fields: its identity, and the order or model numbers and firmware version
    /// among its attributes (string values of [`CODE_ATTRIBUTES`] and [`VERSION_ATTRIBUTES`]).
    pub fn from_finding_fields(
        vendor: Option<&str>,
        product: Option<&str>,
        version: Option<&str>,
        cpe: Option<&str>,
        attributes: &Map<String, Value>,
        honeypot: bool,
    ) -> ServiceIdentity {
        let text = |key: &str| attributes.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let version =
            version.map(str::to_string).or_else(|| VERSION_ATTRIBUTES.iter().find_map(|k| text(k)).map(str::to_string));
        ServiceIdentity {
            vendor: vendor.map(str::to_string),
            product: product.map(str::to_string),
            version,
            order_numbers: CODE_ATTRIBUTES.iter().filter_map(|k| text(k)).map(str::to_string).collect(),
            cpe: cpe.map(str::to_string),
            honeypot,
        }
    }
}

/// How a product was found, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// An order or model number in the product's name.
    OrderNumber,
    /// `product_identification_helper.model_numbers`.
    ModelNumber,
    /// `product_identification_helper.skus`.
    Sku,
    /// `product_identification_helper.cpe`: vendor and product.
    Cpe,
    /// Every word of the product's name.
    NameTokens,
}

/// Why a product was taken for the service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// What matched: the number, the CPE, or the words.
    pub detail: String,
}

/// A remediation of the advisory for the matched product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationText {
    /// `vendor_fix`, `mitigation`, `workaround`, `no_fix_planned`, `none_available`.
    pub category: String,
    pub details: String,
    pub url: Option<String>,
}

/// One (service, advisory, product) result; what the advisory says is borrowed from the index.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MatchResult<'a> {
    /// The tracking id, e.g. `ICSA-23-222-07`.
    pub advisory: &'a str,
    pub title: &'a str,
    pub tlp: Option<Tlp>,
    /// The CVEs the product is affected by (or, for a product listed as not affected, listed for).
    pub cves: &'a [String],
    /// The highest base score of those CVEs for this product (CVSS v3 where given, else v2).
    pub cvss: Option<f64>,
    /// The CVSS v3 severity of that score.
    pub severity: Option<&'a str>,
    pub product_id: &'a str,
    /// The advisory's product name.
    pub product: &'a str,
    /// The version or range the advisory gives for the product, as written.
    pub versions: Option<&'a str>,
    pub status: Status,
    pub reason: String,
    pub evidence: Evidence,
    pub remediations: &'a [RemediationText],
}

impl MatchResult<'_> {
    /// The vendor's fix, as the advisory words it.
    pub fn vendor_fix(&self) -> Vec<&str> {
        self.remediations.iter().filter(|r| r.category == "vendor_fix").map(|r| r.details.as_str()).collect()
    }
}

/// What the advisory says about a product, gathered from all its vulnerabilities.
#[derive(Clone, Debug, Default)]
struct Claim {
    affected_cves: Vec<String>,
    not_affected_cves: Vec<String>,
    investigated_cves: Vec<String>,
    affected: bool,
    not_affected: bool,
    under_investigation: bool,
    cvss: Option<(f64, Option<String>, bool)>,
    remediations: Vec<RemediationText>,
}

/// One product of one advisory, prepared for matching.
#[derive(Clone, Debug)]
struct Entry {
    advisory: u32,
    product: u32,
    vendor_keys: Vec<String>,
    name_codes: Vec<String>,
    name_patterns: Vec<String>,
    model_numbers: Vec<String>,
    skus: Vec<String>,
    cpe: Option<(String, String)>,
    tokens: Vec<String>,
    versions: Option<Range>,
    exact_version: bool,
    claim: Claim,
}

impl Entry {
    fn has_codes(&self) -> bool {
        !(self.name_codes.is_empty()
            && self.name_patterns.is_empty()
            && self.model_numbers.is_empty()
            && self.skus.is_empty())
    }
}

/// What matching needs of a service, computed once per query.
struct Query<'a> {
    identity: &'a ServiceIdentity,
    vendor_keys: Vec<String>,
    codes: Vec<String>,
    tokens: HashSet<String>,
    cpe: Option<(String, String)>,
}

/// Every product of a set of advisories, indexed by canonical vendor and name word, by order and
/// model number, and by CPE.
#[derive(Debug)]
pub struct Index {
    vendors: Vendors,
    advisories: Vec<AdvisoryHead>,
    entries: Vec<Entry>,
    by_code: HashMap<String, Vec<u32>>,
    patterns: Vec<(String, u32)>,
    by_cpe: HashMap<(String, String), Vec<u32>>,
    /// Canonical vendor key -> name word -> the products filed under it.
    by_vendor_token: HashMap<String, HashMap<String, Vec<u32>>>,
}

#[derive(Debug)]
struct AdvisoryHead {
    id: String,
    title: String,
    tlp: Option<Tlp>,
    products: Vec<(String, String)>,
}

/// Counts about an index, for the corpus figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub products: usize,
    /// Products with a version or range in their branch path.
    pub with_versions: usize,
    /// Of those, the ones whose version or range the comparator cannot read.
    pub unreadable_versions: usize,
    /// Products that nothing can find: no vendor, no number and no CPE.
    pub unfindable: usize,
}

/// Words of product names that say nothing about which product it is.
const STOP_WORDS: &[&str] = &[
    "all",
    "and",
    "device",
    "devices",
    "family",
    "firmware",
    "for",
    "incl",
    "including",
    "model",
    "models",
    "of",
    "or",
    "product",
    "products",
    "related",
    "series",
    "the",
    "variant",
    "variants",
    "version",
    "versions",
    "with",
];

impl Index {
    pub fn build<'a>(advisories: impl IntoIterator<Item = &'a Advisory>, vendors: &Vendors) -> Index {
        let mut index = Index {
            vendors: vendors.clone(),
            advisories: Vec::new(),
            entries: Vec::new(),
            by_code: HashMap::new(),
            patterns: Vec::new(),
            by_cpe: HashMap::new(),
            by_vendor_token: HashMap::new(),
        };
        for (a, advisory) in advisories.into_iter().enumerate() {
            index.advisories.push(AdvisoryHead {
                id: advisory.id.clone(),
                title: advisory.title.clone(),
                tlp: advisory.tlp,
                products: advisory.products.iter().map(|p| (p.id.clone(), p.name.clone())).collect(),
            });
            let claims = claims(advisory);
            let by_id: HashMap<&str, usize> =
                advisory.products.iter().enumerate().map(|(i, p)| (p.id.as_str(), i)).collect();
            for (p, product) in advisory.products.iter().enumerate() {
                let Some(claim) = claims.get(product.id.as_str()) else { continue };
                // A relationship's product is the device it relates to, running the referenced
                // component's version.
                let (identity, version_source) = match &product.relationship {
                    Some(r) => {
                        let (Some(&device), Some(&component)) = (
                            by_id.get(r.relates_to_product_reference.as_str()),
                            by_id.get(r.product_reference.as_str()),
                        ) else {
                            continue;
                        };
                        (&advisory.products[device], &advisory.products[component])
                    }
                    None => (product, product),
                };
                let vendor_keys: Vec<String> = identity
                    .vendor
                    .as_deref()
                    .map(|v| index.vendors.canonical(v).iter().map(|n| vendor_key(n)).collect())
                    .unwrap_or_default();
                let name = identity
                    .product_name
                    .clone()
                    .unwrap_or_else(|| identity.name.split(':').next().unwrap_or_default().to_string());
                let (name_codes, name_patterns) = bracketed_codes(&name);
                let mut tokens: Vec<String> = name_tokens(&name);
                // "Rockwell Automation CompactLogix 5380": the vendor's name in front is not a
                // word of the product (but "Automation Studio" keeps its "Automation").
                for vendor in
                    identity.vendor.iter().flat_map(|v| std::iter::once(v.clone()).chain(index.vendors.canonical(v)))
                {
                    let words = name_tokens(&vendor);
                    if !words.is_empty() && tokens.starts_with(&words) {
                        tokens.drain(..words.len());
                    }
                }
                tokens.sort();
                tokens.dedup();
                let (versions, exact_version) = match &version_source.version {
                    Some(ProductVersion::Range(text)) => (Some(Range::parse(text)), false),
                    Some(ProductVersion::Version(text)) => (Some(Range::parse(text)), true),
                    None => (None, false),
                };
                index.entries.push(Entry {
                    advisory: a as u32,
                    product: p as u32,
                    vendor_keys,
                    name_codes,
                    name_patterns,
                    model_numbers: identity
                        .helper
                        .model_numbers
                        .iter()
                        .map(|m| code_key(m))
                        .filter(|c| is_code(c))
                        .collect(),
                    skus: identity.helper.skus.iter().map(|m| code_key(m)).filter(|c| is_code(c)).collect(),
                    cpe: identity.helper.cpe.as_deref().and_then(cpe_vendor_product),
                    tokens,
                    versions,
                    exact_version,
                    claim: claim.clone(),
                });
            }
        }
        index.build_maps();
        index
    }

    fn build_maps(&mut self) {
        let mut token_counts: HashMap<(&str, &str), usize> = HashMap::new();
        for entry in &self.entries {
            for vendor in &entry.vendor_keys {
                for token in &entry.tokens {
                    *token_counts.entry((vendor, token)).or_default() += 1;
                }
            }
        }
        let mut by_vendor_token: HashMap<String, HashMap<String, Vec<u32>>> = HashMap::new();
        for (id, entry) in self.entries.iter().enumerate() {
            let id = id as u32;
            for code in entry.name_codes.iter().chain(&entry.model_numbers).chain(&entry.skus) {
                let ids = self.by_code.entry(code.clone()).or_default();
                if ids.last() != Some(&id) {
                    ids.push(id);
                }
            }
            for pattern in &entry.name_patterns {
                self.patterns.push((pattern.clone(), id));
            }
            if let Some(cpe) = &entry.cpe {
                self.by_cpe.entry(cpe.clone()).or_default().push(id);
            }
            // Every word of the product must be a word of the service: filing the product under
            // its rarest word (per vendor) is enough to find it.
            for vendor in &entry.vendor_keys {
                if let Some(rarest) = entry.tokens.iter().min_by_key(|t| token_counts[&(vendor.as_str(), t.as_str())]) {
                    by_vendor_token.entry(vendor.clone()).or_default().entry(rarest.clone()).or_default().push(id);
                }
            }
        }
        self.by_vendor_token = by_vendor_token;
    }

    /// Counts of products, versions read and products nothing can find.
    pub fn stats(&self) -> IndexStats {
        let mut stats = IndexStats { products: self.entries.len(), ..Default::default() };
        for entry in &self.entries {
            if let Some(range) = &entry.versions {
                stats.with_versions += 1;
                if !range.is_readable() {
                    stats.unreadable_versions += 1;
                }
            }
            if entry.vendor_keys.is_empty() && !entry.has_codes() && entry.cpe.is_none() {
                stats.unfindable += 1;
            }
        }
        stats
    }

    fn query<'a>(&self, identity: &'a ServiceIdentity) -> Query<'a> {
        let vendor_keys = identity
            .vendor
            .as_deref()
            .map(|v| self.vendors.canonical(v).iter().map(|n| vendor_key(n)).collect())
            .unwrap_or_default();
        let codes: Vec<String> = identity.order_numbers.iter().map(|c| code_key(c)).filter(|c| is_code(c)).collect();
        let tokens = identity.product.as_deref().map(name_tokens).unwrap_or_default().into_iter().collect();
        Query { identity, vendor_keys, codes, tokens, cpe: identity.cpe.as_deref().and_then(cpe_vendor_product) }
    }

    /// Every (advisory, product) result for one service, through the index.
    pub fn matches(&self, identity: &ServiceIdentity) -> Vec<MatchResult<'_>> {
        let query = self.query(identity);
        let mut candidates: Vec<u32> = Vec::new();
        for code in &query.codes {
            candidates.extend(self.by_code.get(code).into_iter().flatten());
            candidates.extend(self.patterns.iter().filter(|(p, _)| glob_match(p, code)).map(|(_, id)| *id));
        }
        if let Some(cpe) = &query.cpe {
            candidates.extend(self.by_cpe.get(cpe).into_iter().flatten());
        }
        for tokens in query.vendor_keys.iter().filter_map(|v| self.by_vendor_token.get(v)) {
            for ids in query.tokens.iter().filter_map(|t| tokens.get(t)) {
                candidates.extend(ids);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        self.results(&query, candidates.into_iter())
    }

    /// The same results as [`Index::matches`], by trying every product of every advisory: the
    /// reference the index is tested and measured against.
    pub fn matches_exhaustive(&self, identity: &ServiceIdentity) -> Vec<MatchResult<'_>> {
        let query = self.query(identity);
        self.results(&query, 0..self.entries.len() as u32)
    }

    fn results(&self, query: &Query, candidates: impl Iterator<Item = u32>) -> Vec<MatchResult<'_>> {
        // Per advisory, the strongest evidence found and the products found with it.
        let mut best: HashMap<u32, (EvidenceKind, Vec<(u32, Evidence)>)> = HashMap::new();
        for id in candidates {
            let entry = &self.entries[id as usize];
            let Some(evidence) = find(entry, query) else { continue };
            let slot = best.entry(entry.advisory).or_insert((evidence.kind, Vec::new()));
            if evidence.kind < slot.0 {
                *slot = (evidence.kind, Vec::new());
            }
            if evidence.kind == slot.0 {
                slot.1.push((id, evidence));
            }
        }
        let mut results: Vec<MatchResult> = best
            .into_values()
            .flat_map(|(_, found)| found)
            .filter_map(|(id, evidence)| self.result(&self.entries[id as usize], query.identity, evidence))
            .collect();
        results.sort_by(|a, b| (a.advisory, a.product_id).cmp(&(b.advisory, b.product_id)));
        results
    }

    fn result<'a>(
        &'a self,
        entry: &'a Entry,
        identity: &ServiceIdentity,
        evidence: Evidence,
    ) -> Option<MatchResult<'a>> {
        let head = &self.advisories[entry.advisory as usize];
        let (product_id, product) = &head.products[entry.product as usize];
        let claim = &entry.claim;
        let version = identity.version.as_deref();
        let (status, reason, cves) = if claim.affected {
            let (status, reason) = match &entry.versions {
                Some(range) => {
                    let verdict = range.evaluate(version);
                    (verdict.status, verdict.reason)
                }
                None => {
                    (Status::Affected, "the advisory lists the product as affected without naming versions".to_string())
                }
            };
            (status, reason, &claim.affected_cves)
        } else if claim.under_investigation {
            (
                Status::Undetermined,
                "the vendor is still investigating whether the product is affected".to_string(),
                &claim.investigated_cves,
            )
        } else if claim.not_affected {
            // A product listed as fixed or not affected says so of its own versions only.
            match &entry.versions {
                None => (
                    Status::NotAffected,
                    "the advisory lists the product as not affected or fixed".to_string(),
                    &claim.not_affected_cves,
                ),
                Some(range) => {
                    let verdict = range.evaluate(version);
                    if verdict.status != Status::Affected {
                        return None;
                    }
                    let what = if entry.exact_version { "version" } else { "range" };
                    let reason = format!(
                        "the advisory lists the {what} {:?} as not affected or fixed: {}",
                        range.text().trim(),
                        verdict.reason
                    );
                    (Status::NotAffected, reason, &claim.not_affected_cves)
                }
            }
        } else {
            return None;
        };
        let (status, reason) = if identity.honeypot && status == Status::Affected {
            (
                Status::Undetermined,
                format!(
                    "the service shows honeypot traits, so its identity is no evidence of a real device ({reason})"
                ),
            )
        } else {
            (status, reason)
        };
        let (cvss, severity) = match &claim.cvss {
            Some((score, severity, _)) => (Some(*score), severity.as_deref()),
            None => (None, None),
        };
        Some(MatchResult {
            advisory: &head.id,
            title: &head.title,
            tlp: head.tlp,
            cves,
            cvss,
            severity,
            product_id,
            product,
            versions: entry.versions.as_ref().map(Range::text),
            status,
            reason,
            evidence,
            remediations: &claim.remediations,
        })
    }
}

/// Whether the entry is the service's product, and how it was found.
fn find(entry: &Entry, query: &Query) -> Option<Evidence> {
    let vendor_agrees = entry.vendor_keys.iter().any(|v| query.vendor_keys.contains(v));
    let vendor_conflicts = !entry.vendor_keys.is_empty() && !query.vendor_keys.is_empty() && !vendor_agrees;
    if vendor_conflicts {
        return None;
    }
    for code in &query.codes {
        if entry.name_codes.contains(code) || entry.name_patterns.iter().any(|p| glob_match(p, code)) {
            return Some(Evidence { kind: EvidenceKind::OrderNumber, detail: code.clone() });
        }
    }
    for (kind, list) in [(EvidenceKind::ModelNumber, &entry.model_numbers), (EvidenceKind::Sku, &entry.skus)] {
        if let Some(code) = query.codes.iter().find(|c| list.contains(c)) {
            return Some(Evidence { kind, detail: code.clone() });
        }
    }
    if let (Some(ours), Some(theirs)) = (&entry.cpe, &query.cpe) {
        if ours == theirs {
            return Some(Evidence { kind: EvidenceKind::Cpe, detail: format!("{}:{}", ours.0, ours.1) });
        }
    }
    // Words alone: only with the vendor's agreement, and never against order numbers.
    if !vendor_agrees || entry.tokens.is_empty() || (entry.has_codes() && !query.codes.is_empty()) {
        return None;
    }
    entry
        .tokens
        .iter()
        .all(|t| query.tokens.contains(t))
        .then(|| Evidence { kind: EvidenceKind::NameTokens, detail: entry.tokens.join(" ") })
}

/// What each product's status, scores and remediations are, over all vulnerabilities.
fn claims(advisory: &Advisory) -> HashMap<&str, Claim> {
    let mut claims: HashMap<&str, Claim> = HashMap::new();
    for v in &advisory.vulnerabilities {
        let cve = v.cve.clone().unwrap_or_else(|| v.title.clone().unwrap_or_else(|| "(no CVE)".into()));
        let st = &v.status;
        let affected: HashSet<&str> =
            st.known_affected.iter().chain(&st.first_affected).chain(&st.last_affected).map(String::as_str).collect();
        let not_affected: HashSet<&str> =
            st.known_not_affected.iter().chain(&st.fixed).chain(&st.first_fixed).map(String::as_str).collect();
        let investigated: HashSet<&str> = st.under_investigation.iter().map(String::as_str).collect();
        for id in affected.iter().chain(&not_affected).chain(&investigated) {
            let claim = claims.entry(id).or_default();
            let list = if affected.contains(id) {
                claim.affected = true;
                &mut claim.affected_cves
            } else if investigated.contains(id) {
                claim.under_investigation = true;
                &mut claim.investigated_cves
            } else {
                claim.not_affected = true;
                &mut claim.not_affected_cves
            };
            if !list.contains(&cve) {
                list.push(cve.clone());
            }
            if !affected.contains(id) {
                continue;
            }
            for score in v.scores.iter().filter(|s| s.products.iter().any(|p| p == id)) {
                let candidate = match (&score.cvss_v3, &score.cvss_v2) {
                    (Some(c), _) => (c.base_score, c.base_severity.clone(), true),
                    (None, Some(c)) => (c.base_score, None, false),
                    (None, None) => continue,
                };
                // v3 scores outrank v2 ones; then the higher score.
                let better = match &claim.cvss {
                    None => true,
                    Some((score, _, v3)) => (candidate.2, candidate.0) > (*v3, *score),
                };
                if better {
                    claim.cvss = Some(candidate);
                }
            }
            for r in v.remediations.iter().filter(|r| r.product_ids.iter().any(|p| p == id)) {
                let text =
                    RemediationText { category: r.category.clone(), details: r.details.clone(), url: r.url.clone() };
                if !claim.remediations.contains(&text) {
                    claim.remediations.push(text);
                }
            }
        }
    }
    claims
}

/// A number as compared: lowercase, without spaces (`6ES7 516-3AN01-0AB0` = `6ES7516-3AN01-0AB0`).
fn code_key(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .trim_matches(['.', ',', ':', ';'])
        .to_string()
}

/// A number worth comparing: six characters or more, with digits and letters (not `24`, `8xFO`).
fn is_code(key: &str) -> bool {
    key.chars().count() >= 6 && key.chars().any(|c| c.is_ascii_digit()) && key.chars().any(|c| c.is_alphabetic())
}

/// The order and model numbers written in brackets in a product's name, and those with `*`.
fn bracketed_codes(name: &str) -> (Vec<String>, Vec<String>) {
    let mut codes = Vec::new();
    let mut patterns = Vec::new();
    let mut depth = 0usize;
    let mut inside = String::new();
    for c in name.chars() {
        match c {
            '(' => {
                depth += 1;
                inside.push(' ');
            }
            ')' => {
                depth = depth.saturating_sub(1);
                inside.push(' ');
            }
            _ if depth > 0 => inside.push(c),
            _ => {}
        }
    }
    for word in inside.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '/')) {
        let key = code_key(word);
        if !is_code(&key.replace('*', "")) {
            continue;
        }
        let list = if key.contains('*') { &mut patterns } else { &mut codes };
        if !list.contains(&key) {
            list.push(key);
        }
    }
    (codes, patterns)
}

/// The words of a product name that tell products apart: lowercase, outside brackets, split at
/// spaces, commas, colons and slashes, without [`STOP_WORDS`].
fn name_tokens(name: &str) -> Vec<String> {
    let mut outside = String::with_capacity(name.len());
    let mut depth = 0usize;
    for c in name.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => outside.extend(c.to_lowercase()),
            _ => {}
        }
    }
    outside
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '/'))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(w))
        .map(str::to_string)
        .collect()
}

/// `*` matches any run of characters.
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The vendor and product fields of a CPE 2.3 (`cpe:2.3:h:siemens:simatic_s7-1500:...`) or 2.2
/// (`cpe:/h:siemens:simatic_s7-1500`) name, lowercase; None when it has none.
fn cpe_vendor_product(cpe: &str) -> Option<(String, String)> {
    let lower = cpe.trim().to_lowercase();
    let body = lower.strip_prefix("cpe:2.3:").or_else(|| lower.strip_prefix("cpe:/"))?;
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut escaped = false;
    for c in body.chars() {
        match c {
            _ if escaped => {
                field.push(c);
                escaped = false;
            }
            '\\' => {
                field.push(c);
                escaped = true;
            }
            ':' => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    let (vendor, product) = (fields.get(1)?, fields.get(2)?);
    let meaningful = |f: &str| !f.is_empty() && f != "*" && f != "-";
    (meaningful(vendor) && meaningful(product)).then(|| (vendor.clone(), product.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_ignore_spaces_and_case() {
        assert_eq!(code_key("6ES7 516-3AN01-0AB0"), code_key("6es7516-3an01-0ab0"));
        assert!(is_code(&code_key("6ES7 516-3AN01-0AB0")));
        assert!(!is_code("24"));
        assert!(!is_code("8xfo"));
        let (codes, patterns) = bracketed_codes(
            "SIMATIC S7-1500 CPU 1518-4 PN/DP MFP (MLFB: 6ES7518-4AX00-1AC0, 6AG1518-4AX00-4AC0, incl. SIPLUS variant)",
        );
        assert_eq!(codes, vec!["6es7518-4ax00-1ac0", "6ag1518-4ax00-4ac0"]);
        assert!(patterns.is_empty());
        let (codes, patterns) = bracketed_codes("Modicon M580 CPU (part numbers BMEP* and BMEH*)");
        assert!(codes.is_empty());
        assert!(patterns.is_empty(), "BMEP* has too few characters to tell a product: {patterns:?}");
        let (_, patterns) = bracketed_codes("Modicon M340 CPU (part numbers BMXP34*)");
        assert_eq!(patterns, vec!["bmxp34*"]);
        assert!(glob_match("bmxp34*", "bmxp342020"));
        assert!(glob_match("bmep58*s", "bmep584040s"));
        assert!(!glob_match("bmep58*s", "bmep584040"));
        assert!(!glob_match("bmxp34*", "bmxp3"));
    }

    #[test]
    fn name_words_leave_out_brackets_and_stop_words() {
        assert_eq!(
            name_tokens("SIMATIC S7-1500 CPU family (incl. related ET200 CPUs and SIPLUS variants)"),
            vec!["simatic", "s7-1500", "cpu"]
        );
        assert_eq!(name_tokens("1756-EN2T Series A"), vec!["1756-en2t", "a"]);
        assert_eq!(name_tokens("1756-EN2T/D"), vec!["1756-en2t", "d"]);
        assert_eq!(name_tokens("CPU 1516-3 PN/DP"), vec!["cpu", "1516-3", "pn", "dp"]);
    }

    #[test]
    fn the_vendor_name_in_front_of_a_product_name_is_no_word_of_it() {
        let advisory = |vendor: &str, product: &str| {
            let document = serde_json::json!({
                "document": { "category": "csaf_base", "csaf_version": "2.0", "title": "t",
                    "publisher": { "category": "vendor", "name": "x", "namespace": "https://x.invalid" },
                    "tracking": { "id": "T-1", "version": "1", "status": "final",
                        "initial_release_date": "2024-01-01T00:00:00Z", "current_release_date": "2024-01-01T00:00:00Z",
                        "revision_history": [ { "date": "2024-01-01T00:00:00Z", "number": "1", "summary": "s" } ] } },
                "product_tree": { "branches": [ { "category": "vendor", "name": vendor, "branches": [
                    { "category": "product_name", "name": product, "product": { "name": product, "product_id": "P" } } ] } ] },
                "vulnerabilities": [ { "product_status": { "known_affected": ["P"] } } ]
            });
            super::super::parse_document(&serde_json::to_vec(&document).unwrap(), "t.json").unwrap()
        };
        let vendors = Vendors::default();
        let tokens = |vendor: &str, product: &str| {
            Index::build(&[advisory(vendor, product)], &vendors).entries[0].tokens.clone()
        };
        assert_eq!(
            tokens("Rockwell Automation ", "Rockwell Automation CompactLogix 5380"),
            vec!["5380", "compactlogix"]
        );
        assert_eq!(tokens("B&R Industrial Automation", "Automation Studio"), vec!["automation", "studio"]);
    }

    #[test]
    fn cpe_fields() {
        assert_eq!(
            cpe_vendor_product("cpe:2.3:h:siemens:simatic_s7-300_cpu_315-2_pn\\/dp:-:*:*:*:*:*:*:*"),
            Some(("siemens".into(), "simatic_s7-300_cpu_315-2_pn\\/dp".into()))
        );
        assert_eq!(
            cpe_vendor_product("cpe:/o:Schneider-Electric:Modicon_M340_Firmware:2.8"),
            Some(("schneider-electric".into(), "modicon_m340_firmware".into()))
        );
        assert_eq!(cpe_vendor_product("cpe:2.3:h:*:*:*"), None);
        assert_eq!(cpe_vendor_product("siemens"), None);
    }

    #[test]
    fn identity_from_finding_fields() {
        let attributes: Map<String, Value> = serde_json::from_str(
            r#"{"order_number": "6ES7 516-3AN01-0AB0", "firmware_version": "V2.9.4", "product_code": 54, "module_type": "CPU 1516-3 PN/DP"}"#,
        )
        .unwrap();
        let s = ServiceIdentity::from_finding_fields(
            Some("Siemens"),
            Some("SIMATIC S7-1500 CPU 1516-3 PN/DP"),
            None,
            None,
            &attributes,
            false,
        );
        assert_eq!(s.version.as_deref(), Some("V2.9.4"), "the firmware attribute stands in for a missing version");
        assert_eq!(s.order_numbers, vec!["6ES7 516-3AN01-0AB0"], "numbers that are not text are no order numbers");
        let s = ServiceIdentity::from_finding_fields(Some("Siemens"), None, Some("V3.0"), None, &attributes, true);
        assert_eq!(s.version.as_deref(), Some("V3.0"));
        assert!(s.honeypot);
    }
}
