//! The per-target strategy: connect, try the protocols expected on the port, listen for a banner,
//! and only then (never with text on an ICS port unless `--deep`) try the rest of the registry.

use super::{expected_on, is_ics_port, registry, Identity, Probe};
use crate::engine::{Observation, Prober};
use crate::net::{Conn, Limits, NetError};
use crate::scope::{Target, Transport};
use async_trait::async_trait;
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub limits: Limits,
    /// How long to wait for an unprompted banner.
    pub banner_wait: Duration,
    /// Try every probe of the registry on every open port.
    pub deep: bool,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings { limits: Limits::default(), banner_wait: Duration::from_secs(2), deep: false }
    }
}

pub struct Identifier {
    settings: ProbeSettings,
}

impl Identifier {
    pub fn new(settings: ProbeSettings) -> Identifier {
        Identifier { settings }
    }

    /// The probes to try on this target, in order, after the passive read.
    fn fallbacks(&self, target: &Target) -> Vec<&'static dyn Probe> {
        let ics_port = is_ics_port(target.port(), target.transport());
        registry()
            .iter()
            .copied()
            .filter(|p| p.transport() == target.transport())
            .filter(|p| !p.default_ports().contains(&target.port()))
            .filter(|p| self.settings.deep || !(ics_port && p.sends_text()))
            .filter(|p| self.settings.deep || !p.ics())
            .collect()
    }

    async fn try_probe(
        &self,
        probe: &dyn Probe,
        target: &Target,
        conn: Option<Conn>,
    ) -> Result<(Identity, Vec<u8>), Vec<u8>> {
        let mut conn = match conn {
            Some(c) => c,
            None => Conn::open(target, self.settings.limits).await.map_err(|_| Vec::new())?,
        };
        match probe.run(&mut conn).await {
            Ok(identity) => Ok((identity, conn.evidence().to_vec())),
            Err(e) => {
                tracing::debug!(target = %target.socket_addr(), probe = probe.protocol(), "no match: {e}");
                Err(conn.evidence().to_vec())
            }
        }
    }
}

#[async_trait]
impl Prober for Identifier {
    async fn probe(&self, target: &Target) -> Option<Observation> {
        let first = match target.transport() {
            Transport::Tcp => match Conn::open(target, self.settings.limits).await {
                Ok(c) => Some(c),
                Err(_) => return None,
            },
            // A UDP port is only known to be open when a probe's request gets a valid reply.
            Transport::Udp => None,
        };
        let observed_at = OffsetDateTime::now_utc();
        let mut evidence = Vec::new();
        let mut conn = first;
        for probe in expected_on(target.port(), target.transport()) {
            match self.try_probe(probe, target, conn.take()).await {
                Ok((identity, ev)) => return Some(Observation::new(target.clone(), identity, ev, observed_at)),
                Err(ev) if evidence.is_empty() => evidence = ev,
                Err(_) => {}
            }
        }
        if target.transport() == Transport::Udp {
            for probe in self.fallbacks(target) {
                if let Ok((identity, ev)) = self.try_probe(probe, target, None).await {
                    return Some(Observation::new(target.clone(), identity, ev, observed_at));
                }
            }
            return None;
        }

        // Passive read: many services (SSH, FTP, SMTP, Fox stations, ...) speak first.
        let mut conn = match conn {
            Some(c) => c,
            None => Conn::open(target, self.settings.limits).await.ok()?,
        };
        match conn.recv_passive(self.settings.banner_wait, self.settings.limits.max_frame).await {
            Ok(banner) if !banner.is_empty() => {
                return Some(Observation::new(target.clone(), Identity::new("unknown", false), banner, observed_at));
            }
            Ok(_) | Err(NetError::Timeout(_)) | Err(_) => {}
        }
        drop(conn);
        for probe in self.fallbacks(target) {
            match self.try_probe(probe, target, None).await {
                Ok((identity, ev)) => return Some(Observation::new(target.clone(), identity, ev, observed_at)),
                Err(ev) if evidence.is_empty() => evidence = ev,
                Err(_) => {}
            }
        }
        Some(Observation::new(target.clone(), Identity::new("unknown", false), evidence, observed_at))
    }
}
