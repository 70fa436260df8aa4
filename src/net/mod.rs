//! Connections to targets with bounded reads: every read has a deadline and a byte budget, so a
//! peer that stays silent, drips, or streams forever costs one bounded slot and nothing more.

mod session;
mod tls;

pub use session::{Session, MAX_RECONNECTS};

use crate::scope::{Target, Transport};
use serde_json::{Map, Value};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

/// How much of the peer's replies is kept as evidence.
pub const EVIDENCE_BYTES: usize = 256;
/// How much of what the peer sent on one connection is kept to be named afterwards: a reply that
/// no probe validated still goes through the banner and rule library (an HTTP 400 page answering a
/// Modbus request names a web server), and an unprompted banner is named from as much.
pub const REPLY_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect_timeout: Duration,
    /// Deadline for one complete reply frame, however the bytes trickle in.
    pub read_timeout: Duration,
    /// Largest reply frame accepted; larger claims are refused before anything is allocated for them.
    pub max_frame: usize,
    /// Total bytes read from one connection across all its exchanges.
    pub max_total: usize,
    /// Extra sends of a UDP request that got no reply.
    pub udp_retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(3),
            max_frame: 64 * 1024,
            max_total: 256 * 1024,
            udp_retries: 1,
        }
    }
}

/// What a protocol's framing function says of the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet to decide.
    Incomplete,
    /// The first `n` bytes form one whole frame.
    Complete(usize),
    /// These bytes can never become a frame of this protocol.
    Invalid(String),
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("connection closed by peer after {0} bytes")]
    Closed(usize),
    #[error("reply larger than the {0}-byte limit")]
    TooLarge(usize),
    #[error("not a frame of this protocol: {0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Udp(UdpSocket),
}

/// One connection to one target, with the bytes received so far kept as evidence.
pub struct Conn {
    stream: Stream,
    limits: Limits,
    /// Bytes received but not yet consumed by a frame.
    pending: Vec<u8>,
    received: usize,
    /// The first [`REPLY_BYTES`] the peer sent on this connection.
    reply: Vec<u8>,
}

impl Conn {
    /// Opens a TCP connection or a connected UDP socket to the target.
    pub async fn open(target: &Target, limits: Limits) -> Result<Conn, NetError> {
        let stream = match target.transport() {
            Transport::Tcp => {
                let s = tokio::time::timeout(limits.connect_timeout, TcpStream::connect(target.socket_addr()))
                    .await
                    .map_err(|_| NetError::Timeout(limits.connect_timeout))??;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
            Transport::Udp => {
                let local: std::net::SocketAddr = if target.addr().is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(local).await?;
                // connect() makes the kernel drop datagrams from any other source address or port.
                s.connect(target.socket_addr()).await?;
                Stream::Udp(s)
            }
        };
        Ok(Conn { stream, limits, pending: Vec::new(), received: 0, reply: Vec::new() })
    }

    /// Opens a TCP connection and completes a TLS handshake over it, recording (never trusting) the
    /// peer's certificate chain. Returns the connection and the handshake's description.
    pub async fn open_tls(target: &Target, limits: Limits) -> Result<(Conn, Map<String, Value>), NetError> {
        let plain = Conn::open(target, limits).await?;
        let Stream::Tcp(tcp) = plain.stream else {
            return Err(NetError::Invalid("TLS needs a TCP target".into()));
        };
        let verifier = Arc::new(tls::RecordingVerifier::default());
        let connector = tokio_rustls::TlsConnector::from(tls::client_config(verifier.clone()));
        let name = target
            .hostname()
            .and_then(|h| rustls::pki_types::ServerName::try_from(h.to_string()).ok())
            .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(target.addr().into()));
        let stream = tokio::time::timeout(limits.read_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| NetError::Timeout(limits.read_timeout))?
            .map_err(|e| NetError::Invalid(format!("TLS handshake failed: {e}")))?;
        let (_, session) = stream.get_ref();
        let info = tls::describe(session.protocol_version(), session.negotiated_cipher_suite(), &verifier.take_chain());
        let conn =
            Conn { stream: Stream::Tls(Box::new(stream)), limits, pending: Vec::new(), received: 0, reply: Vec::new() };
        Ok((conn, info))
    }

    /// Whether this connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The first bytes the peer sent on this connection, up to [`REPLY_BYTES`] (datagrams one after
    /// the other).
    pub fn reply(&self) -> &[u8] {
        &self.reply
    }

    pub fn transport(&self) -> Transport {
        match self.stream {
            Stream::Udp(_) => Transport::Udp,
            Stream::Tcp(_) | Stream::Tls(_) => Transport::Tcp,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        let deadline = Instant::now() + self.limits.read_timeout;
        let result = match &mut self.stream {
            Stream::Tcp(s) => timeout_at(deadline, s.write_all(bytes)).await,
            Stream::Tls(s) => {
                timeout_at(deadline, async {
                    s.write_all(bytes).await?;
                    s.flush().await
                })
                .await
            }
            Stream::Udp(s) => timeout_at(deadline, s.send(bytes)).await.map(|r| r.map(|_| ())),
        };
        result.map_err(|_| NetError::Timeout(self.limits.read_timeout))?.map_err(NetError::Io)
    }

    /// Sends a request and reads its reply frame; over UDP the request is re-sent on silence.
    pub async fn exchange(&mut self, request: &[u8], frame: impl Fn(&[u8]) -> Frame) -> Result<Vec<u8>, NetError> {
        let tries = match self.stream {
            Stream::Udp(_) => 1 + self.limits.udp_retries,
            Stream::Tcp(_) | Stream::Tls(_) => 1,
        };
        let mut last = NetError::Timeout(self.limits.read_timeout);
        for _ in 0..tries {
            self.send(request).await?;
            match self.recv_frame(&frame).await {
                Err(e @ NetError::Timeout(_)) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    /// Reads one frame. Over UDP each datagram is judged on its own; ones that are not a frame are skipped.
    pub async fn recv_frame(&mut self, frame: impl Fn(&[u8]) -> Frame) -> Result<Vec<u8>, NetError> {
        let deadline = Instant::now() + self.limits.read_timeout;
        let timeout = NetError::Timeout(self.limits.read_timeout);
        match &mut self.stream {
            Stream::Udp(_) => {
                let mut buf = vec![0u8; self.limits.max_frame.min(65_535)];
                let mut last_invalid = None;
                loop {
                    if self.received >= self.limits.max_total {
                        return Err(last_invalid.unwrap_or(NetError::TooLarge(self.limits.max_total)));
                    }
                    let Stream::Udp(s) = &mut self.stream else { unreachable!() };
                    let n = match timeout_at(deadline, s.recv(&mut buf)).await {
                        Ok(r) => r?,
                        Err(_) => return Err(last_invalid.unwrap_or(timeout)),
                    };
                    self.record(&buf[..n]);
                    match frame(&buf[..n]) {
                        Frame::Complete(len) => return Ok(buf[..len.min(n)].to_vec()),
                        Frame::Incomplete => last_invalid = Some(NetError::Invalid("truncated datagram".into())),
                        Frame::Invalid(why) => last_invalid = Some(NetError::Invalid(why)),
                    }
                }
            }
            Stream::Tcp(_) | Stream::Tls(_) => loop {
                match frame(&self.pending) {
                    Frame::Complete(len) if len <= self.pending.len() => {
                        let rest = self.pending.split_off(len);
                        return Ok(std::mem::replace(&mut self.pending, rest));
                    }
                    Frame::Invalid(why) => return Err(NetError::Invalid(why)),
                    _ => {}
                }
                if self.pending.len() >= self.limits.max_frame {
                    return Err(NetError::TooLarge(self.limits.max_frame));
                }
                match self.read_some(deadline).await? {
                    0 => return Err(NetError::Closed(self.pending.len())),
                    _ => continue,
                }
            },
        }
    }

    /// Waits up to `wait` for whatever the peer sends unprompted (a banner), without sending anything.
    pub async fn recv_passive(&mut self, wait: Duration, max: usize) -> Result<Vec<u8>, NetError> {
        let deadline = Instant::now() + wait;
        if self.pending.is_empty() {
            match self.read_some(deadline).await {
                Ok(_) | Err(NetError::Timeout(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // A banner usually arrives whole; stragglers get a short grace each, never the full wait again.
        while !self.pending.is_empty() && self.pending.len() < max {
            let grace = (Instant::now() + Duration::from_millis(150)).min(deadline);
            match self.read_some(grace).await {
                Ok(0) | Err(NetError::Timeout(_)) | Err(NetError::TooLarge(_)) => break,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        let n = self.pending.len().min(max);
        let rest = self.pending.split_off(n);
        Ok(std::mem::replace(&mut self.pending, rest))
    }

    async fn read_some(&mut self, deadline: Instant) -> Result<usize, NetError> {
        if self.received >= self.limits.max_total {
            return Err(NetError::TooLarge(self.limits.max_total));
        }
        let mut chunk = [0u8; 4096];
        let want = chunk.len().min(self.limits.max_total - self.received);
        let n = match &mut self.stream {
            Stream::Tcp(s) => timeout_at(deadline, s.read(&mut chunk[..want])).await,
            Stream::Tls(s) => timeout_at(deadline, s.read(&mut chunk[..want])).await,
            Stream::Udp(s) => timeout_at(deadline, s.recv(&mut chunk[..want])).await,
        }
        .map_err(|_| NetError::Timeout(self.limits.read_timeout))??;
        self.pending.extend_from_slice(&chunk[..n]);
        self.record(&chunk[..n]);
        Ok(n)
    }

    fn record(&mut self, bytes: &[u8]) {
        self.received += bytes.len();
        let room = REPLY_BYTES.saturating_sub(self.reply.len());
        self.reply.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }
}
