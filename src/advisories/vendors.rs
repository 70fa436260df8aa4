//! Vendor names, canonicalised through `fingerprints/vendor_aliases.toml`: advisories and findings
//! write the same company in many ways ("Rockwell Automation " with a trailing space, "Mitsubishi
//! Electric Corporation", "Rockwell Automation/Allen-Bradley", "Schneider Electric Software, LLC").

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// The file of the fingerprint folder that holds the aliases, as the table `vendor_aliases`.
pub const VENDOR_ALIASES_FILE: &str = "vendor_aliases.toml";

/// Words that name a company's legal form, dropped from the end of a name.
const LEGAL_SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "llc",
    "ltd",
    "limited",
    "co",
    "corp",
    "corporation",
    "company",
    "gmbh",
    "ag",
    "sa",
    "se",
    "spa",
    "srl",
    "bv",
    "nv",
    "oy",
    "ab",
    "kg",
    "plc",
    "pte",
    "pty",
    "kk",
    "sas",
    "as",
    "aps",
    "ltda",
    "me",
];

/// Openings of a part that names the company it belongs to ("a subsidiary of Johnson Controls").
const AFFILIATION_PREFIXES: &[&str] = &["a subsidiary of ", "an affiliate of ", "subsidiary of ", "formerly ", "and "];

/// The key two spellings of one name share: lowercase, brackets and punctuation gone, one space
/// between words, legal suffixes dropped from the end (`Mitsubishi Electric Corporation` and
/// `mitsubishi  electric` give `mitsubishi electric`). Empty for a name of legal words only.
pub fn vendor_key(name: &str) -> String {
    let lower = name.to_lowercase();
    let mut unbracketed = String::with_capacity(lower.len());
    let mut depth = 0usize;
    for c in lower.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => {
                unbracketed.push(if matches!(c, '.' | ',' | ';' | ':' | '"' | '\'' | '!' | '?') { ' ' } else { c })
            }
            _ => {}
        }
    }
    let mut words: Vec<&str> =
        unbracketed.split_whitespace().map(|w| w.trim_matches(['-', '/', '&'])).filter(|w| !w.is_empty()).collect();
    while words.len() > 1 && words.last().is_some_and(|w| LEGAL_SUFFIXES.contains(w)) {
        words.pop();
    }
    if words.len() == 1 && LEGAL_SUFFIXES.contains(&words[0]) {
        words.clear();
    }
    // "S.p.A." and "S.A." leave their letters one by one.
    let letters = words.iter().rev().take_while(|w| w.len() == 1).count();
    if letters >= 2 && letters < words.len() {
        let keep = words.len() - letters;
        if LEGAL_SUFFIXES.contains(&words[keep..].concat().as_str()) {
            words.truncate(keep);
        }
    }
    words.join(" ")
}

/// A problem in the alias file: `file:line: key: message`, as the rule library reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorTableError {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for VendorTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file.display(), self.line, self.key, self.message)
    }
}

#[derive(Deserialize)]
struct AliasFile {
    #[serde(default)]
    table: BTreeMap<String, BTreeMap<String, toml::Spanned<String>>>,
}

/// Canonical vendor names, by the key of every name they go by.
#[derive(Debug, Clone, Default)]
pub struct Vendors {
    canonical_by_key: HashMap<String, String>,
}

impl Vendors {
    /// Loads `DIR/vendor_aliases.toml` (the fingerprint folder).
    pub fn load(dir: &Path) -> Result<Vendors, Vec<VendorTableError>> {
        let path = dir.join(VENDOR_ALIASES_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Vendors::from_toml(&text, &path),
            Err(e) => Err(vec![VendorTableError { file: path, line: 0, key: "file".into(), message: e.to_string() }]),
        }
    }

    /// Reads the table `vendor_aliases` (alias = canonical name) of a TOML text; `file` names it
    /// in errors. Two names that share a key but map to different canonical names are refused.
    pub fn from_toml(text: &str, file: &Path) -> Result<Vendors, Vec<VendorTableError>> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let error = |line: usize, key: &str, message: String| VendorTableError {
            file: file.to_path_buf(),
            line,
            key: key.to_string(),
            message,
        };
        let parsed: AliasFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(s.start)).unwrap_or(0);
            vec![error(line, "toml", e.message().trim().to_string())]
        })?;
        let Some(aliases) = parsed.table.get("vendor_aliases") else {
            return Err(vec![error(0, "table vendor_aliases", "missing".into())]);
        };
        let mut errors = Vec::new();
        let mut vendors = Vendors::default();
        let mut origin: HashMap<String, (String, usize)> = HashMap::new();
        // In file order, each alias and then each canonical name as a name of itself.
        let mut entries: Vec<(String, String, usize)> = aliases
            .iter()
            .map(|(alias, c)| (alias.clone(), c.get_ref().trim().to_string(), line_of(c.span().start)))
            .collect();
        entries.sort_by_key(|e| e.2);
        let own_names: Vec<(String, String, usize)> =
            entries.iter().map(|(_, c, line)| (c.clone(), c.clone(), *line)).collect();
        for (name, canonical, line) in entries.into_iter().chain(own_names) {
            if errors.iter().any(|e: &VendorTableError| e.line == line) {
                continue;
            }
            let key = vendor_key(&name);
            if key.is_empty() || vendor_key(&canonical).is_empty() {
                errors.push(error(line, &name, "a name needs a word besides legal suffixes".into()));
                continue;
            }
            match vendors.canonical_by_key.get(&key) {
                Some(existing) if *existing != canonical => {
                    let (other, other_line) = &origin[&key];
                    errors.push(error(
                        line,
                        &name,
                        format!("means {canonical:?}, but {other:?} (line {other_line}) is the same name and means {existing:?}"),
                    ));
                }
                Some(_) => {}
                None => {
                    vendors.canonical_by_key.insert(key.clone(), canonical);
                    origin.insert(key, (name, line));
                }
            }
        }
        if errors.is_empty() {
            Ok(vendors)
        } else {
            Err(errors)
        }
    }

    /// The canonical names of the companies a vendor string names: one for most names, several
    /// for an advisory's list ("Red Lion, AutomationDirect"). A name the table does not know is
    /// its own canonical name, with its spacing tidied. Empty for an empty name.
    pub fn canonical(&self, raw: &str) -> Vec<String> {
        if let Some(known) = self.canonical_by_key.get(&vendor_key(raw)) {
            return vec![known.clone()];
        }
        let mut names: Vec<String> = Vec::new();
        for part in raw.split([',', ';']).flat_map(|p| p.split(" / ")) {
            let mut part = part.trim();
            for prefix in AFFILIATION_PREFIXES {
                if part.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix)) {
                    part = part[prefix.len()..].trim();
                }
            }
            let key = vendor_key(part);
            if key.is_empty() {
                continue;
            }
            for name in self.names_of_part(part, &key) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// One comma-separated part: known as a whole, or "A and B" where both are known, or itself.
    fn names_of_part(&self, part: &str, key: &str) -> Vec<String> {
        if let Some(known) = self.canonical_by_key.get(key) {
            return vec![known.clone()];
        }
        if let Some((a, b)) = key.split_once(" and ") {
            if let (Some(a), Some(b)) = (self.canonical_by_key.get(a), self.canonical_by_key.get(b)) {
                return vec![a.clone(), b.clone()];
            }
        }
        vec![part.split_whitespace().collect::<Vec<_>>().join(" ")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library() -> Vendors {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprints");
        Vendors::load(&dir)
            .unwrap_or_else(|e| panic!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))
    }

    #[test]
    fn keys_ignore_case_spacing_brackets_and_legal_forms() {
        for (a, b) in [
            ("Rockwell Automation ", "Rockwell Automation"),
            (" Hitachi Energy", "hitachi  energy"),
            ("Mitsubishi Electric Corporation", "Mitsubishi Electric"),
            ("Siemens AG", "SIEMENS"),
            ("Johnson Controls, Inc.", "Johnson Controls Inc"),
            ("General Electric (GE)", "General Electric"),
            ("Carel Industries S.p.A.", "Carel Industries"),
            ("LS ELECTRIC, LS Industrial Systems (LSIS) Co. Ltd-", "ls electric ls industrial systems"),
        ] {
            assert_eq!(vendor_key(a), vendor_key(b), "{a:?} and {b:?}");
        }
        assert_ne!(vendor_key("Siemens"), vendor_key("Siemens Healthineers"));
        assert_eq!(vendor_key("LLC"), "");
        assert_eq!(vendor_key("B&R Industrial Automation GmbH"), "b&r industrial automation");
    }

    #[test]
    fn the_library_table_canonicalises_advisory_and_finding_names() {
        let v = library();
        for (raw, expected) in [
            ("Rockwell Automation ", vec!["Rockwell Automation"]),
            ("Rockwell Automation/Allen-Bradley", vec!["Rockwell Automation"]),
            ("Mitsubishi Electric Corporation", vec!["Mitsubishi Electric"]),
            (" Mitsubishi Electric", vec!["Mitsubishi Electric"]),
            ("Siemens AG", vec!["Siemens"]),
            ("Schneider Electric Software, LLC", vec!["Schneider Electric"]),
            ("Schneider Electric ", vec!["Schneider Electric"]),
            ("Red Lion, AutomationDirect", vec!["Red Lion Controls", "AutomationDirect"]),
            ("ICONICS, Mitsubishi Electric", vec!["ICONICS", "Mitsubishi Electric"]),
            ("Sensormatic Electronics, LLC, a subsidiary of Johnson Controls Inc.", vec!["Johnson Controls"]),
            ("General Electric (GE) and Emerson", vec!["GE", "Emerson"]),
            ("GE Fanuc / Emerson", vec!["GE", "Emerson"]),
            ("Hirschmann Automation and Control GmbH, Belden Inc.", vec!["Hirschmann", "Belden"]),
            (
                "ABB, Phoenix Contact, Schneider Electric, Siemens, and WAGO",
                vec!["ABB", "Phoenix Contact", "Schneider Electric", "Siemens", "WAGO"],
            ),
            ("Acme  Widgets Ltd.", vec!["Acme Widgets Ltd."]),
            ("", vec![]),
        ] {
            assert_eq!(v.canonical(raw), expected, "{raw:?}");
        }
        let key = |raw: &str| v.canonical(raw).iter().map(|n| vendor_key(n)).collect::<Vec<_>>();
        assert_eq!(key("Acme Widgets"), key("ACME WIDGETS, Inc."), "names the table does not know still meet");
        assert_ne!(key("Siemens"), key("Siemens Healthineers"));
    }

    #[test]
    fn every_rule_vendor_of_the_library_names_one_company() {
        let v = library();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprints");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let Some(value) = line.trim().strip_prefix("vendor = \"").and_then(|v| v.strip_suffix('"')) else {
                    continue;
                };
                if value.contains('{') || value.contains(" / ") {
                    continue;
                }
                let canonical = v.canonical(value);
                assert_eq!(canonical.len(), 1, "{}: {value:?} gives {canonical:?}", path.display());
                checked += 1;
            }
        }
        assert!(checked > 50, "only {checked} rule vendors seen");
    }

    #[test]
    fn conflicting_aliases_are_refused_with_their_lines() {
        let text = "[table.vendor_aliases]\n\"Siemens AG\" = \"Siemens\"\n\"SIEMENS\" = \"Siemens Healthineers\"\n\"Inc.\" = \"X\"\n";
        let errors = Vendors::from_toml(text, Path::new("v.toml")).unwrap_err();
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(lines.iter().any(|l| l.starts_with("v.toml:3: SIEMENS: means \"Siemens Healthineers\"")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.starts_with("v.toml:4: Inc.: a name needs a word")), "{lines:#?}");
        let errors = Vendors::from_toml("[table.other]\n", Path::new("v.toml")).unwrap_err();
        assert_eq!(errors[0].to_string(), "v.toml:0: table vendor_aliases: missing");
        let errors = Vendors::from_toml("[table.vendor_aliases]\nx = 1\n", Path::new("v.toml")).unwrap_err();
        assert!(errors[0].to_string().starts_with("v.toml:2: toml: "), "{}", errors[0]);
    }
}
