//! A probe's session with one target: the current connection, and a bounded number of fresh ones
//! for protocols that must retry with other parameters after a peer hangs up (S7 TSAPs, Modbus unit ids).

use super::{Conn, HostTurn, Limits, NetError};
use crate::scope::Target;
use serde_json::{Map, Value};

/// Fresh connections one probe may open after its first.
pub const MAX_RECONNECTS: u32 = 4;

pub struct Session<'t> {
    target: &'t Target,
    /// The target's turn at its host: every connection of the session opens through it.
    turn: &'t HostTurn,
    limits: Limits,
    tls: bool,
    conn: Option<Conn>,
    reconnects_left: u32,
    /// What the peer sent on each earlier connection of the session that got anything.
    replies: Vec<Vec<u8>>,
}

impl<'t> Session<'t> {
    /// Opens the first connection (TLS when `tls`), returning the handshake's description for TLS.
    pub async fn open(
        target: &'t Target,
        turn: &'t HostTurn,
        limits: Limits,
        tls: bool,
    ) -> Result<(Self, Option<Map<String, Value>>), NetError> {
        let (conn, info) = Self::connect(target, turn, limits, tls).await?;
        Ok((Session::with(target, turn, limits, tls, conn), info))
    }

    /// A session around an already open connection.
    pub fn with(target: &'t Target, turn: &'t HostTurn, limits: Limits, tls: bool, conn: Conn) -> Self {
        Session { target, turn, limits, tls, conn: Some(conn), reconnects_left: MAX_RECONNECTS, replies: Vec::new() }
    }

    async fn connect(
        target: &Target,
        turn: &HostTurn,
        limits: Limits,
        tls: bool,
    ) -> Result<(Conn, Option<Map<String, Value>>), NetError> {
        if tls {
            let (c, info) = Conn::open_tls(target, limits, turn).await?;
            Ok((c, Some(info)))
        } else {
            Ok((Conn::open(target, limits, turn).await?, None))
        }
    }

    /// The target being probed (read-only: a probe may need its hostname, e.g. for an HTTP Host header).
    pub fn target(&self) -> &Target {
        self.target
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The current connection.
    pub fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a session always holds a connection between calls")
    }

    /// Closes the current connection and opens a fresh one; refused after [`MAX_RECONNECTS`]. The old
    /// connection closes first, so the fresh one is held to the host's politeness like any other;
    /// when the fresh one fails, the session keeps the closed one (every exchange on it fails).
    pub async fn reconnect(&mut self) -> Result<&mut Conn, NetError> {
        if self.reconnects_left == 0 {
            return Err(NetError::Invalid("reconnect budget spent".into()));
        }
        self.reconnects_left -= 1;
        let old = self.conn();
        let any_port = old.reads_any_port();
        let reply = old.close();
        self.keep_reply(reply);
        let conn = if any_port {
            Conn::open_udp_any_port(self.target, self.limits, self.turn).await?
        } else {
            Self::connect(self.target, self.turn, self.limits, self.tls).await?.0
        };
        Ok(self.conn.insert(conn))
    }

    fn keep_reply(&mut self, reply: Vec<u8>) {
        if !reply.is_empty() {
            self.replies.push(reply);
        }
    }

    /// What the peer sent on each connection of this session that got anything, in order (the first
    /// [`super::REPLY_BYTES`] of each): at most `1 + MAX_RECONNECTS` replies.
    pub fn into_replies(mut self) -> Vec<Vec<u8>> {
        if let Some(mut c) = self.conn.take() {
            let reply = c.close();
            self.keep_reply(reply);
        }
        self.replies
    }
}
