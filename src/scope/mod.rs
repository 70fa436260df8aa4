//! The scope: the ledger's addresses minus exclusions, each attributed to its enterprise.
//!
//! This is the only module that can make a [`Target`]: the engine and the probes take targets,
//! never raw addresses, so nothing outside the registered scope can be probed by construction.

mod ports;
mod resolve;

pub use ports::{parse_ports, show_ports, PortSpec};
pub use resolve::{resolve_hostnames, ResolverSettings};

use crate::ledger::{to_u128, InputError, InputErrors, Ledger, Level, Place, TargetSpec, TARGETS};
use ipnetwork::IpNetwork;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The enterprise an address belongs to, as the findings name it.
#[derive(Debug, Clone, Serialize)]
pub struct Owner {
    pub enterprise_id: String,
    pub enterprise: String,
    pub district: String,
    pub sector: String,
    pub level: Level,
}

/// Which ledger objects a scan covers; empty lists select everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Selection {
    pub levels: Vec<Level>,
    pub districts: Vec<String>,
    pub enterprises: Vec<String>,
    /// A further narrowing to these addresses and blocks (`check --ip`): each must lie wholly inside
    /// the scope the rest of the selection gives (exclusions applied), or the scope is refused.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "networks")]
    pub ips: Vec<IpNetwork>,
}

/// `ips` as text ("127.0.0.1/32"), so stored selections read like the command line.
mod networks {
    use ipnetwork::IpNetwork;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ips: &[IpNetwork], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ips.iter().map(|n| n.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNetwork>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|t| t.parse().map_err(serde::de::Error::custom)).collect()
    }
}

impl Selection {
    fn admits(&self, owner: &Owner) -> bool {
        (self.levels.is_empty() || self.levels.contains(&owner.level))
            && (self.districts.is_empty() || self.districts.contains(&owner.district))
            && (self.enterprises.is_empty() || self.enterprises.contains(&owner.enterprise_id))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Family {
    V4,
    V6,
}

/// An inclusive address interval in one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    family: Family,
    first: u128,
    last: u128,
}

impl Span {
    fn of(a: IpAddr, b: IpAddr) -> Span {
        Span { family: family(a), first: to_u128(a), last: to_u128(b) }
    }
    fn size(&self) -> u128 {
        self.last - self.first + 1
    }
}

fn family(a: IpAddr) -> Family {
    if a.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    }
}

fn to_addr(family: Family, value: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

#[derive(Debug, Clone)]
struct Block {
    span: Span,
    /// Index of this block's first address in the scope's address numbering.
    offset: u64,
    owner: u32,
    hostname: Option<Arc<str>>,
}

/// What the scope covers, for `--dry-run` and the scan summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScopeSummary {
    pub enterprises: usize,
    pub districts: BTreeMap<String, usize>,
    pub addresses: u64,
    pub addresses_by_level: BTreeMap<&'static str, u64>,
    /// Addresses that the selected rows register but the exclusions remove.
    pub excluded_addresses: u64,
    pub unresolved_hostnames: Vec<String>,
}

#[derive(Debug)]
pub struct Scope {
    blocks: Vec<Block>,
    owners: Vec<Owner>,
    addresses: u64,
    summary: ScopeSummary,
}

/// Hostnames resolved before the scope is built: name -> addresses, or why it failed.
pub type Resolved = HashMap<String, Result<Vec<IpAddr>, String>>;

impl Scope {
    /// Builds the scope from a validated ledger and the resolved hostnames.
    ///
    /// Errors: a hostname that resolves into another enterprise's registered addresses.
    pub fn build(ledger: &Ledger, resolved: &Resolved, selection: &Selection) -> Result<Scope, InputErrors> {
        let mut errors = Vec::new();
        let mut owners = Vec::new();
        let mut plain: Vec<(Span, u32)> = Vec::new();
        let mut named: Vec<(Span, u32, Arc<str>, u64)> = Vec::new();
        let mut unresolved = Vec::new();
        // Every registered span of every row, selected or not, so a hostname colliding with an unselected row is still caught.
        let mut all_registered: Vec<(Span, usize)> = Vec::new();

        for (row, e) in ledger.enterprises.iter().enumerate() {
            let owner = Owner {
                enterprise_id: e.id.clone(),
                enterprise: e.name.clone(),
                district: e.district.clone(),
                sector: e.sector.clone(),
                level: e.level,
            };
            let selected = selection.admits(&owner);
            let index = owners.len() as u32;
            for t in &e.targets {
                if let Some((a, b)) = t.interval() {
                    all_registered.push((Span::of(a, b), row));
                    if selected {
                        plain.push((Span::of(a, b), index));
                    }
                }
            }
            if selected {
                for t in &e.targets {
                    if let TargetSpec::Hostname(h) = t {
                        match resolved.get(h) {
                            Some(Ok(addrs)) => {
                                let name: Arc<str> = Arc::from(h.as_str());
                                for &a in addrs {
                                    named.push((Span::of(a, a), index, name.clone(), e.row));
                                }
                            }
                            Some(Err(why)) => unresolved.push(format!("{}: {h}: {why}", ledger_place(ledger, e.row))),
                            None => unresolved.push(format!("{}: {h}: not resolved", ledger_place(ledger, e.row))),
                        }
                    }
                }
                owners.push(owner);
            }
        }

        // A hostname must not resolve into addresses that another row registers.
        all_registered.sort();
        for (span, owner, name, line) in &named {
            let probe = all_registered.partition_point(|(s, _)| (s.family, s.first) <= (span.family, span.first));
            for (reg, row) in all_registered[..probe].iter().rev().take_while(|(s, _)| s.family == span.family) {
                if reg.last >= span.first && ledger.enterprises[*row].id != owners[*owner as usize].enterprise_id {
                    let other = &ledger.enterprises[*row];
                    errors.push(ledger.error(
                        *line,
                        &TARGETS,
                        format!(
                            "hostname {name} resolves to {}, which enterprise {:?} registers on {}",
                            to_addr(span.family, span.first),
                            other.id,
                            ledger.row_name(other.row)
                        ),
                    ));
                    break;
                }
            }
        }
        named.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        named.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
        for w in named.windows(2) {
            if w[0].0 == w[1].0 && w[0].1 != w[1].1 {
                errors.push(ledger.error(
                    w[1].3,
                    &TARGETS,
                    format!(
                        "hostname {} resolves to {}, as does hostname {} of another enterprise ({})",
                        w[1].2,
                        to_addr(w[1].0.family, w[1].0.first),
                        w[0].2,
                        ledger.row_name(w[0].3)
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(InputErrors(errors));
        }

        // Exclusions, hostnames included, win over everything.
        let mut excluded: Vec<Span> = Vec::new();
        for x in &ledger.exclusions {
            match &x.spec {
                TargetSpec::Hostname(h) => match resolved.get(h) {
                    Some(Ok(addrs)) => excluded.extend(addrs.iter().map(|&a| Span::of(a, a))),
                    _ => unresolved.push(format!("{}: {h}: exclusion hostname not resolved", x.origin)),
                },
                spec => {
                    let (a, b) = spec.interval().expect("non-hostname specs have intervals");
                    excluded.push(Span::of(a, b));
                }
            }
        }
        let excluded = merge(excluded);

        // Plain spans of one owner merge; a resolved hostname's address keeps its name, so it is cut out of the plain spans.
        let mut pieces: Vec<(Span, u32, Option<Arc<str>>)> = Vec::new();
        let mut by_owner: BTreeMap<u32, Vec<Span>> = BTreeMap::new();
        for (s, o) in plain {
            by_owner.entry(o).or_default().push(s);
        }
        let named_spans = merge(named.iter().map(|n| n.0).collect());
        for (o, spans) in by_owner {
            for s in subtract(&merge(spans), &named_spans) {
                pieces.push((s, o, None));
            }
        }
        pieces.extend(named.into_iter().map(|(s, o, n, _)| (s, o, Some(n))));
        pieces.sort_by_key(|p| p.0);

        let registered_total: u128 = pieces.iter().map(|p| p.0.size()).sum();
        let mut kept: Vec<(Span, u32, Option<Arc<str>>)> = Vec::new();
        for (span, owner, hostname) in pieces {
            kept.extend(subtract(&[span], &excluded).into_iter().map(|k| (k, owner, hostname.clone())));
        }
        let in_scope: u128 = kept.iter().map(|p| p.0.size()).sum();

        // `ips` only narrows: every address it names must already be in the scope built so far.
        if !selection.ips.is_empty() {
            let covered = merge(kept.iter().map(|p| p.0).collect());
            let mut wanted = Vec::new();
            for net in &selection.ips {
                let (a, b) = TargetSpec::Block(*net).interval().expect("blocks have intervals");
                let span = Span::of(a, b);
                if let Some(gap) = subtract(&[span], &covered).first() {
                    errors.push(outside_scope(ledger, resolved, selection, net, to_addr(gap.family, gap.first)));
                }
                wanted.push(span);
            }
            if !errors.is_empty() {
                return Err(InputErrors(errors));
            }
            let wanted = merge(wanted);
            kept = kept
                .into_iter()
                .flat_map(|(s, o, h)| intersect(s, &wanted).into_iter().map(move |k| (k, o, h.clone())))
                .collect();
        }

        let mut blocks = Vec::new();
        let mut offset: u64 = 0;
        for (span, owner, hostname) in kept {
            blocks.push(Block { span, offset, owner, hostname });
            offset += span.size() as u64;
        }

        // Narrowed to addresses, the scope covers only the objects that still have some.
        let mut counted = vec![selection.ips.is_empty(); owners.len()];
        for b in &blocks {
            counted[b.owner as usize] = true;
        }
        let mut summary = ScopeSummary {
            enterprises: counted.iter().filter(|c| **c).count(),
            addresses: offset,
            excluded_addresses: (registered_total - in_scope) as u64,
            unresolved_hostnames: unresolved,
            ..Default::default()
        };
        for (o, _) in owners.iter().zip(&counted).filter(|(_, c)| **c) {
            *summary.districts.entry(o.district.clone()).or_default() += 1;
        }
        for b in &blocks {
            *summary.addresses_by_level.entry(owners[b.owner as usize].level.as_str()).or_default() +=
                b.span.size() as u64;
        }
        Ok(Scope { blocks, owners, addresses: offset, summary })
    }

    pub fn address_count(&self) -> u64 {
        self.addresses
    }

    pub fn summary(&self) -> &ScopeSummary {
        &self.summary
    }

    pub fn owners(&self) -> &[Owner] {
        &self.owners
    }

    /// The `index`-th address of the scope (0 <= index < address_count), with its block.
    fn nth(&self, index: u64) -> (IpAddr, &Block) {
        let i = self.blocks.partition_point(|b| b.offset <= index) - 1;
        let b = &self.blocks[i];
        (to_addr(b.span.family, b.span.first + (index - b.offset) as u128), b)
    }

    /// The enterprise and hostname an in-scope address belongs to.
    pub fn attribute(&self, addr: IpAddr) -> Option<(&Owner, Option<&str>)> {
        let key = (family(addr), to_u128(addr));
        let i = self.blocks.partition_point(|b| (b.span.family, b.span.first) <= key);
        let b = self.blocks[..i].last()?;
        (b.span.family == key.0 && b.span.last >= key.1)
            .then(|| (&self.owners[b.owner as usize], b.hostname.as_deref()))
    }

    /// The scope's address spans, in the order of its address numbering.
    pub fn spans(&self) -> Vec<(IpAddr, IpAddr)> {
        self.blocks
            .iter()
            .map(|b| (to_addr(b.span.family, b.span.first), to_addr(b.span.family, b.span.last)))
            .collect()
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.attribute(addr).is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// One (address, port, transport) to probe. Only [`TargetSpace::target`] makes one.
#[derive(Debug, Clone)]
pub struct Target {
    addr: IpAddr,
    port: u16,
    transport: Transport,
    index: u64,
    owner: Arc<Owner>,
    hostname: Option<Arc<str>>,
}

impl Target {
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn transport(&self) -> Transport {
        self.transport
    }
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        (self.addr, self.port).into()
    }
    /// The target's position in the scan's target numbering (stable for a ledger and port list).
    pub fn index(&self) -> u64 {
        self.index
    }
    pub fn owner(&self) -> &Owner {
        &self.owner
    }
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }
}

/// The full target space of a scan: every in-scope address times every port, numbered without materialising it.
#[derive(Debug)]
pub struct TargetSpace {
    scope: Scope,
    ports: Vec<PortSpec>,
    owners: Vec<Arc<Owner>>,
}

impl TargetSpace {
    pub fn new(scope: Scope, ports: Vec<PortSpec>) -> TargetSpace {
        let owners = scope.owners.iter().cloned().map(Arc::new).collect();
        TargetSpace { scope, ports, owners }
    }

    pub fn len(&self) -> u64 {
        self.scope.addresses * self.ports.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn ports(&self) -> &[PortSpec] {
        &self.ports
    }

    /// The `index`-th target; panics when `index >= len()`, which the permutation never produces.
    pub fn target(&self, index: u64) -> Target {
        let n_ports = self.ports.len() as u64;
        let (addr, block) = self.scope.nth(index / n_ports);
        let port = self.ports[(index % n_ports) as usize];
        Target {
            addr,
            port: port.port,
            transport: port.transport,
            index,
            owner: self.owners[block.owner as usize].clone(),
            hostname: block.hostname.clone(),
        }
    }
}

/// Where the targets of the ledger row numbered `row` are, as messages name it (`file:12`).
fn ledger_place(ledger: &Ledger, row: u64) -> String {
    format!("{}{}", ledger.path.display(), ledger.place(row, &TARGETS))
}

/// Why `addr`, named by `--ip given`, is not in the scope: excluded (by which line), registered by an
/// object the selection leaves out (which line), or not registered at all.
fn outside_scope(
    ledger: &Ledger,
    resolved: &Resolved,
    selection: &Selection,
    given: &IpNetwork,
    addr: IpAddr,
) -> InputError {
    let has = |spec: &TargetSpec| match spec {
        TargetSpec::Hostname(h) => matches!(resolved.get(h), Some(Ok(addrs)) if addrs.contains(&addr)),
        spec => spec.interval().is_some_and(|(a, b)| {
            family(a) == family(addr) && to_u128(a) <= to_u128(addr) && to_u128(addr) <= to_u128(b)
        }),
    };
    let given = if given.prefix() == if given.is_ipv4() { 32 } else { 128 } {
        given.ip().to_string()
    } else {
        given.to_string()
    };
    let field = format!("--ip {given}");
    if let Some(x) = ledger.exclusions.iter().find(|x| has(&x.spec)) {
        let here = if matches!(x.origin.place, Place::Cell { .. }) { "cell" } else { "line" };
        return InputError {
            file: x.origin.file.clone(),
            place: x.origin.place.clone(),
            field,
            message: format!("{addr} is excluded by this {here}: it is never probed"),
        };
    }
    let admitted = |e: &crate::ledger::Enterprise| {
        (selection.levels.is_empty() || selection.levels.contains(&e.level))
            && (selection.districts.is_empty() || selection.districts.contains(&e.district))
            && (selection.enterprises.is_empty() || selection.enterprises.contains(&e.id))
    };
    if let Some(e) = ledger.enterprises.iter().find(|e| !admitted(e) && e.targets.iter().any(has)) {
        let mut left_out = Vec::new();
        if !selection.levels.is_empty() {
            left_out.push("--level");
        }
        if !selection.districts.is_empty() {
            left_out.push("--district");
        }
        if !selection.enterprises.is_empty() {
            left_out.push("--enterprise");
        }
        return InputError {
            file: ledger.path.clone(),
            place: ledger.place(e.row, &TARGETS),
            field,
            message: format!(
                "{addr} belongs to enterprise {:?} ({}, {}), which the selection ({}) leaves out",
                e.id,
                e.district,
                e.level.as_str(),
                left_out.join(", ")
            ),
        };
    }
    InputError {
        file: ledger.path.clone(),
        place: Place::File,
        field,
        message: format!("{addr} is not registered in the ledger: nothing outside the ledger's scope is probed"),
    }
}

/// The parts of `span` inside the merged, sorted `with`.
fn intersect(span: Span, with: &[Span]) -> Vec<Span> {
    with.iter()
        .filter(|w| w.family == span.family && w.first <= span.last && w.last >= span.first)
        .map(|w| Span { family: span.family, first: span.first.max(w.first), last: span.last.min(w.last) })
        .collect()
}

/// Sorts and merges overlapping or adjacent spans.
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if last.family == s.family && s.first <= last.last.saturating_add(1) => {
                last.last = last.last.max(s.last)
            }
            _ => out.push(s),
        }
    }
    out
}

/// `spans` minus the merged, sorted `holes`.
fn subtract(spans: &[Span], holes: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for s in spans {
        let mut cursor = s.first;
        let start = holes.partition_point(|h| (h.family, h.last) < (s.family, s.first));
        let mut open = true;
        for h in holes[start..].iter().take_while(|h| h.family == s.family && h.first <= s.last) {
            if h.first > cursor {
                out.push(Span { family: s.family, first: cursor, last: h.first - 1 });
            }
            if h.last >= s.last {
                open = false;
                break;
            }
            cursor = cursor.max(h.last + 1);
        }
        if open && cursor <= s.last {
            out.push(Span { family: s.family, first: cursor, last: s.last });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const HEADER: &str = "enterprise_id,enterprise,district,sector,level,targets,contact\n";

    fn ledger(rows: &str) -> Ledger {
        Ledger::parse(&Path::new("t.csv").into(), format!("{HEADER}{rows}").as_bytes()).unwrap()
    }

    fn all_addrs(scope: &Scope) -> Vec<String> {
        (0..scope.address_count()).map(|i| scope.nth(i).0.to_string()).collect()
    }

    #[test]
    fn exclusions_remove_addresses_and_attribution_follows_rows() {
        let l = ledger("E1,a,d1,s,important,127.0.0.0/29,c\nE2,b,d2,s,general,127.0.1.1-127.0.1.3,c\nX,,,,exclude,127.0.0.2;127.0.0.4-127.0.0.5;127.0.1.3,\n");
        let s = Scope::build(&l, &Resolved::new(), &Selection::default()).unwrap();
        assert_eq!(
            all_addrs(&s),
            ["127.0.0.0", "127.0.0.1", "127.0.0.3", "127.0.0.6", "127.0.0.7", "127.0.1.1", "127.0.1.2"]
        );
        assert_eq!(s.summary().excluded_addresses, 4);
        assert_eq!(s.attribute("127.0.1.2".parse().unwrap()).unwrap().0.enterprise_id, "E2");
        assert!(s.attribute("127.0.0.2".parse().unwrap()).is_none());
        assert!(s.attribute("127.0.0.8".parse().unwrap()).is_none());
    }

    #[test]
    fn hostnames_become_named_addresses_and_collisions_are_refused() {
        let l = ledger("E1,a,d1,s,important,127.0.0.0/30;plc.example,c\nE2,b,d2,s,general,127.0.1.1;hmi.example,c\n");
        let mut r = Resolved::new();
        r.insert("plc.example".into(), Ok(vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]));
        r.insert("hmi.example".into(), Err("NXDOMAIN".into()));
        let s = Scope::build(&l, &r, &Selection::default()).unwrap();
        assert_eq!(s.address_count(), 6);
        assert_eq!(s.attribute("127.0.0.1".parse().unwrap()).unwrap().1, Some("plc.example"));
        assert_eq!(s.attribute("::1".parse().unwrap()).unwrap().0.enterprise_id, "E1");
        assert_eq!(s.attribute("127.0.0.2".parse().unwrap()).unwrap().1, None);
        assert_eq!(s.summary().unresolved_hostnames.len(), 1);

        r.insert("hmi.example".into(), Ok(vec!["127.0.0.2".parse().unwrap()]));
        let e = Scope::build(&l, &r, &Selection::default()).unwrap_err();
        assert_eq!(
            e.0[0].to_string(),
            "t.csv:3: targets: hostname hmi.example resolves to 127.0.0.2, which enterprise \"E1\" registers on line 2"
        );
    }

    #[test]
    fn selection_limits_the_scope() {
        let l = ledger("E1,a,d1,s,important,127.0.0.0/30,c\nE2,b,d2,s,general,127.0.1.0/30,c\n");
        let sel = Selection { levels: vec![Level::Important], ..Default::default() };
        let s = Scope::build(&l, &Resolved::new(), &sel).unwrap();
        assert_eq!(s.address_count(), 4);
        assert!(s.contains("127.0.0.3".parse().unwrap()));
        assert!(!s.contains("127.0.1.1".parse().unwrap()));
    }

    #[test]
    fn ips_narrow_the_scope_and_must_lie_inside_it() {
        let l = ledger("E1,a,d1,s,important,127.0.0.0/29,c\nE2,b,d2,s,general,127.0.1.1,c\nX,,,,exclude,127.0.0.6,\n");
        let ips = |list: &[&str]| list.iter().map(|t| t.parse().unwrap()).collect::<Vec<IpNetwork>>();
        let sel = Selection { ips: ips(&["127.0.0.4/31", "127.0.1.1/32", "127.0.0.5/32"]), ..Default::default() };
        let s = Scope::build(&l, &Resolved::new(), &sel).unwrap();
        assert_eq!(all_addrs(&s), ["127.0.0.4", "127.0.0.5", "127.0.1.1"]);
        assert_eq!((s.summary().enterprises, s.summary().excluded_addresses), (2, 1));
        let sel = Selection { ips: ips(&["127.0.0.1/32"]), ..Default::default() };
        let s = Scope::build(&l, &Resolved::new(), &sel).unwrap();
        assert_eq!((all_addrs(&s), s.summary().enterprises), (vec!["127.0.0.1".to_string()], 1));

        let refused = |sel: Selection| Scope::build(&l, &Resolved::new(), &sel).unwrap_err().to_string();
        assert_eq!(
            refused(Selection { ips: ips(&["127.0.0.4/30"]), ..Default::default() }),
            "t.csv:4: --ip 127.0.0.4/30: 127.0.0.6 is excluded by this line: it is never probed"
        );
        assert_eq!(
            refused(Selection { ips: ips(&["127.0.0.0/28", "127.0.2.0/32"]), ..Default::default() }),
            "t.csv:4: --ip 127.0.0.0/28: 127.0.0.6 is excluded by this line: it is never probed\n\
             t.csv: --ip 127.0.2.0: 127.0.2.0 is not registered in the ledger: nothing outside the ledger's scope is probed"
        );
        assert_eq!(
            refused(Selection { levels: vec![Level::Important], ips: ips(&["127.0.1.1/32"]), ..Default::default() }),
            "t.csv:3: --ip 127.0.1.1: 127.0.1.1 belongs to enterprise \"E2\" (d2, general), which the selection (--level) leaves out"
        );
    }

    #[test]
    fn subtract_handles_edges() {
        let sp = |a: u128, b: u128| Span { family: Family::V4, first: a, last: b };
        assert_eq!(subtract(&[sp(0, 9)], &[sp(0, 0), sp(9, 9)]), vec![sp(1, 8)]);
        assert_eq!(subtract(&[sp(5, 9)], &[sp(0, 20)]), vec![]);
        assert_eq!(subtract(&[sp(5, 9)], &[sp(0, 2), sp(7, 7)]), vec![sp(5, 6), sp(8, 9)]);
        assert_eq!(merge(vec![sp(5, 9), sp(0, 4), sp(20, 21)]), vec![sp(0, 9), sp(20, 21)]);
    }
}
