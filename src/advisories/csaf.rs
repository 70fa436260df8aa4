//! CSAF 2.0 documents: the parts otscope needs, read and checked from the JSON tree so that every
//! problem is reported at once with its JSON pointer (`file: /json/pointer: what is wrong`).
//!
//! Read: `document` (tracking id, version, dates, revision history, title, publisher, TLP label),
//! `product_tree` (branches to any depth, full product names, relationships, product groups, the
//! identification helpers) and `vulnerabilities` (CVE, CVSS scores, product status, remediations).
//! Everything else a document may hold is allowed and ignored. A document is refused when a part
//! otscope relies on is missing or malformed, or when it refers to a product id it never defines.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Documents larger than this are refused before parsing (the largest CISA ICS advisory is under
/// 1 MB).
pub const MAX_DOCUMENT_BYTES: usize = 32 << 20;

/// One thing wrong with a document, where it is (a JSON pointer, `/` for the whole document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "{}: {}: {}", self.file, pointer, self.message)
    }
}

/// A document's Traffic Light Protocol label (CSAF 2.0 `document.distribution.tlp.label`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Tlp {
    White,
    Green,
    Amber,
    Red,
}

impl Tlp {
    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::White => "WHITE",
            Tlp::Green => "GREEN",
            Tlp::Amber => "AMBER",
            Tlp::Red => "RED",
        }
    }

    /// Reads a label as CSAF 2.0 writes it (`WHITE`, `GREEN`, `AMBER`, `RED`).
    pub fn parse(label: &str) -> Option<Tlp> {
        Some(match label {
            "WHITE" => Tlp::White,
            "GREEN" => Tlp::Green,
            "AMBER" => Tlp::Amber,
            "RED" => Tlp::Red,
            _ => return None,
        })
    }
}

/// What otscope keeps of one CSAF 2.0 advisory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Advisory {
    /// The name it was read under (a file path, an URL).
    pub source: String,
    /// `document.tracking.id`, e.g. `ICSA-23-222-07`.
    pub id: String,
    pub version: String,
    pub title: String,
    pub publisher: String,
    pub initial_release_date: String,
    pub current_release_date: String,
    pub revision_history: Vec<Revision>,
    /// None when the document carries no TLP label.
    pub tlp: Option<Tlp>,
    /// SHA-256 (hex) of the document's JSON with object keys sorted and no insignificant
    /// whitespace: a corrected document changes it even when its revision history does not.
    pub content_hash: String,
    pub products: Vec<Product>,
    pub vulnerabilities: Vec<Vulnerability>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revision {
    pub number: String,
    pub date: String,
    pub summary: String,
}

/// A product the document defines, with what its branch path says about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Product {
    pub id: String,
    /// The full product name.
    pub name: String,
    /// The `vendor` branch above it, as written.
    pub vendor: Option<String>,
    /// The `product_family` branch above it.
    pub family: Option<String>,
    /// The `product_name` branch above (or at) it.
    pub product_name: Option<String>,
    pub version: Option<ProductVersion>,
    pub helper: IdentificationHelper,
    /// For a product a relationship defines: what it combines.
    pub relationship: Option<Relationship>,
}

/// The version a branch names: one version (`product_version`) or a range
/// (`product_version_range`), as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "text", rename_all = "snake_case")]
pub enum ProductVersion {
    Version(String),
    Range(String),
}

impl ProductVersion {
    pub fn text(&self) -> &str {
        match self {
            ProductVersion::Version(t) | ProductVersion::Range(t) => t,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IdentificationHelper {
    pub cpe: Option<String>,
    pub purl: Option<String>,
    pub model_numbers: Vec<String>,
    pub skus: Vec<String>,
    pub serial_numbers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Relationship {
    /// `default_component_of`, `installed_on`, ...
    pub category: String,
    pub product_reference: String,
    pub relates_to_product_reference: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Vulnerability {
    pub cve: Option<String>,
    pub title: Option<String>,
    pub scores: Vec<Score>,
    pub status: ProductStatus,
    pub remediations: Vec<Remediation>,
}

/// `vulnerabilities[].product_status`: product ids per status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProductStatus {
    pub first_affected: Vec<String>,
    pub first_fixed: Vec<String>,
    pub fixed: Vec<String>,
    pub known_affected: Vec<String>,
    pub known_not_affected: Vec<String>,
    pub last_affected: Vec<String>,
    pub recommended: Vec<String>,
    pub under_investigation: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Score {
    pub products: Vec<String>,
    pub cvss_v3: Option<Cvss>,
    pub cvss_v2: Option<Cvss>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cvss {
    pub base_score: f64,
    /// `NONE`, `LOW`, `MEDIUM`, `HIGH`, `CRITICAL` (CVSS v3 only).
    pub base_severity: Option<String>,
    pub vector: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Remediation {
    /// `vendor_fix`, `mitigation`, `workaround`, `no_fix_planned`, `none_available`.
    pub category: String,
    pub details: String,
    /// The products it applies to, product groups expanded.
    pub product_ids: Vec<String>,
    pub url: Option<String>,
}

const BRANCH_CATEGORIES: &[&str] = &[
    "architecture",
    "host_name",
    "language",
    "legacy",
    "patch_level",
    "product_family",
    "product_name",
    "product_version",
    "product_version_range",
    "service_pack",
    "specification",
    "vendor",
];
const RELATIONSHIP_CATEGORIES: &[&str] =
    &["default_component_of", "external_component_of", "installed_on", "installed_with", "optional_component_of"];
const REMEDIATION_CATEGORIES: &[&str] = &["mitigation", "no_fix_planned", "none_available", "vendor_fix", "workaround"];
const SEVERITIES: &[&str] = &["NONE", "LOW", "MEDIUM", "HIGH", "CRITICAL"];

/// Reads and checks one CSAF 2.0 document. `name` is how problems name the file.
pub fn parse_document(bytes: &[u8], name: &str) -> Result<Advisory, Vec<Problem>> {
    let mut reader = Reader { file: name, problems: Vec::new() };
    if bytes.len() > MAX_DOCUMENT_BYTES {
        reader.problem(
            &At::Root,
            format!("{} bytes is larger than the {MAX_DOCUMENT_BYTES} bytes a document may have", bytes.len()),
        );
        return Err(reader.problems);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let root: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            reader.problem(&At::Root, format!("not JSON: {e}"));
            return Err(reader.problems);
        }
    };
    let advisory = reader.advisory(&root, name, content_hash(&root));
    match advisory {
        Some(a) if reader.problems.is_empty() => Ok(a),
        _ => Err(reader.problems),
    }
}

/// A document read from a file: where, its bytes as they were (for the store), and what they say.
#[derive(Debug)]
pub struct Document {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub advisory: Advisory,
}

/// What reading files and folders of documents gave: each document read, and each one refused
/// with its problems. A refused document never stops the others.
#[derive(Debug, Default)]
pub struct Documents {
    pub read: Vec<Document>,
    pub refused: Vec<(PathBuf, Vec<Problem>)>,
}

impl Documents {
    pub fn advisories(&self) -> impl Iterator<Item = &Advisory> {
        self.read.iter().map(|d| &d.advisory)
    }
}

/// Reads documents from files and folders: a file is read whatever its name, a folder for every
/// `*.json` file below it, in name order. Problems name files as given (`dir/icsa-23-001-01.json`).
pub fn read_documents(paths: &[PathBuf]) -> Documents {
    let mut files = Vec::new();
    let mut documents = Documents::default();
    for path in paths {
        if path.is_dir() {
            match json_files(path) {
                Ok(found) => files.extend(found),
                Err(e) => documents.refused.push((path.clone(), vec![io_problem(path, &e)])),
            }
        } else {
            files.push(path.clone());
        }
    }
    for path in files {
        let name = path.display().to_string();
        let read = std::fs::read(&path)
            .map_err(|e| vec![io_problem(&path, &e)])
            .and_then(|bytes| parse_document(&bytes, &name).map(|advisory| (bytes, advisory)));
        match read {
            Ok((bytes, advisory)) => documents.read.push(Document { path, bytes, advisory }),
            Err(problems) => documents.refused.push((path, problems)),
        }
    }
    documents
}

fn io_problem(path: &Path, error: &std::io::Error) -> Problem {
    Problem { file: path.display().to_string(), pointer: String::new(), message: format!("cannot read: {error}") }
}

/// Every `*.json` file below `dir`, in name order.
pub fn json_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    let mut files = Vec::new();
    for path in entries {
        if path.is_dir() {
            files.extend(json_files(&path)?);
        } else if path.extension().is_some_and(|x| x.eq_ignore_ascii_case("json")) {
            files.push(path);
        }
    }
    Ok(files)
}

/// Walks the JSON tree, collecting problems instead of stopping at the first.
struct Reader<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

/// A JSON pointer built as the walk goes down, written out only when a problem needs it.
#[derive(Clone, Copy)]
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl<'a> At<'a> {
    fn key(&'a self, key: &'a str) -> At<'a> {
        At::Key(self, key)
    }

    fn index(&'a self, i: usize) -> At<'a> {
        At::Index(self, i)
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Key(parent, key) => write!(f, "{parent}/{}", key.replace('~', "~0").replace('/', "~1")),
            At::Index(parent, i) => write!(f, "{parent}/{i}"),
        }
    }
}

/// Where each product id was defined, and the product groups, for the cross-reference checks.
#[derive(Default)]
struct Definitions {
    products: HashMap<String, String>,
    groups: HashMap<String, Vec<String>>,
}

/// `document`: everything an advisory has besides its products and vulnerabilities.
struct Header {
    id: String,
    version: String,
    title: String,
    publisher: String,
    initial_release_date: String,
    current_release_date: String,
    revision_history: Vec<Revision>,
    tlp: Option<Tlp>,
}

/// What the branches above a product say about it.
#[derive(Clone, Default)]
struct BranchPath {
    vendor: Option<String>,
    family: Option<String>,
    product_name: Option<String>,
    version: Option<ProductVersion>,
}

type Object = Map<String, Value>;

impl Reader<'_> {
    fn problem(&mut self, at: &At, message: impl Into<String>) {
        self.problems.push(Problem { file: self.file.to_string(), pointer: at.to_string(), message: message.into() });
    }

    fn object<'v>(&mut self, value: &'v Value, at: &At) -> Option<&'v Object> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.problem(at, format!("must be an object, not {}", kind(other)));
                None
            }
        }
    }

    fn required<'v>(&mut self, map: &'v Object, at: &At, key: &str) -> Option<&'v Value> {
        let value = map.get(key);
        if value.is_none() {
            self.problem(&at.key(key), "missing");
        }
        value
    }

    fn required_object<'v>(&mut self, map: &'v Object, at: &At, key: &str) -> Option<&'v Object> {
        let value = self.required(map, at, key)?;
        self.object(value, &at.key(key))
    }

    fn string(&mut self, value: &Value, at: &At) -> Option<String> {
        match value {
            Value::String(s) if s.trim().is_empty() => {
                self.problem(at, "must not be empty");
                None
            }
            Value::String(s) => Some(s.clone()),
            other => {
                self.problem(at, format!("must be a string, not {}", kind(other)));
                None
            }
        }
    }

    fn required_string(&mut self, map: &Object, at: &At, key: &str) -> Option<String> {
        let value = self.required(map, at, key)?;
        self.string(value, &at.key(key))
    }

    fn optional_string(&mut self, map: &Object, at: &At, key: &str) -> Option<String> {
        let value = map.get(key)?;
        self.string(value, &at.key(key))
    }

    fn optional_array<'v>(&mut self, map: &'v Object, at: &At, key: &str) -> &'v [Value] {
        match map.get(key) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.problem(&at.key(key), format!("must be an array, not {}", kind(other)));
                &[]
            }
        }
    }

    fn strings(&mut self, map: &Object, at: &At, key: &str) -> Vec<String> {
        let list = at.key(key);
        let items = self.optional_array(map, at, key);
        items.iter().enumerate().filter_map(|(i, v)| self.string(v, &list.index(i))).collect()
    }

    fn date_time(&mut self, map: &Object, at: &At, key: &str) -> Option<String> {
        let text = self.required_string(map, at, key)?;
        if time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).is_err() {
            self.problem(&at.key(key), format!("{text:?} is not an RFC 3339 date and time"));
            return None;
        }
        Some(text)
    }

    fn one_of(&mut self, map: &Object, at: &At, key: &str, allowed: &[&str]) -> Option<String> {
        let text = self.required_string(map, at, key)?;
        if allowed.contains(&text.as_str()) {
            return Some(text);
        }
        self.problem(&at.key(key), format!("{text:?} is not one of {}", allowed.join(", ")));
        None
    }

    fn advisory(&mut self, root: &Value, source: &str, content_hash: String) -> Option<Advisory> {
        let root = self.object(root, &At::Root)?;
        let header = self.required_object(root, &At::Root, "document").and_then(|d| self.document(d));
        let mut definitions = Definitions::default();
        let products = match root.get("product_tree") {
            None => Vec::new(),
            Some(tree) => {
                let at = At::Root.key("product_tree");
                self.object(tree, &at).map(|tree| self.product_tree(tree, &at, &mut definitions)).unwrap_or_default()
            }
        };
        let list = At::Root.key("vulnerabilities");
        let vulnerabilities = self
            .optional_array(root, &At::Root, "vulnerabilities")
            .iter()
            .enumerate()
            .filter_map(|(i, v)| self.vulnerability(v, &list.index(i), &definitions))
            .collect();
        let header = header?;
        Some(Advisory {
            source: source.to_string(),
            id: header.id,
            version: header.version,
            title: header.title,
            publisher: header.publisher,
            initial_release_date: header.initial_release_date,
            current_release_date: header.current_release_date,
            revision_history: header.revision_history,
            tlp: header.tlp,
            content_hash,
            products,
            vulnerabilities,
        })
    }

    fn document(&mut self, document: &Object) -> Option<Header> {
        let at = At::Root.key("document");
        if let Some(v) = self.required_string(document, &at, "csaf_version") {
            if v != "2.0" {
                self.problem(&at.key("csaf_version"), format!("{v:?}: only CSAF 2.0 is read"));
            }
        }
        self.required_string(document, &at, "category");
        let title = self.required_string(document, &at, "title");
        let publisher = self
            .required_object(document, &at, "publisher")
            .and_then(|p| self.required_string(p, &at.key("publisher"), "name"));
        let tlp = match document.get("distribution") {
            None => None,
            Some(d) => {
                let dat = at.key("distribution");
                self.object(d, &dat).and_then(|d| self.tlp(d, &dat))
            }
        };
        let tat = at.key("tracking");
        let tracking = self.required_object(document, &at, "tracking")?;
        let id = self.required_string(tracking, &tat, "id");
        let version = self.required_string(tracking, &tat, "version");
        let initial = self.date_time(tracking, &tat, "initial_release_date");
        let current = self.date_time(tracking, &tat, "current_release_date");
        self.required_string(tracking, &tat, "status");
        let mut revisions = Vec::new();
        if self.required(tracking, &tat, "revision_history").is_some() {
            let history = self.optional_array(tracking, &tat, "revision_history");
            let list = tat.key("revision_history");
            if history.is_empty() {
                self.problem(&list, "must list at least one revision");
            }
            for (i, r) in history.iter().enumerate() {
                let rat = list.index(i);
                let Some(r) = self.object(r, &rat) else { continue };
                let number = self.required_string(r, &rat, "number");
                let date = self.date_time(r, &rat, "date");
                let summary = self.required_string(r, &rat, "summary");
                if let (Some(number), Some(date), Some(summary)) = (number, date, summary) {
                    revisions.push(Revision { number, date, summary });
                }
            }
        }
        Some(Header {
            id: id?,
            version: version?,
            title: title?,
            publisher: publisher?,
            initial_release_date: initial?,
            current_release_date: current?,
            revision_history: revisions,
            tlp,
        })
    }

    fn tlp(&mut self, distribution: &Object, at: &At) -> Option<Tlp> {
        distribution.get("tlp")?;
        let tat = at.key("tlp");
        let tlp = self.required_object(distribution, at, "tlp")?;
        let label = self.required_string(tlp, &tat, "label")?;
        let parsed = Tlp::parse(&label);
        if parsed.is_none() {
            self.problem(
                &tat.key("label"),
                format!("{label:?} is not a CSAF 2.0 TLP label (WHITE, GREEN, AMBER, RED)"),
            );
        }
        parsed
    }

    fn product_tree(&mut self, tree: &Object, at: &At, definitions: &mut Definitions) -> Vec<Product> {
        let mut products = Vec::new();
        let list = at.key("branches");
        for (i, branch) in self.optional_array(tree, at, "branches").iter().enumerate() {
            self.branch(branch, &list.index(i), &BranchPath::default(), &mut products, definitions);
        }
        let list = at.key("full_product_names");
        for (i, full) in self.optional_array(tree, at, "full_product_names").iter().enumerate() {
            if let Some(p) = self.full_product_name(full, &list.index(i), &BranchPath::default(), definitions) {
                products.push(p);
            }
        }
        // References are checked once every product is defined.
        let mut references = Vec::new();
        let list = at.key("relationships");
        for (i, r) in self.optional_array(tree, at, "relationships").iter().enumerate() {
            let rat = list.index(i);
            let Some(r) = self.object(r, &rat) else { continue };
            let category = self.one_of(r, &rat, "category", RELATIONSHIP_CATEGORIES);
            let reference = self.required_string(r, &rat, "product_reference");
            let relates_to = self.required_string(r, &rat, "relates_to_product_reference");
            let product = self.required(r, &rat, "full_product_name").and_then(|f| {
                self.full_product_name(f, &rat.key("full_product_name"), &BranchPath::default(), definitions)
            });
            if let Some(reference) = &reference {
                references.push((rat.key("product_reference").to_string(), reference.clone()));
            }
            if let Some(relates_to) = &relates_to {
                references.push((rat.key("relates_to_product_reference").to_string(), relates_to.clone()));
            }
            if let (Some(category), Some(reference), Some(relates_to), Some(mut product)) =
                (category, reference, relates_to, product)
            {
                product.relationship = Some(Relationship {
                    category,
                    product_reference: reference,
                    relates_to_product_reference: relates_to,
                });
                products.push(product);
            }
        }
        let list = at.key("product_groups");
        for (i, group) in self.optional_array(tree, at, "product_groups").iter().enumerate() {
            let gat = list.index(i);
            let Some(group) = self.object(group, &gat) else { continue };
            let id = self.required_string(group, &gat, "group_id");
            let ids = self.strings(group, &gat, "product_ids");
            let ids_at = gat.key("product_ids");
            references.extend(ids.iter().enumerate().map(|(j, pid)| (ids_at.index(j).to_string(), pid.clone())));
            if let Some(id) = id {
                if definitions.groups.insert(id.clone(), ids).is_some() {
                    self.problem(&gat.key("group_id"), format!("group id {id:?} is defined twice"));
                }
            }
        }
        for (pointer, id) in references {
            if !definitions.products.contains_key(&id) {
                self.problems.push(Problem {
                    file: self.file.to_string(),
                    pointer,
                    message: format!("product id {id:?} is not defined in /product_tree"),
                });
            }
        }
        products
    }

    fn branch(
        &mut self,
        value: &Value,
        at: &At,
        path: &BranchPath,
        products: &mut Vec<Product>,
        definitions: &mut Definitions,
    ) {
        let Some(branch) = self.object(value, at) else { return };
        let category = self.one_of(branch, at, "category", BRANCH_CATEGORIES);
        let name = self.required_string(branch, at, "name");
        let mut path = path.clone();
        if let (Some(category), Some(name)) = (category, name) {
            match category.as_str() {
                "vendor" => path.vendor = Some(name),
                "product_family" => path.family = Some(name),
                "product_name" => path.product_name = Some(name),
                "product_version" => path.version = Some(ProductVersion::Version(name)),
                "product_version_range" => path.version = Some(ProductVersion::Range(name)),
                _ => {}
            }
        }
        let children = self.optional_array(branch, at, "branches");
        match (children.is_empty(), branch.get("product")) {
            (false, None) => {
                let list = at.key("branches");
                for (i, c) in children.iter().enumerate() {
                    self.branch(c, &list.index(i), &path, products, definitions);
                }
            }
            (true, Some(product)) => {
                if let Some(p) = self.full_product_name(product, &at.key("product"), &path, definitions) {
                    products.push(p);
                }
            }
            (false, Some(_)) => self.problem(at, "a branch has either branches or a product, not both"),
            (true, None) => self.problem(at, "a branch needs branches or a product"),
        }
    }

    fn full_product_name(
        &mut self,
        value: &Value,
        at: &At,
        path: &BranchPath,
        definitions: &mut Definitions,
    ) -> Option<Product> {
        let full = self.object(value, at)?;
        let id = self.required_string(full, at, "product_id");
        let name = self.required_string(full, at, "name");
        let helper = match full.get("product_identification_helper") {
            None => IdentificationHelper::default(),
            Some(h) => {
                let hat = at.key("product_identification_helper");
                match self.object(h, &hat) {
                    None => IdentificationHelper::default(),
                    Some(h) => IdentificationHelper {
                        cpe: self.optional_string(h, &hat, "cpe"),
                        purl: self.optional_string(h, &hat, "purl"),
                        model_numbers: self.strings(h, &hat, "model_numbers"),
                        skus: self.strings(h, &hat, "skus"),
                        serial_numbers: self.strings(h, &hat, "serial_numbers"),
                    },
                }
            }
        };
        let id = id?;
        if let Some(first) = definitions.products.insert(id.clone(), at.to_string()) {
            self.problem(&at.key("product_id"), format!("product id {id:?} is defined twice (first at {first})"));
        }
        Some(Product {
            id,
            name: name?,
            vendor: path.vendor.clone(),
            family: path.family.clone(),
            product_name: path.product_name.clone(),
            version: path.version.clone(),
            helper,
            relationship: None,
        })
    }

    fn product_ids(&mut self, map: &Object, at: &At, key: &str, definitions: &Definitions) -> Vec<String> {
        let ids = self.strings(map, at, key);
        let list = at.key(key);
        for (i, id) in ids.iter().enumerate() {
            if !definitions.products.contains_key(id) {
                self.problem(&list.index(i), format!("product id {id:?} is not defined in /product_tree"));
            }
        }
        ids
    }

    fn vulnerability(&mut self, value: &Value, at: &At, definitions: &Definitions) -> Option<Vulnerability> {
        let v = self.object(value, at)?;
        let cve = self.optional_string(v, at, "cve");
        if let Some(cve) = &cve {
            if !is_cve_id(cve) {
                self.problem(&at.key("cve"), format!("{cve:?} is not a CVE id (CVE-YYYY-NNNN)"));
            }
        }
        let mut vulnerability =
            Vulnerability { cve, title: self.optional_string(v, at, "title"), ..Default::default() };
        if let Some(status) = v.get("product_status") {
            let sat = at.key("product_status");
            if let Some(s) = self.object(status, &sat) {
                let st = &mut vulnerability.status;
                for (key, list) in [
                    ("first_affected", &mut st.first_affected),
                    ("first_fixed", &mut st.first_fixed),
                    ("fixed", &mut st.fixed),
                    ("known_affected", &mut st.known_affected),
                    ("known_not_affected", &mut st.known_not_affected),
                    ("last_affected", &mut st.last_affected),
                    ("recommended", &mut st.recommended),
                    ("under_investigation", &mut st.under_investigation),
                ] {
                    *list = self.product_ids(s, &sat, key, definitions);
                }
            }
        }
        let list = at.key("scores");
        for (i, score) in self.optional_array(v, at, "scores").iter().enumerate() {
            let sat = list.index(i);
            let Some(score) = self.object(score, &sat) else { continue };
            let products = self.product_ids(score, &sat, "products", definitions);
            if products.is_empty() {
                self.problem(&sat.key("products"), "a score needs at least one product");
            }
            let cvss_v3 = score.get("cvss_v3").and_then(|c| self.cvss(c, &sat.key("cvss_v3"), true));
            let cvss_v2 = score.get("cvss_v2").and_then(|c| self.cvss(c, &sat.key("cvss_v2"), false));
            vulnerability.scores.push(Score { products, cvss_v3, cvss_v2 });
        }
        let list = at.key("remediations");
        for (i, r) in self.optional_array(v, at, "remediations").iter().enumerate() {
            let rat = list.index(i);
            let Some(r) = self.object(r, &rat) else { continue };
            let category = self.one_of(r, &rat, "category", REMEDIATION_CATEGORIES);
            let details = self.required_string(r, &rat, "details");
            let mut product_ids = self.product_ids(r, &rat, "product_ids", definitions);
            let groups = self.strings(r, &rat, "group_ids");
            let groups_at = rat.key("group_ids");
            for (j, group) in groups.iter().enumerate() {
                match definitions.groups.get(group) {
                    Some(members) => product_ids.extend(members.iter().cloned()),
                    None => self.problem(
                        &groups_at.index(j),
                        format!("group id {group:?} is not defined in /product_tree/product_groups"),
                    ),
                }
            }
            if !r.contains_key("product_ids") && !r.contains_key("group_ids") {
                self.problem(&rat, "a remediation needs product_ids or group_ids");
            }
            let url = self.optional_string(r, &rat, "url");
            if let (Some(category), Some(details)) = (category, details) {
                vulnerability.remediations.push(Remediation { category, details, product_ids, url });
            }
        }
        Some(vulnerability)
    }

    fn cvss(&mut self, value: &Value, at: &At, v3: bool) -> Option<Cvss> {
        let c = self.object(value, at)?;
        let base_score = match self.required(c, at, "baseScore") {
            Some(Value::Number(n)) => match n.as_f64() {
                Some(s) if (0.0..=10.0).contains(&s) => Some(s),
                _ => {
                    self.problem(&at.key("baseScore"), format!("{n} is not a score from 0 to 10"));
                    None
                }
            },
            Some(other) => {
                self.problem(&at.key("baseScore"), format!("must be a number, not {}", kind(other)));
                None
            }
            None => None,
        };
        let base_severity = if v3 { self.one_of(c, at, "baseSeverity", SEVERITIES) } else { None };
        let vector = self.optional_string(c, at, "vectorString");
        Some(Cvss { base_score: base_score?, base_severity, vector })
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_cve_id(text: &str) -> bool {
    let mut parts = text.splitn(3, '-');
    let (Some("CVE"), Some(year), Some(number)) = (parts.next(), parts.next(), parts.next()) else { return false };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && number.len() >= 4
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// SHA-256 of the value written with sorted keys and no whitespace: the same content hashes the
/// same however it is indented or ordered.
fn content_hash(value: &Value) -> String {
    fn write(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push(b'{');
                for (i, (key, value)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_scalar(key, out);
                    out.push(b':');
                    write(value, out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => write_scalar(scalar, out),
        }
    }
    fn write_scalar(scalar: &(impl Serialize + ?Sized), out: &mut Vec<u8>) {
        // Writing JSON scalars into memory cannot fail.
        let _ = serde_json::to_writer(&mut *out, scalar);
    }
    let mut canonical = Vec::new();
    write(value, &mut canonical);
    hex::encode(ring::digest::digest(&ring::digest::SHA256, &canonical).as_ref())
}
