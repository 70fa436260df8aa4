//! Banner probes from the fingerprint library: a text payload for services that do not speak first.
//! The reply is an observation of protocol `unknown` whose `banner` the library's rules name.

use super::{banner_identity, Identity, ProbeError};
use crate::fingerprints::BannerProbeDef;
use crate::net::{Frame, Session};
use crate::scope::Transport;
use serde_json::Value;

pub struct BannerProbe {
    def: BannerProbeDef,
    payload: Vec<u8>,
}

impl BannerProbe {
    pub fn new(def: &BannerProbeDef) -> BannerProbe {
        BannerProbe { payload: def.payload_bytes(), def: def.clone() }
    }

    pub fn transport(&self) -> Transport {
        self.def.transport
    }

    /// Whether the library names this port for the probe.
    pub fn expected_on(&self, port: u16) -> bool {
        self.def.ports.contains(&port)
    }

    /// Sends the payload and keeps what comes back (a text payload: never to a known ICS port
    /// without `--deep`).
    pub async fn run(&self, session: &mut Session<'_>) -> Result<Identity, ProbeError> {
        let conn = session.conn();
        let wait = conn.limits().read_timeout;
        let reply = match self.def.transport {
            Transport::Udp => conn.exchange(&self.payload, |d: &[u8]| Frame::Complete(d.len())).await?,
            Transport::Tcp => {
                conn.send(&self.payload).await?;
                conn.recv_passive(wait, self.def.read_limit).await?
            }
        };
        if reply.is_empty() {
            return Err(ProbeError::not("unknown", "no reply to the banner probe"));
        }
        if reply == self.payload {
            return Err(ProbeError::not("unknown", "the peer echoed the probe"));
        }
        let mut identity = banner_identity(&reply[..reply.len().min(self.def.read_limit)]);
        identity.field("probe", Value::String(self.def.name.clone()));
        Ok(identity)
    }
}
