//! The fingerprint library (`fingerprints/`): data, not code. Every `*.toml` file is loaded at
//! start-up, checked, and compiled once into a matcher; see `fingerprints/README.md` for the schema.

mod honeypots;
mod matcher;
mod schema;
mod template;

pub use honeypots::{HoneypotStage, Pass, Persona, Personas, Released, ATTRIBUTE as HONEYPOT_ATTRIBUTE};
pub use matcher::Matcher;
pub use schema::BannerProbeDef;
pub use template::Template;

use crate::findings::{Classification, Severity};
use crate::scope::{parse_ports, PortSpec};
use schema::{FileDef, HoneypotDef, RuleDef};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in the library, printed as `file:line: rule id: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryError {
    pub file: PathBuf,
    pub line: usize,
    /// The rule id, probe name, table or key the problem is in.
    pub item: String,
    pub message: String,
}

impl fmt::Display for LibraryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file.display(), self.line, self.item, self.message)
    }
}

/// Every problem found, so a rule author fixes them all at once.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LibraryErrors(pub Vec<LibraryError>);

impl fmt::Display for LibraryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Where a rule was written, for error messages and example reports.
#[derive(Debug, Clone)]
pub struct RuleOrigin {
    pub file: PathBuf,
    pub line: usize,
}

/// One example of a rule or a honeypot persona: an observation and what the library must say of it.
#[derive(Debug, Clone)]
pub struct Example {
    pub rule_id: String,
    pub origin: RuleOrigin,
    pub protocol: String,
    pub fields: Map<String, Value>,
    pub expect: Expect,
}

#[derive(Debug, Clone)]
pub enum Expect {
    /// A rule's example: this rule is reported, with these outputs.
    Outputs(BTreeMap<String, Value>),
    /// A persona's example: its evidence is shown.
    Persona,
    /// A persona's counterexample (a real stack's fields): no persona of the protocol is shown.
    NoPersona,
}

#[derive(Debug)]
pub struct Library {
    pub dir: PathBuf,
    /// The ports a scan covers when `--ports` is not given: the library's `ports`, and with
    /// `probe_ports = true`, every port where a probe of the registry or of the library expects its
    /// service.
    pub default_ports: Vec<PortSpec>,
    pub banner_probes: Vec<BannerProbeDef>,
    pub matcher: Matcher,
    /// The honeypot personas (`[[honeypot]]` entries).
    pub honeypots: Personas,
    pub examples: Vec<Example>,
    pub files: usize,
    /// A digest of every file's name and content: which library identified a scan's findings.
    pub version: String,
}

impl Library {
    /// Loads and checks every `*.toml` of `dir`; any problem fails the whole load.
    pub fn load(dir: &Path) -> Result<Library, LibraryErrors> {
        let mut errors = Vec::new();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                return Err(LibraryErrors(vec![LibraryError {
                    file: dir.to_path_buf(),
                    line: 0,
                    item: "folder".into(),
                    message: if e.kind() == std::io::ErrorKind::NotFound {
                        "no such folder: name the fingerprint library with --fingerprints DIR (the \
                         repository's fingerprints/, or where it was installed)"
                            .to_string()
                    } else {
                        format!("cannot read the fingerprint library: {e}")
                    },
                }]))
            }
        };
        paths.sort();

        let mut rules: Vec<(RuleDef, RuleOrigin)> = Vec::new();
        let mut honeypots: Vec<(HoneypotDef, RuleOrigin)> = Vec::new();
        let mut tables: HashMap<String, HashMap<String, String>> = HashMap::new();
        let mut default_ports = Vec::new();
        let mut probe_ports = false;
        let mut banner_probes = Vec::new();
        for path in &paths {
            let text = match crate::input::read_bounded_text(path, crate::input::RULE_FILE_LIMIT) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(LibraryError {
                        file: path.clone(),
                        line: 0,
                        item: "file".into(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            digest.update(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
            digest.update(text.as_bytes());
            let file: FileDef = match toml::from_str(&text) {
                Ok(f) => f,
                Err(e) => {
                    let line = e.span().map(|s| line_of(&text, s.start)).unwrap_or(0);
                    errors.push(LibraryError {
                        file: path.clone(),
                        line,
                        item: "toml".into(),
                        message: e.message().trim().to_string(),
                    });
                    continue;
                }
            };
            let err = |span: std::ops::Range<usize>, item: &str, message: String| LibraryError {
                file: path.clone(),
                line: line_of(&text, span.start),
                item: item.to_string(),
                message,
            };
            probe_ports |= file.probe_ports;
            for entry in file.ports {
                match parse_ports(entry.get_ref()) {
                    Ok(p) => default_ports.extend(p),
                    Err(e) => errors.push(err(entry.span(), "ports", e)),
                }
            }
            for (name, entries) in file.table {
                let table = tables.entry(name.clone()).or_default();
                for (key, value) in entries {
                    if table.insert(key.clone(), value).is_some() {
                        errors.push(err(0..0, &format!("table {name}"), format!("key {key:?} defined twice")));
                    }
                }
            }
            for probe in file.probe {
                let span = probe.span();
                let probe = probe.into_inner();
                match probe.check() {
                    Ok(()) => banner_probes.push(probe),
                    Err(e) => errors.push(err(span, &format!("probe {}", probe.name), e)),
                }
            }
            for rule in file.rule {
                let origin = RuleOrigin { file: path.clone(), line: line_of(&text, rule.span().start) };
                rules.push((rule.into_inner(), origin));
            }
            for persona in file.honeypot {
                let origin = RuleOrigin { file: path.clone(), line: line_of(&text, persona.span().start) };
                honeypots.push((persona.into_inner(), origin));
            }
        }

        let mut ids = HashMap::new();
        let known_protocols: HashSet<String> = crate::probes::registry()
            .iter()
            .map(|p| p.protocol.to_string())
            .chain(["unknown".to_string(), "tls".to_string()])
            .chain(rules.iter().filter_map(|(r, _)| r.set.protocol.clone()))
            .collect();
        for (rule, origin) in &rules {
            let err = |message: String| LibraryError {
                file: origin.file.clone(),
                line: origin.line,
                item: rule.id.clone(),
                message,
            };
            if let Some(first) = ids.insert(rule.id.clone(), origin.clone()) {
                errors.push(err(format!(
                    "duplicate rule id: first defined at {}:{}",
                    first.file.display(),
                    first.line
                )));
            }
            if !known_protocols.contains(&rule.protocol) {
                errors.push(err(format!(
                    "unknown protocol {:?}: use a probe's protocol id, \"unknown\" for banners, or one a rule sets",
                    rule.protocol
                )));
            }
            if rule.example.is_empty() {
                errors.push(err("no example: every rule needs at least one [[rule.example]]".into()));
            }
            for message in rule.problems(&tables) {
                errors.push(err(message));
            }
        }
        let mut persona_ids = HashMap::new();
        for (persona, origin) in &honeypots {
            let err = |message: String| LibraryError {
                file: origin.file.clone(),
                line: origin.line,
                item: format!("honeypot {}", persona.id),
                message,
            };
            if let Some(first) = persona_ids.insert(persona.id.clone(), origin.clone()) {
                errors.push(err(format!(
                    "duplicate honeypot id: first defined at {}:{}",
                    first.file.display(),
                    first.line
                )));
            }
            if !known_protocols.contains(&persona.protocol) {
                errors.push(err(format!("unknown protocol {:?}", persona.protocol)));
            }
            for message in persona.problems() {
                errors.push(err(message));
            }
        }
        if !errors.is_empty() {
            return Err(LibraryErrors(errors));
        }

        if probe_ports {
            default_ports.extend(crate::probes::registry_ports());
            default_ports.extend(
                banner_probes.iter().flat_map(|p: &BannerProbeDef| {
                    p.ports.iter().map(|&port| PortSpec { port, transport: p.transport })
                }),
            );
        }
        default_ports.sort();
        default_ports.dedup();
        let rule_examples = rules.iter().flat_map(|(rule, origin)| {
            rule.example.iter().map(move |ex| Example {
                rule_id: rule.id.clone(),
                origin: origin.clone(),
                protocol: rule.protocol.clone(),
                fields: ex.observation_fields(),
                expect: Expect::Outputs(ex.expect.clone()),
            })
        });
        let persona_examples = honeypots.iter().flat_map(|(persona, origin)| {
            let shown = persona.example.iter().map(|ex| (ex, Expect::Persona));
            let not = persona.counterexample.iter().map(|ex| (ex, Expect::NoPersona));
            shown.chain(not).map(move |(ex, expect)| Example {
                rule_id: persona.id.clone(),
                origin: origin.clone(),
                protocol: persona.protocol.clone(),
                fields: ex.fields(),
                expect,
            })
        });
        let examples = rule_examples.chain(persona_examples).collect();
        let honeypots = Personas(honeypots.iter().map(|(def, _)| honeypots::Persona::compile(def)).collect());
        let matcher = Matcher::compile(rules.into_iter().map(|(r, _)| r).collect(), tables);
        let version = hex::encode(&digest.finish().as_ref()[..8]);
        Ok(Library {
            dir: dir.to_path_buf(),
            default_ports,
            banner_probes,
            matcher,
            honeypots,
            examples,
            files: paths.len(),
            version,
        })
    }

    /// What the rules conclude about an observation of `protocol` with these fields.
    pub fn classify(&self, protocol: &str, fields: &Map<String, Value>) -> Classification {
        self.matcher.classify(protocol, fields)
    }

    /// Runs every rule's and persona's examples against the whole library; each failure is one line.
    pub fn test_examples(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for (n, ex) in self.examples.iter().enumerate() {
            let place = format!("{}:{}: {}", ex.origin.file.display(), ex.origin.line, ex.rule_id);
            let number = 1 + self.examples[..n].iter().filter(|e| e.rule_id == ex.rule_id).count();
            let expect = match &ex.expect {
                Expect::Outputs(expect) => expect,
                Expect::Persona => {
                    if !self.honeypots.matching(&ex.protocol, &ex.fields).any(|p| p.id == ex.rule_id) {
                        failures.push(format!("{place}: example {number}: the persona's evidence does not match"));
                    }
                    continue;
                }
                Expect::NoPersona => {
                    if let Some(p) = self.honeypots.matching(&ex.protocol, &ex.fields).next() {
                        failures.push(format!("{place}: counterexample {number}: shows persona {:?}", p.id));
                    }
                    continue;
                }
            };
            let got = self.classify(&ex.protocol, &ex.fields);
            if got.rule.as_deref() != Some(ex.rule_id.as_str()) {
                failures.push(format!(
                    "{place}: example {number}: matched by {} instead of this rule",
                    got.rule.as_deref().map(|r| format!("rule {r:?}")).unwrap_or_else(|| "no rule".into())
                ));
                continue;
            }
            for (key, want) in expect {
                let have = got.output(key);
                if have.as_ref() != Some(want) {
                    failures.push(format!(
                        "{place}: example {number}: expected {key} {want}, got {}",
                        have.map(|v| v.to_string()).unwrap_or_else(|| "null".into())
                    ));
                }
            }
        }
        failures
    }
}

impl Classification {
    /// One output by its name in rule files, as JSON (for comparing with examples).
    pub fn output(&self, key: &str) -> Option<Value> {
        let text = |v: &Option<String>| v.clone().map(Value::String);
        match key {
            "protocol" => text(&self.protocol),
            "ics" => self.ics.map(Value::Bool),
            "vendor" => text(&self.vendor),
            "product" => text(&self.product),
            "version" => text(&self.version),
            "severity" => self.severity.map(|s: Severity| Value::String(s.as_str().into())),
            "device_type" => text(&self.device_type),
            "cpe" => text(&self.cpe),
            "tags" => (!self.tags.is_empty()).then(|| Value::from(self.tags.clone())),
            _ => None,
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count()
}

/// Interprets `\r`, `\n`, `\t`, `\0`, `\\` and `\xNN` in a payload or banner written in a rule file.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16)
                    .map_err(|_| format!("bad escape \\x{hex}: two hex digits expected"))?;
                out.push(byte);
            }
            Some(other) => return Err(format!("unknown escape \\{other} (use \\r \\n \\t \\0 \\\\ or \\xNN)")),
            None => return Err("a lone \\ at the end".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library(files: &[(&str, &str)]) -> Result<Library, LibraryErrors> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let lib = Library::load(dir.path());
        drop(dir);
        lib
    }

    const SSH: &str = r#"
[[rule]]
id = "banner.ssh"
protocol = "unknown"
when = [{ field = "banner", regex = '^SSH-(?P<proto>[\d.]+)-(?P<software>[^\s\r\n]+)' }]
[rule.set]
protocol = "ssh"
ics = false
[[rule.example]]
banner = 'SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n'
expect = { protocol = "ssh", ics = false, product = "OpenSSH", version = "9.2p1" }

[[rule]]
id = "ssh.openssh"
protocol = "ssh"
when = [{ field = "banner", regex = 'SSH-[\d.]+-OpenSSH_(?P<v>[\w.]+)' }]
set = { vendor = "OpenBSD", product = "OpenSSH", version = "{v}", cpe = "cpe:2.3:a:openbsd:openssh:{v}" }
[[rule.example]]
banner = 'SSH-2.0-OpenSSH_8.4\r\n'
expect = { product = "OpenSSH", version = "8.4", cpe = "cpe:2.3:a:openbsd:openssh:8.4" }
"#;

    #[test]
    fn default_ports_are_the_listed_ones_and_with_probe_ports_every_probes_too() {
        use crate::scope::Transport::{Tcp, Udp};
        let spec = |port, transport| PortSpec { port, transport };
        let probe = "[[probe]]\nname = \"redis\"\ntransport = \"tcp\"\nports = [6379]\npayload = \"PING\\r\\n\"\n";
        let listed = library(&[("ports.toml", "ports = [\"22/tcp\"]\n"), ("banners.toml", probe)]).unwrap();
        assert_eq!(listed.default_ports, vec![spec(22, Tcp)]);

        let all = "probe_ports = true\nports = [\"22/tcp\"]\n";
        let derived = library(&[("ports.toml", all), ("banners.toml", probe)]).unwrap().default_ports;
        for expected in
            [spec(22, Tcp), spec(502, Tcp), spec(4843, Tcp), spec(44818, Udp), spec(2222, Udp), spec(6379, Tcp)]
        {
            assert!(derived.contains(&expected), "{expected:?} missing from {derived:?}");
        }
        let registry: Vec<PortSpec> = crate::probes::registry_ports().collect();
        assert!(registry.iter().all(|p| derived.contains(p)), "every probe's port is scanned by default");
        assert!(derived.windows(2).all(|w| w[0] < w[1]), "sorted, without repeats");
    }

    #[test]
    fn banner_rules_rename_the_protocol_and_chain_into_its_rules() {
        let lib = library(&[("banners.toml", SSH)]).unwrap();
        let mut fields = Map::new();
        fields.insert("banner".into(), Value::String("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".into()));
        let c = lib.classify("unknown", &fields);
        assert_eq!(c.protocol.as_deref(), Some("ssh"));
        assert_eq!(c.product.as_deref(), Some("OpenSSH"));
        assert_eq!(c.version.as_deref(), Some("9.2p1"));
        assert_eq!(c.vendor.as_deref(), Some("OpenBSD"));
        assert_eq!(c.rule.as_deref(), Some("banner.ssh"));
        assert_eq!(lib.test_examples(), Vec::<String>::new());
    }

    #[test]
    fn first_match_wins_later_rules_fill_gaps_and_tables_look_up() {
        let lib = library(&[(
            "enip.toml",
            r#"
[table.enip_vendors]
1 = "Rockwell Automation/Allen-Bradley"

[[rule]]
id = "enip.1756-l61"
protocol = "tls"
when = [{ field = "product_name", prefix = "1756-L61" }]
set = { product = "ControlLogix 5561", version = "{revision}", device_type = "PLC", tags = ["plc"] }
[[rule.example]]
fields = { vendor_id = 1, product_name = "1756-L61/B LOGIX5561", revision = "20.11" }
expect = { vendor = "Rockwell Automation/Allen-Bradley", product = "ControlLogix 5561", version = "20.11", device_type = "PLC" }

[[rule]]
id = "enip.generic"
protocol = "tls"
set = { vendor = "{vendor_id@enip_vendors}", product = "{product_name}", version = "{revision}" }
[[rule.example]]
fields = { vendor_id = 9999, product_name = "X", revision = "1.2" }
expect = { product = "X", version = "1.2" }
"#,
        )])
        .unwrap();
        assert_eq!(lib.test_examples(), Vec::<String>::new());
        let fields: Map<String, Value> =
            serde_json::from_str(r#"{"vendor_id": 9999, "product_name": "X", "revision": "1.2"}"#).unwrap();
        let c = lib.classify("tls", &fields);
        assert_eq!(c.vendor, None, "an id missing from the table leaves the vendor unknown");
        assert_eq!(c.rule.as_deref(), Some("enip.generic"));
    }

    #[test]
    fn a_later_rule_never_attaches_its_version_to_another_product() {
        let lib = library(&[(
            "http.toml",
            r#"
[[rule]]
id = "hmi.wago"
protocol = "tls"
when = [{ field = "title", contains = "WAGO" }]
set = { vendor = "WAGO", product = "PFC200" }
[[rule.example]]
fields = { title = "WAGO Web-Based Management", server = "lighttpd/1.4.59" }
expect = { product = "PFC200" }

[[rule]]
id = "web.lighttpd"
protocol = "tls"
when = [{ field = "server", regex = '^lighttpd/(?P<v>[\d.]+)' }]
set = { product = "lighttpd", version = "{v}", cpe = "cpe:2.3:a:lighttpd:lighttpd:{v}" }
[[rule.example]]
fields = { server = "lighttpd/1.4.59" }
expect = { product = "lighttpd", version = "1.4.59" }
"#,
        )])
        .unwrap();
        assert_eq!(lib.test_examples(), Vec::<String>::new());
        let fields: Map<String, Value> =
            serde_json::from_str(r#"{"title": "WAGO Web-Based Management", "server": "lighttpd/1.4.59"}"#).unwrap();
        let c = lib.classify("tls", &fields);
        assert_eq!((c.product.as_deref(), c.version.as_deref(), c.cpe.as_deref()), (Some("PFC200"), None, None));
    }

    #[test]
    fn every_problem_is_reported_with_file_line_and_rule() {
        let e = library(&[(
            "bad.toml",
            r#"
[[rule]]
id = "a"
protocol = "nosuch"
when = [{ field = "x", regex = "(" }, { field = "y" }, { field = "z", equals = "1", prefix = "2" }]
set = { severity = "urgent", vendor = "{v@missing}" }

[[rule]]
id = "a"
protocol = "unknown"
set = {}
"#,
        )])
        .unwrap_err();
        let lines: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
        let has = |s: &str| lines.iter().any(|l| l.contains(s));
        assert!(has("bad.toml:2: a: unknown protocol \"nosuch\""), "{lines:#?}");
        assert!(has("bad.toml:2: a: condition 1 on x: bad regex"), "{lines:#?}");
        assert!(
            has("bad.toml:2: a: condition 2 on y: give exactly one of equals, contains, prefix, regex, present"),
            "{lines:#?}"
        );
        assert!(has("bad.toml:2: a: condition 3 on z: give exactly one of"), "{lines:#?}");
        assert!(has("bad.toml:2: a: set.severity: unknown severity \"urgent\""), "{lines:#?}");
        assert!(has("bad.toml:2: a: set.vendor: unknown table \"missing\""), "{lines:#?}");
        assert!(has("bad.toml:2: a: no example"), "{lines:#?}");
        assert!(has("bad.toml:8: a: duplicate rule id: first defined at"), "{lines:#?}");
        let e = library(&[("syntax.toml", "[[rule]]\nid = \"x\"\nprotocol = \n")]).unwrap_err();
        assert!(e.0[0].to_string().contains("syntax.toml:3: toml: "), "{}", e.0[0]);
        let e =
            library(&[("keys.toml", "[[rule]]\nid = \"x\"\nprotocol = \"unknown\"\nvendor = \"y\"\n")]).unwrap_err();
        assert!(e.0[0].message.contains("unknown field `vendor`"), "{}", e.0[0]);
    }

    #[test]
    fn failing_examples_are_reported() {
        let lib = library(&[(
            "x.toml",
            r#"
[[rule]]
id = "r"
protocol = "unknown"
when = [{ field = "banner", prefix = "220 " }]
set = { protocol = "ftp", product = "vsftpd" }
[[rule.example]]
banner = '220 (vsFTPd 3.0.3)\r\n'
expect = { product = "ProFTPD" }
[[rule.example]]
banner = 'nope'
expect = { product = "vsftpd" }
"#,
        )])
        .unwrap();
        let f = lib.test_examples();
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(f[0].ends_with("r: example 1: expected product \"ProFTPD\", got \"vsftpd\""), "{}", f[0]);
        assert!(f[1].ends_with("r: example 2: matched by no rule instead of this rule"), "{}", f[1]);
    }

    #[test]
    fn unescapes_payloads() {
        assert_eq!(unescape(r"PING\r\n").unwrap(), b"PING\r\n");
        assert_eq!(unescape(r"\x01I20100\n").unwrap(), b"\x01I20100\n");
        assert!(unescape(r"\xZZ").is_err());
        assert!(unescape(r"\q").is_err());
    }
}
