//! The responder loops every simulated device runs on, TCP (optionally inside TLS) and UDP.
//!
//! A responder binds only an address in `127.0.0.0/8`: [`Responder::tcp`] and [`Responder::udp`]
//! refuse any other before they bind. Every conversation is bounded: a TCP connection is answered at
//! most [`MAX_REQUESTS`] times and closed after [`IDLE`] without a request, a TLS handshake gets
//! [`HANDSHAKE`], and a device only ever sends in reply to what it received (or, when its session
//! says so, one greeting right after the connection is accepted).

use crate::tls;
use anyhow::{bail, Context, Result};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Requests answered per TCP connection at most.
pub const MAX_REQUESTS: usize = 64;
/// A TCP connection without a request for this long is closed.
pub const IDLE: Duration = Duration::from_secs(5);
/// A TLS handshake not finished within this long is abandoned.
pub const HANDSHAKE: Duration = Duration::from_secs(3);
/// The most bytes one read (TCP) or one datagram (UDP) hands to a handler.
const READ_BUFFER: usize = 64 * 1024;
/// The pause after a failed accept or receive, so a persistent error (no file descriptors left) does
/// not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// A simulated device's conversation: given one request, the reply to send (or `None` to stay silent).
/// A TCP endpoint makes a new handler for each connection, so it may keep state; a UDP endpoint keeps one.
pub type Handler = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + Send>;

/// A transport a device serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// As port lists write it (`502/tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// How a connection ends after the first reply written, when it does not wait for more requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// Shuts the write half down (inside TLS: close_notify first).
    Clean,
    /// Drops the connection as it stands (inside TLS: no close_notify, as many embedded servers do).
    Abrupt,
}

/// How a TCP endpoint treats each connection, besides its handler.
#[derive(Clone, Default)]
pub struct Session {
    /// Sent as soon as a connection is accepted (after the TLS handshake, if any): a banner.
    pub greeting: Option<Vec<u8>>,
    /// Closes the connection right after the first reply.
    pub close_after_reply: Option<Close>,
    /// Runs every conversation inside TLS with this certificate.
    pub tls: Option<tls::Identity>,
}

impl Session {
    /// Greets with `banner` and then only listens.
    pub fn greeting(banner: &[u8]) -> Session {
        Session { greeting: Some(banner.to_vec()), ..Session::default() }
    }

    /// Runs every conversation inside TLS with `identity`.
    pub fn tls(identity: tls::Identity) -> Session {
        Session { tls: Some(identity), ..Session::default() }
    }
}

/// Refuses any address outside 127.0.0.0/8.
pub fn check_loopback(ip: IpAddr) -> Result<()> {
    match ip {
        IpAddr::V4(v4) if v4.octets()[0] == 127 => Ok(()),
        _ => bail!("{ip} is not in 127.0.0.0/8: simulated devices bind loopback addresses only"),
    }
}

/// What an endpoint has seen so far.
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    handshakes: AtomicU64,
    requests: AtomicU64,
}

/// One listening endpoint of a simulated device. Dropping it (or [`Responder::stop`]) ends it and
/// every conversation it is having.
pub struct Responder {
    /// The address bound (with the port the system chose, when port 0 was asked).
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Responder {
    /// Listens on `addr` (TCP) and answers each connection's requests with a handler from `make`.
    pub async fn tcp(
        addr: SocketAddr,
        session: Session,
        make: impl Fn() -> Handler + Send + Sync + 'static,
    ) -> Result<Responder> {
        check_loopback(addr.ip())?;
        let acceptor = match &session.tls {
            Some(identity) => Some(TlsAcceptor::from(identity.server_config()?)),
            None => None,
        };
        let listener = TcpListener::bind(addr).await.with_context(|| format!("bind {addr}/tcp"))?;
        let addr = listener.local_addr()?;
        let (counters, cancel) = (Arc::new(Counters::default()), CancellationToken::new());
        let task =
            tokio::spawn(accept_loop(listener, session, acceptor, Arc::new(make), counters.clone(), cancel.clone()));
        Ok(Responder { addr, counters, cancel, task })
    }

    /// Listens on `addr` (UDP) and answers each datagram with `handler`, to the port it came from.
    pub async fn udp(addr: SocketAddr, handler: Handler) -> Result<Responder> {
        check_loopback(addr.ip())?;
        let sock = UdpSocket::bind(addr).await.with_context(|| format!("bind {addr}/udp"))?;
        let addr = sock.local_addr()?;
        let (counters, cancel) = (Arc::new(Counters::default()), CancellationToken::new());
        let task = tokio::spawn(datagram_loop(sock, handler, counters.clone(), cancel.clone()));
        Ok(Responder { addr, counters, cancel, task })
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// TLS handshakes completed.
    pub fn handshakes(&self) -> u64 {
        self.counters.handshakes.load(Ordering::SeqCst)
    }

    /// Requests received: TCP reads and UDP datagrams.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// Ends the endpoint and waits until its address is free again.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    session: Session,
    acceptor: Option<TlsAcceptor>,
    make: Arc<dyn Fn() -> Handler + Send + Sync>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let session = Arc::new(session);
    loop {
        let sock = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((sock, _)) => sock,
                Err(_) => {
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        counters.connections.fetch_add(1, Ordering::SeqCst);
        let (handler, session, acceptor, counters) = (make(), session.clone(), acceptor.clone(), counters.clone());
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let conversation = async {
                match acceptor {
                    None => converse(sock, &session, handler, &counters).await,
                    Some(acceptor) => {
                        let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE, acceptor.accept(sock)).await else {
                            return;
                        };
                        counters.handshakes.fetch_add(1, Ordering::SeqCst);
                        converse(tls, &session, handler, &counters).await
                    }
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = conversation => {}
            }
        });
    }
}

/// One connection: the greeting, then at most [`MAX_REQUESTS`] requests, each answered by the handler.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    session: &Session,
    mut handler: Handler,
    counters: &Counters,
) {
    if let Some(greeting) = &session.greeting {
        if stream.write_all(greeting).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
    let mut buf = vec![0u8; READ_BUFFER];
    for _ in 0..MAX_REQUESTS {
        let n = match tokio::time::timeout(IDLE, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        counters.requests.fetch_add(1, Ordering::SeqCst);
        let Some(reply) = handler(&buf[..n]) else { continue };
        if stream.write_all(&reply).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        match session.close_after_reply {
            Some(Close::Clean) => {
                let _ = stream.shutdown().await;
                return;
            }
            Some(Close::Abrupt) => return,
            None => {}
        }
    }
}

async fn datagram_loop(sock: UdpSocket, mut handler: Handler, counters: Arc<Counters>, cancel: CancellationToken) {
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let (n, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            received = sock.recv_from(&mut buf) => match received {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        counters.requests.fetch_add(1, Ordering::SeqCst);
        // One reply per datagram received, never more.
        if let Some(reply) = handler(&buf[..n]) {
            let _ = sock.send_to(&reply, peer).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_outside_loopback_are_refused() {
        assert!(check_loopback("127.1.2.3".parse().unwrap()).is_ok());
        assert!(check_loopback("10.0.0.1".parse().unwrap()).is_err());
        assert!(check_loopback("::1".parse().unwrap()).is_err());
    }

    #[tokio::test]
    async fn a_responder_refuses_to_bind_outside_loopback() {
        let silent = || -> Handler { Box::new(|_: &[u8]| None) };
        let e = Responder::tcp("0.0.0.0:0".parse().unwrap(), Session::default(), silent).await.err().unwrap();
        assert!(e.to_string().contains("not in 127.0.0.0/8"), "{e}");
        assert!(Responder::udp("[::1]:0".parse().unwrap(), silent()).await.is_err());
    }

    #[tokio::test]
    async fn a_tcp_device_greets_answers_and_counts() {
        let echo = || -> Handler { Box::new(|req: &[u8]| Some(req.to_vec())) };
        let r = Responder::tcp("127.133.0.1:0".parse().unwrap(), Session::greeting(b"hi\n"), echo).await.unwrap();
        let addr = r.addr;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 3];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi\n");
        s.write_all(b"abc").await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"abc");
        assert_eq!((r.connections(), r.requests()), (1, 1));
        r.stop().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "stopped means the port is closed");
    }
}
