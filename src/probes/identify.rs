//! The per-target strategy:
//! 1. connect (TCP) — a refused or silent connect is a closed port, nothing is reported;
//! 2. the probes the registry expects on the port, in the clear, then in TLS where it expects TLS;
//! 3. every reply is evidence: what the peer sent back to those probes goes through the protocols'
//!    recognisers and the library's banner rules (as nmap matches its NULL and fallback probes), so
//!    an HTTP 400 page answering a Modbus request names a web server without one more byte sent
//!    (on an ICS port without `--deep` this ends the strategy);
//! 4. a passive read: many services (SSH, FTP, SMTP, ...) speak first;
//! 5. on ports that are not known ICS ports (or with `--deep`): a TLS handshake, then the text probes;
//!    with `--deep`, every binary probe of the registry too;
//! 6. the replies to those once more, else `unknown`, with whatever the peer sent as evidence.
//!
//! A known ICS port never receives a text payload or a TLS hello unless `--deep` asks for it: a stray
//! request can wedge a real controller.

use super::{expected_in_tls_on, expected_on, is_ics_port, registry, BannerProbe, Identity, Probe, ProbeError};
use crate::engine::{Observation, Outcome, Prober};
use crate::fingerprints::Library;
use crate::net::{Conn, Limits, Session, EVIDENCE_BYTES, REPLY_BYTES};
use crate::scope::{Target, Transport};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

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
struct Replies(Vec<Vec<u8>>);

impl Replies {
    fn add(&mut self, replies: Vec<Vec<u8>>) {
        for reply in replies {
            if self.0.len() < MAX_REPLIES && !self.0.contains(&reply) {
                self.0.push(reply);
            }
        }
    }

    /// The first bytes the peer sent, as a finding's evidence.
    fn evidence(&self) -> Vec<u8> {
        self.0.first().map(|r| evidence_of(r)).unwrap_or_default()
    }
}

fn evidence_of(reply: &[u8]) -> Vec<u8> {
    reply[..reply.len().min(EVIDENCE_BYTES)].to_vec()
}

/// The outcome of one probe attempt: an identity and the session's replies, or the replies alone.
type Attempt = Result<(Identity, Vec<Vec<u8>>), Vec<Vec<u8>>>;

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
    async fn attempt(&self, probe: Candidate<'_>, target: &Target, conn: Option<Conn>, tls: bool) -> Attempt {
        let limits = self.settings.limits;
        let any_port =
            matches!(probe, Candidate::Registry(p) if p.udp_any_port) && target.transport() == Transport::Udp;
        let session = match conn {
            Some(c) => Ok(Session::with(target, limits, tls, c)),
            None if any_port => {
                Conn::open_udp_any_port(target, limits).await.map(|c| Session::with(target, limits, tls, c))
            }
            None => Session::open(target, limits, tls).await.map(|(s, _)| s),
        };
        let Ok(mut session) = session else { return Err(Vec::new()) };
        let outcome = probe.run(&mut session).await;
        let replies = session.into_replies();
        match outcome {
            Ok(identity) => Ok((identity, replies)),
            Err(e) => {
                tracing::debug!(target = %target.socket_addr(), probe = probe.protocol(), "no match: {e}");
                Err(replies)
            }
        }
    }

    /// Tries `probes` in order, each on a fresh connection except the first, which may use `first`.
    /// The replies of the probes that fail are added to `seen`.
    async fn first_match(
        &self,
        probes: Vec<Candidate<'_>>,
        target: &Target,
        mut first: Option<Conn>,
        tls: bool,
        seen: &mut Replies,
    ) -> Option<(Identity, Vec<u8>)> {
        for probe in probes {
            match self.attempt(probe, target, first.take(), tls).await {
                Ok((identity, replies)) => {
                    let evidence = replies.first().map(|r| evidence_of(r)).unwrap_or_else(|| seen.evidence());
                    return Some((identity, evidence));
                }
                Err(replies) => seen.add(replies),
            }
        }
        None
    }

    /// Every reply is evidence: the first reply that a protocol's recogniser validates, or that a
    /// banner rule of the library names, identifies the service. Nothing is sent.
    fn name_replies(&self, seen: &Replies) -> Option<(Identity, Vec<u8>)> {
        seen.0.iter().find_map(|reply| {
            let recognised = registry().iter().filter_map(|p| p.recognise).find_map(|recognise| recognise(reply));
            let identity = recognised.or_else(|| {
                let banner = banner_identity(reply);
                self.library.classify(banner.protocol, &banner.fields).protocol.is_some().then_some(banner)
            })?;
            Some((identity, evidence_of(reply)))
        })
    }

    async fn probe_udp(&self, target: &Target) -> Option<(Identity, Vec<u8>)> {
        let mut seen = Replies::default();
        let port = target.port();
        let expected: Vec<&'static Probe> = expected_on(port, Transport::Udp).filter(|p| self.usable(p)).collect();
        let mut probes: Vec<Candidate> = expected.iter().copied().map(Candidate::Registry).collect();
        probes.extend(self.banner_probes_on(port, Transport::Udp, is_ics_port(port, Transport::Udp)));
        probes.extend(self.other_banner_probes(port, Transport::Udp));
        if self.settings.deep {
            probes.extend(self.rest_of_registry(Transport::Udp, &expected).map(Candidate::Registry));
        }
        // A UDP port is only known to be open when a request gets a valid reply, or one the library names.
        if let Some(found) = self.first_match(probes, target, None, false, &mut seen).await {
            return Some(found);
        }
        self.name_replies(&seen)
    }

    async fn probe_tcp(&self, target: &Target, conn: Conn) -> Option<(Identity, Vec<u8>)> {
        let port = target.port();
        let mut seen = Replies::default();
        let expected: Vec<&'static Probe> = expected_on(port, Transport::Tcp).filter(|p| self.usable(p)).collect();
        let mut spare = Some(conn);
        if !expected.is_empty() {
            let probes = expected.iter().copied().map(Candidate::Registry).collect();
            if let Some(found) = self.first_match(probes, target, spare.take(), false, &mut seen).await {
                return Some(found);
            }
        }
        let ics_port = is_ics_port(port, Transport::Tcp);
        let tls_expected: Vec<_> = expected_in_tls_on(port).filter(|p| self.usable(p)).collect();
        if !tls_expected.is_empty() {
            if let Some(found) = self.probe_in_tls(target, &tls_expected, &mut seen).await {
                return Some(found);
            }
        }
        // On an ICS port nothing more than a passive read may follow (without `--deep`): name the
        // replies now. Elsewhere the text probes may still learn more (an HTTP page's title).
        let deep = self.settings.deep;
        if ics_port && !deep {
            if let Some(found) = self.name_replies(&seen) {
                return Some(found);
            }
        }

        // Passive read: a service that speaks first tells what it is without being asked.
        let mut conn = match spare.take() {
            Some(c) => c,
            None => Conn::open(target, self.settings.limits).await.ok()?,
        };
        let keep = REPLY_BYTES.min(self.settings.limits.max_frame);
        if let Ok(banner) = conn.recv_passive(self.settings.banner_wait, keep).await {
            if !banner.is_empty() {
                return Some((banner_identity(&banner), evidence_of(&banner)));
            }
        }
        drop(conn);
        let asked = self.banner_probes_on(port, Transport::Tcp, ics_port);
        if let Some(found) = self.first_match(asked, target, None, false, &mut seen).await {
            return Some(found);
        }

        if tls_expected.is_empty() && (deep || !ics_port) {
            if let Some(found) = self.probe_in_tls(target, &[], &mut seen).await {
                return Some(found);
            }
        }
        let mut rest: Vec<Candidate> = self
            .rest_of_registry(Transport::Tcp, &expected)
            .filter(|p| deep || (!ics_port && p.sends_text && !p.ics))
            .map(Candidate::Registry)
            .collect();
        rest.extend(self.other_banner_probes(port, Transport::Tcp));
        if let Some(found) = self.first_match(rest, target, None, false, &mut seen).await {
            return Some(found);
        }
        self.name_replies(&seen).or_else(|| Some((Identity::new("unknown", false), seen.evidence())))
    }

    /// Handshakes TLS, then tries `inner` (or, when empty, the text probes) inside it. A TLS service
    /// whose inner protocol is not recognised is reported as `tls`, with its certificate.
    async fn probe_in_tls(
        &self,
        target: &Target,
        inner: &[&'static Probe],
        seen: &mut Replies,
    ) -> Option<(Identity, Vec<u8>)> {
        let limits = self.settings.limits;
        let (session, info) = Session::open(target, limits, true).await.ok()?;
        let info = info.unwrap_or_default();
        drop(session);
        let candidates: Vec<Candidate> = if inner.is_empty() {
            self.rest_of_registry(Transport::Tcp, &[]).filter(|p| p.sends_text).map(Candidate::Registry).collect()
        } else {
            inner.iter().copied().map(Candidate::Registry).collect()
        };
        let mut inner_seen = Replies::default();
        let (mut identity, evidence) = match self.first_match(candidates, target, None, true, &mut inner_seen).await {
            Some(found) => found,
            None => {
                self.name_replies(&inner_seen).unwrap_or_else(|| (Identity::new("tls", false), inner_seen.evidence()))
            }
        };
        identity.fields.insert("tls".into(), Value::Object(info));
        let evidence = if evidence.is_empty() { seen.evidence() } else { evidence };
        seen.add(inner_seen.0);
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
    async fn probe(&self, target: &Target) -> Outcome {
        let observed_at = OffsetDateTime::now_utc();
        // The first socket tells a local failure (no file descriptor, no buffer, no local address)
        // from an answer: the former says nothing about the target. A refused or silent TCP connect
        // is a closed or filtered port; a UDP port is only open when a request gets a valid reply.
        let first = Conn::open(target, self.settings.limits).await;
        let found = match (first, target.transport()) {
            (Err(e), _) => return e.local_failure().map_or(Outcome::Nothing, Outcome::LocalFailure),
            (Ok(conn), Transport::Tcp) => self.probe_tcp(target, conn).await,
            (Ok(_), Transport::Udp) => self.probe_udp(target).await,
        };
        match found {
            Some((identity, evidence)) => {
                Outcome::Found(Observation::new(target.clone(), identity, evidence, observed_at))
            }
            None => Outcome::Nothing,
        }
    }
}
