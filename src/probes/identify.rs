//! The per-target strategy:
//! 1. connect (TCP) — a refused or silent connect is a closed port, nothing is reported;
//! 2. the probes the registry expects on the port, in the clear, then in TLS where it expects TLS
//!    (on an ICS port, those after one that got nothing at all wait the shorter follow-up timeout);
//! 3. every reply is evidence: what the peer sent back to those probes goes through the protocols'
//!    recognisers and the library's banner rules (as nmap matches its NULL and fallback probes), so
//!    an HTTP 400 page answering a Modbus request names a web server without one more byte sent
//!    (on an ICS port without `--deep` this ends the strategy);
//! 4. a passive read: many services (SSH, FTP, SMTP, ...) speak first (skipped when a probe's
//!    connection already stayed silent for the banner wait: that wait was the passive read);
//! 5. on ports that are not known ICS ports (or with `--deep`): a TLS handshake, then the text probes;
//!    with `--deep`, every binary probe of the registry too;
//! 6. the replies to those once more, else `unknown`, with whatever the peer sent as evidence.
//!
//! A known ICS port never receives a text payload or a TLS hello unless `--deep` asks for it: a stray
//! request can wedge a real controller.

use super::{expected_in_tls_on, expected_on, is_ics_port, registry, BannerProbe, Identity, Probe, ProbeError};
use crate::engine::{panic_message, Observation, Outcome, Prober, Visit};
use crate::fingerprints::Library;
use crate::net::{Conn, HostTurn, Limits, NetError, Session, EVIDENCE_BYTES, REPLY_BYTES};
use crate::scope::{Target, Transport};
use async_trait::async_trait;
use futures_util::FutureExt;
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::{timeout_at, Instant};

/// Distinct replies kept per target to be named once no probe validated them.
const MAX_REPLIES: usize = 8;

#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub limits: Limits,
    /// How long to wait for an unprompted banner.
    pub banner_wait: Duration,
    /// Try every probe of the registry on every open port.
    pub deep: bool,
    /// Opt-in probes the user enabled by name (`--enable-probe`).
    pub enabled: Vec<String>,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            limits: Limits::default(),
            banner_wait: Duration::from_secs(2),
            deep: false,
            enabled: Vec::new(),
        }
    }
}

pub struct Identifier {
    settings: ProbeSettings,
    /// The library's text probes, tried where their ports say and, with `--deep`, everywhere.
    banner_probes: Vec<BannerProbe>,
    /// The rules that name a reply no probe validated.
    library: Arc<Library>,
}

/// What the peer sent back to one target's probes, in order, each reply once: the evidence of an
/// unknown service, and what [`Identifier::name_replies`] reads.
#[derive(Default)]
struct Replies {
    replies: Vec<Vec<u8>>,
    /// The longest a probe's connections stayed open without a byte from the peer.
    quiet: Duration,
}

impl Replies {
    fn add(&mut self, replies: Vec<Vec<u8>>) {
        for reply in replies {
            if self.replies.len() < MAX_REPLIES && !self.replies.contains(&reply) {
                self.replies.push(reply);
            }
        }
    }

    /// The first bytes the peer sent, as a finding's evidence.
    fn evidence(&self) -> Vec<u8> {
        self.replies.first().map(|r| evidence_of(r)).unwrap_or_default()
    }
}

fn evidence_of(reply: &[u8]) -> Vec<u8> {
    reply[..reply.len().min(EVIDENCE_BYTES)].to_vec()
}

/// The outcome of one probe attempt, with what the peer sent on the attempt's connections.
enum Attempt {
    Identified(Identity, Vec<Vec<u8>>),
    /// No match; `quiet` is how long the attempt lasted when the peer sent nothing at all.
    Failed {
        replies: Vec<Vec<u8>>,
        quiet: Option<Duration>,
    },
    /// The probe panicked (a bug): the port is open, and the panic is what is known of it.
    Panicked(String, Vec<Vec<u8>>),
}

/// How one target is reached: through its turn at the host, with the limits measured for it.
#[derive(Clone, Copy)]
struct Reach<'a> {
    target: &'a Target,
    turn: &'a HostTurn,
    limits: Limits,
}

impl Reach<'_> {
    fn with_read_timeout(self, read_timeout: Duration) -> Self {
        Reach { limits: Limits { read_timeout, ..self.limits }, ..self }
    }
}

/// One probe to try on a port: a protocol module of the registry, or a banner probe of the library.
#[derive(Clone, Copy)]
enum Candidate<'a> {
    Registry(&'static Probe),
    Banner(&'a BannerProbe),
}

impl Candidate<'_> {
    fn protocol(&self) -> &'static str {
        match self {
            Candidate::Registry(p) => p.protocol,
            Candidate::Banner(_) => "unknown",
        }
    }

    async fn run(&self, session: &mut Session<'_>) -> Result<Identity, ProbeError> {
        match self {
            Candidate::Registry(p) => (p.run)(session).await,
            Candidate::Banner(b) => b.run(session).await,
        }
    }
}

/// Later variants wait this many round trips of the target's measured connect time once an earlier
/// variant got nothing at all, but never less than [`FOLLOW_UP_FLOOR`] (a slow PLC's answer) and
/// never more than the read timeout.
const FOLLOW_UP_ROUND_TRIPS: u32 = 10;
const FOLLOW_UP_FLOOR: Duration = Duration::from_millis(500);

impl Identifier {
    pub fn new(settings: ProbeSettings, library: &Arc<Library>) -> Identifier {
        Identifier {
            settings,
            banner_probes: library.banner_probes.iter().map(BannerProbe::new).collect(),
            library: library.clone(),
        }
    }

    /// Whether a registry probe may run: opt-in probes only when enabled by name.
    fn usable(&self, probe: &Probe) -> bool {
        !probe.opt_in || self.settings.enabled.iter().any(|e| e == probe.protocol)
    }

    /// The usable probes of the registry that speak `transport`, except those already `tried`.
    fn rest_of_registry<'a>(
        &'a self,
        transport: Transport,
        tried: &'a [&'static Probe],
    ) -> impl Iterator<Item = &'static Probe> + 'a {
        let untried = |p: &Probe| !tried.iter().any(|t| t.protocol == p.protocol);
        registry().iter().copied().filter(move |p| self.usable(p) && p.speaks(transport) && untried(p))
    }

    /// The library's banner probes that name this port (text: kept off ICS ports unless `--deep`).
    fn banner_probes_on(&self, port: u16, transport: Transport, ics_port: bool) -> Vec<Candidate<'_>> {
        self.banner_probes
            .iter()
            .filter(|p| p.transport() == transport && p.expected_on(port))
            .filter(|_| self.settings.deep || !ics_port)
            .map(Candidate::Banner)
            .collect()
    }

    /// With `--deep`, the banner probes that do not name this port.
    fn other_banner_probes(&self, port: u16, transport: Transport) -> Vec<Candidate<'_>> {
        self.banner_probes
            .iter()
            .filter(|p| self.settings.deep && p.transport() == transport && !p.expected_on(port))
            .map(Candidate::Banner)
            .collect()
    }

    /// Runs `probe` on `conn` if given, else on a fresh connection (TLS when `tls`; over UDP, one
    /// that reads any source port of the target's address when the probe asks for it).
    async fn attempt(&self, probe: Candidate<'_>, reach: Reach<'_>, conn: Option<Conn>, tls: bool) -> Attempt {
        let Reach { target, turn, limits } = reach;
        let any_port =
            matches!(probe, Candidate::Registry(p) if p.udp_any_port) && target.transport() == Transport::Udp;
        let session = match conn {
            Some(c) => Ok(Session::with(target, turn, limits, tls, c)),
            None if any_port => {
                Conn::open_udp_any_port(target, limits, turn).await.map(|c| Session::with(target, turn, limits, tls, c))
            }
            None => Session::open(target, turn, limits, tls).await.map(|(s, _)| s),
        };
        let Ok(mut session) = session else { return Attempt::Failed { replies: Vec::new(), quiet: None } };
        let started = Instant::now();
        let outcome = AssertUnwindSafe(probe.run(&mut session)).catch_unwind().await;
        let quiet = started.elapsed();
        let replies = session.into_replies();
        match outcome {
            Ok(Ok(identity)) => Attempt::Identified(identity, replies),
            Ok(Err(e)) => {
                tracing::debug!(target = %target.socket_addr(), probe = probe.protocol(), "no match: {e}");
                let quiet = replies.is_empty().then_some(quiet);
                Attempt::Failed { replies, quiet }
            }
            Err(panic) => {
                let why = format!("the {} probe panicked: {}", probe.protocol(), panic_message(&*panic));
                tracing::error!(target = %target.socket_addr(), "{why}");
                Attempt::Panicked(why, replies)
            }
        }
    }

    /// Tries `probes` in order, each on a fresh connection except the first, which may use `first`.
    /// The replies of the probes that fail are added to `seen`. With `follow_up`, once a probe got
    /// nothing at all, the later ones wait the shorter follow-up timeout for their replies.
    async fn first_match(
        &self,
        probes: Vec<Candidate<'_>>,
        mut reach: Reach<'_>,
        mut first: Option<Conn>,
        tls: bool,
        follow_up: bool,
        seen: &mut Replies,
    ) -> Option<(Identity, Vec<u8>)> {
        for probe in probes {
            match self.attempt(probe, reach, first.take(), tls).await {
                Attempt::Identified(identity, replies) => {
                    let evidence = replies.first().map(|r| evidence_of(r)).unwrap_or_else(|| seen.evidence());
                    return Some((identity, evidence));
                }
                Attempt::Panicked(why, replies) => {
                    seen.add(replies);
                    let mut identity = Identity::new("unknown", false);
                    identity.field("error", why);
                    return Some((identity, seen.evidence()));
                }
                Attempt::Failed { replies, quiet } => {
                    seen.add(replies);
                    if let Some(quiet) = quiet {
                        seen.quiet = seen.quiet.max(quiet);
                        if follow_up {
                            reach = reach.with_read_timeout(reach.limits.follow_up_timeout);
                        }
                    }
                }
            }
        }
        None
    }

    /// Every reply is evidence: the first reply that a protocol's recogniser validates, or that a
    /// banner rule of the library names, identifies the service. Nothing is sent.
    fn name_replies(&self, seen: &Replies) -> Option<(Identity, Vec<u8>)> {
        seen.replies.iter().find_map(|reply| {
            let recognised = registry().iter().filter_map(|p| p.recognise).find_map(|recognise| recognise(reply));
            let identity = recognised.or_else(|| {
                let banner = banner_identity(reply);
                self.library.classify(banner.protocol, &banner.fields).protocol.is_some().then_some(banner)
            })?;
            Some((identity, evidence_of(reply)))
        })
    }

    async fn probe_udp(&self, reach: Reach<'_>, seen: &mut Replies) -> Option<(Identity, Vec<u8>)> {
        let port = reach.target.port();
        let ics_port = is_ics_port(port, Transport::Udp);
        let expected: Vec<&'static Probe> = expected_on(port, Transport::Udp).filter(|p| self.usable(p)).collect();
        let mut probes: Vec<Candidate> = expected.iter().copied().map(Candidate::Registry).collect();
        probes.extend(self.banner_probes_on(port, Transport::Udp, ics_port));
        probes.extend(self.other_banner_probes(port, Transport::Udp));
        if self.settings.deep {
            probes.extend(self.rest_of_registry(Transport::Udp, &expected).map(Candidate::Registry));
        }
        // A UDP port is only known to be open when a request gets a reply: a valid one, one the library
        // names, or one that validates as nothing (`unknown`, with its evidence).
        if let Some(found) = self.first_match(probes, reach, None, false, false, seen).await {
            return Some(found);
        }
        self.name_replies(seen)
            .or_else(|| (!seen.replies.is_empty()).then(|| (Identity::new("unknown", false), seen.evidence())))
    }

    async fn probe_tcp(&self, reach: Reach<'_>, conn: Conn, seen: &mut Replies) -> Option<(Identity, Vec<u8>)> {
        let port = reach.target.port();
        let deep = self.settings.deep;
        let ics_port = is_ics_port(port, Transport::Tcp);
        let expected: Vec<&'static Probe> = expected_on(port, Transport::Tcp).filter(|p| self.usable(p)).collect();
        let mut spare = Some(conn);
        if !expected.is_empty() {
            let probes = expected.iter().copied().map(Candidate::Registry).collect();
            // On an ICS port (without `--deep`), the variants after a silent first probe (S7, S7comm-plus
            // and MMS on 102) wait the follow-up timeout: a silent port costs about one read timeout.
            let follow_up = ics_port && !deep;
            if let Some(found) = self.first_match(probes, reach, spare.take(), false, follow_up, seen).await {
                return Some(found);
            }
        }
        let tls_expected: Vec<_> = expected_in_tls_on(port).filter(|p| self.usable(p)).collect();
        if !tls_expected.is_empty() {
            // One connection to the host at a time: the spare one closes before the handshake.
            drop(spare.take());
            if let Some(found) = self.probe_in_tls(reach, &tls_expected, seen).await {
                return Some(found);
            }
        }
        // On an ICS port nothing more than a passive read may follow (without `--deep`): name the
        // replies now. Elsewhere the text probes may still learn more (an HTTP page's title).
        if ics_port && !deep {
            if let Some(found) = self.name_replies(seen) {
                return Some(found);
            }
        }

        // Passive read: a service that speaks first tells what it is without being asked. A peer
        // that already stayed silent that long on a connection has had its chance (the first
        // request's wait was the passive read).
        if seen.quiet < self.settings.banner_wait {
            let mut conn = match spare.take() {
                Some(c) => c,
                None => Conn::open(reach.target, reach.limits, reach.turn).await.ok()?,
            };
            let keep = REPLY_BYTES.min(reach.limits.max_frame);
            if let Ok(banner) = conn.recv_passive(self.settings.banner_wait, keep).await {
                if !banner.is_empty() {
                    return Some((banner_identity(&banner), evidence_of(&banner)));
                }
            }
        }
        drop(spare);
        let asked = self.banner_probes_on(port, Transport::Tcp, ics_port);
        if let Some(found) = self.first_match(asked, reach, None, false, false, seen).await {
            return Some(found);
        }

        if tls_expected.is_empty() && (deep || !ics_port) {
            if let Some(found) = self.probe_in_tls(reach, &[], seen).await {
                return Some(found);
            }
        }
        let mut rest: Vec<Candidate> = self
            .rest_of_registry(Transport::Tcp, &expected)
            .filter(|p| deep || (!ics_port && p.sends_text && !p.ics))
            .map(Candidate::Registry)
            .collect();
        rest.extend(self.other_banner_probes(port, Transport::Tcp));
        if let Some(found) = self.first_match(rest, reach, None, false, false, seen).await {
            return Some(found);
        }
        self.name_replies(seen).or_else(|| Some((Identity::new("unknown", false), seen.evidence())))
    }

    /// Handshakes TLS, then tries `inner` (or, when empty, the text probes) inside it. A TLS service
    /// whose inner protocol is not recognised is reported as `tls`, with its certificate.
    async fn probe_in_tls(
        &self,
        reach: Reach<'_>,
        inner: &[&'static Probe],
        seen: &mut Replies,
    ) -> Option<(Identity, Vec<u8>)> {
        let (session, info) = match Session::open(reach.target, reach.turn, reach.limits, true).await {
            Ok(opened) => opened,
            // A server whose handshake cannot be completed because a message of it is beyond what a
            // TLS client reads (a huge certificate chain) is still TLS: named from its server hello.
            Err(NetError::TooLarge(_)) => {
                let (mut info, reply) = Conn::tls_server_hello(reach.target, reach.limits, reach.turn).await?;
                info.insert("handshake".into(), Value::String("not completed".into()));
                let mut identity = Identity::new("tls", false);
                identity.fields.insert("tls".into(), Value::Object(info));
                return Some((identity, evidence_of(&reply)));
            }
            Err(_) => return None,
        };
        let info = info.unwrap_or_default();
        drop(session);
        let candidates: Vec<Candidate> = if inner.is_empty() {
            self.rest_of_registry(Transport::Tcp, &[]).filter(|p| p.sends_text).map(Candidate::Registry).collect()
        } else {
            inner.iter().copied().map(Candidate::Registry).collect()
        };
        let mut inner_seen = Replies::default();
        let (mut identity, evidence) =
            match self.first_match(candidates, reach, None, true, false, &mut inner_seen).await {
                Some(found) => found,
                None => self
                    .name_replies(&inner_seen)
                    .unwrap_or_else(|| (Identity::new("tls", false), inner_seen.evidence())),
            };
        identity.fields.insert("tls".into(), Value::Object(info));
        let evidence = if evidence.is_empty() { seen.evidence() } else { evidence };
        seen.add(inner_seen.replies);
        Some((identity, evidence))
    }
}

/// An unprompted reply: the fingerprint rules of protocol `unknown` name it from its `banner` field.
pub fn banner_identity(banner: &[u8]) -> Identity {
    let mut identity = Identity::new("unknown", false);
    identity.field("banner", Value::String(printable(banner)));
    identity
}

/// Bytes as text for matching and reporting: UTF-8 where valid, `\xNN` for the rest.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[async_trait]
impl Prober for Identifier {
    async fn probe(&self, target: &Target, visit: &Visit) -> Outcome {
        let observed_at = OffsetDateTime::now_utc();
        // The first socket tells a local failure (no file descriptor, no buffer, no local address)
        // from an answer: the former says nothing about the target. A refused or silent TCP connect
        // is a closed or filtered port; a UDP port is only open when a request gets a valid reply.
        let limits = self.settings.limits;
        let mut first = match timeout_at(visit.deadline, Conn::open(target, limits, &visit.turn)).await {
            Err(_) => return Outcome::CutOff(None),
            Ok(Err(e)) => return e.local_failure().map_or(Outcome::Nothing, Outcome::LocalFailure),
            Ok(Ok(conn)) => conn,
        };
        let round_trip = first.connected_in() * FOLLOW_UP_ROUND_TRIPS;
        let follow_up_timeout = round_trip.max(FOLLOW_UP_FLOOR).min(limits.read_timeout);
        let reach = Reach { target, turn: &visit.turn, limits: Limits { follow_up_timeout, ..limits } };
        first.set_limits(reach.limits);
        let mut seen = Replies::default();
        let found = match target.transport() {
            Transport::Tcp => timeout_at(visit.deadline, self.probe_tcp(reach, first, &mut seen)).await,
            Transport::Udp => {
                drop(first);
                timeout_at(visit.deadline, self.probe_udp(reach, &mut seen)).await
            }
        };
        match found {
            Ok(Some((identity, evidence))) => {
                Outcome::Found(Observation::new(target.clone(), identity, evidence, observed_at))
            }
            Ok(None) => Outcome::Nothing,
            // Cut off: a TCP port that accepted is open, what it is stays unknown, with what it sent
            // to the probes that ended. A UDP port is open only once a reply validated, as without
            // a deadline.
            Err(_) => {
                let open = target.transport() == Transport::Tcp;
                Outcome::CutOff(open.then(|| {
                    let mut identity = Identity::new("unknown", false);
                    identity.field("cut_off", "the target deadline passed before identification ended");
                    Observation::new(target.clone(), identity, seen.evidence(), observed_at)
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, LedgerOptions};
    use crate::net::HostGate;
    use crate::scope::{PortSpec, Scope, Selection, TargetSpace};

    async fn panics(_session: &mut Session<'_>) -> Result<Identity, ProbeError> {
        panic!("a bug in a parser")
    }

    static PANICS: Probe = Probe::industrial("panics", |session| Box::pin(panics(session)));

    #[tokio::test]
    async fn a_panicking_probe_is_an_unknown_finding_with_the_error() {
        let listener = tokio::net::TcpListener::bind("127.121.6.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            for _ in 0..4 {
                let Ok((sock, _)) = listener.accept().await else { return };
                held.push(sock);
            }
        });
        let csv = "enterprise_id,enterprise,district,sector,level,targets,contact\nE1,e,d,s,general,127.121.6.1,c\n";
        let ledger = Ledger::parse(&LedgerOptions::default(), csv.as_bytes()).unwrap();
        let scope = Scope::build(&ledger, &Default::default(), &Selection::default()).unwrap();
        let target = TargetSpace::new(scope, vec![PortSpec { port, transport: Transport::Tcp }]).target(0);
        let empty = tempfile::tempdir().unwrap();
        let library = Arc::new(Library::load(empty.path()).unwrap());
        let identifier = Identifier::new(ProbeSettings::default(), &library);
        let gate = HostGate::new(1, Duration::ZERO, 1);
        let turn = gate.turn(target.addr()).await;
        let reach = Reach { target: &target, turn: &turn, limits: Limits::default() };
        let mut seen = Replies::default();
        let found = identifier.first_match(vec![Candidate::Registry(&PANICS)], reach, None, false, false, &mut seen);
        let (identity, _) = found.await.expect("the open port is reported");
        accepting.abort();
        assert_eq!(identity.protocol, "unknown");
        assert_eq!(identity.fields["error"], "the panics probe panicked: a bug in a parser");
    }
}
