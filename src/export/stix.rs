//! STIX 2.1 bundles of one scan, for the municipal reporting center (OASIS STIX 2.1, cs02).
//!
//! A bundle holds the center's `identity`, one `identity` per enterprise (its district, and its
//! ledger sector as STIX `sectors` where the word names one of the vocabulary), and for each exposed
//! service an `infrastructure` that `consists-of` its `ipv4-addr`/`ipv6-addr` and `software`, an
//! `observed-data` with when it was first and last seen, `vulnerability` objects that matched
//! advisories link to the infrastructure with `has`, and a `report` that wraps the scan.
//!
//! Every id is a UUIDv5 of a stable key (cyber-observables use the spec's own id contributing
//! properties, §2.9), so exporting again names the same objects. Each object's `created` is the
//! first observation that produced it and its `modified` the first observation since which its
//! content is what it is now: both come from the store's history, never from the clock, so a
//! re-export carries the same id and `modified` for every unchanged object and a TAXII server keeps
//! one version of it.

use super::{covered_districts, district_file_name, write_json, ExportError, Folder, Manifest, Written};
use crate::advisories::Tlp;
use crate::findings::Finding;
use crate::scope::Owner;
use crate::store::{ScanId, ScanRecord, Store, StoreError};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::Path;
use uuid::Uuid;

/// otscope's namespace for the ids of its domain and relationship objects.
const NAMESPACE: Uuid = Uuid::from_u128(0x7aa83931_2d09_4298_bdf3_7e021abf635f);
/// The namespace STIX 2.1 §2.9 fixes for the deterministic ids of cyber-observable objects.
const SCO_NAMESPACE: Uuid = Uuid::from_u128(0x00abedb4_aa42_466c_9c01_fed23315a9b7);

/// One service's advisory match that the bundle reports: the service is `affected` by the
/// advisory, which names `cves`. Matching (helper `advisories match`) produces these; the export
/// only writes them.
#[derive(Debug, Clone)]
pub struct AdvisoryMatch {
    pub ip: std::net::IpAddr,
    pub port: u16,
    pub transport: String,
    /// The advisory's tracking id, e.g. `ICSA-23-222-07`.
    pub advisory: String,
    pub cves: Vec<String>,
    pub tlp: Tlp,
    /// The advisory's initial release date (RFC 3339): when its vulnerabilities were first published.
    pub released: String,
    /// When this service was first found affected (RFC 3339).
    pub since: String,
}

/// What one export reads from the store.
pub struct Input<'a> {
    pub scan: &'a ScanRecord,
    /// Every observation of every known service, from any scan (later scans are ignored), with its scan.
    pub history: &'a [(ScanId, Finding)],
    /// The matches to report; those of services outside the scan and TLP:RED ones are left out.
    pub matches: &'a [AdvisoryMatch],
    /// When the center started observing: the first scan's start (RFC 3339).
    pub center_since: &'a str,
    /// The enterprises' ledger rows as scans recorded them, each with the scan from which it held.
    pub owners: &'a [(ScanId, Owner)],
    /// The districts every target of which the scan probed (none unless it completed).
    pub covered_districts: &'a BTreeSet<String>,
}

/// What an export reads from the store: the scan, the history of every known service, and when the
/// center started observing (its first scan).
pub struct FromStore {
    pub scan: ScanRecord,
    pub history: Vec<(ScanId, Finding)>,
    pub center_since: String,
    pub owners: Vec<(ScanId, Owner)>,
    pub covered_districts: BTreeSet<String>,
}

impl FromStore {
    pub fn read(store: &dyn Store, scan: ScanId) -> Result<FromStore, StoreError> {
        let scan = store.scan(scan)?;
        let first = store.scans()?.first().map(|s| s.start.started_at.clone());
        let center_since = first.unwrap_or_else(|| scan.start.started_at.clone());
        let mut addresses: Vec<std::net::IpAddr> = store.sightings()?.iter().map(|s| s.ip).collect();
        addresses.sort();
        addresses.dedup();
        let mut history = Vec::new();
        for ip in addresses {
            history.extend(store.observations_of(ip)?);
        }
        let covered_districts = covered_districts(&scan);
        Ok(FromStore { scan, history, center_since, owners: store.owners()?, covered_districts })
    }

    /// The export's input, with the advisory matches to report.
    pub fn input<'a>(&'a self, matches: &'a [AdvisoryMatch]) -> Input<'a> {
        Input {
            scan: &self.scan,
            history: &self.history,
            matches,
            center_since: &self.center_since,
            owners: &self.owners,
            covered_districts: &self.covered_districts,
        }
    }
}

/// STIX timestamps: UTC, to the millisecond.
fn stix_time(rfc3339: &str) -> Result<String, String> {
    let t: jiff::Timestamp = rfc3339.parse().map_err(|e| format!("timestamp {rfc3339:?}: {e}"))?;
    Ok(t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

fn sdo_id(kind: &str, key: &str) -> String {
    format!("{kind}--{}", Uuid::new_v5(&NAMESPACE, format!("{kind}:{key}").as_bytes()))
}

/// The id of a cyber-observable: a UUIDv5 of the JCS serialisation of its id contributing properties.
fn sco_id(kind: &str, contributing: &BTreeMap<&str, String>) -> String {
    let canonical = serde_json::to_string(contributing).expect("strings serialise");
    format!("{kind}--{}", Uuid::new_v5(&SCO_NAMESPACE, canonical.as_bytes()))
}

fn service_key(ip: std::net::IpAddr, port: u16, transport: &str) -> String {
    format!("{ip}:{port}/{transport}")
}

/// The predefined TLP 1.0 marking definitions (STIX 2.1 §7.2.1.4), for what an advisory's label allows.
fn tlp_marking(tlp: Tlp) -> Option<Value> {
    let (id, name) = match tlp {
        Tlp::White => ("marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", "white"),
        Tlp::Green => ("marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", "green"),
        Tlp::Amber => ("marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", "amber"),
        // TLP:RED content never leaves the center.
        Tlp::Red => return None,
    };
    Some(json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": id,
        "created": "2017-01-20T00:00:00.000Z",
        "definition_type": "tlp",
        "name": format!("TLP:{}", name.to_uppercase()),
        "definition": {"tlp": name},
    }))
}

/// otscope's properties travel in a property extension (STIX 2.1 §7.3), which every bundle defines.
/// (A UUIDv5 of `extension-definition:otscope-properties-1` in otscope's namespace.)
const EXTENSION_ID: &str = "extension-definition--637eaaf1-1ada-51fd-9a3a-48167e5eaad2";

fn extension_definition() -> Value {
    json!({
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": EXTENSION_ID,
        "created_by_ref": center_id(),
        // The day this version of the definition was written: it changes only with the definition.
        "created": "2026-12-03T00:00:00.000Z",
        "modified": "2026-12-03T16:00:00.000Z",
        "name": "otscope exposure properties",
        "description": "Properties otscope adds to identities and infrastructure.",
        "schema": "identity: enterprise_id, district, sector (the ledger's word), level (important|general) of a \
                   ledger enterprise; role \"center\" for the center. infrastructure: protocol, port, transport \
                   (tcp|udp), severity (critical|high|medium|low|info), device_type, hostname of an exposed service.",
        "version": "1.1.0",
        "extension_types": ["property-extension"],
    })
}

/// Sets one of otscope's properties in the object's property extension.
fn property(o: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    let extensions = o.entry("extensions").or_insert_with(|| json!({}));
    let ours = extensions
        .as_object_mut()
        .expect("extensions are objects")
        .entry(EXTENSION_ID)
        .or_insert_with(|| json!({"extension_type": "property-extension"}));
    ours[key] = value.into();
}

fn center_id() -> String {
    sdo_id("identity", "center")
}

/// A domain or relationship object without its `created` and `modified`, which its history sets.
fn sdo(kind: &str, id: &str) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("type".into(), kind.into());
    o.insert("spec_version".into(), "2.1".into());
    o.insert("id".into(), id.into());
    o
}

fn relationship(kind: &str, source: &str, target: &str) -> Map<String, Value> {
    let mut o = sdo("relationship", &sdo_id("relationship", &format!("{kind}:{source}:{target}")));
    o.insert("created_by_ref".into(), center_id().into());
    o.insert("relationship_type".into(), kind.into());
    o.insert("source_ref".into(), source.into());
    o.insert("target_ref".into(), target.into());
    o
}

/// The address and software observables of one finding.
fn observables(f: &Finding) -> Vec<Value> {
    let kind = if f.ip.is_ipv4() { "ipv4-addr" } else { "ipv6-addr" };
    let addr = BTreeMap::from([("value", f.ip.to_string())]);
    let mut out =
        vec![json!({"type": kind, "spec_version": "2.1", "id": sco_id(kind, &addr), "value": f.ip.to_string()})];
    // A software object needs a name: the product, else the CPE that names it.
    if let Some(name) = f.product.clone().or_else(|| f.cpe.clone()) {
        let mut contributing = BTreeMap::from([("name", name)]);
        for (key, value) in [("cpe", &f.cpe), ("vendor", &f.vendor), ("version", &f.version)] {
            if let Some(v) = value {
                contributing.insert(key, v.clone());
            }
        }
        let mut software = json!({"type": "software", "spec_version": "2.1", "id": sco_id("software", &contributing)});
        for (key, value) in &contributing {
            software[*key] = value.clone().into();
        }
        out.push(software);
    }
    out
}

/// The ledger's sector words (Chinese or English) that name one entry of STIX's industry-sector-ov
/// (STIX 2.1 §10.13) without doubt. A word that is not here (or could mean two entries: 石化,
/// 水电) keeps only the ledger's word.
const SECTORS: &[(&str, &[&str])] = &[
    ("agriculture", &["农业", "agriculture"]),
    ("aerospace", &["航空航天", "aerospace"]),
    ("automotive", &["汽车", "汽车制造", "automotive"]),
    ("chemical", &["化工", "化学", "化学工业", "chemical", "chemicals"]),
    ("construction", &["建筑", "建筑业", "construction"]),
    ("defense", &["国防", "军工", "defense", "defence"]),
    ("education", &["教育", "education"]),
    ("emergency-services", &["应急", "应急管理", "emergency services"]),
    (
        "energy",
        &["能源", "电力", "燃气", "石油", "石油天然气", "新能源", "energy", "power", "electricity", "oil and gas"],
    ),
    ("financial-services", &["金融", "financial services", "finance"]),
    ("government", &["政府", "政务", "government"]),
    ("healthcare", &["医疗", "医疗卫生", "卫生", "医院", "healthcare", "health care"]),
    ("manufacturing", &["制造", "制造业", "智能制造", "装备制造", "manufacturing"]),
    ("mining", &["矿业", "采矿", "采矿业", "mining"]),
    ("nuclear", &["核电", "核能", "nuclear"]),
    ("pharmaceuticals", &["医药", "制药", "pharmaceuticals", "pharmaceutical"]),
    ("retail", &["零售", "retail"]),
    ("telecommunications", &["通信", "电信", "telecommunications", "telecom"]),
    ("transportation", &["交通", "交通运输", "轨道交通", "transportation", "transport"]),
    ("utilities", &["公用事业", "utilities"]),
    ("water", &["水务", "供水", "自来水", "污水处理", "供排水", "water", "water supply"]),
];

/// The industry-sector-ov entry a ledger's sector word names, if it names one without doubt.
fn stix_sector(word: &str) -> Option<&'static str> {
    let word = word.trim().to_lowercase();
    SECTORS.iter().find(|(_, words)| words.contains(&word.as_str())).map(|(sector, _)| *sector)
}

/// An enterprise's identity as one observation shows it, with its ledger row as of that scan.
fn enterprise_identity(f: &Finding, owner: Option<&Owner>) -> Map<String, Value> {
    let mut o = sdo("identity", &sdo_id("identity", &format!("enterprise:{}", f.enterprise_id)));
    o.insert("created_by_ref".into(), center_id().into());
    o.insert("name".into(), f.enterprise.clone().into());
    o.insert("identity_class".into(), "organization".into());
    let sector = owner.map(|o| o.sector.trim()).filter(|s| !s.is_empty());
    if let Some(sector) = sector.and_then(stix_sector) {
        o.insert("sectors".into(), json!([sector]));
    }
    property(&mut o, "enterprise_id", f.enterprise_id.clone());
    property(&mut o, "district", f.district.clone());
    if let Some(sector) = sector {
        property(&mut o, "sector", sector);
    }
    property(&mut o, "level", f.level.as_str());
    o
}

fn infrastructure(f: &Finding) -> Map<String, Value> {
    let key = service_key(f.ip, f.port, f.transport.as_str());
    let mut o = sdo("infrastructure", &sdo_id("infrastructure", &key));
    o.insert("created_by_ref".into(), center_id().into());
    o.insert("name".into(), format!("{key} {}", f.protocol).into());
    o.insert("infrastructure_types".into(), json!([if f.ics { "control-system" } else { "unknown" }]));
    property(&mut o, "protocol", f.protocol.clone());
    property(&mut o, "port", f.port);
    property(&mut o, "transport", f.transport.as_str());
    property(&mut o, "severity", f.severity.as_str());
    if let Some(device_type) = &f.device_type {
        property(&mut o, "device_type", device_type.clone());
    }
    if let Some(hostname) = &f.hostname {
        property(&mut o, "hostname", hostname.clone());
    }
    o
}

/// One service's sightings so far: first and last observation and how many there were.
struct Seen {
    first: String,
    last: String,
    count: u64,
}

/// The domain and relationship objects one observation of a service produces, given its sightings so far.
fn versioned_objects(
    f: &Finding,
    owner: Option<&Owner>,
    seen: &Seen,
    observables: &[Value],
) -> Vec<Map<String, Value>> {
    let identity = enterprise_identity(f, owner);
    let infra = infrastructure(f);
    let infra_id = infra["id"].as_str().expect("ids are strings").to_string();
    let mut out = vec![relationship("related-to", &infra_id, identity["id"].as_str().expect("ids are strings"))];
    let refs: Vec<Value> = observables.iter().map(|o| o["id"].clone()).collect();
    for r in &refs {
        out.push(relationship("consists-of", &infra_id, r.as_str().expect("ids are strings")));
    }
    let key = service_key(f.ip, f.port, f.transport.as_str());
    let mut observed = sdo("observed-data", &sdo_id("observed-data", &key));
    observed.insert("created_by_ref".into(), center_id().into());
    observed.insert("first_observed".into(), seen.first.clone().into());
    observed.insert("last_observed".into(), seen.last.clone().into());
    observed.insert("number_observed".into(), seen.count.into());
    observed.insert("object_refs".into(), refs.into());
    out.extend([identity, infra, observed]);
    out
}

/// An object's current content with the time it first appeared and the time its content became what it is.
struct Versioned {
    created: String,
    modified: String,
    content: Map<String, Value>,
}

impl Versioned {
    fn object(&self) -> Value {
        let mut o = self.content.clone();
        o.insert("created".into(), self.created.clone().into());
        o.insert("modified".into(), self.modified.clone().into());
        Value::Object(o)
    }
}

/// Records that `content` held at `time`: a new version when it differs from the last one.
fn observe(versions: &mut HashMap<String, Versioned>, time: &str, content: Map<String, Value>) {
    let id = content["id"].as_str().expect("ids are strings").to_string();
    match versions.get_mut(&id) {
        None => {
            versions.insert(id, Versioned { created: time.into(), modified: time.into(), content });
        }
        Some(v) if v.content != content => {
            v.modified = time.into();
            v.content = content;
        }
        Some(_) => {}
    }
}

/// One bundle's worth: the district it covers (None: all) and the bundle.
pub type Bundle = (Option<String>, Value);

/// The scan's bundles: one with every exposed service, or with `by_district` one per district (and
/// one that says zero for each of `zero_districts` where the scan found nothing).
pub fn bundles<'z>(
    input: &Input,
    by_district: bool,
    zero_districts: impl Iterator<Item = &'z str>,
) -> Result<Vec<Bundle>, String> {
    let scan = input.scan.id;
    // Replay the history up to this scan, oldest first, versioning every object it produces.
    let mut history: Vec<(ScanId, String, &Finding)> = Vec::new();
    for (s, f) in input.history.iter().filter(|(s, _)| *s <= scan) {
        history.push((*s, stix_time(&f.observed_at)?, f));
    }
    history.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut versions: HashMap<String, Versioned> = HashMap::new();
    let mut current: BTreeMap<String, (&Finding, Vec<Value>, Vec<String>)> = BTreeMap::new();
    // Each enterprise's ledger rows, oldest first: an observation takes the last one from before it.
    let mut owners: HashMap<&str, Vec<(ScanId, &Owner)>> = HashMap::new();
    for (since, owner) in input.owners {
        owners.entry(owner.enterprise_id.as_str()).or_default().push((*since, owner));
    }
    for (s, time, f) in &history {
        let key = service_key(f.ip, f.port, f.transport.as_str());
        let sighting =
            seen.entry(key.clone()).or_insert_with(|| Seen { first: time.clone(), last: time.clone(), count: 0 });
        sighting.last = time.clone();
        sighting.count += 1;
        let observables = observables(f);
        let owner = owners
            .get(f.enterprise_id.as_str())
            .and_then(|rows| rows.iter().rev().find(|(since, _)| since <= s))
            .map(|(_, owner)| *owner);
        let objects = versioned_objects(f, owner, sighting, &observables);
        let ids = objects.iter().map(|o| o["id"].as_str().expect("ids are strings").to_string()).collect();
        for o in objects {
            observe(&mut versions, time, o);
        }
        if *s == scan {
            current.insert(key, (f, observables, ids));
        }
    }
    let center = Versioned {
        created: stix_time(input.center_since)?,
        modified: stix_time(input.center_since)?,
        content: {
            let mut o = sdo("identity", &center_id());
            o.insert("name".into(), "otscope industrial information security center".into());
            o.insert("identity_class".into(), "organization".into());
            property(&mut o, "role", "center");
            o
        },
    };
    let advisories = advisory_objects(input.matches, &current)?;

    let mut groups: BTreeMap<Option<String>, Vec<&str>> = BTreeMap::new();
    for (key, (f, _, _)) in &current {
        let group = if by_district { Some(f.district.clone()) } else { None };
        groups.entry(group).or_default().push(key.as_str());
    }
    if by_district {
        for district in zero_districts {
            groups.entry(Some(district.to_string())).or_default();
        }
    } else if groups.is_empty() {
        groups.insert(None, Vec::new());
    }
    let started = stix_time(&input.scan.start.started_at)?;
    let ended = match &input.scan.ended_at {
        Some(t) => stix_time(t)?,
        None => started.clone(),
    };
    let mut out = Vec::new();
    for (district, services) in groups {
        let mut objects: BTreeMap<String, Value> = BTreeMap::new();
        objects.insert(center_id(), center.object());
        objects.insert(EXTENSION_ID.into(), extension_definition());
        for key in &services {
            let (_, observables, ids) = &current[*key];
            for o in observables {
                objects.insert(o["id"].as_str().expect("ids are strings").to_string(), o.clone());
            }
            for id in ids {
                objects.insert(id.clone(), versions[id].object());
            }
            for o in advisories.get(*key).into_iter().flatten() {
                objects.insert(o["id"].as_str().expect("ids are strings").to_string(), o.clone());
            }
        }
        let scope = district.clone().unwrap_or_else(|| "*".into());
        let report_id = sdo_id("report", &format!("scan:{scan}:{scope}"));
        let mut report = sdo("report", &report_id);
        report.insert("created_by_ref".into(), center_id().into());
        let name = match &district {
            Some(d) => format!("otscope scan {scan}: {d}"),
            None => format!("otscope scan {scan}"),
        };
        report.insert("name".into(), name.into());
        report.insert(
            "description".into(),
            format!("{} exposed service(s) seen by scan {scan} ({})", services.len(), input.scan.state().label())
                .into(),
        );
        report.insert("report_types".into(), json!(["observed-data"]));
        report.insert("published".into(), ended.clone().into());
        let refs: Vec<Value> = objects
            .keys()
            .filter(|id| !id.starts_with("marking-definition--") && !id.starts_with("extension-definition--"))
            .map(|id| Value::String(id.clone()))
            .collect();
        report.insert("object_refs".into(), refs.into());
        let report = Versioned { created: started.clone(), modified: ended.clone(), content: report };
        objects.insert(report_id.clone(), report.object());
        let bundle = json!({
            "type": "bundle",
            "id": format!("bundle--{}", Uuid::new_v5(&NAMESPACE, report_id.as_bytes())),
            "objects": objects.into_values().collect::<Vec<_>>(),
        });
        out.push((district, bundle));
    }
    Ok(out)
}

/// A service's link to one CVE: the advisories that make it, when it was first and last found, and the
/// strictest of their labels.
struct Link<'a> {
    advisories: Vec<&'a str>,
    first: String,
    last: String,
    tlp: Tlp,
}

/// The vulnerability objects, `has` relationships and TLP markings of the matches, by service key.
fn advisory_objects(
    matches: &[AdvisoryMatch],
    current: &BTreeMap<String, (&Finding, Vec<Value>, Vec<String>)>,
) -> Result<HashMap<String, Vec<Value>>, String> {
    // Per CVE: its first publication and the strictest label of the advisories naming it.
    let mut cves: BTreeMap<&str, (String, Tlp)> = BTreeMap::new();
    // Per (service, CVE): the advisories that link them.
    let mut links: BTreeMap<(String, &str), Link> = BTreeMap::new();
    for m in matches.iter().filter(|m| m.tlp != Tlp::Red) {
        let key = service_key(m.ip, m.port, &m.transport);
        if !current.contains_key(&key) {
            continue;
        }
        let released = stix_time(&m.released)?;
        let since = stix_time(&m.since)?;
        for cve in &m.cves {
            let entry = cves.entry(cve).or_insert_with(|| (released.clone(), m.tlp));
            entry.0 = entry.0.clone().min(released.clone());
            entry.1 = entry.1.max(m.tlp);
            let link = links.entry((key.clone(), cve)).or_insert_with(|| Link {
                advisories: Vec::new(),
                first: since.clone(),
                last: since.clone(),
                tlp: m.tlp,
            });
            link.advisories.push(&m.advisory);
            link.first = link.first.clone().min(since.clone());
            link.last = link.last.clone().max(since.clone());
            link.tlp = link.tlp.max(m.tlp);
        }
    }
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for ((key, cve), Link { mut advisories, first, last, tlp }) in links {
        let (released, cve_tlp) = &cves[cve];
        let marking = |tlp: Tlp| tlp_marking(tlp).expect("TLP:RED matches are left out");
        let mut vulnerability = sdo("vulnerability", &sdo_id("vulnerability", cve));
        vulnerability.insert("created_by_ref".into(), center_id().into());
        vulnerability.insert("name".into(), (*cve).into());
        vulnerability.insert("external_references".into(), json!([{"source_name": "cve", "external_id": cve}]));
        vulnerability.insert("object_marking_refs".into(), json!([marking(*cve_tlp)["id"]]));
        let vulnerability = Versioned { created: released.clone(), modified: released.clone(), content: vulnerability };
        let infra_id = sdo_id("infrastructure", &key);
        let mut has = relationship("has", &infra_id, &sdo_id("vulnerability", cve));
        advisories.sort();
        advisories.dedup();
        has.insert("description".into(), format!("matched advisories: {}", advisories.join(", ")).into());
        has.insert("object_marking_refs".into(), json!([marking(tlp)["id"]]));
        let has = Versioned { created: first, modified: last, content: has };
        out.entry(key).or_default().extend([vulnerability.object(), has.object(), marking(*cve_tlp), marking(tlp)]);
    }
    Ok(out)
}

/// Writes the scan's bundles into `dir`, `bundle.json` or one `DISTRICT.json` per district, in place
/// of the previous export's files there, as the other formats do: a district the previous export had
/// a file for, that the scan covered and found nothing in, gets a bundle that says zero.
pub fn write(input: &Input, dir: &Path, by_district: bool) -> Result<Written, ExportError> {
    let folder = Folder::open(dir)?;
    let bundles = bundles(input, by_district, folder.zero_districts(input.covered_districts))
        .map_err(|e| ExportError::Io { path: dir.to_path_buf(), source: io::Error::other(e) })?;
    let mut used = HashMap::new();
    let names: Vec<String> = bundles
        .iter()
        .map(|(district, _)| match district {
            Some(d) => district_file_name(&mut used, d, "json"),
            None => "bundle.json".to_string(),
        })
        .collect();
    folder.announce(&names)?;
    let mut written = Written::default();
    let mut districts = BTreeMap::new();
    for ((district, bundle), name) in bundles.iter().zip(&names) {
        let services = bundle["objects"]
            .as_array()
            .map_or(0, |objects| objects.iter().filter(|o| o["type"] == "infrastructure").count());
        written.files.push(folder.write(name, |out| write_json(out, bundle))?);
        written.findings += services;
        if let Some(d) = district {
            districts.insert(d.clone(), services);
        }
    }
    folder.finish(Manifest { otscope_export: 1, scan: Some(input.scan.id), files: names, districts })?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_sectors_name_a_vocabulary_entry_only_without_doubt() {
        for (word, sector) in [
            ("水务", "water"),
            (" Water ", "water"),
            ("电力", "energy"),
            ("化工", "chemical"),
            ("通信", "telecommunications"),
        ] {
            assert_eq!(stix_sector(word), Some(sector), "{word}");
        }
        for word in ["石化", "水电", "精细化工", "", "other"] {
            assert_eq!(stix_sector(word), None, "{word}");
        }
    }
}
