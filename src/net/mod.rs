//! Connections to targets with bounded reads: every read has a deadline and a byte budget, so a
//! peer that stays silent, drips, or streams forever costs one bounded slot and nothing more.

pub mod pacing;
mod politeness;
pub mod raw;
mod session;
mod tls;

pub use politeness::{ConnectionPass, HostGate, HostTurn};
pub use session::{Session, MAX_RECONNECTS};

use crate::scope::{Target, Transport};
use serde_json::{Map, Value};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

/// File descriptors kept back from probing (the store, the outputs, the runtime, logs).
const FD_RESERVE: u64 = 64;

/// The file descriptors probing may use: the soft limit, first raised to the hard limit, less the ones
/// already open and a reserve.
pub fn fd_budget() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write to and read from a plain struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let open = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    let soft = limit.rlim_cur.min(1 << 20);
    usize::try_from(soft.saturating_sub(open + FD_RESERVE)).unwrap_or(usize::MAX).max(2)
}

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
    /// Deadline for a later variant of a request once an earlier variant got nothing at all (other
    /// Modbus functions, another ICS protocol on the same port): a silent port costs about one read
    /// timeout, not one per variant. At most `read_timeout`; the identifier sets it per target from
    /// the measured connect time.
    pub follow_up_timeout: Duration,
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
            follow_up_timeout: Duration::from_secs(3),
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

impl NetError {
    /// The reason, when the error is the scanner's own (out of file descriptors, buffers, memory or
    /// local addresses, or refused by local policy) and so says nothing about the peer.
    pub fn local_failure(&self) -> Option<String> {
        let NetError::Io(e) = self else { return None };
        let local = matches!(
            e.raw_os_error(),
            Some(
                libc::EMFILE
                    | libc::ENFILE
                    | libc::ENOBUFS
                    | libc::ENOMEM
                    | libc::EADDRNOTAVAIL
                    | libc::EAGAIN
                    | libc::EPERM
                    | libc::EACCES
            )
        );
        local.then(|| e.to_string())
    }
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Udp(Datagrams),
    /// Closed by the scanner: the socket is gone and its host's slot given back; every send fails
    /// and every read sees the end of the stream.
    Closed(Transport),
}

/// A UDP socket talking to one target. Connected, the kernel drops datagrams from any other source
/// address or port. Unconnected (`any_port`), datagrams from any source port of the target's address
/// are read, for stacks that answer from another port than the one asked (some BACnet and FINS
/// stacks); those of any other address are dropped unread.
struct Datagrams {
    socket: UdpSocket,
    peer: SocketAddr,
    any_port: bool,
}

impl Datagrams {
    async fn bind(peer: SocketAddr, any_port: bool) -> io::Result<Datagrams> {
        let local: SocketAddr =
            if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
        let socket = UdpSocket::bind(local).await?;
        if any_port {
            report_icmp_errors(&socket, peer.is_ipv4())?;
        } else {
            socket.connect(peer).await?;
        }
        Ok(Datagrams { socket, peer, any_port })
    }

    async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        if self.any_port {
            self.socket.send_to(bytes, self.peer).await.map(|_| ())
        } else {
            self.socket.send(bytes).await.map(|_| ())
        }
    }

    /// The next datagram from the target, by `deadline` (`None` when it passes).
    async fn recv(&self, buf: &mut [u8], deadline: Instant) -> io::Result<Option<usize>> {
        loop {
            let received = if self.any_port {
                timeout_at(deadline, self.socket.recv_from(buf)).await.map(|r| r.map(|(n, from)| (n, Some(from))))
            } else {
                timeout_at(deadline, self.socket.recv(buf)).await.map(|r| r.map(|n| (n, None)))
            };
            match received {
                Err(_) => return Ok(None),
                Ok(Err(e)) => return Err(e),
                Ok(Ok((n, None))) => return Ok(Some(n)),
                Ok(Ok((n, Some(from)))) if from.ip() == self.peer.ip() => return Ok(Some(n)),
                Ok(Ok((_, Some(from)))) => {
                    tracing::debug!(target = %self.peer, %from, "datagram from another address dropped")
                }
            }
        }
    }
}

/// Asks the kernel to report ICMP errors (port unreachable) on an unconnected UDP socket as it does
/// on a connected one, so that a closed port still fails at once instead of at the read deadline.
fn report_icmp_errors(socket: &UdpSocket, ipv4: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (level, name) =
        if ipv4 { (libc::IPPROTO_IP, libc::IP_RECVERR) } else { (libc::IPPROTO_IPV6, libc::IPV6_RECVERR) };
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is the open socket borrowed for the call, and the option value is a
    // c_int that lives across it, with its exact size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
    /// How long the TCP handshake took (zero for UDP): a measure of the round trip.
    connected_in: Duration,
    /// The host's connection slot, given back (and its interval started) when the connection drops,
    /// after the socket above has closed.
    host_slot: Option<ConnectionPass>,
}

/// The largest TLS handshake message the client reads (rustls's limit: 64 KiB).
pub const TLS_HANDSHAKE_MESSAGE_BYTES: usize = 0xffff;

/// The name a TLS client hello gives: the target's hostname, else its address.
fn tls_server_name(target: &Target) -> rustls::pki_types::ServerName<'static> {
    target
        .hostname()
        .and_then(|h| rustls::pki_types::ServerName::try_from(h.to_string()).ok())
        .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(target.addr().into()))
}

impl Conn {
    /// Opens a TCP connection or a connected UDP socket to the target, when the host's politeness
    /// allows (the wait for it is not part of the connect timeout).
    pub async fn open(target: &Target, limits: Limits, turn: &HostTurn) -> Result<Conn, NetError> {
        let pass = turn.connection().await;
        let started = Instant::now();
        let stream = match target.transport() {
            Transport::Tcp => {
                let s = tokio::time::timeout(limits.connect_timeout, TcpStream::connect(target.socket_addr()))
                    .await
                    .map_err(|_| NetError::Timeout(limits.connect_timeout))??;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
            Transport::Udp => Stream::Udp(Datagrams::bind(target.socket_addr(), false).await?),
        };
        let mut conn = Conn::over(stream, limits, pass);
        if conn.transport() == Transport::Tcp {
            conn.connected_in = started.elapsed();
        }
        Ok(conn)
    }

    /// Opens an unconnected UDP socket to the target that reads datagrams from any source port of the
    /// target's address (and from no other address).
    pub async fn open_udp_any_port(target: &Target, limits: Limits, turn: &HostTurn) -> Result<Conn, NetError> {
        if target.transport() != Transport::Udp {
            return Err(NetError::Invalid("a UDP socket for a TCP target".into()));
        }
        let pass = turn.connection().await;
        Ok(Conn::over(Stream::Udp(Datagrams::bind(target.socket_addr(), true).await?), limits, pass))
    }

    fn over(stream: Stream, limits: Limits, pass: ConnectionPass) -> Conn {
        Conn {
            stream,
            limits,
            pending: Vec::new(),
            received: 0,
            reply: Vec::new(),
            connected_in: Duration::ZERO,
            host_slot: Some(pass),
        }
    }

    /// How long the TCP handshake took (zero for UDP).
    pub fn connected_in(&self) -> Duration {
        self.connected_in
    }

    /// Closes the socket and gives the host's slot back (so that a fresh connection to the host may
    /// open), returning what the peer sent on it. The connection stays usable as a closed one.
    pub fn close(&mut self) -> Vec<u8> {
        let transport = self.transport();
        self.stream = Stream::Closed(transport);
        self.host_slot = None;
        self.pending.clear();
        std::mem::take(&mut self.reply)
    }

    /// Whether this is a UDP socket that reads any source port of the target's address.
    pub fn reads_any_port(&self) -> bool {
        matches!(&self.stream, Stream::Udp(d) if d.any_port)
    }

    /// Opens a TCP connection and completes a TLS handshake over it, recording (never trusting) the
    /// peer's certificate chain. Returns the connection and the handshake's description.
    pub async fn open_tls(
        target: &Target,
        limits: Limits,
        turn: &HostTurn,
    ) -> Result<(Conn, Map<String, Value>), NetError> {
        let Conn { stream, host_slot, connected_in, .. } = Conn::open(target, limits, turn).await?;
        let (Stream::Tcp(tcp), Some(pass)) = (stream, host_slot) else {
            return Err(NetError::Invalid("TLS needs a TCP target".into()));
        };
        let verifier = Arc::new(tls::RecordingVerifier::default());
        let connector = tokio_rustls::TlsConnector::from(tls::client_config(verifier.clone()));
        let name = tls_server_name(target);
        let stream = tokio::time::timeout(limits.read_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| NetError::Timeout(limits.read_timeout))?
            .map_err(|e| {
                let too_large = rustls::Error::InvalidMessage(rustls::InvalidMessage::HandshakePayloadTooLarge);
                match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                    // A handshake message beyond what a TLS client reads: the server did speak TLS.
                    Some(error) if *error == too_large => NetError::TooLarge(TLS_HANDSHAKE_MESSAGE_BYTES),
                    _ => NetError::Invalid(format!("TLS handshake failed: {e}")),
                }
            })?;
        let (_, session) = stream.get_ref();
        let info = tls::describe(session.protocol_version(), session.negotiated_cipher_suite(), &verifier.take_chain());
        let mut conn = Conn::over(Stream::Tls(Box::new(stream)), limits, pass);
        conn.connected_in = connected_in;
        Ok((conn, info))
    }

    /// Sends the client hello of [`Conn::open_tls`] on a plain connection and reads what comes back:
    /// when it is a TLS server hello, the version and cipher the server chose and the size of the
    /// certificate message that follows, with the reply's first bytes. For a server whose handshake
    /// cannot be completed (a certificate message larger than the 64 KiB a TLS client reads).
    pub async fn tls_server_hello(
        target: &Target,
        limits: Limits,
        turn: &HostTurn,
    ) -> Option<(Map<String, Value>, Vec<u8>)> {
        let config = tls::client_config(Arc::new(tls::RecordingVerifier::default()));
        let mut client = rustls::ClientConnection::new(config, tls_server_name(target)).ok()?;
        let mut hello = Vec::new();
        client.write_tls(&mut hello).ok()?;
        let mut conn = Conn::open(target, limits, turn).await.ok()?;
        conn.send(&hello).await.ok()?;
        let reply = conn.recv_passive(limits.read_timeout, REPLY_BYTES).await.ok()?;
        Some((tls::server_hello(&reply)?, reply))
    }

    /// Whether this connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Holds the connection's later reads and writes to `limits`.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
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
            Stream::Closed(transport) => transport,
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
            Stream::Udp(d) => timeout_at(deadline, d.send(bytes)).await,
            Stream::Closed(_) => return Err(NetError::Closed(0)),
        };
        result.map_err(|_| NetError::Timeout(self.limits.read_timeout))?.map_err(NetError::Io)
    }

    /// Sends a request and reads its reply frame; over UDP the request is re-sent on silence.
    pub async fn exchange(&mut self, request: &[u8], frame: impl Fn(&[u8]) -> Frame) -> Result<Vec<u8>, NetError> {
        let tries = match self.stream {
            Stream::Udp(_) => 1 + self.limits.udp_retries,
            Stream::Tcp(_) | Stream::Tls(_) | Stream::Closed(_) => 1,
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
                    let Stream::Udp(d) = &mut self.stream else { unreachable!() };
                    let Some(n) = d.recv(&mut buf, deadline).await? else {
                        return Err(last_invalid.unwrap_or(timeout));
                    };
                    self.record(&buf[..n]);
                    match frame(&buf[..n]) {
                        Frame::Complete(len) => return Ok(buf[..len.min(n)].to_vec()),
                        Frame::Incomplete => last_invalid = Some(NetError::Invalid("truncated datagram".into())),
                        Frame::Invalid(why) => last_invalid = Some(NetError::Invalid(why)),
                    }
                }
            }
            Stream::Tcp(_) | Stream::Tls(_) | Stream::Closed(_) => loop {
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
        let timeout = NetError::Timeout(self.limits.read_timeout);
        let n = match &mut self.stream {
            Stream::Tcp(s) => timeout_at(deadline, s.read(&mut chunk[..want])).await.map_err(|_| timeout)??,
            Stream::Tls(s) => timeout_at(deadline, s.read(&mut chunk[..want])).await.map_err(|_| timeout)??,
            Stream::Udp(d) => d.recv(&mut chunk[..want], deadline).await?.ok_or(timeout)?,
            Stream::Closed(_) => 0,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unconnected_socket_still_hears_that_a_port_is_closed() {
        // Nothing listens there: the kernel's port unreachable arrives as on a connected socket.
        let closed: SocketAddr = "127.119.1.1:47808".parse().unwrap();
        let d = Datagrams::bind(closed, true).await.unwrap();
        d.send(b"Who-Is").await.unwrap();
        let err = d.recv(&mut [0u8; 64], Instant::now() + Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[tokio::test]
    async fn another_port_of_the_target_is_read_and_another_address_dropped() {
        let target: SocketAddr = "127.119.1.2:47808".parse().unwrap();
        let device = UdpSocket::bind(target).await.unwrap();
        let other_port = UdpSocket::bind("127.119.1.2:47809").await.unwrap();
        let other_address = UdpSocket::bind("127.119.1.3:47808").await.unwrap();
        for any_port in [true, false] {
            let d = Datagrams::bind(target, any_port).await.unwrap();
            d.send(b"request").await.unwrap();
            let mut buf = [0u8; 64];
            let (_, ours) = device.recv_from(&mut buf).await.unwrap();
            other_address.send_to(b"spoofed", ours).await.unwrap();
            other_port.send_to(b"answer", ours).await.unwrap();
            let got = d.recv(&mut buf, Instant::now() + Duration::from_millis(500)).await.unwrap();
            if any_port {
                assert_eq!(
                    got.map(|n| &buf[..n]),
                    Some(&b"answer"[..]),
                    "the spoofed datagram came first and was dropped"
                );
            } else {
                assert_eq!(got, None, "a connected socket reads only the port it asked");
            }
        }
    }
}
