//! Honeypots named from persona evidence: the identities that well-known honeypots serve by default
//! (conpot's templates, GasPot's tank gauge), as data in the library (`[[honeypot]]` entries), and
//! the stage that marks a scan's findings with them.
//!
//! A finding is marked (`attributes.honeypot`) only on persona evidence, never because its reply
//! was odd: real stacks send inconsistent lengths too, and a real device must never be called a
//! decoy. Evidence that plain simulators or real devices may also serve (cpppo's default ENIP
//! identity, which conpot serves as well) names a honeypot only beside another protocol of the same
//! address showing the same persona. The engine probes targets in a permuted order, so such a
//! finding is held back from the outputs (it is recorded at once) until its address corroborates it
//! or the scan ends; memory is bounded by the addresses where some persona was seen. A resumed scan
//! first recalls what it recorded before its interruption, so that a persona seen then still
//! corroborates what is seen now.

use super::matcher::Conditions;
use super::schema::HoneypotDef;
use super::Library;
use crate::findings::Finding;
use crate::scope::Transport;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The attribute that carries the mark.
pub const ATTRIBUTE: &str = "honeypot";

/// One persona's evidence on one protocol, compiled.
#[derive(Debug)]
pub struct Persona {
    pub id: String,
    pub honeypot: String,
    pub persona: String,
    pub protocol: String,
    pub reason: String,
    /// Names the honeypot by itself; otherwise only with another protocol of the address.
    pub alone: bool,
    conditions: Conditions,
}

impl Persona {
    pub(super) fn compile(def: &HoneypotDef) -> Persona {
        Persona {
            id: def.id.clone(),
            honeypot: def.honeypot.clone(),
            persona: def.persona.clone(),
            protocol: def.protocol.clone(),
            reason: def.reason.clone(),
            alone: def.alone,
            conditions: Conditions::compile(&def.when),
        }
    }

    pub fn matches(&self, protocol: &str, fields: &Map<String, Value>) -> bool {
        self.protocol == protocol && self.conditions.hold(fields)
    }

    fn same_persona(&self, other: &Persona) -> bool {
        self.honeypot == other.honeypot && self.persona == other.persona
    }

    /// The mark, with `reason` as the finding should say it.
    fn mark(&self, reason: String) -> Value {
        json!({ "name": self.honeypot, "persona": self.persona, "reason": reason, "rule": self.id })
    }
}

/// Every persona of the library, in file order.
#[derive(Debug, Default)]
pub struct Personas(pub(super) Vec<Persona>);

impl Personas {
    /// The personas whose evidence this observation shows, in library order.
    pub fn matching<'a>(
        &'a self,
        protocol: &'a str,
        fields: &'a Map<String, Value>,
    ) -> impl Iterator<Item = &'a Persona> {
        self.0.iter().filter(move |p| p.matches(protocol, fields))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A persona seen on one port of an address.
struct Sighting {
    persona: usize,
    port: u16,
    transport: Transport,
}

impl Sighting {
    fn endpoint(&self) -> String {
        format!("{}/{}", self.port, self.transport.as_str())
    }
}

/// A finding the stage gives back, marked: record it again; write it unless it was written already
/// (one recalled from before an interruption).
#[derive(Debug)]
pub struct Released {
    pub finding: Finding,
    pub written: bool,
}

/// A finding that waits for its address to corroborate its persona.
struct Held {
    finding: Finding,
    persona: usize,
    /// Recalled from before an interruption: it is in the outputs already, unmarked.
    written: bool,
}

/// Whether the stage hands a finding on now or holds it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Write it now (marked or not).
    Now,
    /// Record it, then give it to [`HoneypotStage::hold`]: it shows a persona that needs
    /// corroboration, which its address has not given yet.
    Hold,
}

/// The per-scan stage that marks findings with the honeypot personas they show.
///
/// For each finding, in the order they come: [`admit`](Self::admit) (which marks it when it can),
/// record it, then write it, or [`hold`](Self::hold) it when told; then [`released`](Self::released)
/// gives the held findings it corroborated, marked (record them again, then write them unless
/// written). At the end of the scan, [`finish`](Self::finish) gives the held findings nothing
/// corroborated and not yet written, unmarked. A resumed scan first gives [`recall`](Self::recall)
/// each finding it recorded before its interruption.
pub struct HoneypotStage {
    library: Arc<Library>,
    seen: HashMap<IpAddr, Vec<Sighting>>,
    held: Vec<Held>,
    released: Vec<Released>,
}

impl HoneypotStage {
    /// A stage for one scan, with the library's personas.
    pub fn new(library: Arc<Library>) -> HoneypotStage {
        HoneypotStage { library, seen: HashMap::new(), held: Vec::new(), released: Vec::new() }
    }

    /// Marks `finding` when its persona evidence names a honeypot by itself or another protocol of its
    /// address shows the same persona, and releases the held findings of that persona on the address.
    pub fn admit(&mut self, finding: &mut Finding) -> Pass {
        let personas = &self.library.honeypots;
        let shown: Vec<usize> =
            (0..personas.0.len()).filter(|&i| personas.0[i].matches(&finding.protocol, &finding.attributes)).collect();
        if shown.is_empty() {
            return Pass::Now;
        }
        let (ip, port, transport) = (finding.ip, finding.port, finding.transport);
        let seen = self.seen.entry(ip).or_default();
        // Another protocol: the same stack's twin over the other transport (ListIdentity over TCP and
        // UDP) is one service, not a second port.
        let elsewhere = |i: usize| -> Vec<String> {
            let mut ports: Vec<String> = seen
                .iter()
                .filter(|s| personas.0[s.persona].protocol != personas.0[i].protocol)
                .filter(|s| personas.0[s.persona].same_persona(&personas.0[i]))
                .map(Sighting::endpoint)
                .collect();
            ports.sort();
            ports.dedup();
            ports
        };
        let mark = match shown.iter().find(|&&i| personas.0[i].alone) {
            Some(&i) => Some(personas.0[i].mark(personas.0[i].reason.clone())),
            None => shown.iter().find_map(|&i| {
                let ports = elsewhere(i);
                (!ports.is_empty()).then(|| personas.0[i].mark(corroborated(&personas.0[i], &ports)))
            }),
        };
        for &i in &shown {
            if !seen.iter().any(|s| s.persona == i && (s.port, s.transport) == (port, transport)) {
                seen.push(Sighting { persona: i, port, transport });
            }
        }
        // The held findings of the same persona on this address, in another protocol, are corroborated.
        let endpoint = format!("{port}/{}", transport.as_str());
        let (now, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held).into_iter().partition(|held| {
            let i = held.persona;
            held.finding.ip == ip
                && shown.iter().any(|&j| {
                    personas.0[j].same_persona(&personas.0[i]) && personas.0[j].protocol != personas.0[i].protocol
                })
        });
        self.held = still;
        for Held { mut finding, persona, written } in now {
            finding.attributes.insert(
                ATTRIBUTE.into(),
                personas.0[persona].mark(corroborated(&personas.0[persona], std::slice::from_ref(&endpoint))),
            );
            self.released.push(Released { finding, written });
        }
        match mark {
            Some(m) => {
                finding.attributes.insert(ATTRIBUTE.into(), m);
                Pass::Now
            }
            None => Pass::Hold,
        }
    }

    /// Keeps a finding that [`admit`](Self::admit) said to hold.
    pub fn hold(&mut self, finding: Finding) {
        self.keep(finding, false);
    }

    fn keep(&mut self, finding: Finding, written: bool) {
        let personas = &self.library.honeypots;
        let persona = (0..personas.0.len())
            .find(|&i| personas.0[i].matches(&finding.protocol, &finding.attributes))
            .expect("only findings that show a persona are held");
        self.held.push(Held { finding, persona, written });
    }

    /// A finding this scan recorded and wrote before an interruption: its personas are seen again,
    /// it is held again if it still waits for corroboration, and given back marked (to record again,
    /// not to write) if what was seen before it corroborates it now.
    pub fn recall(&mut self, mut finding: Finding) {
        let was_marked = finding.attributes.contains_key(ATTRIBUTE);
        match self.admit(&mut finding) {
            Pass::Hold => self.keep(finding, true),
            Pass::Now if !was_marked && finding.attributes.contains_key(ATTRIBUTE) => {
                self.released.push(Released { finding, written: true })
            }
            Pass::Now => {}
        }
    }

    /// The held findings corroborated since the last call, marked.
    pub fn released(&mut self) -> Vec<Released> {
        std::mem::take(&mut self.released)
    }

    /// The end of the scan: the held findings that nothing corroborated and that are not written yet,
    /// unmarked.
    pub fn finish(&mut self) -> Vec<Finding> {
        std::mem::take(&mut self.held).into_iter().filter(|h| !h.written).map(|h| h.finding).collect()
    }
}

fn corroborated(persona: &Persona, ports: &[String]) -> String {
    format!("{}; the same {} persona answers on {} of this address", persona.reason, persona.honeypot, ports.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERSONAS: &str = r#"
[[honeypot]]
id = "strong"
honeypot = "conpot"
persona = "default"
protocol = "s7comm"
reason = "serial 88111222"
source = "test"
alone = true
when = [{ field = "serial_number", equals = "88111222" }]
[[honeypot.example]]
fields = { serial_number = "88111222" }

[[honeypot]]
id = "weak"
honeypot = "conpot"
persona = "default"
protocol = "enip"
reason = "cpppo defaults"
source = "test"
alone = false
when = [{ field = "product_name", equals = "1756-L61/B LOGIX5561" }]
[[honeypot.example]]
fields = { product_name = "1756-L61/B LOGIX5561" }

[[honeypot]]
id = "weak.snmp"
honeypot = "conpot"
persona = "default"
protocol = "snmp"
reason = "sysDescr"
source = "test"
alone = false
when = [{ field = "sys_descr", regex = "^Siemens, SIMATIC, S7-200$" }]
[[honeypot.example]]
fields = { sys_descr = "Siemens, SIMATIC, S7-200" }

[[honeypot]]
id = "other"
honeypot = "GasPot"
persona = "default"
protocol = "snmp"
reason = "another honeypot"
source = "test"
alone = false
when = [{ field = "sys_descr", equals = "GasPot" }]
[[honeypot.example]]
fields = { sys_descr = "GasPot" }
"#;

    fn library() -> Arc<Library> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("honeypots.toml"), PERSONAS).unwrap();
        let library = Library::load(dir.path()).unwrap();
        assert_eq!(library.test_examples(), Vec::<String>::new());
        Arc::new(library)
    }

    fn finding(ip: &str, port: u16, protocol: &str, attributes: Value) -> Finding {
        serde_json::from_value(json!({
            "ip": ip, "port": port, "transport": if protocol == "snmp" { "udp" } else { "tcp" },
            "protocol": protocol, "ics": protocol != "snmp", "vendor": null, "product": null, "version": null,
            "attributes": attributes, "hostname": null, "enterprise_id": "E", "enterprise": "e",
            "district": "d", "level": "important", "severity": "critical", "rule": null, "evidence": "",
            "observed_at": "2026-01-01T00:00:00Z",
        }))
        .unwrap()
    }

    fn mark(f: &Finding) -> Option<&str> {
        f.attributes.get(ATTRIBUTE).and_then(|m| m["rule"].as_str())
    }

    #[test]
    fn strong_evidence_is_marked_at_once_and_keeps_protocol_and_severity() {
        let library = library();
        let mut stage = HoneypotStage::new(library.clone());
        let mut f = finding("127.0.0.1", 102, "s7comm", json!({ "serial_number": "88111222" }));
        assert_eq!(stage.admit(&mut f), Pass::Now);
        assert_eq!(mark(&f), Some("strong"));
        assert_eq!(f.attributes[ATTRIBUTE]["name"], "conpot");
        assert_eq!((f.protocol.as_str(), f.severity.as_str()), ("s7comm", "critical"));
        let mut real = finding("127.0.0.2", 102, "s7comm", json!({ "serial_number": "S C-C2UR28922012" }));
        assert_eq!(stage.admit(&mut real), Pass::Now);
        assert_eq!(mark(&real), None);
        assert!(stage.finish().is_empty());
    }

    #[test]
    fn weak_evidence_alone_is_held_and_left_unmarked() {
        let library = library();
        let mut stage = HoneypotStage::new(library.clone());
        let mut cpppo = finding("127.0.0.3", 44818, "enip", json!({ "product_name": "1756-L61/B LOGIX5561" }));
        assert_eq!(stage.admit(&mut cpppo), Pass::Hold);
        stage.hold(cpppo);
        // Other addresses, and the same port over the other transport's twin, corroborate nothing.
        let mut elsewhere = finding("127.0.0.4", 102, "s7comm", json!({ "serial_number": "88111222" }));
        assert_eq!(stage.admit(&mut elsewhere), Pass::Now);
        let mut twin = finding("127.0.0.3", 44818, "enip", json!({ "product_name": "1756-L61/B LOGIX5561" }));
        twin.transport = Transport::Udp;
        assert_eq!(stage.admit(&mut twin), Pass::Hold, "the same stack over UDP is no second port");
        stage.hold(twin);
        let mut other_honeypot = finding("127.0.0.3", 161, "snmp", json!({ "sys_descr": "GasPot" }));
        assert_eq!(stage.admit(&mut other_honeypot), Pass::Hold);
        stage.hold(other_honeypot);
        assert!(stage.released().is_empty());
        let left = stage.finish();
        assert_eq!(left.len(), 3);
        assert!(left.iter().all(|f| mark(f).is_none()), "{left:#?}");
    }

    #[test]
    fn weak_evidence_is_marked_when_another_port_of_its_address_shows_the_persona() {
        let library = library();
        // The weak finding first, the strong one later: the held one is released, marked.
        let mut stage = HoneypotStage::new(library.clone());
        let mut enip = finding("127.0.0.5", 44818, "enip", json!({ "product_name": "1756-L61/B LOGIX5561" }));
        assert_eq!(stage.admit(&mut enip), Pass::Hold);
        stage.hold(enip);
        let mut s7 = finding("127.0.0.5", 102, "s7comm", json!({ "serial_number": "88111222" }));
        assert_eq!(stage.admit(&mut s7), Pass::Now);
        let released = stage.released();
        assert_eq!(released.len(), 1);
        assert!(!released[0].written);
        assert_eq!(mark(&released[0].finding), Some("weak"));
        let reason = released[0].finding.attributes[ATTRIBUTE]["reason"].as_str().unwrap();
        assert!(reason.contains("102/tcp"), "{reason}");
        assert!(stage.finish().is_empty());

        // The strong one first: the weak one is marked on arrival.
        let mut stage = HoneypotStage::new(library.clone());
        let mut s7 = finding("127.0.0.6", 102, "s7comm", json!({ "serial_number": "88111222" }));
        stage.admit(&mut s7);
        let mut enip = finding("127.0.0.6", 44818, "enip", json!({ "product_name": "1756-L61/B LOGIX5561" }));
        assert_eq!(stage.admit(&mut enip), Pass::Now);
        assert_eq!(mark(&enip), Some("weak"));

        // Two weak findings of one persona corroborate each other.
        let mut stage = HoneypotStage::new(library.clone());
        let mut enip = finding("127.0.0.7", 44818, "enip", json!({ "product_name": "1756-L61/B LOGIX5561" }));
        assert_eq!(stage.admit(&mut enip), Pass::Hold);
        stage.hold(enip);
        let mut snmp = finding("127.0.0.7", 161, "snmp", json!({ "sys_descr": "Siemens, SIMATIC, S7-200" }));
        assert_eq!(stage.admit(&mut snmp), Pass::Now);
        assert_eq!(mark(&snmp), Some("weak.snmp"));
        assert_eq!(stage.released().iter().map(|r| mark(&r.finding)).collect::<Vec<_>>(), vec![Some("weak")]);
    }

    #[test]
    fn a_resumed_scan_recalls_what_it_saw_before_its_interruption() {
        let library = library();
        // Before the interruption: the weak finding waited, then was written unmarked at the end.
        let mut before = HoneypotStage::new(library.clone());
        let mut enip = finding("127.0.0.8", 44818, "enip", json!({ "product_name": "1756-L61/B LOGIX5561" }));
        assert_eq!(before.admit(&mut enip), Pass::Hold);
        before.hold(enip);
        let written = before.finish();
        assert_eq!(written.len(), 1);

        // The resumed run recalls it; the strong finding now corroborates it: marked, recorded again,
        // not written twice.
        let mut resumed = HoneypotStage::new(library.clone());
        resumed.recall(written[0].clone());
        assert!(resumed.released().is_empty());
        let mut s7 = finding("127.0.0.8", 102, "s7comm", json!({ "serial_number": "88111222" }));
        assert_eq!(resumed.admit(&mut s7), Pass::Now);
        let released = resumed.released();
        assert_eq!(released.len(), 1);
        assert!(released[0].written, "it is in the outputs already");
        assert_eq!(mark(&released[0].finding), Some("weak"));
        assert!(resumed.finish().is_empty(), "a recalled finding is never written again");

        // The other order: the strong one before the interruption, the weak one after it.
        let mut resumed = HoneypotStage::new(library.clone());
        let mut s7 = finding("127.0.0.9", 102, "s7comm", json!({ "serial_number": "88111222" }));
        assert_eq!(HoneypotStage::new(library.clone()).admit(&mut s7), Pass::Now);
        resumed.recall(s7);
        assert!(resumed.released().is_empty(), "a finding marked before needs nothing again");
        let mut enip = finding("127.0.0.9", 44818, "enip", json!({ "product_name": "1756-L61/B LOGIX5561" }));
        assert_eq!(resumed.admit(&mut enip), Pass::Now);
        assert_eq!(mark(&enip), Some("weak"));

        // Two weak findings recalled: the later one is marked by the earlier, and releases it.
        let mut resumed = HoneypotStage::new(library.clone());
        resumed.recall(finding("127.0.0.10", 44818, "enip", json!({ "product_name": "1756-L61/B LOGIX5561" })));
        resumed.recall(finding("127.0.0.10", 161, "snmp", json!({ "sys_descr": "Siemens, SIMATIC, S7-200" })));
        let released = resumed.released();
        assert_eq!(released.len(), 2, "{released:#?}");
        assert!(released.iter().all(|r| r.written && mark(&r.finding).is_some()), "{released:#?}");
    }

    #[test]
    fn a_persona_without_conditions_or_examples_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = "[[honeypot]]\nid = \"x\"\nhoneypot = \"conpot\"\npersona = \"default\"\nprotocol = \"nosuch\"\n\
                   reason = \"r\"\nsource = \"\"\nalone = true\n";
        std::fs::write(dir.path().join("honeypots.toml"), bad).unwrap();
        let errors = Library::load(dir.path()).unwrap_err().to_string();
        for want in ["honeypot x: unknown protocol", "when is empty", "no example", "source is empty"] {
            assert!(errors.contains(want), "{want:?} missing from {errors}");
        }
    }

    #[test]
    fn failing_persona_examples_and_counterexamples_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let text = PERSONAS.replace(
            "[[honeypot.example]]\nfields = { serial_number = \"88111222\" }",
            "[[honeypot.example]]\nfields = { serial_number = \"1\" }\n[[honeypot.counterexample]]\nfields = { serial_number = \"88111222\" }",
        );
        std::fs::write(dir.path().join("honeypots.toml"), text).unwrap();
        let failures = Library::load(dir.path()).unwrap().test_examples();
        assert_eq!(failures.len(), 2, "{failures:#?}");
        assert!(failures[0].ends_with("strong: example 1: the persona's evidence does not match"), "{}", failures[0]);
        assert!(failures[1].ends_with("strong: counterexample 2: shows persona \"strong\""), "{}", failures[1]);
    }
}
