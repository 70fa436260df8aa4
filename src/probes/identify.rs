//! The per-target strategy:
//! 1. connect (TCP) — a refused or silent connect is a closed port, nothing is reported;
//! 2. the probes the registry expects on the port, in the clear, then in TLS where it expects TLS;
//! 3. a passive read: many services (SSH, FTP, SMTP, ...) speak first;
//! 4. on ports that are not known ICS ports (or with `--deep`): a TLS handshake, then the text probes;
//!    with `--deep`, every binary probe of the registry too;
//! 5. otherwise `unknown`, with whatever the peer sent as evidence.
//!
//! A known ICS port never receives a text payload or a TLS hello unless `--deep` asks for it: a stray
//! request can wedge a real controller.

use super::{expected_in_tls_on, expected_on, is_ics_port, registry, BannerProbe, Identity, Probe, ProbeError};
use crate::engine::{Observation, Outcome, Prober};
use crate::fingerprints::Library;
use crate::net::{Conn, Limits, Session};
use crate::scope::{Target, Transport};
use async_trait::async_trait;
use serde_json::Value;
use std::time::Duration;
use time::OffsetDateTime;

/// Bytes kept of an unprompted banner, as a banner probe keeps of its reply by default (`read_limit`):
/// a peer that streams garbage is named from its first bytes, not stored by the 64 KiB frame.
pub const PASSIVE_BANNER_BYTES: usize = 4096;

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
}

/// The outcome of one probe attempt: an identity, or the evidence the attempt collected.
type Attempt = Result<(Identity, Vec<u8>), Vec<u8>>;

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
    pub fn new(settings: ProbeSettings, library: &Library) -> Identifier {
        Identifier { settings, banner_probes: library.banner_probes.iter().map(BannerProbe::new).collect() }
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

    /// Runs `probe` on `conn` if given, else on a fresh connection (TLS when `tls`).
    async fn attempt(&self, probe: Candidate<'_>, target: &Target, conn: Option<Conn>, tls: bool) -> Attempt {
        let limits = self.settings.limits;
        let mut session = match conn {
            Some(c) => Session::with(target, limits, tls, c),
            None => match Session::open(target, limits, tls).await {
                Ok((s, _)) => s,
                Err(_) => return Err(Vec::new()),
            },
        };
        let outcome = probe.run(&mut session).await;
        let evidence = session.into_evidence();
        match outcome {
            Ok(identity) => Ok((identity, evidence)),
            Err(e) => {
                tracing::debug!(target = %target.socket_addr(), probe = probe.protocol(), "no match: {e}");
                Err(evidence)
            }
        }
    }

    /// Tries `probes` in order, each on a fresh connection except the first, which may use `first`.
    async fn first_match(
        &self,
        probes: Vec<Candidate<'_>>,
        target: &Target,
        mut first: Option<Conn>,
        tls: bool,
        evidence: &mut Vec<u8>,
    ) -> Option<Identity> {
        for probe in probes {
            match self.attempt(probe, target, first.take(), tls).await {
                Ok((identity, ev)) => {
                    if !ev.is_empty() {
                        *evidence = ev;
                    }
                    return Some(identity);
                }
                Err(ev) if evidence.is_empty() => *evidence = ev,
                Err(_) => {}
            }
        }
        None
    }

    async fn probe_udp(&self, target: &Target) -> Option<(Identity, Vec<u8>)> {
        let mut evidence = Vec::new();
        let port = target.port();
        let expected: Vec<&'static Probe> = expected_on(port, Transport::Udp).filter(|p| self.usable(p)).collect();
        let mut probes: Vec<Candidate> = expected.iter().copied().map(Candidate::Registry).collect();
        probes.extend(self.banner_probes_on(port, Transport::Udp, is_ics_port(port, Transport::Udp)));
        probes.extend(self.other_banner_probes(port, Transport::Udp));
        if self.settings.deep {
            probes.extend(self.rest_of_registry(Transport::Udp, &expected).map(Candidate::Registry));
        }
        // A UDP port is only known to be open when a request gets a valid reply.
        let found = self.first_match(probes, target, None, false, &mut evidence).await?;
        Some((found, evidence))
    }

    async fn probe_tcp(&self, target: &Target, conn: Conn) -> Option<(Identity, Vec<u8>)> {
        let port = target.port();
        let mut evidence = Vec::new();
        let expected: Vec<&'static Probe> = expected_on(port, Transport::Tcp).filter(|p| self.usable(p)).collect();
        let mut spare = Some(conn);
        if !expected.is_empty() {
            let probes = expected.iter().copied().map(Candidate::Registry).collect();
            if let Some(id) = self.first_match(probes, target, spare.take(), false, &mut evidence).await {
                return Some((id, evidence));
            }
        }
        let ics_port = is_ics_port(port, Transport::Tcp);
        let tls_expected: Vec<_> = expected_in_tls_on(port).filter(|p| self.usable(p)).collect();
        if !tls_expected.is_empty() {
            if let Some(found) = self.probe_in_tls(target, &tls_expected, &mut evidence).await {
                return Some(found);
            }
        }

        // Passive read: a service that speaks first tells what it is without being asked.
        let mut conn = match spare.take() {
            Some(c) => c,
            None => Conn::open(target, self.settings.limits).await.ok()?,
        };
        let keep = PASSIVE_BANNER_BYTES.min(self.settings.limits.max_frame);
        if let Ok(banner) = conn.recv_passive(self.settings.banner_wait, keep).await {
            if !banner.is_empty() {
                return Some((banner_identity(&banner), banner));
            }
        }
        drop(conn);
        let asked = self.banner_probes_on(port, Transport::Tcp, ics_port);
        if let Some(id) = self.first_match(asked, target, None, false, &mut evidence).await {
            return Some((id, evidence));
        }

        let deep = self.settings.deep;
        if tls_expected.is_empty() && (deep || !ics_port) {
            if let Some(found) = self.probe_in_tls(target, &[], &mut evidence).await {
                return Some(found);
            }
        }
        let mut rest: Vec<Candidate> = self
            .rest_of_registry(Transport::Tcp, &expected)
            .filter(|p| deep || (!ics_port && p.sends_text && !p.ics))
            .map(Candidate::Registry)
            .collect();
        rest.extend(self.other_banner_probes(port, Transport::Tcp));
        if let Some(id) = self.first_match(rest, target, None, false, &mut evidence).await {
            return Some((id, evidence));
        }
        Some((Identity::new("unknown", false), evidence))
    }

    /// Handshakes TLS, then tries `inner` (or, when empty, the text probes) inside it. A TLS service
    /// whose inner protocol is not recognised is reported as `tls`, with its certificate.
    async fn probe_in_tls(
        &self,
        target: &Target,
        inner: &[&'static Probe],
        evidence: &mut Vec<u8>,
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
        let mut inner_evidence = Vec::new();
        let mut identity = self
            .first_match(candidates, target, None, true, &mut inner_evidence)
            .await
            .unwrap_or_else(|| Identity::new("tls", false));
        identity.fields.insert("tls".into(), Value::Object(info));
        if !inner_evidence.is_empty() {
            *evidence = inner_evidence;
        }
        Some((identity, evidence.clone()))
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
